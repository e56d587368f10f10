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

That is only safe while no filter may change answers. While one may
(``stages.py`` ``FilterChain.output_filtered``: content safety with a word list), the
client formats send what they can through the translated chat path instead, and a request
only the native path can carry comes here with a :class:`Guard`: the whole stream is held
(nothing reaches the client until the upstream has finished), run through the chunk
filters, and sent as the upstream's frames when the filters left its text as it was, or
else rendered from the filtered chunks by the client format's presenter (the notice and
``content_filter`` of a block, the masked text of a mask). :func:`filter_whole` is the
same check for a whole answer.

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
from typing import Any, Protocol

import orjson

from relaygate.asgi import Request
from relaygate.billing.stage import METER
from relaygate.billing.tokens import StreamMeter
from relaygate.context import RelayContext
from relaygate.errors import RelayError, UpstreamError
from relaygate.providers.base import Target, Usage
from relaygate.relay.pipeline import internal_error, record, shutdown_cut
from relaygate.relay.sse import SSEDecoder
from relaygate.relay.stream import SSEWriter
from relaygate.stages import Chunk, FilterChain, StopStream
from relaygate.state import AppState

__all__ = ["Guard", "Shadow", "filter_whole", "frame", "pump"]

Events = list[tuple[str | None, bytes]]


class Shadow(Protocol):
    """A native stream read as OpenAI chunks (``providers/anthropic_stream.py``'s
    translator; ``inbound/responses_view.py`` ``ResponsesShadow``)."""

    error: RelayError | None
    done: bool
    usage: Usage | None

    def feed(self, event: str | None, data: bytes) -> list[bytes]: ...


class Guard:
    """A native answer checked whole while output filtering is on (module docstring):
    ``stream`` renders filtered chat chunk payloads as the client's whole event stream,
    ``whole`` a filtered chat completion as the client's body; ``changed`` is set once
    the filters changed the answer (then the upstream's copy must not be offered later)."""

    __slots__ = ("changed", "stream", "whole")

    def __init__(
        self,
        stream: Callable[[list[bytes]], bytes],
        whole: Callable[[dict[str, Any]], bytes],
    ) -> None:
        self.stream = stream
        self.whole = whole
        self.changed = False


def filter_whole(chain: FilterChain, ctx: RelayContext, view: dict[str, Any]) -> bool:
    """Run the response filters over a native answer's chat view (changed in place);
    True when they changed it."""
    before = orjson.dumps(view)
    chain.on_response(ctx, view)
    return orjson.dumps(view) != before


def _texts(payloads: list[bytes]) -> dict[tuple[Any, ...], str]:
    """The text of chunk payloads per (choice, field): content, reasoning, tool arguments."""
    out: dict[tuple[Any, ...], str] = {}
    for p in payloads:
        obj = Chunk(p).obj
        for choice in (obj or {}).get("choices") or ():
            delta = choice.get("delta") if isinstance(choice, dict) else None
            if not isinstance(delta, dict):
                continue
            index = choice.get("index", 0)
            fields = [(k, delta.get(k)) for k in ("content", "reasoning_content", "reasoning")]
            for call in delta.get("tool_calls") or ():
                fn = call.get("function") if isinstance(call, dict) else None
                if isinstance(fn, dict):
                    fields.append((f"tool{call.get('index', 0)}", fn.get("arguments")))
            for key, text in fields:
                if isinstance(text, str) and text:
                    out[(index, key)] = out.get((index, key), "") + text
    return out


def _filter_held(
    chain: FilterChain, ctx: RelayContext, payloads: list[bytes]
) -> list[bytes] | None:
    """The chunk filters over a whole held stream: None when they left its text as it
    was, else the chunks to show (a block: what passed, then the notice)."""
    try:
        out = chain.on_chunks(ctx, payloads) + chain.on_end(ctx)
    except StopStream as stop:
        return [c.raw for c in stop.final]
    return None if _texts(out) == _texts(payloads) else out


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
    guard: Guard | None = None,
) -> None:
    """Relay the upstream's SSE body (``chunks``: its bytes as they arrive) to the
    client (see the module docstring). ``local_prompt``: the prompt's local count, for a
    stream that reports no usage; ``before_end``: run once the whole stream was relayed,
    before the row is recorded (not after an error); ``guard``: hold the whole stream and
    check it (module docstring)."""
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
    held_body = b""  # a held stream's whole body
    meter = ctx.get(METER)
    if meter is None:
        meter = StreamMeter()
        ctx.put(METER, meter)

    held_frames: list[bytes] = []
    held: list[bytes] = []  # the chat payloads of a held stream

    async def deliver(events: Events) -> None:
        payloads: list[bytes] = []
        for ev, data in events:
            payloads.extend(shadow.feed(ev, data))
        if shadow.error is not None and not out.started:
            raise shadow.error  # nothing sent yet: the next attempt, or a JSON error
        if guard is not None:  # held until the end: checked whole
            held.extend(payloads)
            held_frames.append(b"".join(frame(e, d) for e, d in events))
            for p in payloads:
                meter.feed(p)
            return
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
            if guard is not None:
                shown = _filter_held(chain, ctx, held)
                guard.changed = shown is not None
                held_body = b"".join(held_frames) if shown is None else guard.stream(shown)
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
    await end(held_body)
