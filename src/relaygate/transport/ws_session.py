"""Long-lived upstream WebSocket sessions (``/v1/realtime``, ``relay/realtime.py``).

``transport/websocket.py`` serves one request answered by frames; a realtime session is a
conversation both sides drive for minutes. :func:`open_session` connects and upgrades
(within the connect timeout; through the proxy ``transport/proxy.py`` picks; TLS verified as
for HTTP) and yields the aiohttp socket; leaving the block closes it and its client session,
so nothing outlives the relay's session. A WebSocket cannot be pooled, so each session has its
own small aiohttp client session (the TLS context is made once per worker).

Failures before the upgrade completes are ``RelayError`` as for HTTP: a refused upgrade is
:class:`Refused` (status, body and ``Retry-After``, for the adaptor's error mapping), a
connection that fails or times out is ``UpstreamError`` / ``UpstreamTimeout``.
"""

from __future__ import annotations

import asyncio
import functools
import ssl
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any
from urllib.parse import urlsplit

import aiohttp

from relaygate.errors import UpstreamError
from relaygate.providers.base import UpstreamRequest
from relaygate.settings import Settings
from relaygate.transport.aiohttp_errors import connect_failure
from relaygate.transport.base import connect_timed_out, effective_timeouts
from relaygate.transport.proxy import ProxyResolver

__all__ = ["HEARTBEAT", "Refused", "open_session"]

#: seconds between pings to the upstream (a silent dead peer is noticed within about twice this)
HEARTBEAT = 30.0
_CLOSE_WAIT = 2.0  # a graceful close waits this long for the server's close frame


class Refused(Exception):
    """The upstream answered the upgrade with an HTTP status (401, 404, 429, 5xx...)."""

    def __init__(self, status: int, headers: dict[str, str], body: bytes) -> None:
        super().__init__(f"upgrade refused with HTTP {status}")
        self.status = status
        self.headers = headers
        self.body = body

    def header(self, name: str) -> str | None:
        for key, value in self.headers.items():
            if key.lower() == name.lower():
                return value
        return None


@functools.cache
def _ssl_context(ca_bundle: str) -> ssl.SSLContext:
    """As ``transport/base.py`` ``make_ssl_context``: the system store or the bundle."""
    return ssl.create_default_context(cafile=ca_bundle or None)


def _proxy(
    req: UpstreamRequest, proxies: ProxyResolver
) -> tuple[str | None, dict[str, str] | None, dict[str, str]]:
    """(proxy url, CONNECT headers, headers added to the upgrade) for ``req``."""
    try:
        parts = urlsplit(req.url)
        scheme, host = parts.scheme.lower(), parts.hostname
        port = parts.port or (443 if scheme == "wss" else 80)
    except ValueError as exc:
        raise UpstreamError("Could not connect to the upstream provider.") from exc
    if not host or scheme not in ("ws", "wss"):
        raise UpstreamError("Could not connect to the upstream provider.")
    proxy = proxies.resolve("https" if scheme == "wss" else "http", host, port, req.proxy)
    if proxy is None:
        return None, None, {}
    auth = {"Proxy-Authorization": proxy.authorization} if proxy.authorization else {}
    # wss: the CONNECT carries the credentials; ws: the upgrade goes to the proxy itself
    return (proxy.url, auth or None, {}) if scheme == "wss" else (proxy.url, None, auth)


@asynccontextmanager
async def open_session(
    settings: Settings,
    req: UpstreamRequest,
    *,
    protocols: tuple[str, ...] = (),
    proxies: ProxyResolver | None = None,
) -> AsyncIterator[aiohttp.ClientWebSocketResponse[Any]]:
    """Connect to ``req.url`` (``ws://`` or ``wss://``) with ``req.headers`` and yield the
    open socket (see the module docstring). Frames up to
    ``RELAYGATE_MAX_UPSTREAM_BODY_BYTES`` are accepted."""
    proxy_url, proxy_headers, extra = _proxy(req, proxies or ProxyResolver())
    connect, _, _ = effective_timeouts(settings, req.timeouts)
    use_ssl: ssl.SSLContext | bool = False
    if req.url.startswith("wss"):
        use_ssl = _ssl_context(settings.ca_bundle or "")
    session = aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=0, ssl=use_ssl or False),
        timeout=aiohttp.ClientTimeout(total=None),
        skip_auto_headers=("User-Agent",),
        headers={"User-Agent": "relaygate"},
    )
    try:
        try:
            async with asyncio.timeout(connect):
                ws = await session.ws_connect(
                    req.url,
                    headers={**req.headers, **extra},
                    protocols=protocols,
                    proxy=proxy_url,
                    proxy_headers=proxy_headers,
                    timeout=aiohttp.ClientWSTimeout(ws_receive=None, ws_close=_CLOSE_WAIT),
                    autoclose=True,
                    autoping=True,
                    heartbeat=HEARTBEAT,
                    max_msg_size=settings.max_upstream_body_bytes,
                )
        except aiohttp.WSServerHandshakeError as exc:
            headers = dict(exc.headers or {})
            raise Refused(exc.status, headers, b"") from exc
        except TimeoutError as exc:
            raise connect_timed_out(connect) from exc
        except aiohttp.ClientError as exc:
            raise connect_failure(exc, connected=True) from exc
        try:
            yield ws
        finally:
            if not ws.closed:
                await ws.close()
    finally:
        await session.close()
