"""OpenAI's Responses API: ``POST /v1/responses``, ``GET``/``DELETE /v1/responses/{id}``,
``GET /v1/responses/{id}/input_items``, ``POST /v1/responses/{id}/cancel``.

Two ways to answer a new response (``docs/responses-api.md``):

* **native** — when the model has channels that serve the ``responses`` surface
  (``providers/surfaces.py``), the request goes to them as it is (model mapped), and the
  answer comes back as the upstream sent it: JSON, or its events one by one
  (``relay/native_stream.py``). Billed from its ``usage`` (the JSON's, or the
  ``response.completed`` event's). The gateway's stages see it through a chat view
  (``inbound/responses_view.py``): the prepare stages run on the chat translation, or on
  an estimate of the request's text when it has none, before routing, and what they
  change is carried back to the body; the reservation is made on the same view; response
  and chunk filters observe the answer as a chat completion or chunks.
* **translated** — otherwise the request becomes a chat-completions one
  (``inbound/responses_request.py``) and runs through the chat relay with a presenter that
  shows the answer as a ``response`` object or as the Responses events
  (``inbound/responses_answer.py``).

While a filter may change answers (``FilterChain.output_filtered``: content safety with a
word list, docs/safety.md), a request the translation can carry takes the translated way
even on channels serving the Responses API, so its answer is filtered as chat's, chunk by
chunk. One only the native way can carry (built-in tools, a native
``previous_response_id``, …) is checked whole before anything is sent (a stream is held
until the upstream finished: ``relay/native_stream.py`` ``Guard``); an answer a filter
changed is rebuilt from its filtered chat view (``content_filter``: ``incomplete``) and
not recorded, so its id cannot fetch the upstream's copy.

Each response is recorded with its owner and channel (``relay/responses_state.py``):
``previous_response_id`` and the calls on an id go to the channel that made it (native), or
are answered from the gateway's own copy (translated); anyone but the owner gets a 404.

Whole answers and errors carry the ``code``/``msg`` envelope as the OpenAI endpoints do
while ``RELAYGATE_ENVELOPE_FORMATS`` names ``responses`` (``relay/envelope.py``); left out,
they are plain OpenAI bodies with OpenAI's statuses.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import orjson

from relaygate.asgi import Message, Request, Send
from relaygate.billing.tokens import count_completion, count_prompt
from relaygate.context import RelayContext
from relaygate.errors import InvalidRequest, NotFound, RelayError, UpstreamError, send_error
from relaygate.inbound.responses_answer import ResponsesStream, new_id, to_response
from relaygate.inbound.responses_request import input_items, to_chat
from relaygate.inbound.responses_view import (
    ResponsesShadow,
    apply_prepared,
    chat_view,
    estimate_chat,
    usage_of,
)
from relaygate.providers.base import Adaptor, Target, Usage, parse_json_object
from relaygate.providers.surfaces import SurfaceCall
from relaygate.relay.attempt import Call, build_request, fetch, run_attempts, upstream_failure
from relaygate.relay.chat import chat_attempt, take_chat_body
from relaygate.relay.envelope import envelope_on, plain_openai_error, wrap_ok
from relaygate.relay.native_stream import Guard, filter_whole, frame, pump
from relaygate.relay.pipeline import (
    answer_failure,
    authenticate,
    end_request,
    parse_json_body,
    require_model,
    run_watched,
    take_stream_flags,
)
from relaygate.relay.present import PRESENTER
from relaygate.relay.responses_calls import (
    FORMAT,
    error_shape,
    on_response,
    send_answer,
    surface_of,
)
from relaygate.relay.responses_state import Stored, keep, owned_response
from relaygate.relay.shaping import attempt_rules
from relaygate.relay.stream import SSEWriter, TranslatingWriter
from relaygate.routing.order import affinity_key
from relaygate.routing.router import Candidate, serves
from relaygate.services.shaping import apply_all, shape_responses
from relaygate.state import AppState

__all__ = ["handle_responses"]

SURFACE = "responses"
_SUBS = {("GET", ""), ("DELETE", ""), ("GET", "/input_items"), ("POST", "/cancel")}


async def handle_responses(state: AppState, req: Request, rest: str) -> None:
    """``rest``: the path after ``/v1/responses`` ("" or "/{id}[/…]")."""
    if rest in ("", "/"):
        if req.method == "POST":
            await _create(state, req)
            return
        await _refuse(state, req, InvalidRequest(
            f"{req.method} is not allowed on {req.path}.", code="method_not_allowed", status=405
        ))  # fmt: skip
        return
    resp_id, _, sub = rest[1:].partition("/")
    sub = "/" + sub if sub else ""
    if not resp_id or (req.method, sub) not in _SUBS:
        await _refuse(state, req, NotFound(f"Unknown request URL: {req.method} {req.path}."))
        return
    await on_response(state, req, resp_id, sub)


async def _refuse(state: AppState, req: Request, err: Exception) -> None:
    s = state.settings
    assert isinstance(err, (InvalidRequest, NotFound))
    on = envelope_on(s, FORMAT)
    render = None if on or not s.envelope else plain_openai_error
    await send_error(
        req.send,
        err,
        req.request_id,
        envelope=on,
        openai_statuses=s.openai_status_codes,
        render=render,
    )


# ---- a new response ---------------------------------------------------------------------
class _Present:
    """The presenter of a translated response (``relay/present.py``); ``final`` is the
    response object once the answer is whole (None after a failure)."""

    def __init__(self, state: AppState, body: dict[str, Any], model: str) -> None:
        self.envelope = envelope_on(state.settings, FORMAT)
        self.body = body
        self.model = model
        self.resp_id = new_id("resp_")
        self.final: dict[str, Any] | None = None

    def unary(self, ctx: RelayContext, obj: dict[str, Any]) -> bytes:
        self.final = to_response(obj, self.resp_id, self.body, self.model)
        return wrap_ok(self.final, self.envelope)

    def writer(self, send: Send, ctx: RelayContext, request_id: str, keepalive: float) -> SSEWriter:
        events = ResponsesStream(self.resp_id, self.body, self.model)

        def finish() -> bytes:
            out = events.finish()
            if events.response.get("status") != "failed":
                self.final = events.response
            return out

        return TranslatingWriter(send, ctx, request_id, keepalive, events.feed, finish)


def _with_ids(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    prefixes = {"message": "msg_", "function_call": "fc_", "function_call_output": "fco_"}
    out = []
    for item in items:
        if "id" not in item:
            item = {"id": new_id(prefixes.get(str(item.get("type", "message")), "item_")), **item}
        if "type" not in item:
            item["type"] = "message"
        out.append(item)
    return out


def _keep_before_end(
    state: AppState, req: Request, ctx: RelayContext, present: _Present, data: Callable[[], Any]
) -> None:
    """Record a translated response just before the last byte of its answer is sent, so
    the client can continue from it as soon as it has it."""
    send = req.send
    done = False

    async def wrapped(msg: Message) -> None:
        nonlocal done
        last = msg["type"] == "http.response.body" and not msg.get("more_body", False)
        if last and not done and present.final is not None and ctx.target is not None:
            done = True
            await keep(state, ctx, present.resp_id, ctx.target.channel_id, data())
        await send(msg)

    req.send = wrapped


async def _create(state: AppState, req: Request) -> None:
    ctx = RelayContext(req.request_id, "responses", client_ip=req.client_ip)
    error_shape(state, ctx)
    chain = state.filters
    try:
        authenticate(state, req, ctx)
        assert ctx.key is not None and ctx.user is not None
        body = await parse_json_body(state, req)
        model = require_model(body)
        items = _with_ids(input_items(body.get("input", [])))
        prev_id = body.get("previous_response_id")
        if prev_id is not None and not isinstance(prev_id, str):
            raise InvalidRequest(
                "`previous_response_id` must be a string.", param="previous_response_id"
            )
        prev = await owned_response(state, prev_id, ctx.user.id) if prev_id else None
        ctx.model = model
        conversation = [*(prev.history() if prev is not None else []), *items]
        untranslated: InvalidRequest | None = None
        try:
            chat = to_chat(body, conversation)
            take_chat_body(ctx, chat)
        except InvalidRequest as exc:  # only a native channel can take it
            untranslated = exc
            chat = estimate_chat(body, conversation)
            ctx.model = model
        # the prepare stages see the chat view, before routing (module docstring)
        before = [orjson.dumps(m) for m in chat["messages"]]
        if chain.prepare_stages:
            await chain.prepare(ctx, chat)
        assert ctx.model is not None
        router = state.router
        affinity = affinity_key(router.affinity, req.headers, chat, ctx.key.id)
        candidates: list[Candidate]
        native = prev is not None and prev.mode == "native"
        if native:
            assert prev is not None
            candidates = router.channel_candidate(prev.record.channel_id, ctx.model)
        else:
            every = router.candidates(ctx.model, ctx.key, ctx.user.group_name, affinity)
            # while answers are filtered, the translated way for what it can carry
            translate = chain.output_filtered() and untranslated is None and _plain(body)
            solo = prev is None and not translate
            own = [c for c in every if serves(c[0], SURFACE)] if solo else []
            native = bool(own)
            candidates = own or every
        if native:
            body = apply_prepared(body, before, chat)
            take_stream_flags(ctx, body)
            ctx.include_usage = False
        else:
            if untranslated is not None:
                raise untranslated
            _translatable(body)
        ctx.endpoint = "chat"  # reserve the worst case of a generating endpoint
        try:
            await state.billing.reserve(ctx, chat)
        finally:
            ctx.endpoint = "responses"
        await chain.before(ctx, body if native else chat)
        if native:
            call = _native_call(state, req, ctx, body, chat)
        else:
            call = _translated_call(state, req, ctx, body, chat, conversation, items, prev)
        await run_watched(req, ctx, lambda: run_attempts(state, ctx, candidates, call, affinity))
    except (Exception, asyncio.CancelledError) as exc:
        await answer_failure(state, req, ctx, exc)
    finally:
        await end_request(state, req, ctx)


def _plain(body: dict[str, Any]) -> bool:
    """Whether :func:`_translatable` lets ``body`` through."""
    return body.get("background") is not True and body.get("conversation") is None


def _translatable(body: dict[str, Any]) -> None:
    if body.get("background") is True:
        raise InvalidRequest(
            "`background` responses are not supported for this model.", param="background"
        )
    if body.get("conversation") is not None:
        raise InvalidRequest(
            "`conversation` is not supported for this model; use `previous_response_id`.",
            param="conversation",
        )


def _native_call(
    state: AppState,
    req: Request,
    ctx: RelayContext,
    body: dict[str, Any],
    chat: dict[str, Any],
) -> Call:
    """The request as it is to a channel serving the Responses API: the answer relayed as
    the upstream sent it, billed from its usage, observed by the response or chunk filters
    through a chat view, recorded for later calls on its id (unless ``store: false``)."""
    kept = body.get("store") is not False
    chain = state.filters
    filtering = chain.output_filtered()
    model = ctx.model or ""

    async def call(adaptor: Adaptor, target: Target) -> None:
        # the model's and the channel's shaping rules, per attempt (docs/request-shaping.md)
        shaped = apply_all(shape_responses, body, attempt_rules(state, ctx, target))
        sc = SurfaceCall("POST", "/responses", json=shaped)
        ureq = build_request(target, lambda: surface_of(adaptor).surface_request(target, sc))
        if not ctx.stream:
            obj = parse_json_object(await fetch(state, adaptor, target, ureq))
            ctx.usage = usage_of(obj.get("usage"))
            if ctx.usage is None:
                prompt, done = count_prompt(chat), count_completion(chat_view(obj))
                ctx.usage = Usage(prompt_tokens=prompt, completion_tokens=done)
                ctx.usage.total_tokens = prompt + done
            if filtering:  # checked whole; a changed answer rebuilt from its chat view
                view = chat_view(obj)
                if filter_whole(chain, ctx, view):
                    usage = obj.get("usage")
                    obj = to_response(view, str(obj.get("id") or new_id("resp_")), body, model)
                    obj["usage"] = usage if isinstance(usage, dict) else obj["usage"]
                    await send_answer(state, req, ctx, target, obj)
                    return  # not recorded: the upstream's copy holds the words
            elif chain.response_filters:
                chain.on_response(ctx, chat_view(obj))
            if kept and isinstance(obj.get("id"), str):
                await keep(state, ctx, obj["id"], target.channel_id, {"mode": "native"})
            await send_answer(state, req, ctx, target, obj)
            return
        async with state.transport.request(ureq, stream=True) as resp:
            if resp.status >= 400:
                raise upstream_failure(adaptor, target, resp.status, await resp.read(), resp)
            if "event-stream" not in (resp.header("Content-Type") or ""):
                raise UpstreamError(
                    "The upstream provider answered a streaming request without a stream."
                )
            shadow = ResponsesShadow()
            guard = _guard(body, model, shadow) if filtering else None

            async def before_end() -> None:
                if guard is not None and guard.changed:
                    return  # not recorded: the upstream's copy holds the words
                if kept and shadow.response_id is not None:
                    await keep(
                        state, ctx, shadow.response_id, target.channel_id, {"mode": "native"}
                    )

            await pump(
                state,
                req,
                ctx,
                target,
                resp.chunks(),
                shadow,
                error_frame=_error_frame,
                local_prompt=lambda: count_prompt(chat),
                before_end=before_end,
                guard=guard,
            )

    return call


def _guard(body: dict[str, Any], model: str, shadow: ResponsesShadow) -> Guard:
    """A held native stream shown, when a filter changed it, as the Responses events of
    its filtered chunks (under the upstream's response id)."""

    def stream(payloads: list[bytes]) -> bytes:
        events = ResponsesStream(shadow.response_id or new_id("resp_"), body, model)
        return events.feed(payloads) + events.finish()

    return Guard(stream, lambda obj: orjson.dumps(obj))  # whole answers: handled in place


def _error_frame(err: RelayError) -> bytes:
    """A gateway failure after the first event, as the Responses stream's ``error`` event."""
    obj = {"type": "error", "code": err.code, "message": err.message, "param": None}
    return frame("error", orjson.dumps(obj))


def _translated_call(
    state: AppState,
    req: Request,
    ctx: RelayContext,
    body: dict[str, Any],
    chat: dict[str, Any],
    conversation: list[dict[str, Any]],
    items: list[dict[str, Any]],
    prev: Stored | None,
) -> Call:
    assert ctx.model is not None
    present = _Present(state, body, ctx.model)
    ctx.put(PRESENTER, present)
    if body.get("store") is not False:

        def data() -> dict[str, Any]:
            return {
                "mode": "translated",
                "conversation": conversation,
                "input": items,
                "response": present.final,
            }

        _keep_before_end(state, req, ctx, present, data)

    async def call(adaptor: Adaptor, target: Target) -> None:
        await chat_attempt(state, req, ctx, adaptor, target, chat)

    return call
