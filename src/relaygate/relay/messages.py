"""``POST /v1/messages`` and ``POST /v1/messages/count_tokens``: the Anthropic Messages API
in front of every channel (issue 14).

A request is read, translated to a chat-completions body (``inbound/anthropic_request.py``)
and run through the ordinary relay stages (auth — ``x-api-key`` too —, routing, billing,
limits, filters) like chat. Each attempt picks its path by the channel it lands on:

* an Anthropic channel gets the request as sent (``relay/messages_native.py``), and its
  answer goes back as is;
* any other channel gets the chat translation (``relay/chat.py`` ``chat_attempt``), and
  its answer is shown as an Anthropic ``message`` or event stream by the presenter put in
  the request's context (``relay/present.py``; ``inbound/anthropic_response.py``,
  ``inbound/anthropic_stream.py``).

So failover between an Anthropic channel and another works as for chat. Blocks chat cannot
carry (``server_tool_use``, a document by URL, …) go to an Anthropic channel as sent and are
the client's error on any other.

While a filter may change answers (``FilterChain.output_filtered``: content safety with a
word list, docs/safety.md), an Anthropic channel gets the chat translation too, so the
answer is filtered as chat's is, chunk by chunk; only a request with blocks chat cannot
carry still goes as sent, and its answer is checked whole before anything is sent (a
stream is held until the upstream finished: ``relay/native_stream.py`` ``Guard``). Errors are in
Anthropic's shape (``{"type": "error", "error": {"type", "message"}}``), with the HTTP
status of the gateway's error table; mid-stream as an ``event: error`` frame.

``count_tokens`` answers ``{"input_tokens": N}``: from the Anthropic channel serving the
model when the first candidate is one (its own count), else counted locally on the chat
translation (``billing/tokens.py`` ``count_prompt``). It is not billed and writes no
request-log row (only the access-log line).
"""

from __future__ import annotations

import time
from typing import Any

import orjson

from relaygate.asgi import Request, Send, send_json
from relaygate.billing.stage import RESERVATION
from relaygate.billing.tokens import count_prompt
from relaygate.context import RelayContext
from relaygate.errors import InvalidRequest, RelayError, send_error
from relaygate.inbound.anthropic_native import count_tokens_request
from relaygate.inbound.anthropic_request import to_chat
from relaygate.inbound.anthropic_response import error_object, error_type, to_message
from relaygate.inbound.anthropic_signature import sign_thinking
from relaygate.inbound.anthropic_stream import MessagesStream
from relaygate.providers.base import Adaptor, Target
from relaygate.relay.attempt import Call, build_request
from relaygate.relay.chat import chat_attempt, take_chat_body
from relaygate.relay.envelope import envelope_on, enveloped, wrap_ok
from relaygate.relay.messages_native import native_attempt, thinking_secret
from relaygate.relay.native_stream import Guard
from relaygate.relay.pipeline import (
    authenticate,
    internal_error,
    json_object,
    read_request_body,
    relay_request,
)
from relaygate.relay.present import ERROR_RENDER, PRESENTER
from relaygate.relay.stream import SSEWriter, TranslatingWriter
from relaygate.routing.order import affinity_key
from relaygate.state import AppState

__all__ = ["handle_count_tokens", "handle_messages", "render_error"]

#: channels that take the Messages request natively
NATIVE = "anthropic"
#: the client format's name in RELAYGATE_ENVELOPE_FORMATS
FORMAT = "anthropic"


def render_error(err: RelayError, status: int) -> bytes:
    """An error in Anthropic's shape (the type from the error's code, OpenAI type and
    OpenAI status, whatever status the gateway's table sends)."""
    kind = error_type(err.code, err.type, err.http_status(True))
    return orjson.dumps(error_object(kind, err.message))


class MessagesPresenter:
    """Chat answers shown as Anthropic messages (``relay/present.py``); ``envelope``: with
    the ``code``/``msg`` envelope (``RELAYGATE_ENVELOPE_FORMATS`` names ``anthropic``)."""

    def __init__(self, *, envelope: bool = False, secret: bytes = b"") -> None:
        self.envelope = envelope
        self.secret = secret  # of the thinking signature (inbound/anthropic_signature.py)
        self.stops: tuple[str, ...] = ()  # the request's stop_sequences

    def unary(self, ctx: RelayContext, obj: dict[str, Any]) -> bytes:
        message = to_message(obj, ctx.model or "", self.stops)
        sign_thinking(message.get("content"), self.secret)
        return wrap_ok(message, self.envelope)

    def writer(self, send: Send, ctx: RelayContext, request_id: str, keepalive: float) -> SSEWriter:
        res = ctx.get(RESERVATION)
        stream = MessagesStream(
            ctx.model or "",
            res.prompt_tokens if res is not None else 0,
            key=self.secret,
            stops=self.stops,
        )
        return TranslatingWriter(send, ctx, request_id, keepalive, stream.feed, stream.finish)

    def guard(self, ctx: RelayContext) -> Guard:
        """A native answer checked whole (``relay/native_stream.py``), shown by this
        presenter when a filter changed it."""

        def stream(payloads: list[bytes]) -> bytes:
            res = ctx.get(RESERVATION)
            prompt = res.prompt_tokens if res is not None else 0
            events = MessagesStream(ctx.model or "", prompt, key=self.secret, stops=self.stops)
            return events.feed(payloads) + events.finish()

        return Guard(stream, lambda obj: self.unary(ctx, obj))


