"""Zhipu (BigModel / Z.ai) JWT: the optional signed credential (pure, no I/O).

An API key ``"{id}.{secret}"`` is turned into an HS256 JWT with header
``{"alg": "HS256", "sign_type": "SIGN"}`` and payload
``{"api_key": id, "exp": <ms>, "timestamp": <ms>}`` (milliseconds, not the
standard seconds), signed with ``secret`` (``docs/providers.md``, "Zhipu GLM").
"""

from __future__ import annotations

import base64
import hashlib
import hmac

import orjson

from relaygate.errors import UpstreamError

__all__ = ["zhipu_jwt"]


def _b64url(raw: bytes) -> bytes:
    return base64.urlsafe_b64encode(raw).rstrip(b"=")


def zhipu_jwt(api_key: str, now: float, ttl_seconds: float) -> str:
    """The signed token for ``api_key`` valid from ``now`` for ``ttl_seconds``."""
    key_id, sep, secret = api_key.partition(".")
    if not sep or not key_id or not secret:
        raise UpstreamError(
            "This channel's Zhipu key is not of the form id.secret; the operator has to fix it.",
            code="upstream_auth_failed",
        )
    now_ms = int(now * 1000)
    header = orjson.dumps({"alg": "HS256", "sign_type": "SIGN"})
    payload = orjson.dumps(
        {"api_key": key_id, "exp": now_ms + int(ttl_seconds * 1000), "timestamp": now_ms}
    )
    signing_input = _b64url(header) + b"." + _b64url(payload)
    signature = hmac.new(secret.encode(), signing_input, hashlib.sha256).digest()
    return (signing_input + b"." + _b64url(signature)).decode("ascii")
