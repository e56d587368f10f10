"""One attempt of ``POST /v1/messages`` on an Anthropic channel: the client's request sent
as is (``inbound/anthropic_native.py``) and the answer passed back as is, stream or not.

The model's and the channel's shaping rules apply to the Messages body under Anthropic's
names (``services/shaping.py`` ``shape_anthropic``), per attempt like chat's.

Thinking blocks the gateway signed (a conversation begun on another channel,
``inbound/anthropic_signature.py``) are dropped from the request: Anthropic never made them.

Billing reads the answer's own usage (``input_tokens``, ``output_tokens``, cache reads
and writes: ``providers/anthropic_stream.py`` ``usage_from_anthropic``). A stream is
relayed by ``relay/native_stream.py`` ``pump``, read through the Anthropic adaptor's
translator as a shadow: its OpenAI chunks feed the stream meter (a stream cut mid-way is
charged for what was delivered) and the chunk filters, which observe here (the content
log) but cannot rewrite the native frames. A whole answer carries the ``code``/``msg``
envelope when ``RELAYGATE_ENVELOPE_FORMATS`` names ``anthropic``.

While a filter may change answers (content safety with a word list) only a request with
blocks chat cannot carry comes here (``relay/messages.py``), with a ``Guard``: a whole
answer's chat view goes through the response filters before anything is sent, a stream
is held whole and checked (``relay/native_stream.py``); what a filter changed is shown by
the Messages presenter, the rest goes as the upstream sent it.
"""

from __future__ import annotations

import time
from typing import Any

import orjson

from relaygate.asgi import Request, send_json
from relaygate.billing.tokens import count_completion, count_prompt
from relaygate.context import RelayContext
from relaygate.errors import RelayError, UpstreamError
from relaygate.inbound.anthropic_native import native_request
from relaygate.inbound.anthropic_response import error_object, error_type
from relaygate.inbound.anthropic_signature import strip_gateway_thinking
from relaygate.online.inject import anthropic_with_block
from relaygate.online.stage import ONLINE
from relaygate.providers.anthropic_stream import anthropic_error, usage_from_anthropic
from relaygate.providers.base import Adaptor, Target, UpstreamRequest, Usage, parse_json_object
from relaygate.relay.attempt import build_request, fetch, upstream_failure
from relaygate.relay.envelope import envelope_on, wrap_ok
from relaygate.relay.native_stream import Guard, filter_whole, frame, pump
from relaygate.relay.pipeline import record
from relaygate.relay.shaping import attempt_rules
from relaygate.services.shaping import shape_anthropic
from relaygate.state import AppState

__all__ = ["native_attempt", "thinking_secret"]


def thinking_secret(state: AppState) -> bytes:
    """The key of the gateway's thinking signatures, derived from the gateway secret
    (``inbound/anthropic_signature.py``)."""
    return state.secrets.hash_key("relaygate-thinking-signature").encode()


def _error_frame(err: RelayError) -> bytes:
    kind = error_type(err.code, err.type, err.http_status(True))
    if err.code == "stream_cut":
        kind = "overloaded_error"
    return frame("error", orjson.dumps(error_object(kind, err.message)))


def _header(req: Request, name: bytes) -> str | None:
    value = req.headers.get(name)
    return value.decode("latin-1").strip() if value else None


async def native_attempt(
    state: AppState,
    req: Request,
    ctx: RelayContext,
    adaptor: Adaptor,
    target: Target,
    sent: dict[str, Any],
    chat_body: dict[str, Any],
    guard: Guard | None = None,
) -> None:
    """``sent``: the client's Messages body; ``chat_body``: its chat translation (for a
    local count when the upstream reports no usage); ``guard``: check the answer whole
    before it is sent (module docstring)."""
    sent = strip_gateway_thinking(sent, thinking_secret(state))  # never Anthropic's
    job = ctx.get(ONLINE)
    if job is not None and job.block:  # an online request's sources (docs/online.md)
        sent = anthropic_with_block(sent, job.block)
    for rules in attempt_rules(state, ctx, target):  # the model's and channel's shaping
        sent = shape_anthropic(sent, rules)
    version = _header(req, b"anthropic-version")
    beta = _header(req, b"anthropic-beta")
    ureq = build_request(
        target, lambda: native_request(target, sent, ctx.stream, version=version, beta=beta)
    )
    if ctx.stream:
        await _stream(state, req, ctx, adaptor, target, ureq, chat_body, guard)
    else:
        await _unary(state, req, ctx, adaptor, target, ureq, chat_body, guard)


async def _unary(
    state: AppState,
    req: Request,
    ctx: RelayContext,
    adaptor: Adaptor,
    target: Target,
    ureq: UpstreamRequest,
    chat_body: dict[str, Any],
    guard: Guard | None,
) -> None:
    raw = await fetch(state, adaptor, target, ureq)
    obj = parse_json_object(raw)
    if obj.get("type") == "error":
        raise anthropic_error(None, obj, (target.api_key,))
    if not isinstance(obj.get("content"), list):
        raise UpstreamError("The upstream provider returned an unexpected response.")
    usage_raw = obj.get("usage")
    usage = usage_from_anthropic(usage_raw) if isinstance(usage_raw, dict) else None
    view: dict[str, Any] | None = None
    chain = state.filters
    if usage is None or chain.response_filters:
        view = adaptor.chat_response(target, raw)[0]  # the OpenAI view of the answer
    if usage is None:
        assert view is not None
        prompt, completion = count_prompt(chat_body), count_completion(view)
        usage = Usage(prompt_tokens=prompt, completion_tokens=completion)
        usage.total_tokens = prompt + completion
    ctx.claim(target)  # hedged: the first answer wins (relay/hedge.py)
    ctx.usage = usage
    changed = False
    if view is not None and chain.response_filters:
        if guard is not None:
            changed = guard.changed = filter_whole(chain, ctx, view)
        else:
            chain.on_response(ctx, view)
    ctx.first_byte_at = time.perf_counter()
    ctx.finished = True
    record(state, ctx)
    if changed:  # the filtered answer, shown by the Messages presenter
        assert guard is not None and view is not None
        out = guard.whole(view)
    else:
        out = wrap_ok(obj, True) if envelope_on(state.settings, "anthropic") else raw
    await send_json(req.send, 200, out, req.request_id)


async def _stream(
    state: AppState,
    req: Request,
    ctx: RelayContext,
    adaptor: Adaptor,
    target: Target,
    ureq: UpstreamRequest,
    chat_body: dict[str, Any],
    guard: Guard | None,
) -> None:
    async with state.transport.request(ureq, stream=True) as resp:
        if resp.status >= 400:
            raise upstream_failure(adaptor, target, resp.status, await resp.read(), resp)
        if "event-stream" not in (resp.header("Content-Type") or ""):
            raw = await resp.read()
            obj = parse_json_object(raw)
            if obj.get("type") == "error":
                raise anthropic_error(None, obj, (target.api_key,))
            raise UpstreamError(
                "The upstream provider answered a streaming request without a stream."
            )
        shadow = adaptor.chat_stream(target, False)  # usage, errors, OpenAI chunks
        await pump(
            state,
            req,
            ctx,
            target,
            resp.chunks(),
            shadow,
            error_frame=_error_frame,
            local_prompt=lambda: count_prompt(chat_body),
            guard=guard,
        )
