"""The aiohttp upstream transport (see ``transport.py``)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import aiohttp

from relaygate.providers.base import UpstreamRequest
from relaygate.settings import Settings
from relaygate.transport.base import interrupted, timed_out

__all__ = ["AiohttpTransport"]


class _Response:
    __slots__ = ("_resp",)

    def __init__(self, resp: aiohttp.ClientResponse) -> None:
        self._resp = resp

    @property
    def status(self) -> int:
        return self._resp.status

    def header(self, name: str) -> str | None:
        return self._resp.headers.get(name)

    async def read(self) -> bytes:
        try:
            return await self._resp.read()
        except (TimeoutError, aiohttp.ServerTimeoutError) as exc:
            raise timed_out(False) from exc
        except aiohttp.ClientError as exc:
            raise interrupted(False) from exc

    async def chunks(self) -> AsyncIterator[bytes]:
        try:
            async for data in self._resp.content.iter_any():
                yield data
        except (TimeoutError, aiohttp.ServerTimeoutError) as exc:
            raise timed_out(False) from exc
        except aiohttp.ClientError as exc:
            raise interrupted(False) from exc


class AiohttpTransport:
    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._session: aiohttp.ClientSession | None = None
        self._timeout = aiohttp.ClientTimeout(
            total=None, sock_connect=settings.connect_timeout, sock_read=settings.read_timeout
        )

    async def start(self) -> None:
        connector = aiohttp.TCPConnector(
            limit=0, ttl_dns_cache=300, keepalive_timeout=60, enable_cleanup_closed=True
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

    @asynccontextmanager
    async def request(self, req: UpstreamRequest, *, stream: bool) -> AsyncIterator[_Response]:
        assert self._session is not None, "transport not started"
        try:
            async with asyncio.timeout(self._settings.first_byte_timeout):
                resp = await self._session.request(
                    req.method, req.url, data=req.body, headers=req.headers
                )
        except TimeoutError as exc:
            raise timed_out(True) from exc
        except aiohttp.ClientConnectorError as exc:
            raise interrupted(True) from exc
        except aiohttp.ClientError as exc:
            raise interrupted(False) from exc
        try:
            yield _Response(resp)
        except BaseException:
            resp.close()  # failed or cancelled: do not reuse a half-read connection
            raise
        finally:
            resp.release()
