"""The aiohttp upstream transport (the contract is in ``transport/base.py``).

Proxies: the same choice as ``fast`` (``transport/proxy.py``), passed to aiohttp per call
(``proxy=``, ``Proxy-Authorization`` as a proxy header); aiohttp tunnels https targets
with CONNECT and sends http targets in absolute form, like ``fast``. The total deadline
is aiohttp's ``ClientTimeout(total=…)`` plus a check per body chunk (aiohttp checks its
timer only while waiting for data).

Timeouts: the session's ``ClientTimeout`` carries the connect (``sock_connect``) and idle
(``sock_read``) timeouts, ``asyncio.timeout`` the first-byte one. aiohttp starts ``sock_read``
as soon as the request is sent, so it would also cut the wait for the headers; when the idle
timeout is shorter than the first-byte one, and for a request with its own ``timeouts``, the call
runs with ``sock_read`` off until the headers arrive and the idle timeout is set on the
connection then (``ResponseHandler.read_timeout``, as aiohttp does for websockets). Other
requests take the session's timeout as it is.
"""

from __future__ import annotations

import asyncio
import math
import ssl
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from urllib.parse import urlsplit

import aiohttp

from relaygate.errors import RelayError, UpstreamTimeout
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
    proxy_refused,
    too_large,
    total_expired,
)
from relaygate.transport.proxy import ProxyResolver
from relaygate.transport.websocket import WebSocketTransport

__all__ = ["AiohttpTransport"]

# proxy URL, headers for the CONNECT request, headers added to the request itself
_ProxyArgs = tuple[str | None, dict[str, str] | None, dict[str, str] | None]


class _Response:
    __slots__ = ("_deadline", "_idle", "_limit", "_loop", "_resp")

    def __init__(
        self,
        resp: aiohttp.ClientResponse,
        deadline: float,
        limit: int,
        loop: asyncio.AbstractEventLoop,
        idle: float,
    ) -> None:
        self._resp = resp
        self._deadline = deadline
        self._limit = limit
        self._loop = loop
        self._idle = idle

    @property
    def status(self) -> int:
        return self._resp.status

    def header(self, name: str) -> str | None:
        return self._resp.headers.get(name)

    async def read(self) -> bytes:
        limit = self._limit
        length = self._resp.content_length
        if length is not None and length > limit:
            raise too_large(limit)
        parts: list[bytes] = []
        size = 0
        try:
            async for data in self._resp.content.iter_any():
                size += len(data)
                if size > limit:
                    raise too_large(limit)
                if self._loop.time() >= self._deadline:
                    raise total_expired()
                parts.append(data)
        except RelayError:
            self._resp.close()
            raise
        except (TimeoutError, aiohttp.ServerTimeoutError) as exc:
            raise self._timeout() from exc
        except aiohttp.ClientError as exc:
            raise interrupted(False) from exc
        return parts[0] if len(parts) == 1 else b"".join(parts)

    async def chunks(self) -> AsyncIterator[bytes]:
        try:
            async for data in self._resp.content.iter_any():
                if self._loop.time() >= self._deadline:
                    self._resp.close()
                    raise total_expired()
                yield data
        except (TimeoutError, aiohttp.ServerTimeoutError) as exc:
            raise self._timeout() from exc
        except aiohttp.ClientError as exc:
            raise interrupted(False) from exc

    def _timeout(self) -> UpstreamTimeout:
        if self._loop.time() >= self._deadline - 0.001:
            return total_expired()
        return idle_timed_out(self._idle)


