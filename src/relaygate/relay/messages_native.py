"""One attempt of ``POST /v1/messages`` on an Anthropic channel: the client's request sent
as is (``inbound/anthropic_native.py``) and the answer passed back as is, stream or not.

The model's and the channel's shaping rules apply to the Messages body under Anthropic's
names (``services/shaping.py`` ``shape_anthropic``), per attempt like chat's.

Billing reads the answer's own usage (``input_tokens``, ``output_tokens``, cache reads
and writes: ``providers/anthropic_stream.py`` ``usage_from_anthropic``). A stream is also
read through the Anthropic adaptor's translator, as a shadow: its OpenAI chunks feed the
stream meter (a stream cut mid-way is charged for what was delivered) and the chunk
filters, which observe here (the content log) but cannot rewrite the native frames.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import orjson

from relaygate.asgi import Request, send_json
from relaygate.billing.stage import METER
from relaygate.billing.tokens import StreamMeter, count_completion, count_prompt
from relaygate.context import RelayContext
from relaygate.errors import RelayError, UpstreamError
from relaygate.inbound.anthropic_native import native_request
from relaygate.inbound.anthropic_response import error_object, error_type
from relaygate.providers.anthropic_stream import anthropic_error, usage_from_anthropic
from relaygate.providers.base import Adaptor, Target, UpstreamRequest, Usage, parse_json_object
from relaygate.relay.attempt import build_request, fetch, upstream_failure
from relaygate.relay.pipeline import internal_error, record, shutdown_cut
from relaygate.relay.shaping import attempt_rules
from relaygate.relay.sse import SSEDecoder
from relaygate.relay.stream import SSEWriter
from relaygate.services.shaping import shape_anthropic
from relaygate.state import AppState

__all__ = ["native_attempt"]


def _frame(event: str | None, data: bytes) -> bytes:
    if event is None:
        return b"data: " + data + b"\n\n"
    return b"event: " + event.encode() + b"\ndata: " + data + b"\n\n"


def _error_frame(err: RelayError) -> bytes:
    kind = error_type(err.code, err.type, err.http_status(True))
    if err.code == "stream_cut":
        kind = "overloaded_error"
    return _frame("error", orjson.dumps(error_object(kind, err.message)))


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
) -> None:
    """``sent``: the client's Messages body; ``chat_body``: its chat translation (for a
    local count when the upstream reports no usage)."""
    for rules in attempt_rules(state, ctx, target):  # the model's and channel's shaping
        sent = shape_anthropic(sent, rules)
    version = _header(req, b"anthropic-version")
    beta = _header(req, b"anthropic-beta")
    ureq = build_request(
        target, lambda: native_request(target, sent, ctx.stream, version=version, beta=beta)
    )
    if ctx.stream:
        await _stream(state, req, ctx, adaptor, target, ureq, chat_body)
    else:
        await _unary(state, req, ctx, adaptor, target, ureq, chat_body)


async def _unary(
    state: AppState,
    req: Request,
    ctx: RelayContext,
    adaptor: Adaptor,
    target: Target,
    ureq: UpstreamRequest,
    chat_body: dict[str, Any],
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
    if usage is None or state.filters.response_filters:
        view = adaptor.chat_response(target, raw)[0]  # the OpenAI view of the answer
    if usage is None:
        assert view is not None
        prompt, completion = count_prompt(chat_body), count_completion(view)
        usage = Usage(prompt_tokens=prompt, completion_tokens=completion)
        usage.total_tokens = prompt + completion
    ctx.claim(target)  # hedged: the first answer wins (relay/hedge.py)
    ctx.usage = usage
    if view is not None and state.filters.response_filters:
        state.filters.on_response(ctx, view)
    ctx.first_byte_at = time.perf_counter()
    ctx.finished = True
    record(state, ctx)
    await send_json(req.send, 200, raw, req.request_id)


async def _stream(
    state: AppState,
    req: Request,
    ctx: RelayContext,
    adaptor: Adaptor,
    target: Target,
    ureq: UpstreamRequest,
    chat_body: dict[str, Any],
) -> None:
    chain = state.filters
    billing = state.billing
    out = SSEWriter(req.send, ctx, req.request_id, state.settings.sse_keepalive)

    async def end(tail: bytes) -> None:
        if not out.started:
            ctx.claim(target)
        ctx.finished = True
        record(state, ctx)
        await out.end(tail)

    async def end_with_error(err: RelayError) -> None:
        ctx.status = err.http_status(state.settings.openai_status_codes)
        ctx.error_code = err.code
        await end(_error_frame(err))

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
        tr = adaptor.chat_stream(target, False)  # the shadow: usage, errors, OpenAI chunks
        decoder = SSEDecoder()
        meter = ctx.get(METER)
        if meter is None:
            meter = StreamMeter()
            ctx.put(METER, meter)

        async def deliver(events: list[tuple[str | None, bytes]]) -> None:
            payloads: list[bytes] = []
            for ev, data in events:
                payloads.extend(tr.feed(ev, data))
            if tr.error is not None and not out.started:
                raise tr.error  # nothing sent yet: the next attempt, or a JSON error
            if chain.chunk_filters and payloads:
                chain.on_chunks(ctx, payloads)  # observed only: the frames go as sent
            n = 0
            for p in payloads:
                n += meter.feed(p)
            line = billing.progress(ctx) if n else None
            if not out.started:
                ctx.claim(target)
                await out.emit([])  # starts the response
            await out.write(b"".join(_frame(e, d) for e, d in events))
            if line is not None:
                billing.spool(line)

        try:
            async for data in resp.chunks():
                events = decoder.feed(data)
                if events:
                    await deliver(events)
                if tr.error is not None or tr.done:
                    break
            else:
                rest = decoder.flush()
                if rest:
                    await deliver(rest)
                if not tr.done and tr.error is None:
                    raise UpstreamError("The upstream stream ended before it was complete.")
            ctx.usage = tr.usage
            if tr.error is not None:  # the client has the upstream's error event already
                ctx.status = tr.error.http_status(state.settings.openai_status_codes)
                ctx.error_code = tr.error.code
            elif ctx.usage is None:  # no usage in the stream: counted here
                local = Usage(prompt_tokens=count_prompt(chat_body), completion_tokens=meter.tokens)
                local.total_tokens = local.prompt_tokens + local.completion_tokens
                ctx.usage = local
        except RelayError as err:
            ctx.usage = tr.usage
            if not out.started:
                raise
            await end_with_error(err)
            return
        except asyncio.CancelledError:
            if out.started:
                ctx.usage = tr.usage
            if out.started and not ctx.client_disconnected and not out.closed:
                await end_with_error(shutdown_cut())
            raise
        except Exception as exc:
            ctx.usage = tr.usage
            crash = internal_error(ctx, exc)
            if not out.started:
                raise crash from exc
            await end_with_error(crash)
            return
        finally:
            out.stop_keepalive()
    await end(b"")
