"""Gemini emulator: the Vertex AI credentials — the OAuth JWT-bearer grant of
``POST /token`` (the RS256 assertion verified with the public key registered for its
``iss``) and the bearer tokens it issued."""

from __future__ import annotations

import base64
import os
import time
from collections.abc import Mapping
from typing import Any

import orjson
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

__all__ = ["TokenIssuer"]

_GRANT = "urn:ietf:params:oauth:grant-type:jwt-bearer"


def _b64url_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _refuse(desc: str) -> tuple[dict[str, Any], int]:
    return {"error": "invalid_grant", "error_description": desc}, 400


class TokenIssuer:
    """Trusted service-account keys (``client_email`` → public key), the tokens issued and
    how many were (``exchanges``)."""

    def __init__(self) -> None:
        self.trusted: dict[str, rsa.RSAPublicKey] = {}
        self.tokens: set[str] = set()
        self.exchanges = 0

    def trust(self, client_email: str, public_key_pem: bytes) -> None:
        """Accept JWT assertions of ``client_email`` signed by this key."""
        key = serialization.load_pem_public_key(public_key_pem)
        if not isinstance(key, rsa.RSAPublicKey):
            raise ValueError("an RSA public key is needed")
        self.trusted[client_email] = key

    def accepts(self, token: str, api_key: str | None) -> bool:
        """Whether a Vertex bearer token is good: one issued here, the configured key, or
        any token while neither a key nor a service account is configured."""
        return bool(token) and (
            token in self.tokens or (api_key is None and not self.trusted) or token == api_key
        )

    def exchange(self, form: Mapping[str, Any]) -> tuple[dict[str, Any], int]:
        """The answer (payload, status) to a ``/token`` form."""
        if form.get("grant_type") != _GRANT:
            return {"error": "unsupported_grant_type"}, 400
        assertion = form.get("assertion")
        parts = assertion.split(".") if isinstance(assertion, str) else []
        if len(parts) != 3:
            return _refuse("Invalid JWT.")
        try:
            header = orjson.loads(_b64url_decode(parts[0]))
            claims = orjson.loads(_b64url_decode(parts[1]))
            signature = _b64url_decode(parts[2])
        except (ValueError, orjson.JSONDecodeError):
            return _refuse("Invalid JWT.")
        if not isinstance(header, dict) or header.get("alg") != "RS256":
            return _refuse("Invalid JWT: the algorithm must be RS256.")
        iss = claims.get("iss") if isinstance(claims, dict) else None
        key = self.trusted.get(iss) if isinstance(iss, str) else None
        if key is None:
            return _refuse("Invalid JWT Signature.")
        try:
            key.verify(
                signature,
                (parts[0] + "." + parts[1]).encode(),
                padding.PKCS1v15(),
                hashes.SHA256(),
            )
        except InvalidSignature:
            return _refuse("Invalid JWT Signature.")
        now = time.time()
        exp, iat = claims.get("exp"), claims.get("iat")
        if not isinstance(exp, int) or not isinstance(iat, int) or exp < now or iat > now + 300:
            return _refuse(
                "Invalid JWT: Token must be a short-lived token and in a reasonable timeframe."
            )
        if not str(claims.get("aud", "")).endswith("/token"):
            return _refuse("Invalid JWT: the audience must be the token URI.")
        if "cloud-platform" not in str(claims.get("scope", "")):
            return {"error": "invalid_scope"}, 400
        token = "ya29.emu-" + os.urandom(12).hex()
        self.tokens.add(token)
        self.exchanges += 1
        return {"access_token": token, "expires_in": 3599, "token_type": "Bearer"}, 200
