"""``POST /v1/chat/completions``: the chat pipeline.

Stages: authenticate → parse → validate → prepare → route → billing.reserve →
filters.before → attempt loop (adaptor.chat_request → transport → stream | unary)
→ filters.on_response / on_chunk → write → filters.after → log (billing.settle fixes
the charge with the row). A streamed answer's completion tokens are counted as its
chunks are delivered (billing/tokens.py StreamMeter); an answer whose upstream sent no
usage gets one counted locally (and the client that asked for ``include_usage`` gets
its usage chunk).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import orjson

from relaygate.asgi import Request, ok_body, send_json
from relaygate.billing.stage import METER
from relaygate.billing.tokens import StreamMeter, count_completion, count_prompt, usage_chunk
from relaygate.context import RelayContext
from relaygate.errors import InvalidRequest, RelayError, UpstreamError
from relaygate.providers.base import Adaptor, Target, Usage
from relaygate.relay.attempt import Call, build_request, fetch, upstream_failure
from relaygate.relay.pipeline import (
    Parse,
    internal_error,
    parse_json_body,
    record,
    relay_request,
    require_model,
    shutdown_cut,
    take_stream_flags,
)
from relaygate.relay.present import PRESENTER, open_writer
from relaygate.relay.shaping import shaped_chat
from relaygate.relay.sse import SSEDecoder
from relaygate.relay.stream import OPEN_WRITER, error_payload
from relaygate.stages import GATED, TAP, StopStream
from relaygate.state import AppState

__all__ = ["chat_attempt", "handle_chat", "take_chat_body"]


def _validate(body: dict[str, Any]) -> str:
    model = require_model(body)
    messages = body.get("messages")
    if not isinstance(messages, list):
        raise InvalidRequest("`messages` must be an array of message objects.", param="messages")
    if not messages:
        raise InvalidRequest("`messages` must contain at least one message.", param="messages")
    for m in messages:
        if not isinstance(m, dict) or not isinstance(m.get("role"), str):
            raise InvalidRequest(
                "Each message must be an object with a string `role`.", param="messages"
            )
    return model


def _take_body(ctx: RelayContext, body: dict[str, Any]) -> None:
    ctx.model = _validate(body)
    take_stream_flags(ctx, body)


def _has_token(payload: bytes) -> bool:
    """Whether a chunk carries generated text, reasoning or a tool call (not just the
    role or usage). Used only while hedged attempts race."""
    try:
        chunk = orjson.loads(payload)
    except orjson.JSONDecodeError:
        return True
    choices = chunk.get("choices") if isinstance(chunk, dict) else None
    for choice in choices if isinstance(choices, list) else ():
        delta = choice.get("delta") if isinstance(choice, dict) else None
        if isinstance(delta, dict) and any(
            delta.get(k) for k in ("content", "reasoning_content", "tool_calls", "function_call")
        ):
            return True
        if isinstance(choice, dict) and choice.get("finish_reason"):
            return True
    return False


def _stopped_usage(upstream: Usage | None, body: dict[str, Any], produced: StreamMeter) -> Usage:
    """The usage of a stream a filter stopped: the upstream's prompt side (counted here
    when it sent none yet) and the completion tokens it produced up to the stop."""
    if upstream is not None:
        usage = replace(upstream, completion_tokens=produced.tokens, reasoning_tokens=0)
    else:
        usage = Usage(prompt_tokens=count_prompt(body), completion_tokens=produced.tokens)
    usage.total_tokens = usage.prompt_tokens + usage.completion_tokens
    return usage


async def handle_chat(
    state: AppState,
    req: Request,
    *,
    parse: Parse = parse_json_body,
    prepare: Callable[[RelayContext], None] | None = None,
) -> None:
    """``POST /v1/chat/completions``. The other inbound formats (``relay/present.py``) come
    through here too: ``parse`` reads their body as a chat-completions one, ``prepare``
    puts their presenter and error renderer in the request's context."""
    ctx = RelayContext(req.request_id, "chat", client_ip=req.client_ip)
    if prepare is not None:
        prepare(ctx)
    if state.filters.gate_filters:
        ctx.put(GATED, True)  # the gate filters are awaited before the first write

    def make_call(body: dict[str, Any]) -> Call:
        async def call(adaptor: Adaptor, target: Target) -> None:
            if ctx.stream:
                await _stream(state, req, ctx, adaptor, target, body)
            else:
                await _unary(state, req, ctx, adaptor, target, body)

        return call

    await relay_request(state, req, ctx, _take_body, make_call, parse=parse)


