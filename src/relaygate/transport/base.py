"""The upstream HTTP transport: one pooled client per worker process, behind a
small interface so the client library can be chosen by measurement.

Backends (``RELAYGATE_HTTP_CLIENT``):

* ``fast`` (default) — ``transport/fast.py``: HTTP/1.1 on asyncio Protocols with
  the ``httptools`` parser and a keep-alive pool; ~40% less CPU per relayed
  request than aiohttp (``docs/decisions/0004-upstream-http-client.md``);
* ``aiohttp`` — ``transport/aiohttp_client.py``: the general-purpose client, kept as a
  fallback. Both pass the same integration suite in CI.

Every backend raises only :class:`~relaygate.errors.RelayError` subclasses
(``UpstreamError``, ``UpstreamTimeout``) — from ``request`` when connecting or
waiting for headers, and from ``read``/``chunks`` while the body arrives.
Leaving ``request``'s block early (client disconnect, cancellation) closes the
upstream connection instead of returning it to the pool.

Both backends also keep the same bounds (``docs/limits-and-timeouts.md``): TLS
certificates verified against the system store or ``RELAYGATE_CA_BUNDLE``; the
proxy of ``transport/proxy.py``; ``read()`` refuses a body larger than
``RELAYGATE_MAX_UPSTREAM_BODY_BYTES``; ``RELAYGATE_TOTAL_TIMEOUT`` bounds a whole
exchange from the start of ``request()`` to the last byte.

Per request, ``UpstreamRequest.timeouts`` (connect, first byte, idle; each None for the
setting) overrides ``RELAYGATE_CONNECT_TIMEOUT``, ``RELAYGATE_FIRST_BYTE_TIMEOUT`` and
``RELAYGATE_READ_TIMEOUT`` (a channel's ``config.timeouts``); for a request without it that
costs one comparison and no allocation. The ``UpstreamTimeout`` message names the timeout that
fired and its length.
"""

from __future__ import annotations

import ssl
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager
from typing import Protocol

from relaygate.errors import UpstreamError, UpstreamTimeout
from relaygate.providers.base import UpstreamRequest
from relaygate.settings import Settings

__all__ = [
    "Transport",
    "UpstreamResponse",
    "connect_timed_out",
    "effective_timeouts",
    "first_byte_timed_out",
    "idle_timed_out",
    "interrupted",
    "make_ssl_context",
    "proxy_refused",
    "proxy_unreachable",
    "tls_failed",
    "too_large",
    "total_expired",
]


class UpstreamResponse(Protocol):
    @property
    def status(self) -> int: ...

    def header(self, name: str) -> str | None: ...

    async def read(self) -> bytes: ...

    def chunks(self) -> AsyncIterator[bytes]: ...


class Transport(Protocol):
    async def start(self) -> None: ...

    async def close(self) -> None: ...

    def request(
        self, req: UpstreamRequest, *, stream: bool
    ) -> AbstractAsyncContextManager[UpstreamResponse]: ...


def effective_timeouts(
    settings: Settings, timeouts: tuple[float | None, float | None, float | None] | None
) -> tuple[float, float, float]:
    """(connect, first byte, idle) for one request: its ``UpstreamRequest.timeouts``, each
    ``None`` falling back to the setting."""
    connect, first_byte, idle = (
        settings.connect_timeout,
        settings.first_byte_timeout,
        settings.read_timeout,
    )
    if timeouts is None:
        return connect, first_byte, idle
    return (
        connect if timeouts[0] is None else timeouts[0],
        first_byte if timeouts[1] is None else timeouts[1],
        idle if timeouts[2] is None else timeouts[2],
    )


def connect_timed_out(seconds: float) -> UpstreamTimeout:
    """No connection within the connect timeout (through a proxy: connect, CONNECT, TLS)."""
    return UpstreamTimeout(
        f"The upstream provider did not answer in time (connect timeout, {seconds:g} s)."
    )


def first_byte_timed_out(seconds: float) -> UpstreamTimeout:
    """No response headers within the first-byte timeout, counted from the call's start."""
    return UpstreamTimeout(
        f"The upstream provider did not answer in time (first byte timeout, {seconds:g} s)."
    )


def idle_timed_out(seconds: float) -> UpstreamTimeout:
    """The body went silent for longer than the idle (read) timeout."""
    return UpstreamTimeout(
        f"The upstream provider stopped sending in time (idle timeout, {seconds:g} s)."
    )


def interrupted(connecting: bool) -> UpstreamError:
    if connecting:
        return UpstreamError("Could not connect to the upstream provider.")
    return UpstreamError("The upstream provider's response was interrupted.")


def total_expired() -> UpstreamTimeout:
    return UpstreamTimeout("The upstream provider did not finish in time.")


def too_large(limit: int) -> UpstreamError:
    return UpstreamError(f"The upstream provider's response is larger than {limit} bytes.")


def tls_failed(exc: ssl.SSLCertVerificationError) -> UpstreamError:
    reason = _printable(exc.verify_message or exc.reason or "verification failed")
    return UpstreamError(
        f"The upstream provider's TLS certificate could not be verified ({reason})."
    )


def proxy_unreachable() -> UpstreamError:
    return UpstreamError("Could not connect to the HTTP proxy.")


def proxy_refused(status: int, reason: str) -> UpstreamError:
    text = f"{status} {_printable(reason)}".strip()
    return UpstreamError(f"The HTTP proxy refused the connection to the upstream ({text}).")


def make_ssl_context(settings: Settings) -> ssl.SSLContext:
    """Certificates and host names verified; ``settings.ca_bundle`` replaces the system store."""
    return ssl.create_default_context(cafile=settings.ca_bundle or None)


def _printable(text: str) -> str:
    return "".join(c for c in text[:120] if " " <= c <= "~")
