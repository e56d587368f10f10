"""Secrets at rest: API-key hashing and upstream-credential encryption.

* Client keys are random 48-character tokens; we store ``HMAC-SHA256(secret, key)``
  so a stolen database cannot be used to authenticate, and show the key once.
* Upstream keys are encrypted with Fernet (AES-128-CBC + HMAC) under a key
  derived from the same secret.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import secrets
from pathlib import Path

import orjson
from cryptography.fernet import Fernet, InvalidToken

__all__ = ["Secrets", "load_or_create_secret"]


def load_or_create_secret(configured: str, data_dir: Path) -> str:
    """Return the configured secret or the one in ``data_dir/secret.key`` (created 0600)."""
    if configured:
        return configured
    path = data_dir / "secret.key"
    if path.exists():
        return path.read_text().strip()
    data_dir.mkdir(parents=True, exist_ok=True)
    value = secrets.token_urlsafe(48)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.write(fd, value.encode())
    finally:
        os.close(fd)
    return value


class Secrets:
    def __init__(self, secret: str) -> None:
        raw = secret.encode()
        self._hmac_key = hashlib.sha256(b"relaygate-key-hash:" + raw).digest()
        fernet_key = base64.urlsafe_b64encode(hashlib.sha256(b"relaygate-fernet:" + raw).digest())
        self._fernet = Fernet(fernet_key)

    def fingerprint(self) -> str:
        """16 hex digits naming this secret (storage/fingerprint.py); reveals nothing of it."""
        return hmac.new(self._hmac_key, b"relaygate-fingerprint", hashlib.sha256).hexdigest()[:16]

    def hash_key(self, key: str) -> str:
        return hmac.new(self._hmac_key, key.encode(), hashlib.sha256).hexdigest()

    @staticmethod
    def new_key(prefix: str) -> str:
        return prefix + secrets.token_urlsafe(36)

    @staticmethod
    def hint(key: str) -> str:
        return f"{key[:6]}…{key[-4:]}"

    def encrypt_keys(self, keys: list[str]) -> str:
        return self._fernet.encrypt(orjson.dumps(keys)).decode()

    def decrypt_keys(self, token: str) -> list[str]:
        try:
            value = orjson.loads(self._fernet.decrypt(token.encode()))
        except InvalidToken as exc:
            raise ValueError(
                "cannot decrypt channel keys: RELAYGATE_SECRET_KEY differs from the one "
                "they were stored with"
            ) from exc
        return [str(v) for v in value]
