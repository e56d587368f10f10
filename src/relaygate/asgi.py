"""The bottom layer: raw ASGI types and helpers for the hot path (no framework objects).

Like starlette's ``types.py`` this module imports nothing else of relaygate, so every
layer above (relay, handlers, app) may use it without import cycles.
"""

from __future__ import annotations

import os
import re
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import orjson

__all__ = [
    "BodyLimitExceeded",
    "Receive",
    "Request",
    "Scope",
    "Send",
    "ok_body",
    "read_body",
    "send_json",
]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

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


async def read_body(req: Request, limit: int) -> bytes:
    declared = req.headers.get(b"content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise BodyLimitExceeded(limit)
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await req.receive()
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
    return chunks[0] if len(chunks) == 1 else b"".join(chunks)


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
