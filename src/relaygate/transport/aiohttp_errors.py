"""aiohttp's connection failures as relay errors, shared by the aiohttp backend
(``aiohttp_client.py``) and the WebSocket path (``websocket.py``)."""

from __future__ import annotations

import ssl

import aiohttp

from relaygate.errors import RelayError
from relaygate.transport.base import interrupted, proxy_refused, proxy_unreachable, tls_failed

__all__ = ["connect_failure"]


def connect_failure(exc: aiohttp.ClientError, *, connected: bool) -> RelayError:
    """The error for ``exc`` raised while connecting or waiting for the answer's head: a
    certificate that fails verification, a proxy that refuses or cannot be reached, a
    connection that failed (``interrupted(True)``); any other client error is
    ``interrupted(connected)``."""
    if isinstance(exc, aiohttp.ClientConnectorCertificateError):
        cert_error = exc.certificate_error
        if isinstance(cert_error, ssl.SSLCertVerificationError):
            return tls_failed(cert_error)
        return interrupted(True)
    if isinstance(exc, aiohttp.ClientHttpProxyError):
        return proxy_refused(exc.status, exc.message)
    if isinstance(exc, aiohttp.ClientProxyConnectionError):
        return proxy_unreachable()
    if isinstance(exc, aiohttp.ClientConnectorError):
        return interrupted(True)
    return interrupted(connected)
