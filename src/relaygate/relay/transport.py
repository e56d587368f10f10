"""The one pooled upstream HTTP client (aiohttp) and its error mapping."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import aiohttp

from relaygate.errors import RelayError, UpstreamError, UpstreamTimeout
from relaygate.providers.base import UpstreamRequest
from relaygate.settings import Settings

__all__ = ["Transport", "map_transport_error"]


class Transport:
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
            auto_decompress=True,
            skip_auto_headers=("User-Agent",),
            headers={"User-Agent": "relaygate"},
        )

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    @asynccontextmanager
    async def request(self, req: UpstreamRequest) -> AsyncIterator[aiohttp.ClientResponse]:
        """Send ``req``; yields the response once headers arrived. Maps transport errors.

        Leaving the block early (client disconnect, cancellation) closes the upstream
        connection instead of returning it to the pool.
        """
        assert self._session is not None, "transport not started"
        try:
            async with asyncio.timeout(self._settings.first_byte_timeout):
                resp = await self._session.request(
                    req.method, req.url, data=req.body, headers=req.headers
                )
        except TimeoutError as exc:
            raise UpstreamTimeout("The upstream provider did not answer in time.") from exc
        except aiohttp.ClientConnectorError as exc:
            raise UpstreamError("Could not connect to the upstream provider.") from exc
        except aiohttp.ClientError as exc:
            raise UpstreamError("The connection to the upstream provider failed.") from exc
        try:
            yield resp
        except (TimeoutError, aiohttp.ClientError) as exc:
            resp.close()
            raise map_transport_error(exc) from exc
        except BaseException:
            resp.close()  # cancelled or failed: do not reuse a half-read connection
            raise
        finally:
            resp.release()


def map_transport_error(exc: BaseException) -> RelayError:
    """An error raised while reading an upstream response, as a client-facing error."""
    if isinstance(exc, TimeoutError | aiohttp.ServerTimeoutError):
        return UpstreamTimeout("The upstream provider stopped sending in time.")
    return UpstreamError("The upstream provider's response was interrupted.")