class AiohttpTransport:
    def __init__(self, settings: Settings, proxies: ProxyResolver | None = None) -> None:
        self._settings = settings
        self._session: aiohttp.ClientSession | None = None
        self._total = settings.total_timeout if settings.total_timeout > 0 else math.inf
        self._timeout = aiohttp.ClientTimeout(
            total=self._total if settings.total_timeout > 0 else None,
            sock_connect=settings.connect_timeout,
            sock_read=settings.read_timeout,
        )
        self._ssl: ssl.SSLContext = make_ssl_context(settings)
        self._proxies = proxies if proxies is not None else ProxyResolver()
        self._ws = WebSocketTransport(settings, self._proxies)  # ws:// and wss:// URLs
        self._proxy_of: dict[tuple[str, str | None], _ProxyArgs] = {}
        # sock_read would cut the header wait short: such defaults take the per-request path
        self._default_timeouts: tuple[None, None, None] | None = (
            (None, None, None) if settings.read_timeout < settings.first_byte_timeout else None
        )
        self._timeout_of: dict[float, aiohttp.ClientTimeout] = {}

    async def start(self) -> None:
        connector = aiohttp.TCPConnector(
            limit=0,
            ttl_dns_cache=300,
            keepalive_timeout=60,
            enable_cleanup_closed=True,
            ssl=self._ssl,
        )
        self._session = aiohttp.ClientSession(
            connector=connector,
            timeout=self._timeout,
            skip_auto_headers=("User-Agent",),
            headers={"User-Agent": "relaygate"},
        )

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
        await self._ws.close()

    def _headers_timeout(self, connect: float) -> aiohttp.ClientTimeout:
        """The session's timeout with ``connect`` and no ``sock_read`` (set after the headers)."""
        timeout = self._timeout_of.get(connect)
        if timeout is None:
            if len(self._timeout_of) >= 64:
                self._timeout_of.clear()
            timeout = self._timeout_of[connect] = aiohttp.ClientTimeout(
                total=self._timeout.total, sock_connect=connect, sock_read=None
            )
        return timeout

    def _proxy(self, req: UpstreamRequest) -> _ProxyArgs:
        cache_key = (req.url, req.proxy)
        cached = self._proxy_of.get(cache_key)
        if cached is not None:
            return cached
        try:
            parts = urlsplit(req.url)
            scheme, host = parts.scheme.lower(), parts.hostname
            port = parts.port or (443 if scheme == "https" else 80)
        except ValueError as exc:
            raise interrupted(True) from exc
        if not host:
            raise interrupted(True)
        proxy = self._proxies.resolve(scheme, host, port, req.proxy)
        args: _ProxyArgs = (None, None, None)
        if proxy is not None:
            auth = None
            if proxy.authorization is not None:
                auth = {"Proxy-Authorization": proxy.authorization}
            # aiohttp sends proxy_headers with CONNECT only: an http target's request carries them
            args = (proxy.url, auth, None) if scheme == "https" else (proxy.url, None, auth)
        if len(self._proxy_of) >= 1024:
            self._proxy_of.clear()
        self._proxy_of[cache_key] = args
        return args

    def request(
        self, req: UpstreamRequest, *, stream: bool
    ) -> AbstractAsyncContextManager[UpstreamResponse]:
        if req.url.startswith("ws"):  # ws:// or wss:// (transport/websocket.py)
            return self._ws.request(req, stream=stream)
        return self._request(req)

    @asynccontextmanager
    async def _request(self, req: UpstreamRequest) -> AsyncIterator[_Response]:
        assert self._session is not None, "transport not started"
        settings = self._settings
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._total
        proxy_url, proxy_headers, extra_headers = self._proxy(req)
        headers = req.headers if extra_headers is None else {**req.headers, **extra_headers}
        timeouts = req.timeouts if req.timeouts is not None else self._default_timeouts
        connect, first_byte, idle = effective_timeouts(settings, timeouts)
        timeout = self._timeout if timeouts is None else self._headers_timeout(connect)
        try:
            async with asyncio.timeout(first_byte):
                resp = await self._session.request(
                    req.method,
                    req.url,
                    data=req.body if req.stream_body is None else req.stream_body(),
                    headers=headers,
                    proxy=proxy_url,
                    proxy_headers=proxy_headers,
                    timeout=timeout,
                )
        except aiohttp.ConnectionTimeoutError as exc:
            raise connect_timed_out(connect) from exc
        except aiohttp.SocketTimeoutError as exc:  # sock_read while waiting for the headers
            raise idle_timed_out(idle) from exc
        except TimeoutError as exc:
            late = loop.time() >= deadline - 0.001
            raise (total_expired() if late else first_byte_timed_out(first_byte)) from exc
        except aiohttp.ClientError as exc:
            raise connect_failure(exc, connected=False) from exc
        if proxy_url is not None and resp.status == 407:  # absolute form: the proxy answered
            resp.close()
            raise proxy_refused(407, resp.reason or "")
        if timeouts is not None:  # the headers are in: the idle timeout from now on
            conn = resp.connection
            protocol = conn.protocol if conn is not None else None
            if protocol is not None:
                protocol.read_timeout = idle
                protocol.start_timeout()
        try:
            yield _Response(resp, deadline, settings.max_upstream_body_bytes, loop, idle)
        except BaseException:
            resp.close()  # failed or cancelled: do not reuse a half-read connection
            raise
        finally:
            resp.release()
