"""WebSocket upstream calls (``ws://`` and ``wss://`` URLs), on aiohttp's WebSocket client,
for providers whose API is one request frame answered by JSON frames (iFlytek Spark's
legacy chat API, ``providers/spark_ws.py``). Both HTTP backends hand such URLs here
(``FastTransport.request`` / ``AiohttpTransport.request``: one ``startswith`` per call),
so it behaves the same whichever ``RELAYGATE_HTTP_CLIENT`` is chosen.

One exchange: connect and upgrade, send ``UpstreamRequest.body`` as one text frame, wait
for the first answer frame, then hand the frames on as an ``UpstreamResponse``:

* ``stream=True``: content type ``text/event-stream``; ``chunks()`` yields every text
  frame as one SSE event (``data: <frame>\\n\\n``), so the relay's SSE path
  (``relay/sse.py``) decodes it like any stream;
* ``stream=False``: ``read()`` returns the frames joined by ``\\n``.

The answer ends with the frame whose ``header.status`` is 2, or with one whose
``header.code`` is not 0 (an error frame; iFlytek's convention for all its WebSocket APIs);
the connection then closes in the background. A socket closed before that frame is an
interrupted response (``UpstreamError``). A refused upgrade (401 bad signature, 403 stale
date, 429, …) is a response with that status, an empty body and the upgrade answer's
headers (``Retry-After``), so the relay maps it through the adaptor's ``error``.

Bounds, as for HTTP (``docs/limits-and-timeouts.md``): the connect timeout covers the TCP
connection, the proxy's CONNECT, TLS and the upgrade; the first-byte timeout, counted from
the call's start, the first answer frame; the idle timeout every later frame;
``RELAYGATE_TOTAL_TIMEOUT`` the whole exchange; ``RELAYGATE_MAX_UPSTREAM_BODY_BYTES`` each
frame and, for ``read()``, all frames together. ``UpstreamRequest.timeouts`` overrides the
first three. Proxies: the same choice as HTTP (``transport/proxy.py``; ``wss`` follows
``HTTPS_PROXY``, ``ws`` ``HTTP_PROXY``), a CONNECT tunnel for ``wss``. Leaving the
``request`` block early (client disconnect, cancellation, an error) closes the socket at
once. Only ``UpstreamError`` and ``UpstreamTimeout`` are raised.
"""

from __future__ import annotations

import asyncio
import math
import ssl
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import orjson

from relaygate.errors import UpstreamError
from relaygate.providers.base import UpstreamRequest
from relaygate.settings import Settings
from relaygate.transport.aiohttp_errors import connect_failure
from relaygate.transport.base import (
    UpstreamResponse,
    connect_timed_out,
    effective_timeouts,
    first_byte_timed_out,
    idle_timed_out,
    interrupted,
    make_ssl_context,
    too_large,
    total_expired,
)
from relaygate.transport.proxy import ProxyResolver

__all__ = ["WebSocketTransport", "is_last_frame"]

_CLOSE_WAIT = 2.0  # a graceful close waits this long for the server's close frame
_WS_TIMEOUT = aiohttp.ClientWSTimeout(ws_receive=None, ws_close=_CLOSE_WAIT)
_ENDED = (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSING, aiohttp.WSMsgType.CLOSED)


def is_last_frame(frame: bytes) -> bool:
    """Whether ``frame`` ends the answer: ``header.status == 2`` or ``header.code != 0``."""
    try:
        obj = orjson.loads(frame)
    except orjson.JSONDecodeError:
        return False
    header = obj.get("header") if isinstance(obj, dict) else None
    if not isinstance(header, dict):
        return False
    code = header.get("code")
    return header.get("status") == 2 or (isinstance(code, int) and code != 0)


def _one_line(frame: bytes) -> bytes:
    # JSON allows line breaks only between tokens: a blank is the same document
    if b"\n" in frame or b"\r" in frame:
        return frame.replace(b"\r", b" ").replace(b"\n", b" ")
    return frame


def _abort(ws: aiohttp.ClientWebSocketResponse[Any]) -> None:
    """Close the socket now, without the closing handshake (aiohttp has no public abort;
    its own ``close()`` does this when it is cancelled)."""
    ws._response.close()


