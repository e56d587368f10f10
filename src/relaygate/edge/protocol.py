"""``EdgeProtocol``: uvicorn's httptools protocol with limits that apply before the ASGI app
(and so before authentication) runs.

Per connection it enforces, for every request head (request line, headers, trailers):

- a size limit (``RELAYGATE_MAX_HEADER_BYTES``) and a header count limit
  (``RELAYGATE_MAX_HEADERS``): over either, the client gets 431 with a JSON error;
- a time limit (``RELAYGATE_HEADER_TIMEOUT``): a connection that has not delivered a complete
  head in that time (a silent connection, or bytes trickling in) gets 408 with a JSON error.

After such a refusal the connection is half-closed and what the client still sends is read and
dropped for ``LINGER`` seconds (closing a socket with unread input makes the kernel send a reset,
which can destroy the error answer before the client reads it); nothing is buffered meanwhile.

It also answers HTTP/1.0 requests whose response has no ``content-length`` (streams) with a
close-delimited body: uvicorn would use chunked framing, which HTTP/1.0 clients do not know.

Cost on the common path (a whole request head in one read): one addition and comparison per
read, one length check per header, no timer. The body-read timeout lives in
``asgi.read_body``; this protocol marks the scope when the whole body is already buffered
(``asgi.BODY_RECEIVED``) so that ``read_body`` needs no timer then.
"""

from __future__ import annotations

import asyncio
import functools
import os
import sys
from dataclasses import dataclass
from typing import Any

from uvicorn._types import ASGISendEvent
from uvicorn.protocols.http.httptools_impl import (
    STATUS_LINE,
    HttpToolsProtocol,
    RequestResponseCycle,
)

from relaygate.asgi import BODY_RECEIVED
from relaygate.errors import InvalidRequest, error_body
from relaygate.settings import Settings

__all__ = [
    "LINGER",
    "EdgeLimits",
    "EdgeProtocol",
    "edge_limits",
    "refusal_bytes",
    "set_envelope",
]

#: Seconds a refused connection is kept half-closed, dropping what the client still sends.
LINGER = 1.0


@dataclass(frozen=True, slots=True)
class EdgeLimits:
    max_header_bytes: int
    max_headers: int
    header_timeout: float
    envelope: bool
    max_body_bytes: int
    max_upload_bytes: int


#: RELAYGATE_ENVELOPE as an admin set it at runtime (services/runtime_settings.py, applied
#: by this worker's app); empty until then: the environment's (``EdgeLimits.envelope``)
_live_envelope: list[bool] = []


def set_envelope(on: bool) -> None:
    """The envelope of this worker's refusals from now on (a runtime setting)."""
    _live_envelope[:] = [on]


@functools.cache
def edge_limits() -> EdgeLimits:
    """The limits of this worker process, read once from the environment."""
    s = Settings.from_env()
    return EdgeLimits(
        s.max_header_bytes,
        s.max_headers,
        s.header_timeout,
        s.envelope,
        s.max_body_bytes,
        s.max_upload_bytes,
    )


def refusal_bytes(
    status: int,
    code: str,
    message: str,
    envelope: bool,
    default_headers: list[tuple[bytes, bytes]],
) -> bytes:
    """A complete HTTP response (head and JSON error body) that closes the connection."""
    err = InvalidRequest(message, code=code, status=status)
    body = error_body(err, envelope=envelope, status=status)
    out = [STATUS_LINE[status]]
    for name, value in default_headers:
        out.extend([name, b": ", value, b"\r\n"])
    out.extend(
        [
            b"content-type: application/json\r\n",
            b"content-length: %d\r\n" % len(body),
            b"x-request-id: " + os.urandom(12).hex().encode() + b"\r\n",
            b"connection: close\r\n\r\n",
            body,
        ]
    )
    return b"".join(out)


_base = HttpToolsProtocol


class _HeadRefused(Exception):
    """Raised from a parser callback to stop parsing a head that is over a limit."""


