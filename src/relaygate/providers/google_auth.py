"""Google service-account credentials → short-lived OAuth access tokens (no I/O).

A Vertex AI channel's key is either a plain OAuth access token (used as is) or a
service-account key file: the JSON Google issues (``{"type": "service_account",
"client_email", "private_key", "token_uri", "project_id", …}``), pasted as is or
base64-encoded (a key stored through the CLI or admin API must not contain
whitespace in some deployments). For a service account the adaptor is a
``TokenSource`` (``providers/base.py``): :func:`token_request` builds the OAuth 2.0
JWT-bearer exchange (RFC 7523) — a JWT signed RS256 with the account's private key,
claims ``iss``/``scope``/``aud``/``iat``/``exp`` — and :func:`token_response` reads
``{"access_token", "expires_in"}``. ``routing/tokens.py`` sends it and caches the
token per (channel, key) until shortly before it expires.
"""

from __future__ import annotations

import base64
import binascii
import time
from dataclasses import dataclass
from functools import lru_cache
from typing import Any
from urllib.parse import urlencode

import orjson
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from relaygate.errors import UpstreamError, sanitize
from relaygate.providers.base import UpstreamRequest

__all__ = [
    "CLOUD_PLATFORM_SCOPE",
    "DEFAULT_TOKEN_URI",
    "ServiceAccount",
    "google_token_request",
    "google_token_response",
    "service_account",
    "sign_jwt",
]

CLOUD_PLATFORM_SCOPE = "https://www.googleapis.com/auth/cloud-platform"
DEFAULT_TOKEN_URI = "https://oauth2.googleapis.com/token"
#: lifetime asked for in the assertion (Google allows at most one hour)
ASSERTION_TTL = 3600
GRANT_TYPE = "urn:ietf:params:oauth:grant-type:jwt-bearer"


@dataclass(frozen=True, slots=True)
class ServiceAccount:
    client_email: str
    private_key: rsa.RSAPrivateKey
    token_uri: str
    project_id: str
    private_key_id: str


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _load_json(key: str) -> dict[str, Any] | None:
    text = key.strip()
    if not text.startswith("{"):
        try:
            text = base64.b64decode(text + "=" * (-len(text) % 4), validate=False).decode()
        except (binascii.Error, UnicodeDecodeError, ValueError):
            return None
        if not text.lstrip().startswith("{"):
            return None
    try:
        obj = orjson.loads(text)
    except orjson.JSONDecodeError:
        return None
    return obj if isinstance(obj, dict) else None


@lru_cache(maxsize=64)
def service_account(key: str) -> ServiceAccount | None:
    """The service account in a channel key, or ``None`` for a plain access token.

    A key that looks like a service-account file but cannot be used raises
    ``UpstreamError`` (``upstream_auth_failed``): the operator has to fix the channel.
    """
    if len(key) < 200:  # an access token, or an API key: not a key file
        return None
    obj = _load_json(key)
    if obj is None or obj.get("type") != "service_account":
        return None
    email, pem = obj.get("client_email"), obj.get("private_key")
    if not isinstance(email, str) or not isinstance(pem, str):
        raise UpstreamError(
            "This channel's service-account key has no client_email or private_key.",
            code="upstream_auth_failed",
        )
    try:
        private = serialization.load_pem_private_key(pem.encode(), password=None)
    except (ValueError, TypeError):
        private = None
    if not isinstance(private, rsa.RSAPrivateKey):
        raise UpstreamError(
            "This channel's service-account private key cannot be read (an RSA PEM key).",
            code="upstream_auth_failed",
        )
    uri = obj.get("token_uri")
    project = obj.get("project_id")
    key_id = obj.get("private_key_id")
    return ServiceAccount(
        client_email=email,
        private_key=private,
        token_uri=uri if isinstance(uri, str) and uri else DEFAULT_TOKEN_URI,
        project_id=project if isinstance(project, str) else "",
        private_key_id=key_id if isinstance(key_id, str) else "",
    )


def sign_jwt(sa: ServiceAccount, now: float, scope: str = CLOUD_PLATFORM_SCOPE) -> str:
    """The RS256 JWT assertion of the JWT-bearer grant."""
    header: dict[str, str] = {"alg": "RS256", "typ": "JWT"}
    if sa.private_key_id:
        header["kid"] = sa.private_key_id
    iat = int(now)
    claims = {
        "iss": sa.client_email,
        "scope": scope,
        "aud": sa.token_uri,
        "iat": iat,
        "exp": iat + ASSERTION_TTL,
    }
    signing_input = _b64url(orjson.dumps(header)) + "." + _b64url(orjson.dumps(claims))
    signature = sa.private_key.sign(signing_input.encode(), padding.PKCS1v15(), hashes.SHA256())
    return signing_input + "." + _b64url(signature)


def google_token_request(
    key: str, now: float | None = None, scope: str = CLOUD_PLATFORM_SCOPE
) -> UpstreamRequest | None:
    """The token exchange for a service-account ``key``; ``None`` for a plain token."""
    sa = service_account(key)
    if sa is None:
        return None
    assertion = sign_jwt(sa, time.time() if now is None else now, scope)
    return UpstreamRequest(
        url=sa.token_uri,
        headers={"content-type": "application/x-www-form-urlencoded", "accept": "application/json"},
        body=urlencode({"grant_type": GRANT_TYPE, "assertion": assertion}).encode(),
    )


def google_token_response(status: int, raw: bytes, secrets: tuple[str, ...]) -> tuple[str, float]:
    """``(access_token, expires_in)`` from Google's token endpoint; a failure (an OAuth
    error such as ``invalid_grant``) means the channel's credentials are bad."""
    obj: Any = None
    try:
        obj = orjson.loads(raw) if raw.strip() else None
    except orjson.JSONDecodeError:
        obj = None
    if status == 200 and isinstance(obj, dict):
        token, expires = obj.get("access_token"), obj.get("expires_in")
        if isinstance(token, str) and token:
            ttl = float(expires) if isinstance(expires, int | float) and expires > 0 else 3600.0
            return token, ttl
    detail = ""
    if isinstance(obj, dict):
        err, desc = obj.get("error"), obj.get("error_description")
        detail = " ".join(x for x in (err, desc) if isinstance(x, str))
    if status >= 500 or status == 429:
        raise UpstreamError(f"Google's token endpoint failed (HTTP {status}).")
    message = "Google refused this channel's service-account credentials"
    if detail:
        message += f" ({sanitize(detail, secrets)})"
    raise UpstreamError(
        message + "; the operator has to fix the channel.", code="upstream_auth_failed"
    )