def _presenter(state: AppState) -> MessagesPresenter:
    return MessagesPresenter(
        envelope=envelope_on(state.settings, FORMAT), secret=thinking_secret(state)
    )


async def _read(state: AppState, req: Request) -> dict[str, Any]:
    raw = await read_request_body(state, req)
    if not raw.strip():
        raise InvalidRequest("The request body is empty; send a JSON object.")
    return json_object(raw)


async def handle_messages(state: AppState, req: Request) -> None:
    ctx = RelayContext(req.request_id, "chat", client_ip=req.client_ip)
    presenter = _presenter(state)
    ctx.put(PRESENTER, presenter)
    ctx.put(ERROR_RENDER, enveloped(render_error, envelope_on(state.settings, FORMAT)))
    sent: list[dict[str, Any]] = []  # the client's body, as sent
    dropped: list[str] = []  # blocks only an Anthropic channel can take

    async def parse(state: AppState, req: Request) -> dict[str, Any]:
        body = await _read(state, req)
        sent.append(body)
        chat = to_chat(body, dropped=dropped)
        stops = body.get("stop_sequences")  # checked by to_chat: strings
        presenter.stops = tuple(stops) if isinstance(stops, list) else ()
        return chat

    def make_call(body: dict[str, Any]) -> Call:
        async def call(adaptor: Adaptor, target: Target) -> None:
            # while a filter may change answers, native only for what chat cannot carry
            filtering = state.filters.output_filtered()
            if target.provider == NATIVE and (dropped or not filtering):
                guard = presenter.guard(ctx) if filtering else None
                await native_attempt(state, req, ctx, adaptor, target, sent[0], body, guard)
            elif dropped:
                raise InvalidRequest(
                    f"{dropped[0]} can only be sent to an Anthropic model; `{ctx.model}` is "
                    "served by another provider here."
                )
            else:
                await chat_attempt(state, req, ctx, adaptor, target, body)

        return call

    await relay_request(state, req, ctx, take_chat_body, make_call, parse=parse)


# ---------------------------------------------------------------- count_tokens


async def _upstream_count(
    state: AppState, req: Request, ctx: RelayContext, body: dict[str, Any]
) -> int | None:
    """The first candidate's own count when it is an Anthropic channel; None otherwise
    or when that fails (the local count answers then)."""
    assert ctx.key is not None and ctx.user is not None and ctx.model is not None
    router = state.router
    affinity = affinity_key(router.affinity, req.headers, body, ctx.key.id)
    candidates = router.candidates(ctx.model, ctx.key, ctx.user.group_name, affinity)
    channel, model = candidates[0]
    target = router.target(channel, model, affinity)
    if target.provider != NATIVE:
        return None
    version = req.headers.get(b"anthropic-version")
    beta = req.headers.get(b"anthropic-beta")
    counting = count_tokens_request(
        target,
        body,
        version=version.decode("latin-1") if version else None,
        beta=beta.decode("latin-1") if beta else None,
    )
    if counting is None:
        return None
    ureq = build_request(target, lambda: counting)
    try:
        async with state.transport.request(ureq, stream=False) as resp:
            raw = await resp.read()
            if resp.status >= 400:
                return None
        obj = orjson.loads(raw)
    except (RelayError, orjson.JSONDecodeError):
        return None
    ctx.target = target
    n = obj.get("input_tokens") if isinstance(obj, dict) else None
    return n if isinstance(n, int) and not isinstance(n, bool) else None


async def handle_count_tokens(state: AppState, req: Request) -> None:
    ctx = RelayContext(req.request_id, "count_tokens", client_ip=req.client_ip)
    s = state.settings
    try:
        authenticate(state, req, ctx)
        body = await _read(state, req)
        chat = to_chat(body, count_only=True)
        ctx.model = chat["model"]
        n = await _upstream_count(state, req, ctx, body)
        if n is None:
            n = count_prompt(chat)
        ctx.first_byte_at = time.perf_counter()
        ctx.finished = True
        out = wrap_ok({"input_tokens": n}, envelope_on(s, FORMAT))
        await send_json(req.send, 200, out, req.request_id)
    except Exception as exc:
        err = exc if isinstance(exc, RelayError) else internal_error(ctx, exc)
        ctx.error_code = err.code
        ctx.status = await send_error(
            req.send,
            err,
            req.request_id,
            envelope=s.envelope,
            openai_statuses=s.openai_status_codes,
            render=enveloped(render_error, envelope_on(s, FORMAT)),
        )
    if state.access_log is not None:  # not billed: no request-log row
        state.access_log.record(
            ctx.request_id,
            req.method,
            req.path,
            ctx.logged_status,
            ctx.error_code,
            ctx.model,
            ctx.target.channel_id if ctx.target else None,
            False,
            ctx.elapsed_ms(),
            None,
            ctx.user.id if ctx.user else None,
            ctx.key.id if ctx.key else None,
        )
