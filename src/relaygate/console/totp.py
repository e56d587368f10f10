"""TOTP two-factor codes (RFC 6238 with ``pyotp``: six digits, 30-second steps, one step of
clock drift either way). The step a code belongs to is returned, so the caller can accept
each code once.

Also the set-up's QR code (``segno`` draws the ``otpauth://`` URI as an SVG, given to the
page as a ``data:`` URI; nothing of it is logged or stored) and the recovery codes' form:
10 characters from an alphabet without look-alikes (no ``0 1 i l o``), shown as
``xxxxx-xxxxx`` and read back whatever the case, spaces or dashes.
"""

from __future__ import annotations

import base64
import hmac
import io
import secrets
import time
from datetime import UTC, datetime

import pyotp
import segno

__all__ = [
    "ISSUER",
    "RECOVERY_ALPHABET",
    "RECOVERY_LENGTH",
    "format_recovery_code",
    "matching_step",
    "new_recovery_code",
    "new_secret",
    "provisioning_uri",
    "qr_svg_uri",
    "read_code",
    "read_recovery_code",
]

ISSUER = "relaygate"
DRIFT = 1  # steps accepted either side of now
RECOVERY_ALPHABET = "23456789abcdefghjkmnpqrstuvwxyz"  # 31 symbols: 10 of them ~ 49.5 bits
RECOVERY_LENGTH = 10


def new_secret() -> str:
    return pyotp.random_base32()  # 160 bits, base32


def provisioning_uri(secret: str, username: str) -> str:
    return pyotp.TOTP(secret).provisioning_uri(name=username, issuer_name=ISSUER)


def qr_svg_uri(uri: str) -> str:
    """The QR code of ``uri`` (error correction M, a 4-module quiet zone, black on white
    whatever the page's colours) as a ``data:image/svg+xml;base64,…`` URI for an ``<img>``
    (the console's policy allows ``img-src data:``; no script can run from an image)."""
    qr = segno.make(uri, error="m", micro=False)
    out = io.BytesIO()
    qr.save(out, kind="svg", scale=4, border=4, xmldecl=False, dark="#000", light="#fff")
    return "data:image/svg+xml;base64," + base64.b64encode(out.getvalue()).decode("ascii")


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


def new_recovery_code() -> str:
    """A new recovery code in its plain form (10 symbols, no dash)."""
    return "".join(secrets.choice(RECOVERY_ALPHABET) for _ in range(RECOVERY_LENGTH))


def format_recovery_code(code: str) -> str:
    """``abcde-fghjk``: how a code is shown."""
    half = RECOVERY_LENGTH // 2
    return f"{code[:half]}-{code[half:]}"


def read_recovery_code(value: str) -> str | None:
    """The plain form of what a user typed (case, spaces and dashes ignored), or None when
    it cannot be a recovery code."""
    plain = "".join(value.split()).replace("-", "").lower()
    if len(plain) != RECOVERY_LENGTH or any(ch not in RECOVERY_ALPHABET for ch in plain):
        return None
    return plain


def read_code(value: str) -> tuple[str, str] | None:
    """``("totp", six digits)`` or ``("recovery", the plain code)``, from what a user typed
    where either is accepted; None when it is neither."""
    if len(value) > 64:
        return None
    squeezed = "".join(value.split())
    if len(squeezed) == 6 and squeezed.isascii() and squeezed.isdigit():
        return "totp", squeezed
    plain = read_recovery_code(value)
    return None if plain is None else ("recovery", plain)
