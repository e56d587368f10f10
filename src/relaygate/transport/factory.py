"""Choose the upstream transport backend (``RELAYGATE_HTTP_CLIENT``).

Kept apart from ``transport/base.py`` so the interface imports no backend.
"""

from __future__ import annotations

from relaygate.settings import Settings
from relaygate.transport.base import Transport

__all__ = ["HTTP_CLIENTS", "create_transport"]

HTTP_CLIENTS = ("aiohttp", "fast")


def create_transport(settings: Settings) -> Transport:
    if settings.http_client == "aiohttp":
        from relaygate.transport.aiohttp_client import AiohttpTransport

        return AiohttpTransport(settings)
    if settings.http_client == "fast":
        from relaygate.transport.fast import FastTransport

        return FastTransport(settings)
    raise ValueError(
        f"RELAYGATE_HTTP_CLIENT must be one of {', '.join(HTTP_CLIENTS)}, "
        f"not {settings.http_client!r}"
    )