class EdgeProtocol(HttpToolsProtocol):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        limits = edge_limits()
        self._limits = limits
        self._max_head = limits.max_header_bytes
        self._max_headers = limits.max_headers
        # bytes one request may put on the wire after its head (body, chunk framing, trailers):
        # twice the larger body limit (JSON bodies or multipart uploads: the readers refuse
        # bodies over theirs anyway); bounds what is read and parsed for a body nobody reads
        # (the request was answered early)
        largest = max(limits.max_body_bytes, limits.max_upload_bytes)
        self._max_rest = 2 * largest + limits.max_header_bytes
        # True while the bytes read belong to a request head (from the connection's start
        # or the end of the previous request until the head is complete)
        self._in_head = True
        self._used = 0  # bytes read while in the current head, or since it (body)
        self._heads = 0  # request heads completed on this connection
        self._head_timer: asyncio.TimerHandle | None = None
        self._linger: asyncio.TimerHandle | None = None
        self._refusal: bytes | None = None  # set by a parser callback that refused the head
        self._draining = False  # refused: drop everything the client still sends

    # ---- connection ------------------------------------------------------------------
    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._head_timer = self.loop.call_later(self._limits.header_timeout, self._head_timeout)

    def connection_lost(self, exc: Exception | None) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None
        if self._linger is not None:
            self._linger.cancel()
            self._linger = None
        super().connection_lost(exc)

    # The overrides below run for every request: they call the base methods directly
    # (``_base.x(self)``, no ``super()`` object) and keep to a few attribute operations.
    def data_received(self, data: bytes) -> None:
        if self._in_head:
            if self._draining:
                return
            used = self._used + len(data)
            if used > self._max_head:
                # Feed only up to the limit: a head that ends within it is fine (the rest of
                # the read is its body or the next request); one that does not is refused
                # before the parser buffers more of it.
                room = self._max_head - self._used
                heads = self._heads
                _base.data_received(self, data[:room])
                if self._draining or self.transport.is_closing():
                    return
                if self._heads == heads:  # the head is still incomplete at the limit
                    self._refuse(431, "request_header_too_large", self._too_large_message())
                    return
                data = data[room:]
            else:
                self._used = used
        else:
            self._used += len(data)
            if self._used > self._max_rest:  # only for a body nobody reads, or trailers
                self.transport.close()
                return
            cycle = self.cycle
            if self._head_timer is None and cycle is not None and cycle.response_complete:
                # answered before its body was read (refused early, say) and the body still
                # comes: the rest must arrive within the head timeout, or the connection is
                # closed (each read stops uvicorn's keep-alive timer, so a client could keep
                # the connection open forever by trickling body bytes nobody reads)
                self._head_timer = self.loop.call_later(
                    self._limits.header_timeout, self._unread_body_timeout
                )
        _base.data_received(self, data)
        # _used > 0 in a head after feeding: the parser holds part of a head (a completed
        # head or message resets it), which has header_timeout seconds to complete
        if self._in_head and self._used and self._head_timer is None and not self._draining:
            self._head_timer = self.loop.call_later(self._limits.header_timeout, self._head_timeout)

    # ---- parser callbacks ----------------------------------------------------------
    def on_header(self, name: bytes, value: bytes) -> None:
        # uvicorn 0.54's on_header (three lines, inlined: it runs for every header) plus the
        # count limit; trailers of a chunked body are appended to the same list, so they
        # count too
        headers = self.headers
        if len(headers) >= self._max_headers:
            self._refusal = b""  # trailers: the answer may be out already; just close
            if self._in_head:
                self._refusal = self._render(
                    431,
                    "request_header_too_large",
                    f"The request has more than {self._max_headers} header fields.",
                )
            raise _HeadRefused
        name = name.lower()
        if name == b"expect" and value.lower() == b"100-continue":
            self.expect_100_continue = True
        headers.append((name, value))

    def on_headers_complete(self) -> None:
        self._in_head = False
        self._used = 0
        self._heads += 1
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None
        _base.on_headers_complete(self)
        cycle = self.cycle
        if cycle is not None and cycle.scope is self.scope and self.scope["http_version"] == "1.0":
            cycle.__class__ = Http10Cycle

    def on_message_complete(self) -> None:
        self._in_head = True
        self._used = 0
        if self._head_timer is not None:  # the rest of an answered request's body came
            self._head_timer.cancel()
            self._head_timer = None
        self.scope[BODY_RECEIVED] = True  # type: ignore[literal-required]
        _base.on_message_complete(self)

    def send_400_response(self, msg: str) -> None:
        # uvicorn's answer to a parser error; a callback of ours may have caused it
        refusal, self._refusal = self._refusal, None
        if refusal is not None:
            self._send_refusal(refusal)
        else:
            super().send_400_response(msg)

    # ---- refusals ----------------------------------------------------------------------
    def _too_large_message(self) -> str:
        return f"The request head is larger than {self._max_head} bytes."

    def _render(self, status: int, code: str, message: str) -> bytes:
        envelope = _live_envelope[0] if _live_envelope else self._limits.envelope
        return refusal_bytes(status, code, message, envelope, self.server_state.default_headers)

    def _head_timeout(self) -> None:
        self._head_timer = None
        if self.transport.is_closing() or self._draining:
            return
        cycle = self.cycle
        if cycle is not None and not cycle.response_complete:
            # a pipelined head trickles in while a response is being written: no answer
            # can go out now; close the connection once that response is complete
            cycle.keep_alive = False
            return
        seconds = self._limits.header_timeout
        self._refuse(
            408,
            "request_timeout",
            f"The request head was not received within {seconds:g} seconds.",
        )

    def _unread_body_timeout(self) -> None:
        self._head_timer = None
        if not self._in_head:
            self.transport.close()

    def _refuse(self, status: int, code: str, message: str) -> None:
        self._send_refusal(self._render(status, code, message))

    def _send_refusal(self, response: bytes) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None
        transport = self.transport
        if transport.is_closing():
            return
        cycle = self.cycle
        if not response or (cycle is not None and not cycle.response_complete):
            transport.close()  # mid-response on this connection: no room for an answer
            return
        self._draining = self._in_head = True
        transport.write(response)
        if transport.can_write_eof():
            transport.write_eof()
        self._linger = self.loop.call_later(LINGER, transport.close)


class Http10Cycle(RequestResponseCycle):
    """A request/response cycle for an HTTP/1.0 request: a response without
    ``content-length`` is delimited by closing the connection instead of chunked framing
    (HTTP/1.0 has no chunked transfer coding). uvicorn never keeps HTTP/1.0 connections
    alive, so the connection closes after the response anyway."""

    close_delimited = False

    async def send(self, message: ASGISendEvent) -> None:
        if message["type"] == "http.response.start" and not self.response_started:
            names = {name.lower() for name, _ in message.get("headers", ())}
            if (
                b"content-length" not in names
                and b"transfer-encoding" not in names
                and self.scope["method"] != "HEAD"
                and message["status"] not in (204, 304)
            ):
                self.close_delimited = True
                self.chunked_encoding = False  # uvicorn then adds no transfer-encoding
                self.expected_content_length = sys.maxsize
        elif (
            self.close_delimited
            and message["type"] == "http.response.body"
            and not message.get("more_body", False)
        ):
            # uvicorn checks the declared length at the last part: declare what is left
            self.expected_content_length = len(message.get("body", b""))
        await super().send(message)