async def chat_attempt(
    state: AppState,
    req: Request,
    ctx: RelayContext,
    adaptor: Adaptor,
    target: Target,
    body: dict[str, Any],
) -> None:
    """One chat-completions attempt (stream or not, after ``ctx.stream``) for the other
    inbound formats that build their own call (``relay/messages.py``: an Anthropic channel
    takes the request natively, any other gets it as chat completions)."""
    if ctx.stream:
        await _stream(state, req, ctx, adaptor, target, body)
    else:
        await _unary(state, req, ctx, adaptor, target, body)


def take_chat_body(ctx: RelayContext, body: dict[str, Any]) -> None:
    """The chat body's checks (model, messages, stream flags), setting ``ctx``."""
    _take_body(ctx, body)


async def _unary(
    state: AppState,
    req: Request,
    ctx: RelayContext,
    adaptor: Adaptor,
    target: Target,
    body: dict[str, Any],
) -> None:
    body = shaped_chat(state, ctx, target, body)  # the model's and channel's rules, if any
    ureq = build_request(target, lambda: adaptor.chat_request(target, body, False))
    raw = await fetch(state, adaptor, target, ureq)
    obj, usage = adaptor.chat_response(target, raw, legacy_functions=ureq.legacy_functions)
    if usage is None:  # the upstream reported none: count it here, and tell the client
        usage = Usage(prompt_tokens=count_prompt(body), completion_tokens=count_completion(obj))
        usage.total_tokens = usage.prompt_tokens + usage.completion_tokens
        obj["usage"] = usage.to_openai()
    ctx.claim(target)  # hedged: the first answer wins (relay/hedge.py)
    ctx.usage = usage
    if state.filters.response_filters:
        state.filters.on_response(ctx, obj)
    gated = ctx.get(GATED)
    if gated and state.filters.gate_filters:
        await state.filters.gate(ctx, obj)  # checks run beside the upstream call
    tap = ctx.get(TAP)  # the request's own watcher (an online request's citations)
    if tap is not None:
        tap.on_response(obj)
    ctx.first_byte_at = time.perf_counter()
    ctx.finished = True
    record(state, ctx)
    present = ctx.get(PRESENTER)  # another inbound format (relay/present.py)
    out = ok_body(obj, state.settings.envelope) if present is None else present.unary(ctx, obj)
    await send_json(req.send, 200, out, req.request_id)


