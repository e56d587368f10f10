"""Requests whose body is streamed (multipart uploads, ``relay/multipart.py``), for the
``fast`` backend: its connections write whole bodies only, so these go through the aiohttp
client, whose request writer streams a body from an async iterator with flow control. The
aiohttp client is made on first use (uploads are rare, and not the hot path)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from relaygate.providers.base import UpstreamRequest
from relaygate.settings import Settings
from relaygate.transport.aiohttp_client import AiohttpTransport
from relaygate.transport.base import UpstreamResponse
from relaygate.transport.proxy import ProxyResolver

__all__ = ["StreamedBodies"]


class StreamedBodies:
    def __init__(self, settings: Settings, proxies: ProxyResolver) -> None:
        self._settings = settings
        self._proxies = proxies
        self._client: AiohttpTransport | None = None

    @asynccontextmanager
    async def request(self, req: UpstreamRequest, stream: bool) -> AsyncIterator[UpstreamResponse]:
        if self._client is None:
            self._client = AiohttpTransport(self._settings, self._proxies)
            await self._client.start()
        async with self._client.request(req, stream=stream) as resp:
            yield resp

    async def close(self) -> None:
        if self._client is not None:
            await self._client.close()
            self._client = None
