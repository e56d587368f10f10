"""Writing an SSE answer to the client: deferred response start, framing, the
final ``[DONE]``, and comment keep-alives while the upstream is silent.

The response start (status 200 and SSE headers) is sent with the first chunk, so
an upstream failure before it can still be answered with a JSON error and its
HTTP status. Keep-alives (``: keep-alive``) go out only after the response has
started and the upstream has been silent for ``keepalive`` seconds, so proxies
between the gateway and the client do not cut a stream that is waiting; one timer
per stream checks every ``keepalive`` seconds (nothing per chunk).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import orjson

from relaygate.asgi import SSE_HEADERS, Send
from relaygate.context import RelayContext, Slot
from relaygate.errors import RelayError
from relaygate.relay.sse import DONE_FRAME, frame

__all__ = ["KEEPALIVE_FRAME", "OPEN_WRITER", "SSEWriter", "TranslatingWriter", "error_payload"]

KEEPALIVE_FRAME = b": keep-alive\n\n"


def error_payload(err: RelayError) -> bytes:
    return orjson.dumps({"error": err.to_dict()})


class SSEWriter:
    __slots__ = (
        "_ctx",
        "_handle",
        "_headers",
        "_interval",
        "_last",
        "_loop",
        "_send",
        "_sending",
        "closed",
        "started",
    )

    def __init__(
        self, send: Send, ctx: RelayContext, request_id: str, keepalive: float = 0.0
    ) -> None:
        self._send = send
        self._ctx = ctx
        self._headers = [*SSE_HEADERS, (b"x-request-id", request_id.encode())]
        self._interval = keepalive
        self._loop = asyncio.get_running_loop()
        self._handle: asyncio.TimerHandle | None = None
        self._last = 0.0
        self._sending: asyncio.Task[None] | None = None
        self.started = False
        self.closed = False

    async def _start(self) -> None:
        await self._send({"type": "http.response.start", "status": 200, "headers": self._headers})
        self.started = True
        self._ctx.first_byte_at = time.perf_counter()
        if self._interval > 0:
            self._last = self._loop.time()
            self._handle = self._loop.call_later(self._interval, self._tick)

    async def emit(self, payloads: list[bytes]) -> None:
        """Send chunk payloads (framed) in one write."""
        if not self.started:
            await self._start()
        if not payloads:
            return
        body = frame(payloads[0]) if len(payloads) == 1 else b"".join(map(frame, payloads))
        if self._handle is not None:  # write() inlined: this runs for every chunk batch
            self._last = self._loop.time()
        await self._send({"type": "http.response.body", "body": body, "more_body": True})

    async def write(self, body: bytes) -> None:
        """Send bytes already framed (the response has started)."""
        if self._handle is not None:
            self._last = self._loop.time()
        await self._send({"type": "http.response.body", "body": body, "more_body": True})

    async def close(self, payloads: list[bytes]) -> None:
        """Send the last payloads and ``[DONE]``, and end the response."""
        await self.end(b"".join(map(frame, payloads)) + DONE_FRAME)

    async def end(self, body: bytes) -> None:
        """Send the last bytes (already framed) and end the response."""
        self.stop_keepalive()
        if not self.started:
            await self._start()
        self.closed = True
        await self._send({"type": "http.response.body", "body": body, "more_body": False})

    def stop_keepalive(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None

    def _tick(self) -> None:
        now = self._loop.time()
        idle = now - self._last
        if idle >= self._interval and not self.closed and self._sending is None:
            self._sending = self._loop.create_task(self._keepalive())
            idle = 0.0
        self._handle = self._loop.call_later(self._interval - idle, self._tick)

    async def _keepalive(self) -> None:
        try:
            if not self.closed:
                self._last = self._loop.time()
                await self._send(
                    {"type": "http.response.body", "body": KEEPALIVE_FRAME, "more_body": True}
                )
        except Exception:  # the client is gone: the relay notices on its own
            self.stop_keepalive()
        finally:
            self._sending = None


class TranslatingWriter(SSEWriter):
    """The stream writer for a client that speaks another format (``relay/present.py``):
    each batch of OpenAI chunk payloads becomes that format's frames through ``translate``,
    and ``finish`` gives the frames that end it (instead of ``[DONE]``)."""

    __slots__ = ("_finish", "_translate")

    def __init__(
        self,
        send: Send,
        ctx: RelayContext,
        request_id: str,
        keepalive: float,
        translate: Callable[[list[bytes]], bytes],
        finish: Callable[[], bytes],
    ) -> None:
        super().__init__(send, ctx, request_id, keepalive)
        self._translate = translate
        self._finish = finish

    async def emit(self, payloads: list[bytes]) -> None:
        if not self.started:
            await self._start()
        body = self._translate(payloads) if payloads else b""
        if body:
            await self.write(body)

    async def close(self, payloads: list[bytes]) -> None:
        body = self._translate(payloads) if payloads else b""
        await self.end(body + self._finish())


#: a stream writer opened before the upstream call (an online request's notice chunks,
#: ``relay/online.py``): the attempts write their answer to it, and a request that fails
#: after it started ends it with an error event (``relay/pipeline.py`` answer_failure)
OPEN_WRITER: Slot[SSEWriter] = Slot("stream.open_writer")
