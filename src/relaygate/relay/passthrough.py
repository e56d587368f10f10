"""One upstream exchange on the rest of the API surface, answered to the client as the
upstream answered: JSON (with the envelope), Server-Sent Events (passed on event by event
as they arrive) or bytes (speech, file and video content: streamed with the upstream's
content type and length, never held whole in memory).

The caller (``relay/surface.py``, ``relay/objects.py``) says what to do with the answer
through :class:`Reply`: look at or rewrite a JSON answer before it is sent (record an
object, read its usage), observe each SSE event (usage of a completion or a run), run
something once a stream or a download has ended. A failure before the first byte is the
attempt loop's to retry (``relay/attempt.py``); after it, a broken stream ends with an
error event (SSE) or a cut connection (bytes), so the client never takes a truncated
download for a whole one.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import orjson

from relaygate.asgi import SSE_HEADERS, Request, ok_body, send_json
from relaygate.context import RelayContext
from relaygate.errors import RelayError, UpstreamError
from relaygate.providers.base import Adaptor, SurfaceAdaptor, Target
from relaygate.providers.surfaces import SurfaceCall
from relaygate.relay.attempt import build_request, upstream_failure
from relaygate.relay.pipeline import record
from relaygate.relay.sse import SSEDecoder
from relaygate.relay.stream import error_payload
from relaygate.state import AppState

__all__ = ["Reply", "exchange"]

OnJson = Callable[[dict[str, Any], Target], Awaitable[None]]
OnEvent = Callable[[str | None, bytes], bool]
OnEnd = Callable[[Target], Awaitable[None]]

#: response headers of a byte answer passed on to the client
_PASSED = ("content-type", "content-length", "content-disposition")


@dataclass(slots=True)
class Reply:
    #: a JSON answer, before it is recorded and sent (may change it in place, may raise)
    on_json: OnJson | None = None
    #: each SSE event of a streamed answer, before it is written: False drops it
    on_event: OnEvent | None = None
    #: a stream or a byte answer was delivered whole (before the log row is recorded)
    on_end: OnEnd | None = None
    #: the answer is content (a file's, a video's): passed on as bytes whatever its type
    content: bool = False


def _surface(adaptor: Adaptor) -> SurfaceAdaptor:
    if not isinstance(adaptor, SurfaceAdaptor):  # routing keeps such channels out
        raise UpstreamError("This channel's provider cannot serve this endpoint.")
    return adaptor


async def exchange(
    state: AppState,
    req: Request,
    ctx: RelayContext,
    adaptor: Adaptor,
    target: Target,
    call: SurfaceCall,
    reply: Reply,
) -> None:
    """Send ``call`` to ``target`` and answer the client (see the module docstring)."""
    surface = _surface(adaptor)
    ureq = build_request(target, lambda: surface.surface_request(target, call))
    async with state.transport.request(ureq, stream=True) as resp:
        status = resp.status
        if status >= 400:
            raw = await resp.read()
            raise upstream_failure(adaptor, target, status, raw, resp)
        ctype = (resp.header("content-type") or "").lower()
        if ctype.startswith("text/event-stream") and not reply.content:
            await _relay_events(state, req, ctx, target, resp.chunks(), reply)
            return
        if "json" in ctype and not reply.content:
            raw = await resp.read()
            try:
                obj = orjson.loads(raw)
            except orjson.JSONDecodeError:
                raise UpstreamError("The upstream provider returned malformed JSON.") from None
            if not isinstance(obj, dict):
                raise UpstreamError("The upstream provider returned malformed JSON.")
            if reply.on_json is not None:
                await reply.on_json(obj, target)
            ctx.claim(target)  # hedged: the first answer wins
            ctx.first_byte_at = time.perf_counter()
            ctx.finished = True
            record(state, ctx)
            body = ok_body(obj, state.settings.envelope)
            await send_json(req.send, 200, body, req.request_id)
            return
        headers = [(b"x-request-id", req.request_id.encode())]
        for name in _PASSED:
            value = resp.header(name)
            if value is not None:
                headers.append((name.encode(), _header_bytes(value)))
        ctx.claim(target)
        await req.send({"type": "http.response.start", "status": status, "headers": headers})
        ctx.first_byte_at = time.perf_counter()
        try:
            async for chunk in resp.chunks():
                await req.send({"type": "http.response.body", "body": chunk, "more_body": True})
        except RelayError as err:
            # cut after the first byte: the row says so (and charges nothing), and the
            # client's connection is cut rather than ended cleanly (the server closes it
            # when the application returns without finishing the body)
            ctx.status = err.http_status(state.settings.openai_status_codes)
            ctx.error_code = err.code
            raise
        if reply.on_end is not None:
            await reply.on_end(target)
        ctx.finished = True
        record(state, ctx)
        await req.send({"type": "http.response.body", "body": b"", "more_body": False})


def _header_bytes(value: str) -> bytes:
    """A header value as the upstream sent it: the fast client decodes header bytes as
    latin-1, aiohttp as UTF-8 (a file name like ``ü😀.txt`` in Content-Disposition)."""
    try:
        return value.encode("latin-1")
    except UnicodeEncodeError:
        return value.encode("utf-8", "surrogateescape")


def _frame(event: str | None, data: bytes) -> bytes:
    if event is None:
        return b"data: " + data + b"\n\n"
    return b"event: " + event.encode() + b"\ndata: " + data + b"\n\n"


async def _start_events(req: Request, ctx: RelayContext, target: Target) -> None:
    ctx.claim(target)
    headers = [*SSE_HEADERS, (b"x-request-id", req.request_id.encode())]
    await req.send({"type": "http.response.start", "status": 200, "headers": headers})
    ctx.first_byte_at = time.perf_counter()


async def _relay_events(
    state: AppState,
    req: Request,
    ctx: RelayContext,
    target: Target,
    chunks: Any,
    reply: Reply,
) -> None:
    """Pass an SSE answer on event by event; ``[DONE]`` and named ``done`` events too."""
    decoder = SSEDecoder()
    started = False
    observe = reply.on_event
    try:
        async for chunk in chunks:
            events = decoder.feed(chunk)
            if not events:
                continue
            if not started:
                await _start_events(req, ctx, target)
                started = True
            if observe is not None:
                events = [(e, d) for e, d in events if observe(e, d)]
            body = b"".join(_frame(e, d) for e, d in events)
            await req.send({"type": "http.response.body", "body": body, "more_body": True})
        rest = decoder.flush()
    except RelayError as err:
        if not started:
            raise
        ctx.status = 502
        ctx.error_code = err.code
        ctx.finished = True
        record(state, ctx)
        payload = b"data: " + error_payload(err) + b"\n\n"
        await req.send({"type": "http.response.body", "body": payload, "more_body": False})
        return
    if not started:
        await _start_events(req, ctx, target)
    if observe is not None:
        rest = [(e, d) for e, d in rest if observe(e, d)]
    if reply.on_end is not None:
        await reply.on_end(target)
    ctx.finished = True
    record(state, ctx)
    tail = b"".join(_frame(e, d) for e, d in rest)
    await req.send({"type": "http.response.body", "body": tail, "more_body": False})
