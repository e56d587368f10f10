"""TOTP two-factor codes (RFC 6238 with ``pyotp``: six digits, 30-second steps, one step of
clock drift either way). The step a code belongs to is returned, so the caller can accept
each code once."""

from __future__ import annotations

import hmac
import time
from datetime import UTC, datetime

import pyotp

__all__ = ["ISSUER", "matching_step", "new_secret", "provisioning_uri"]

ISSUER = "relaygate"
DRIFT = 1  # steps accepted either side of now


def new_secret() -> str:
    return pyotp.random_base32()  # 160 bits, base32


def provisioning_uri(secret: str, username: str) -> str:
    return pyotp.TOTP(secret).provisioning_uri(name=username, issuer_name=ISSUER)


def matching_step(secret: str, code: str, at: float | None = None) -> int | None:
    """The time step whose code is ``code`` (within the drift), else None."""
    if len(code) != 6 or not code.isascii() or not code.isdigit():
        return None
    totp = pyotp.TOTP(secret)
    t = time.time() if at is None else at
    now_step = totp.timecode(datetime.fromtimestamp(t, UTC))
    found = None
    for offset in range(-DRIFT, DRIFT + 1):
        step = now_step + offset
        if hmac.compare_digest(totp.generate_otp(step), code):
            found = step  # no early return: the same work whichever step matches
    return found
