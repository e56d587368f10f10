"""CORS for the model API, so browser-based chat clients can call the gateway.

Keys travel as bearer tokens, never cookies, so — like OpenAI's own API — the
gateway allows the configured origins (``RELAYGATE_CORS_ORIGINS``, default ``*``)
without credentials. Only requests that carry an ``Origin`` header pay for it.
"""

from __future__ import annotations

from collections.abc import Iterable

from relaygate.asgi import Message, Send

__all__ = ["Cors"]

_ALLOW_HEADERS = b"authorization, content-type, api-key, x-api-key, x-request-id, openai-organization, openai-project, openai-beta, x-stainless-arch, x-stainless-lang, x-stainless-os, x-stainless-package-version, x-stainless-retry-count, x-stainless-runtime, x-stainless-runtime-version, x-stainless-timeout"  # noqa: E501
_EXPOSE = b"x-request-id, retry-after, content-type"
_MAX_AGE = b"86400"


class Cors:
    def __init__(self, origins: Iterable[str]) -> None:
        origins = tuple(origins)
        self.any = "*" in origins
        self.origins = frozenset(o.rstrip("/").encode() for o in origins if o != "*")
        self.enabled = self.any or bool(self.origins)

    def allowed(self, origin: bytes) -> bytes | None:
        """The ``Access-Control-Allow-Origin`` value for ``origin``, or None."""
        if self.any:
            return b"*"
        return origin if origin.rstrip(b"/") in self.origins else None

    def preflight_headers(
        self, allow: bytes, methods: Iterable[str], requested: bytes | None
    ) -> list[tuple[bytes, bytes]]:
        headers = [
            (b"access-control-allow-origin", allow),
            (b"access-control-allow-methods", ", ".join(methods).encode()),
            (b"access-control-allow-headers", requested or _ALLOW_HEADERS),
            (b"access-control-max-age", _MAX_AGE),
        ]
        if allow != b"*":
            headers.append((b"vary", b"origin"))
        return headers

    def wrap(self, send: Send, allow: bytes) -> Send:
        """``send`` with the CORS headers added to the response start."""
        extra = [
            (b"access-control-allow-origin", allow),
            (b"access-control-expose-headers", _EXPOSE),
        ]
        if allow != b"*":
            extra.append((b"vary", b"origin"))

        async def cors_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", ()), *extra]
            await send(message)

        return cors_send