async def _stream(
    state: AppState,
    req: Request,
    ctx: RelayContext,
    adaptor: Adaptor,
    target: Target,
    body: dict[str, Any],
) -> None:
    chain = state.filters
    tap = ctx.get(TAP)  # the request's own watcher (an online request's citations)
    filtering = bool(chain.chunk_filters)
    body = shaped_chat(state, ctx, target, body)  # the model's and channel's rules, if any
    ureq = build_request(target, lambda: adaptor.chat_request(target, body, True))
    out = ctx.get(OPEN_WRITER) or open_writer(state, req, ctx)

    waiting: list[bytes] = []  # chunks held while hedged attempts race
    gated = ctx.get(GATED)
    gate = bool(chain.gate_filters) and gated is True  # awaited before the first write

    async def end(tail: list[bytes]) -> None:
        if not out.started:
            ctx.claim(target)
            if waiting:
                tail = waiting + tail
            if tail:  # the response starts with these last bytes: the row must know
                ctx.first_byte_at = time.perf_counter()
        ctx.finished = True
        record(state, ctx)
        await out.close(tail)

    async def end_with_error(err: RelayError) -> None:
        ctx.status = err.http_status(state.settings.openai_status_codes)
        ctx.error_code = err.code
        await end([error_payload(err)])

    async with state.transport.request(ureq, stream=True) as resp:
        if resp.status >= 400:
            raise upstream_failure(adaptor, target, resp.status, await resp.read(), resp)
        if "event-stream" not in (resp.header("Content-Type") or ""):
            err = adaptor.error(target, 502, await resp.read())
            if type(err) is UpstreamError and err.code == "upstream_error":  # nothing better known
                err = UpstreamError(
                    "The upstream provider answered a streaming request without a stream."
                )
            raise err
        tr = adaptor.chat_stream(target, ctx.include_usage, legacy_functions=ureq.legacy_functions)
        decoder = SSEDecoder()
        meter = ctx.get(METER)
        if meter is None:
            meter = StreamMeter()
            ctx.put(METER, meter)
        feed = meter.feed
        billing = state.billing
        # what the upstream produced, before the filters: a stream a filter stops is billed
        # for it (docs/safety.md), held-back and blocked text included
        produced = StreamMeter() if filtering else None

        async def deliver(payloads: list[bytes]) -> None:
            nonlocal gate
            if gate and payloads:  # checks run beside the upstream call: their verdict
                gate = False
                await chain.gate(ctx, None)
            if ctx.race is not None and not out.started and payloads:
                # hedged: chunks wait until one carries a token; the first stream to
                # have one wins the race (relay/hedge.py)
                waiting.extend(payloads)
                if not any(map(_has_token, payloads)):
                    return
                ctx.claim(target)
                payloads = waiting[:]
                waiting.clear()
            if produced is not None and payloads:
                for p in payloads:
                    produced.feed(p)
                payloads = chain.on_chunks(ctx, payloads)
            if tap is not None and payloads:
                payloads = tap.chunks(payloads)
            if payloads:
                n = 0
                for p in payloads:
                    n += feed(p)
                line = billing.progress(ctx) if n else None  # what will have been delivered
                await out.emit(payloads)
                if line is not None:
                    billing.spool(line)  # right after the write: charged if the worker dies
            if tr.error is not None:
                raise tr.error

        try:
            async for data in resp.chunks():
                events = decoder.feed(data)
                if not events:
                    continue
                if len(events) == 1:
                    payloads = tr.feed(events[0][0], events[0][1])
                else:
                    payloads = []
                    for ev, payload in events:
                        payloads.extend(tr.feed(ev, payload))
                        if tr.error is not None or tr.done:
                            break
                await deliver(payloads)
                if tr.done:
                    break
            else:
                payloads = []
                for ev, payload in decoder.flush():
                    payloads.extend(tr.feed(ev, payload))
                await deliver(payloads)
                if not tr.done:
                    raise UpstreamError("The upstream stream ended before it was complete.")
            tail = tr.finish()
            ctx.usage = tr.usage
            if filtering:  # held chunks first, the usage chunk (if any) last
                tail = chain.on_end(ctx) + (chain.on_chunks(ctx, tail) if tail else [])
            if tap is not None and tail:
                tail = tap.chunks(tail)
            for p in tail:
                feed(p)
            if ctx.usage is None:  # the upstream sent no usage: count it here
                local = Usage(prompt_tokens=count_prompt(body), completion_tokens=meter.tokens)
                local.total_tokens = local.prompt_tokens + local.completion_tokens
                ctx.usage = local
                if ctx.include_usage:
                    tail.append(usage_chunk(meter, ctx.model or "", local.to_openai()))
        except StopStream as stop:
            tail = [c.raw for c in stop.final]
            ctx.usage = _stopped_usage(tr.usage, body, produced or meter)
        except RelayError as err:
            ctx.usage = tr.usage
            if not out.started:
                raise  # nothing sent yet: a JSON error (or the next attempt)
            await end_with_error(err)
            return
        except asyncio.CancelledError:
            if out.started:  # a losing hedged attempt must not touch the winner's usage
                ctx.usage = tr.usage
            if out.started and not ctx.client_disconnected and not out.closed:
                await end_with_error(shutdown_cut())  # the server stops: end the stream cleanly
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
    if gate:  # no chunk went out before the end: the gate's verdict first
        gate = False
        try:
            await chain.gate(ctx, None)
        except RelayError as err:
            if not out.started:
                raise
            await end_with_error(err)
            return
    await end(tail)
