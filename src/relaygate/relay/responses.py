"""OpenAI's Responses API: ``POST /v1/responses``, ``GET``/``DELETE /v1/responses/{id}``,
``GET /v1/responses/{id}/input_items``, ``POST /v1/responses/{id}/cancel``.

Two ways to answer a new response (``docs/responses-api.md``):

* **native** — when the model has channels that serve the ``responses`` surface
  (``providers/surfaces.py``), the request goes to them as it is (model mapped), and the
  answer comes back as the upstream sent it: JSON, or its events one by one
  (``relay/passthrough.py``). Billed from its ``usage`` (the JSON's, or the
  ``response.completed`` event's).
* **translated** — otherwise the request becomes a chat-completions one
  (``inbound/responses_request.py``) and runs through the chat relay with a presenter that
  shows the answer as a ``response`` object or as the Responses events
  (``inbound/responses_answer.py``).

Each response is recorded with its owner and channel (``relay/responses_state.py``):
``previous_response_id`` and the calls on an id go to the channel that made it (native), or
are answered from the gateway's own copy (translated); anyone but the owner gets a 404.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qsl

import orjson

from relaygate.asgi import Message, Request, Send, ok_body, send_json
from relaygate.context import RelayContext
from relaygate.errors import InvalidRequest, NotFound, send_error
from relaygate.inbound.responses_answer import ResponsesStream, new_id, to_response
from relaygate.inbound.responses_request import input_items, to_chat
from relaygate.providers.base import Adaptor, Target, Usage
from relaygate.providers.surfaces import SurfaceCall
from relaygate.relay.attempt import Call, run_attempts
from relaygate.relay.chat import chat_attempt, take_chat_body
from relaygate.relay.passthrough import Reply, exchange
from relaygate.relay.pipeline import (
    answer_failure,
    authenticate,
    end_request,
    parse_json_body,
    record,
    require_model,
    run_watched,
    take_stream_flags,
)
from relaygate.relay.present import PRESENTER
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
    await _on_response(state, req, resp_id, sub)


async def _refuse(state: AppState, req: Request, err: Exception) -> None:
    s = state.settings
    assert isinstance(err, (InvalidRequest, NotFound))
    await send_error(
        req.send, err, req.request_id, envelope=s.envelope, openai_statuses=s.openai_status_codes
    )


# ---- a new response ---------------------------------------------------------------------
def _usage(raw: Any) -> Usage | None:
    if not isinstance(raw, dict):
        return None

    def num(obj: Any, name: str) -> int:
        v = obj.get(name) if isinstance(obj, dict) else None
        return v if isinstance(v, int) and not isinstance(v, bool) and v > 0 else 0

    prompt, completion = num(raw, "input_tokens"), num(raw, "output_tokens")
    return Usage(
        prompt_tokens=prompt,
        completion_tokens=completion,
        total_tokens=prompt + completion,
        cached_tokens=num(raw.get("input_tokens_details"), "cached_tokens"),
        reasoning_tokens=num(raw.get("output_tokens_details"), "reasoning_tokens"),
    )


def _native_reply(state: AppState, ctx: RelayContext, body: dict[str, Any]) -> Reply:
    """Usage from the answer; the new id recorded (unless ``store: false``)."""
    kept = body.get("store") is not False
    seen: list[str] = []

    async def on_json(obj: dict[str, Any], target: Target) -> None:
        ctx.usage = _usage(obj.get("usage"))
        if kept and isinstance(obj.get("id"), str):
            await keep(state, ctx, obj["id"], target.channel_id, {"mode": "native"})

    def on_event(event: str | None, data: bytes) -> bool:
        if not data.startswith(b"{") or b'"response"' not in data:
            return True
        try:
            obj = orjson.loads(data)
        except orjson.JSONDecodeError:
            return True
        resp = obj.get("response") if isinstance(obj, dict) else None
        if isinstance(resp, dict):
            if not seen and isinstance(resp.get("id"), str):
                seen.append(resp["id"])
            usage = _usage(resp.get("usage"))
            if usage is not None:
                ctx.usage = usage
        return True

    async def on_end(target: Target) -> None:
        if kept and seen:
            await keep(state, ctx, seen[0], target.channel_id, {"mode": "native"})

    return Reply(on_json=on_json, on_event=on_event, on_end=on_end)


class _Present:
    """The presenter of a translated response (``relay/present.py``); ``final`` is the
    response object once the answer is whole (None after a failure)."""

    def __init__(self, state: AppState, body: dict[str, Any], model: str) -> None:
        self.envelope = state.settings.envelope
        self.body = body
        self.model = model
        self.resp_id = new_id("resp_")
        self.final: dict[str, Any] | None = None

    def unary(self, ctx: RelayContext, obj: dict[str, Any]) -> bytes:
        self.final = to_response(obj, self.resp_id, self.body, self.model)
        return ok_body(self.final, self.envelope)

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
        router = state.router
        group = ctx.user.group_name
        conversation = [*(prev.history() if prev is not None else []), *items]
        native = prev is not None and prev.mode == "native"
        try:
            chat = to_chat(body, conversation)
        except InvalidRequest:
            if not native and prev is None:
                raise
            chat = {"model": model, "messages": []}  # only an estimate for a native call
        affinity = affinity_key(router.affinity, req.headers, chat, ctx.key.id)
        candidates: list[Candidate]
        if native:
            assert prev is not None
            candidates = router.channel_candidate(prev.record.channel_id, model)
        else:
            every = router.candidates(model, ctx.key, group, affinity)
            own = [c for c in every if serves(c[0], SURFACE)] if prev is None else []
            native = bool(own)
            candidates = own or every
        if native:
            take_stream_flags(ctx, body)
            ctx.include_usage = False
        else:
            _translatable(body)
            take_chat_body(ctx, chat)
            if chain.prepare_stages:
                await chain.prepare(ctx, chat)
        ctx.endpoint = "chat"  # reserve the worst case of a generating endpoint
        try:
            await state.billing.reserve(ctx, chat)
        finally:
            ctx.endpoint = "responses"
        await chain.before(ctx, body if native else chat)
        if native:
            call = _native_call(state, req, ctx, body)
        else:
            call = _translated_call(state, req, ctx, body, chat, conversation, items, prev)
        await run_watched(req, ctx, lambda: run_attempts(state, ctx, candidates, call, affinity))
    except (Exception, asyncio.CancelledError) as exc:
        await answer_failure(state, req, ctx, exc)
    finally:
        await end_request(state, req, ctx)


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


def _native_call(state: AppState, req: Request, ctx: RelayContext, body: dict[str, Any]) -> Call:
    reply = _native_reply(state, ctx, body)

    async def call(adaptor: Adaptor, target: Target) -> None:
        # the model's and the channel's shaping rules, per attempt (docs/request-shaping.md)
        shaped = apply_all(shape_responses, body, attempt_rules(state, ctx, target))
        sc = SurfaceCall("POST", "/responses", json=shaped)
        await exchange(state, req, ctx, adaptor, target, sc, reply)

    return call


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


# ---- calls on a response ----------------------------------------------------------------
async def _on_response(state: AppState, req: Request, resp_id: str, sub: str) -> None:
    ctx = RelayContext(req.request_id, "responses", client_ip=req.client_ip)
    try:
        authenticate(state, req, ctx)
        assert ctx.user is not None
        stored = await owned_response(state, resp_id, ctx.user.id)
        ctx.model = stored.record.model
        if stored.mode == "translated":
            await _answer_local(state, req, ctx, stored, sub)
            return
        candidates = state.router.channel_candidate(stored.record.channel_id, None)
        method = req.method

        async def on_json(obj: dict[str, Any], target: Target) -> None:
            if method == "DELETE" and obj.get("deleted") is True:
                await state.repo.objects.update(resp_id, deleted=True)

        query = req.scope.get("query_string", b"")
        sc = SurfaceCall(method, f"/responses/{resp_id}{sub}", query, set_model=False)
        if method == "POST":
            sc.json = {}

        async def call(adaptor: Adaptor, target: Target) -> None:
            await exchange(state, req, ctx, adaptor, target, sc, Reply(on_json=on_json))

        await run_watched(req, ctx, lambda: run_attempts(state, ctx, candidates, call))
    except (Exception, asyncio.CancelledError) as exc:
        await answer_failure(state, req, ctx, exc)
    finally:
        await end_request(state, req, ctx)


async def _answer_local(
    state: AppState, req: Request, ctx: RelayContext, stored: Stored, sub: str
) -> None:
    """A translated response's calls, answered from the gateway's copy."""
    resp_id = stored.record.id
    if req.method == "POST":  # cancel: only background responses can be cancelled
        raise InvalidRequest(
            "Only responses created with background=true can be cancelled.", param="response_id"
        )
    if req.method == "DELETE":
        await state.repo.objects.update(resp_id, deleted=True)
        out: dict[str, Any] = {"id": resp_id, "object": "response", "deleted": True}
    elif sub == "/input_items":
        out = _items_page(stored.input, req)
    else:
        out = stored.response
    ctx.first_byte_at = ctx.started
    ctx.finished = True
    record(state, ctx)
    await send_json(req.send, 200, ok_body(out, state.settings.envelope), req.request_id)


def _items_page(items: list[dict[str, Any]], req: Request) -> dict[str, Any]:
    query = dict(parse_qsl(req.scope.get("query_string", b"").decode("latin-1")))
    order = query.get("order", "desc")
    if order not in ("asc", "desc"):
        raise InvalidRequest("`order` must be asc or desc.", param="order")
    limit_text = query.get("limit", "20")
    if not limit_text.isascii() or not limit_text.isdigit() or not 1 <= int(limit_text) <= 100:
        raise InvalidRequest("`limit` must be an integer from 1 to 100.", param="limit")
    seq = items if order == "asc" else list(reversed(items))
    after = query.get("after")
    if after is not None:
        ids = [i.get("id") for i in seq]
        seq = seq[ids.index(after) + 1 :] if after in ids else seq
    page = seq[: int(limit_text)]
    return {
        "object": "list",
        "data": page,
        "first_id": page[0].get("id") if page else None,
        "last_id": page[-1].get("id") if page else None,
        "has_more": len(seq) > len(page),
    }
