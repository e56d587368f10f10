"""Two-factor recovery codes: how they are made and the form they are stored in
(``storage/console_recovery.py`` keeps the hashes; ``console/accounts.py`` uses them at the
TOTP step, when two-factor is turned off, and when new codes are asked for)."""

from __future__ import annotations

from relaygate.console import totp
from relaygate.storage.crypto import Secrets

__all__ = ["COUNT", "code_hash", "new_codes"]

COUNT = 10  # made at once; each works once


def code_hash(secrets: Secrets, user_id: int, plain: str) -> str:
    """The stored form of a recovery code: HMAC-SHA256 under the gateway's secret
    (``Secrets.hash_key``) of the user id and the code.

    A keyed fast hash, not argon2: a code is ~49.5 random bits, so without the secret a
    stolen table cannot be searched at all, and whoever holds the secret can already
    decrypt the TOTP secret stored beside the codes (Fernet, same secret): a slow hash
    would protect nothing more, and would cost argon2's memory on every attempt of the
    sign-in step. The user id in the input ties a code to its user."""
    return secrets.hash_key(f"console-recovery:{user_id}:{plain}")


def new_codes(secrets: Secrets, user_id: int) -> tuple[list[str], list[str]]:
    """:data:`COUNT` distinct new codes (shown as ``xxxxx-xxxxx``) and their hashes."""
    plain: set[str] = set()
    while len(plain) < COUNT:
        plain.add(totp.new_recovery_code())
    ordered = sorted(plain)
    shown = [totp.format_recovery_code(p) for p in ordered]
    return shown, [code_hash(secrets, user_id, p) for p in ordered]
