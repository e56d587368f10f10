"""Choose the upstream transport backend (``RELAYGATE_HTTP_CLIENT``).

Kept apart from ``transport/base.py`` so the interface imports no backend.
"""

from __future__ import annotations

from relaygate.settings import Settings
from relaygate.transport.base import Transport
from relaygate.transport.proxy import ProxyResolver

__all__ = ["HTTP_CLIENTS", "create_transport"]

HTTP_CLIENTS = ("aiohttp", "fast")


def create_transport(settings: Settings, proxies: ProxyResolver | None = None) -> Transport:
    """The configured backend; ``proxies`` defaults to the process environment's proxies."""
    if settings.http_client == "aiohttp":
        from relaygate.transport.aiohttp_client import AiohttpTransport

        return AiohttpTransport(settings, proxies)
    if settings.http_client == "fast":
        from relaygate.transport.fast import FastTransport

        return FastTransport(settings, proxies)
    raise ValueError(
        f"RELAYGATE_HTTP_CLIENT must be one of {', '.join(HTTP_CLIENTS)}, "
        f"not {settings.http_client!r}"
    )
