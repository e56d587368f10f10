"""The bottom layer: raw ASGI types and helpers for the hot path (no framework objects).

Like starlette's ``types.py`` this module imports nothing else of relaygate, so every
layer above (relay, handlers, app) may use it without import cycles.
"""

from __future__ import annotations

import asyncio
import os
import re
import zlib
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import orjson

__all__ = [
    "BODY_RECEIVED",
    "DEFAULT_BODY_TIMEOUT",
    "BodyEncodingError",
    "BodyLimitExceeded",
    "BodyReadTimeout",
    "InvalidCompressedBody",
    "Receive",
    "Request",
    "Scope",
    "Send",
    "UnsupportedContentEncoding",
    "ok_body",
    "read_body",
    "send_json",
]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

#: Scope key a server sets (``edge/protocol.py``) once the whole request body is buffered:
#: ``read_body`` then needs no timer.
BODY_RECEIVED = "relaygate.body_received"
#: Default longest silence, in seconds, while reading a request body.
DEFAULT_BODY_TIMEOUT = 30.0

_REQUEST_ID_RE = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")

JSON_CT = (b"content-type", b"application/json")
SSE_HEADERS = [
    (b"content-type", b"text/event-stream; charset=utf-8"),
    (b"cache-control", b"no-cache"),
    (b"x-accel-buffering", b"no"),
]


class BodyLimitExceeded(Exception):
    """The request body is larger than the limit given to :func:`read_body`."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"request body larger than {limit} bytes")
        self.limit = limit


class BodyReadTimeout(Exception):
    """The client sent nothing for ``timeout`` seconds while its request body was incomplete."""

    def __init__(self, timeout: float) -> None:
        super().__init__(f"the request body was not received (no data for {timeout:g} seconds)")
        self.timeout = timeout


class BodyEncodingError(Exception):
    """The request body's content coding cannot be decoded; ``str(exc)`` says why."""


class UnsupportedContentEncoding(BodyEncodingError):
    """A ``content-encoding`` other than ``gzip`` or ``identity``."""

    def __init__(self, encoding: str) -> None:
        super().__init__(
            f"content-encoding {encoding!r} is not supported; send gzip or an uncompressed body"
        )
        self.encoding = encoding


class InvalidCompressedBody(BodyEncodingError):
    """A gzip request body that is corrupt or truncated."""


class Request:
    __slots__ = ("client_ip", "headers", "method", "path", "receive", "request_id", "scope", "send")

    def __init__(self, scope: Scope, receive: Receive, send: Send, trust_request_id: bool) -> None:
        self.scope = scope
        self.receive = receive
        self.send = send
        self.method: str = scope["method"]
        self.path: str = scope["path"]
        self.headers: dict[bytes, bytes] = dict(scope["headers"])
        client = scope.get("client")
        self.client_ip = client[0] if client else ""
        rid = self.headers.get(b"x-request-id") if trust_request_id else None
        if rid is not None:
            text = rid.decode("latin-1")
            self.request_id = text if _REQUEST_ID_RE.match(text) else os.urandom(12).hex()
        else:
            self.request_id = os.urandom(12).hex()


async def read_body(req: Request, limit: int, body_timeout: float = DEFAULT_BODY_TIMEOUT) -> bytes:
    """The request body, at most ``limit`` bytes (after decompression for ``gzip``).

    Raises :class:`BodyLimitExceeded` (also for a declared ``content-length`` over the limit,
    before reading), :class:`BodyReadTimeout` when the client sends nothing for
    ``body_timeout`` seconds while the body is incomplete,
    :class:`UnsupportedContentEncoding` for a ``content-encoding`` other than
    ``gzip``/``identity`` and :class:`InvalidCompressedBody` for a gzip body that does not
    decompress. When the server marked the scope with
    ``BODY_RECEIVED`` (the whole body is already buffered: ``edge/protocol.py``) no timer is
    set: reading cannot wait then.
    """
    headers = req.headers
    declared = headers.get(b"content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise BodyLimitExceeded(limit)
    gzipped = False
    encoding = headers.get(b"content-encoding")
    if encoding is not None:
        token = encoding.strip().lower()
        if token in (b"gzip", b"x-gzip"):
            gzipped = True
        elif token not in (b"", b"identity"):
            raise UnsupportedContentEncoding(encoding.decode("latin-1"))
    if req.scope.get(BODY_RECEIVED):
        raw = await _receive_body(req.receive, limit, None, body_timeout)
    else:
        try:
            async with asyncio.timeout(body_timeout) as deadline:
                raw = await _receive_body(req.receive, limit, deadline, body_timeout)
        except TimeoutError:
            raise BodyReadTimeout(body_timeout) from None
    if gzipped:
        return await _gunzip(raw, limit)
    return raw


async def _receive_body(
    receive: Receive, limit: int, deadline: asyncio.Timeout | None, idle: float
) -> bytes:
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            break
        chunk = message.get("body", b"")
        if chunk:
            size += len(chunk)
            if size > limit:
                raise BodyLimitExceeded(limit)
            chunks.append(chunk)
        if not message.get("more_body", False):
            break
        if deadline is not None:  # the timeout is the longest silence between reads
            deadline.reschedule(asyncio.get_running_loop().time() + idle)
    return chunks[0] if len(chunks) == 1 else b"".join(chunks)


#: Largest piece of output inflated at once; between pieces other requests may run.
_INFLATE_STEP = 1 << 20


async def _gunzip(data: bytes, limit: int) -> bytes:
    """Decompress a gzip body (one or more members) to at most ``limit`` bytes. The output
    is bounded while inflating, so a small "gzip bomb" never grows past ``limit`` + 1."""
    out: list[bytes] = []
    size = 0
    pending = data
    while pending:
        inflater = zlib.decompressobj(wbits=31)  # gzip framing only
        while True:
            step = min(_INFLATE_STEP, limit - size + 1)
            try:
                part = inflater.decompress(pending, step)
            except zlib.error as exc:
                raise InvalidCompressedBody(f"the gzip request body is corrupt ({exc})") from None
            size += len(part)
            if size > limit:
                raise BodyLimitExceeded(limit)
            if part:
                out.append(part)
            if inflater.eof:
                break
            pending = inflater.unconsumed_tail
            if len(part) < step and not pending:
                raise InvalidCompressedBody("the gzip request body is truncated")
            await asyncio.sleep(0)  # a large body: let other requests run between pieces
        pending = inflater.unused_data  # a further gzip member (RFC 1952 allows several)
    return out[0] if len(out) == 1 else b"".join(out)


async def send_json(
    send: Send,
    status: int,
    body: bytes,
    request_id: str,
    extra: list[tuple[bytes, bytes]] | None = None,
) -> None:
    # a content-length spares the chunk framing (uvicorn still writes head and body apart)
    headers = [
        JSON_CT,
        (b"content-length", str(len(body)).encode()),
        (b"x-request-id", request_id.encode()),
    ]
    if extra:
        headers.extend(extra)
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def ok_body(payload: dict[str, Any], envelope: bool) -> bytes:
    if envelope:
        return orjson.dumps({"code": 0, "msg": "ok", **payload})
    return orjson.dumps(payload)
