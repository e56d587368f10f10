"""The stream pump of the native paths: an upstream stream in another format than chat
completions, passed to the client frame by frame as the upstream sent it (the Anthropic
Messages stream on an Anthropic channel, ``relay/messages_native.py``; the Responses
stream on a channel serving the ``responses`` surface, ``relay/responses.py``).

Each stream is also read through a :class:`Shadow`: a translator of its events to OpenAI
chat chunks, which says when the stream is done, whether the upstream reported an error,
and its usage. Its chunks feed the stream meter (a stream cut mid-way is charged for what
was delivered), the billing progress spool, and the chunk filters, which observe here (the
content log, a plug-in filter) but cannot rewrite the native frames: what a filter returns
is ignored, and a filter's ``StopStream`` is ignored too.

How the pump ends: the whole stream relayed, the row recorded just before the last write;
an upstream error event before the first byte is raised (the next attempt, or a JSON error),
after it the stream ends where the upstream's error event left it; a failure of ours after
the first byte ends the stream with the format's own error frame (``error_frame``); a server
shutdown with a ``stream_cut`` error frame.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Protocol

from relaygate.asgi import Request
from relaygate.billing.stage import METER
from relaygate.billing.tokens import StreamMeter
from relaygate.context import RelayContext
from relaygate.errors import RelayError, UpstreamError
from relaygate.providers.base import Target, Usage
from relaygate.relay.pipeline import internal_error, record, shutdown_cut
from relaygate.relay.sse import SSEDecoder
from relaygate.relay.stream import SSEWriter
from relaygate.stages import StopStream
from relaygate.state import AppState

__all__ = ["Shadow", "frame", "pump"]

Events = list[tuple[str | None, bytes]]


class Shadow(Protocol):
    """A native stream read as OpenAI chunks (``providers/anthropic_stream.py``'s
    translator; ``inbound/responses_view.py`` ``ResponsesShadow``)."""

    error: RelayError | None
    done: bool
    usage: Usage | None

    def feed(self, event: str | None, data: bytes) -> list[bytes]: ...


def frame(event: str | None, data: bytes) -> bytes:
    """One SSE frame (named when ``event`` is)."""
    if event is None:
        return b"data: " + data + b"\n\n"
    return b"event: " + event.encode() + b"\ndata: " + data + b"\n\n"


async def pump(
    state: AppState,
    req: Request,
    ctx: RelayContext,
    target: Target,
    chunks: AsyncIterator[bytes],
    shadow: Shadow,
    *,
    error_frame: Callable[[RelayError], bytes],
    local_prompt: Callable[[], int],
    before_end: Callable[[], Awaitable[None]] | None = None,
) -> None:
    """Relay the upstream's SSE body (``chunks``: its bytes as they arrive) to the
    client (see the module docstring). ``local_prompt``: the prompt's local count, for a
    stream that reports no usage; ``before_end``: run once the whole stream was relayed,
    before the row is recorded (not after an error)."""
    chain = state.filters
    billing = state.billing
    settings = state.settings
    out = SSEWriter(req.send, ctx, req.request_id, settings.sse_keepalive)

    async def end(tail: bytes) -> None:
        if not out.started:
            ctx.claim(target)
        ctx.finished = True
        record(state, ctx)
        await out.end(tail)

    async def end_with_error(err: RelayError) -> None:
        ctx.status = err.http_status(settings.openai_status_codes)
        ctx.error_code = err.code
        await end(error_frame(err))

    decoder = SSEDecoder()
    meter = ctx.get(METER)
    if meter is None:
        meter = StreamMeter()
        ctx.put(METER, meter)

    async def deliver(events: Events) -> None:
        payloads: list[bytes] = []
        for ev, data in events:
            payloads.extend(shadow.feed(ev, data))
        if shadow.error is not None and not out.started:
            raise shadow.error  # nothing sent yet: the next attempt, or a JSON error
        if chain.chunk_filters and payloads:
            with contextlib.suppress(StopStream):  # observed only: the frames go as sent
                chain.on_chunks(ctx, payloads)
        n = 0
        for p in payloads:
            n += meter.feed(p)
        line = billing.progress(ctx) if n else None
        if not out.started:
            ctx.claim(target)
            await out.emit([])  # starts the response
        await out.write(b"".join(frame(e, d) for e, d in events))
        if line is not None:
            billing.spool(line)

    try:
        async for data in chunks:
            events = decoder.feed(data)
            if events:
                await deliver(events)
            if shadow.error is not None or shadow.done:
                break
        else:
            rest = decoder.flush()
            if rest:
                await deliver(rest)
            if not shadow.done and shadow.error is None:
                raise UpstreamError("The upstream stream ended before it was complete.")
        ctx.usage = shadow.usage
        if shadow.error is not None:  # the client has the upstream's error event already
            ctx.status = shadow.error.http_status(settings.openai_status_codes)
            ctx.error_code = shadow.error.code
        else:
            if ctx.usage is None:  # no usage in the stream: counted here
                prompt = local_prompt()
                ctx.usage = Usage(
                    prompt_tokens=prompt,
                    completion_tokens=meter.tokens,
                    total_tokens=prompt + meter.tokens,
                )
            if before_end is not None:
                await before_end()
    except RelayError as err:
        ctx.usage = shadow.usage
        if not out.started:
            raise
        await end_with_error(err)
        return
    except asyncio.CancelledError:
        if out.started:
            ctx.usage = shadow.usage
        if out.started and not ctx.client_disconnected and not out.closed:
            await end_with_error(shutdown_cut())
        raise
    except Exception as exc:
        ctx.usage = shadow.usage
        crash = internal_error(ctx, exc)
        if not out.started:
            raise crash from exc
        await end_with_error(crash)
        return
    finally:
        out.stop_keepalive()
    await end(b"")
