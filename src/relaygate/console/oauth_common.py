"""What the external sign-in providers share (``console/oidc.py``, ``console/github.py``):
the providers that are on, the failure that ends a sign-in with an error code for the page,
the identity a provider vouches for, PKCE, and JSON over HTTP with timeouts and a size limit
(aiohttp)."""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode, urlsplit

import aiohttp
import orjson

from relaygate.console.config import ConsoleSettings

__all__ = [
    "ExternalIdentity",
    "OAuthFailure",
    "add_query",
    "pkce_challenge",
    "providers",
    "request_json",
]

TIMEOUT = aiohttp.ClientTimeout(total=10, sock_connect=5)
MAX_ANSWER = 1024 * 1024  # bytes: a provider's JSON answers are small


def providers(cfg: ConsoleSettings) -> list[dict[str, str]]:
    """The external sign-in providers that are on, for ``GET /console/api/config``."""
    found = []
    if cfg.github_client_id:
        found.append({"id": "github", "name": "GitHub"})
    if cfg.oidc_client_id:
        found.append({"id": "oidc", "name": cfg.oidc_name})
    return found


class OAuthFailure(Exception):
    """An external sign-in that cannot go on: ``code`` is shown on the sign-in page
    (``oauth_state``, ``oauth_denied``, ``oauth_code``, ``oauth_id_token``,
    ``oauth_provider``, ``oauth_unreachable``, ``oauth_not_configured``; for a link:
    ``link_session``, ``identity_linked_elsewhere``, ``identity_provider_linked``), ``reason`` is
    logged (never shown: it may name the provider's internals)."""

    def __init__(self, code: str, reason: str) -> None:
        super().__init__(f"{code}: {reason}")
        self.code = code
        self.reason = reason


@dataclass(frozen=True, slots=True)
class ExternalIdentity:
    """Who the provider says signed in: ``subject`` is its stable id of the person, ``login``
    a hint for a new username, ``email`` only when the provider says it is verified."""

    provider: str
    subject: str
    login: str
    email: str | None


def pkce_challenge(verifier: str) -> str:
    """RFC 7636 S256: BASE64URL(SHA256(verifier)) without padding."""
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def add_query(url: str, params: dict[str, str]) -> str:
    return url + ("&" if urlsplit(url).query else "?") + urlencode(params)


async def request_json(
    method: str,
    url: str,
    *,
    what: str,
    data: dict[str, str] | None = None,
    headers: dict[str, str] | None = None,
    auth: aiohttp.BasicAuth | None = None,
) -> tuple[int, Any]:
    """One call to a provider: its status and JSON body. Unreachable, too slow or cut off:
    ``oauth_unreachable``; an answer that is not JSON: ``oauth_provider``."""
    hdrs = {"Accept": "application/json", "User-Agent": "relaygate-console", **(headers or {})}
    try:
        async with (
            aiohttp.ClientSession(timeout=TIMEOUT) as session,
            session.request(
                method, url, data=data, headers=hdrs, auth=auth, allow_redirects=False
            ) as resp,
        ):
            raw = await resp.content.read(MAX_ANSWER + 1)
            status = resp.status
    except (TimeoutError, aiohttp.ClientError, OSError) as exc:
        raise OAuthFailure(
            "oauth_unreachable", f"{what}: {type(exc).__name__}: {exc or 'no answer'}"
        ) from None
    if len(raw) > MAX_ANSWER:
        raise OAuthFailure("oauth_provider", f"{what}: answered more than {MAX_ANSWER} bytes")
    try:
        body = orjson.loads(raw) if raw else None
    except orjson.JSONDecodeError:
        raise OAuthFailure(
            "oauth_provider", f"{what}: answered {status} with a body that is not JSON"
        ) from None
    return status, body
