"""Connections through an HTTP proxy, for the ``fast`` transport.

:func:`connect_through` gives a protocol connected to the upstream through a proxy:
for an https target, :func:`open_tunnel` connects to the proxy, sends ``CONNECT
host:port`` (with ``Proxy-Authorization`` when the proxy URL carried credentials) and
reads the proxy's answer, then TLS to the upstream runs inside the tunnel; for an
http target the protocol is connected to the proxy itself, which is then sent
absolute-form requests.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Callable
from typing import TypeVar

from relaygate.errors import UpstreamError
from relaygate.transport.base import interrupted, proxy_refused, proxy_unreachable
from relaygate.transport.proxy import Proxy

__all__ = ["connect_through", "open_tunnel"]

P = TypeVar("P", bound=asyncio.Protocol)

_MAX_HEAD = 16 * 1024


class _Handshake(asyncio.Protocol):
    """Reads the proxy's answer to CONNECT: a status line and headers, nothing after."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.done: asyncio.Future[int] = loop.create_future()
        self._buf = bytearray()
        self.reason = ""

    def data_received(self, data: bytes) -> None:
        if self.done.done():
            return
        self._buf += data
        end = self._buf.find(b"\r\n\r\n")
        if end < 0:
            if len(self._buf) > _MAX_HEAD:
                self.done.set_exception(interrupted(True))
            return
        line = bytes(self._buf[: self._buf.find(b"\r\n")]).decode("latin-1")
        parts = line.split(" ", 2)
        if len(parts) < 2 or not parts[0].startswith("HTTP/1.") or not parts[1].isdigit():
            self.done.set_exception(UpstreamError("The HTTP proxy sent a malformed answer."))
            return
        status = int(parts[1])
        self.reason = parts[2] if len(parts) > 2 else ""
        if 200 <= status < 300 and end + 4 != len(self._buf):
            # the upstream cannot have spoken before our TLS hello
            self.done.set_exception(UpstreamError("The HTTP proxy sent a malformed answer."))
            return
        self.done.set_result(status)

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.done.done():
            self.done.set_exception(
                UpstreamError("The HTTP proxy closed the connection during CONNECT.")
            )


async def open_tunnel(
    loop: asyncio.AbstractEventLoop, proxy: Proxy, host: str, port: int
) -> asyncio.Transport:
    """A raw transport to ``host:port`` through ``proxy``; the caller bounds the time taken."""
    try:
        raw, shake = await loop.create_connection(lambda: _Handshake(loop), proxy.host, proxy.port)
    except TimeoutError:
        raise
    except (OSError, ValueError) as exc:
        raise proxy_unreachable() from exc
    transport = raw
    try:
        name = f"[{host}]" if ":" in host else host
        head = f"CONNECT {name}:{port} HTTP/1.1\r\nHost: {name}:{port}\r\n"
        if proxy.authorization is not None:
            head += f"Proxy-Authorization: {proxy.authorization}\r\n"
        transport.write((head + "\r\n").encode("latin-1"))
        status = await shake.done
        if not 200 <= status < 300:
            raise proxy_refused(status, shake.reason)
    except BaseException:
        transport.abort()
        raise
    return transport


async def connect_through(
    loop: asyncio.AbstractEventLoop,
    proxy: Proxy,
    host: str,
    port: int,
    ctx: ssl.SSLContext | None,
    factory: Callable[[], P],
) -> P:
    """``factory()``'s protocol, connected to ``host:port`` through ``proxy`` (TLS when ``ctx``).

    The caller bounds the time taken and maps ``OSError``/TLS errors.
    """
    if ctx is None:  # http target: the protocol talks to the proxy
        try:
            _, protocol = await loop.create_connection(factory, proxy.host, proxy.port)
        except TimeoutError:
            raise
        except (OSError, ValueError) as exc:
            raise proxy_unreachable() from exc
        return protocol
    raw = await open_tunnel(loop, proxy, host, port)
    protocol = factory()
    try:
        tls = await loop.start_tls(raw, protocol, ctx, server_hostname=host)
    except BaseException:
        raw.abort()
        raise
    if tls is None:
        raise interrupted(True)
    protocol.connection_made(tls)  # start_tls does not call it
    return protocol