class _Refused:
    """A refused upgrade: the status and headers of the HTTP answer, no body."""

    __slots__ = ("_headers", "_status")

    def __init__(self, status: int, headers: Mapping[str, str] | None) -> None:
        self._status = status
        self._headers = headers

    @property
    def status(self) -> int:
        return self._status

    def header(self, name: str) -> str | None:
        return self._headers.get(name) if self._headers is not None else None

    async def read(self) -> bytes:
        return b""

    async def chunks(self) -> AsyncIterator[bytes]:
        return
        yield  # an async generator that yields nothing


class _Frames:
    """The answer frames of one exchange (see the module docstring)."""

    __slots__ = ("_deadline", "_first", "_idle", "_limit", "_loop", "_stream", "_ws", "ended")

    def __init__(
        self,
        ws: aiohttp.ClientWebSocketResponse[Any],
        first: bytes,
        stream: bool,
        deadline: float,
        idle: float,
        limit: int,
        loop: asyncio.AbstractEventLoop,
    ) -> None:
        self._ws = ws
        self._first: bytes | None = first
        self._stream = stream
        self._deadline = deadline
        self._idle = idle
        self._limit = limit
        self._loop = loop
        self.ended = is_last_frame(first)

    @property
    def status(self) -> int:
        return 200

    def header(self, name: str) -> str | None:
        if name.lower() != "content-type":
            return None
        return "text/event-stream" if self._stream else "application/x-ndjson"

    async def _next(self) -> bytes | None:
        first = self._first
        if first is not None:
            self._first = None
            return first
        if self.ended:
            return None
        remaining = self._deadline - self._loop.time()
        if remaining <= 0:
            raise total_expired()
        frame = await _receive(self._ws, min(self._idle, remaining), self._limit)
        if frame is None:
            raise UpstreamError("The upstream provider's response was interrupted.")
        if frame is _TIMED_OUT:
            if self._loop.time() >= self._deadline - 0.001:
                raise total_expired()
            raise idle_timed_out(self._idle)
        self.ended = is_last_frame(frame)
        return frame

    async def read(self) -> bytes:
        parts: list[bytes] = []
        size = 0
        limit = self._limit
        while (frame := await self._next()) is not None:
            size += len(frame) + 1
            if size > limit:
                raise too_large(limit)
            parts.append(_one_line(frame))
        return b"\n".join(parts)

    async def chunks(self) -> AsyncIterator[bytes]:
        while (frame := await self._next()) is not None:
            yield b"data: " + _one_line(frame) + b"\n\n"


_TIMED_OUT = b"\0timeout"


async def _receive(
    ws: aiohttp.ClientWebSocketResponse[Any], wait: float, limit: int
) -> bytes | None:
    """The next data frame; ``_TIMED_OUT`` after ``wait`` seconds; None when the socket
    closed. A frame over ``limit`` is ``too_large``."""
    try:
        msg = await ws.receive(timeout=max(wait, 0.001))
    except TimeoutError:
        return _TIMED_OUT
    except aiohttp.ClientError as exc:
        raise interrupted(False) from exc
    kind = msg.type
    if kind is aiohttp.WSMsgType.TEXT or kind is aiohttp.WSMsgType.BINARY:
        data = msg.data
        return data if isinstance(data, bytes) else str(data).encode()
    if kind is aiohttp.WSMsgType.ERROR:
        cause = msg.data
        if (
            isinstance(cause, aiohttp.WebSocketError)
            and cause.code == aiohttp.WSCloseCode.MESSAGE_TOO_BIG
        ):
            raise too_large(limit)
        raise interrupted(False)
    if kind in _ENDED:
        return None
    return None


