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
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager
from typing import Protocol

from relaygate.errors import UpstreamError, UpstreamTimeout
from relaygate.providers.base import UpstreamRequest

__all__ = [
    "Transport",
    "UpstreamResponse",
    "interrupted",
    "timed_out",
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


def timed_out(waiting_for_headers: bool) -> UpstreamTimeout:
    if waiting_for_headers:
        return UpstreamTimeout("The upstream provider did not answer in time.")
    return UpstreamTimeout("The upstream provider stopped sending in time.")


def interrupted(connecting: bool) -> UpstreamError:
    if connecting:
        return UpstreamError("Could not connect to the upstream provider.")
    return UpstreamError("The upstream provider's response was interrupted.")
