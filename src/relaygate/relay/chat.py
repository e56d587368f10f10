"""``POST /v1/chat/completions``: the chat pipeline.

Stages: authenticate → parse → route → filters.before → adaptor.chat_request →
transport → (stream | unary) → filters.on_chunk → write → filters.after → log.
"""

from __future__ import annotations

import time
from typing import Any

import orjson

from relaygate.asgi import SSE_HEADERS, Request, ok_body, send_json
from relaygate.context import RelayContext
from relaygate.errors import InvalidRequest, RelayError, UpstreamError
from relaygate.providers.base import Adaptor, UpstreamRequest
from relaygate.relay.pipeline import (
    authenticate,
    fail,
    finish,
    parse_json_body,
    require_model,
    run_watched,
)
from relaygate.relay.sse import DONE_FRAME, SSEDecoder, frame
from relaygate.stages import StopStream
from relaygate.state import AppState

__all__ = ["handle_chat"]


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
    stream = body.get("stream")
    if stream is not None and not isinstance(stream, bool):
        raise InvalidRequest("`stream` must be true or false.", param="stream")
    return model


async def handle_chat(state: AppState, req: Request) -> None:
    ctx = RelayContext(req.request_id, "chat", client_ip=req.client_ip)
    try:
        authenticate(state, req, ctx)
        body = await parse_json_body(state, req)
        ctx.model = _validate(body)
        ctx.stream = body.get("stream") is True
        opts = body.get("stream_options")
        ctx.include_usage = (
            ctx.stream and isinstance(opts, dict) and opts.get("include_usage") is True
        )
        assert ctx.key is not None
        target = ctx.target = state.catalog.route(ctx.model, ctx.key)
        adaptor = state.adaptors.get(target.provider)
        await state.filters.before(ctx, body)
        ureq = adaptor.chat_request(target, body, ctx.stream)
        if ctx.stream:
            await run_watched(req, ctx, lambda: _stream(state, req, ctx, adaptor, ureq))
        else:
            await run_watched(req, ctx, lambda: _unary(state, req, ctx, adaptor, ureq))
    except RelayError as err:
        await fail(state, req, ctx, err)
    finally:
        await state.filters.after(ctx)
        finish(state, req, ctx)


async def _unary(
    state: AppState, req: Request, ctx: RelayContext, adaptor: Adaptor, ureq: UpstreamRequest
) -> None:
    assert ctx.target is not None
    async with state.transport.request(ureq, stream=False) as resp:
        raw = await resp.read()
        status = resp.status
    if status >= 400:
        raise adaptor.error(ctx.target, status, raw)
    obj, usage = adaptor.chat_response(ctx.target, raw)
    ctx.usage = usage
    if "answer" in ctx.notes:  # a filter asked to see the answer (content log)
        choices = obj.get("choices") or [{}]
        ctx.notes["reply"] = str((choices[0].get("message") or {}).get("content") or "")
    ctx.first_byte_at = time.perf_counter()
    ctx.finished = True
    await send_json(req.send, 200, ok_body(obj, state.settings.envelope), req.request_id)


async def _stream(
    state: AppState, req: Request, ctx: RelayContext, adaptor: Adaptor, ureq: UpstreamRequest
) -> None:
    target = ctx.target
    assert target is not None
    send = req.send
    chain = state.filters
    filtering = bool(chain.chunk_filters)
    started = False
    rid_header = (b"x-request-id", req.request_id.encode())

    async def emit(out: list[bytes], more: bool = True) -> None:
        nonlocal started
        if not started:
            await send(
                {
                    "type": "http.response.start",
                    "status": 200,
                    "headers": [*SSE_HEADERS, rid_header],
                }
            )
            started = True
            ctx.first_byte_at = time.perf_counter()
        body = frame(out[0]) if len(out) == 1 else b"".join(map(frame, out))
        if not more:
            body += DONE_FRAME
        await send({"type": "http.response.body", "body": body, "more_body": more})

    async with state.transport.request(ureq, stream=True) as resp:
        if resp.status >= 400:
            raise adaptor.error(target, resp.status, await resp.read())
        if "event-stream" not in (resp.header("Content-Type") or ""):
            err = adaptor.error(target, 502, await resp.read())
            if isinstance(err, UpstreamError):
                err = UpstreamError(
                    "The upstream provider answered a streaming request without a stream."
                )
            raise err
        tr = adaptor.chat_stream(target, ctx.include_usage)
        decoder = SSEDecoder()

        async def deliver(out: list[bytes]) -> None:
            if filtering and out:
                out = chain.on_chunks(ctx, out)
            if out:
                await emit(out)
            if tr.error is not None:
                raise tr.error

        try:
            async for data in resp.chunks():
                events = decoder.feed(data)
                if not events:
                    continue
                if len(events) == 1:
                    out = tr.feed(events[0][0], events[0][1])
                else:
                    out = []
                    for ev, payload in events:
                        out.extend(tr.feed(ev, payload))
                        if tr.error is not None or tr.done:
                            break
                await deliver(out)
                if tr.done:
                    break
            else:
                out = []
                for ev, payload in decoder.flush():
                    out.extend(tr.feed(ev, payload))
                await deliver(out)
                if not tr.done:
                    raise UpstreamError("The upstream stream ended before it was complete.")
            tail = tr.finish()
            ctx.usage = tr.usage
        except StopStream as stop:
            ctx.usage = tr.usage
            tail = [stop.final] if stop.final else []
        except RelayError as err:
            ctx.usage = tr.usage
            if not started:
                raise
            ctx.status = err.http_status(state.settings.openai_status_codes)
            ctx.error_code = err.code
            ctx.finished = True
            await emit([_error_payload(err)], more=False)
            return
    ctx.finished = True
    await emit(tail, more=False)  # trailing chunks (if any) and [DONE]


def _error_payload(err: RelayError) -> bytes:
    return orjson.dumps({"error": err.to_dict()})