class WebSocketTransport:
    """WebSocket exchanges; the aiohttp session is made on first use (most installations
    have no WebSocket channel)."""

    def __init__(self, settings: Settings, proxies: ProxyResolver | None = None) -> None:
        self._settings = settings
        self._session: aiohttp.ClientSession | None = None
        self._ssl: ssl.SSLContext | None = None
        self._proxies = proxies if proxies is not None else ProxyResolver()
        self._total = settings.total_timeout if settings.total_timeout > 0 else math.inf
        self._closing: set[asyncio.Task[Any]] = set()

    async def start(self) -> None:
        """Nothing to do: the session is made on first use."""

    async def close(self) -> None:
        for task in list(self._closing):
            task.cancel()
        if self._closing:
            await asyncio.gather(*self._closing, return_exceptions=True)
        if self._session is not None:
            await self._session.close()
            self._session = None

    def _open(self) -> aiohttp.ClientSession:
        if self._ssl is None:
            self._ssl = make_ssl_context(self._settings)
        connector = aiohttp.TCPConnector(limit=0, ttl_dns_cache=300, ssl=self._ssl)
        self._session = aiohttp.ClientSession(
            connector=connector,
            timeout=aiohttp.ClientTimeout(total=None),
            skip_auto_headers=("User-Agent",),
            headers={"User-Agent": "relaygate"},
        )
        return self._session

    def _proxy(
        self, req: UpstreamRequest
    ) -> tuple[str | None, dict[str, str] | None, dict[str, str] | None]:
        try:
            parts = urlsplit(req.url)
            scheme, host = parts.scheme.lower(), parts.hostname
            port = parts.port or (443 if scheme == "wss" else 80)
        except ValueError as exc:
            raise interrupted(True) from exc
        if not host or scheme not in ("ws", "wss"):
            raise interrupted(True)
        proxy = self._proxies.resolve("https" if scheme == "wss" else "http", host, port, req.proxy)
        if proxy is None:
            return None, None, None
        auth = None
        if proxy.authorization is not None:
            auth = {"Proxy-Authorization": proxy.authorization}
        # CONNECT carries proxy_headers (wss); a plain ws upgrade goes to the proxy itself
        return (proxy.url, auth, None) if scheme == "wss" else (proxy.url, None, auth)

    def _close_later(self, ws: aiohttp.ClientWebSocketResponse[Any]) -> None:
        task = asyncio.get_running_loop().create_task(ws.close())
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)

    @asynccontextmanager
    async def request(
        self, req: UpstreamRequest, *, stream: bool
    ) -> AsyncIterator[UpstreamResponse]:
        session = self._session or self._open()
        settings = self._settings
        loop = asyncio.get_running_loop()
        start = loop.time()
        deadline = start + self._total
        connect, first_byte, idle = effective_timeouts(settings, req.timeouts)
        limit = settings.max_upstream_body_bytes
        proxy_url, proxy_headers, extra_headers = self._proxy(req)
        headers = req.headers if extra_headers is None else {**req.headers, **extra_headers}
        refused: _Refused | None = None
        try:
            async with asyncio.timeout_at(min(start + connect, deadline)):
                ws = await session.ws_connect(
                    req.url,
                    headers=headers,
                    proxy=proxy_url,
                    proxy_headers=proxy_headers,
                    timeout=_WS_TIMEOUT,
                    autoclose=True,
                    autoping=True,
                    max_msg_size=limit,
                    decode_text=False,
                )
        except aiohttp.WSServerHandshakeError as exc:
            if exc.status < 400:
                raise UpstreamError(
                    f"The upstream provider refused the WebSocket upgrade (HTTP {exc.status})."
                ) from exc
            refused = _Refused(exc.status, exc.headers)
        except TimeoutError as exc:
            late = loop.time() >= deadline - 0.001
            raise (total_expired() if late else connect_timed_out(connect)) from exc
        except aiohttp.ClientError as exc:
            raise connect_failure(exc, connected=True) from exc
        if refused is not None:
            yield refused
            return
        frames: _Frames | None = None
        try:
            try:
                await ws.send_frame(req.body, aiohttp.WSMsgType.TEXT)
            except (aiohttp.ClientError, ConnectionError) as exc:
                raise interrupted(False) from exc
            wait = min(start + first_byte, deadline) - loop.time()
            first = await _receive(ws, wait, limit) if wait > 0 else _TIMED_OUT
            if first is None:
                raise UpstreamError(
                    "The upstream provider closed the connection without answering."
                )
            if first is _TIMED_OUT:
                late = loop.time() >= deadline - 0.001
                raise total_expired() if late else first_byte_timed_out(first_byte)
            frames = _Frames(ws, first, stream, deadline, idle, limit, loop)
            yield frames
        except BaseException:
            _abort(ws)  # failed or cancelled: the upstream sees the close at once
            raise
        else:
            if frames is not None and frames.ended:
                self._close_later(ws)
            else:
                _abort(ws)
