"""Console passwords: the rule for a new one and hashing with argon2id (``argon2-cffi``, its
RFC 9106 low-memory profile). Used by the console (``console/accounts.py``, through
``console/passwords.py``), the admin API's console-password call (``api/admin_console.py``)
and the CLI, so that a hash made by any of them verifies in the others.

Hashing costs tens of milliseconds and 64 MiB, so it runs in a thread, at most
``CONCURRENT`` at once per worker (a burst of sign-ins cannot exhaust memory). An unknown
user is checked against a dummy hash, so the answer takes as long as for a known one.
"""

from __future__ import annotations

import asyncio

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

__all__ = [
    "MAX_PASSWORD",
    "MIN_PASSWORD",
    "hash_password",
    "password_problem",
    "verify_password",
]

MIN_PASSWORD = 8
MAX_PASSWORD = 128  # characters; hashing a megabyte of "password" is refused before
CONCURRENT = 2

_hasher = PasswordHasher()
_slots: dict[asyncio.AbstractEventLoop, asyncio.Semaphore] = {}
_dummy: str | None = None


def password_problem(value: str, name: str = "password") -> str | None:
    """What is wrong with ``value`` as a new password (``name`` is the field), or None:
    ``MIN_PASSWORD`` to ``MAX_PASSWORD`` characters, no NUL. Callers raise their own error."""
    if not MIN_PASSWORD <= len(value) <= MAX_PASSWORD:
        return f"`{name}` must be {MIN_PASSWORD} to {MAX_PASSWORD} characters."
    if "\x00" in value:
        return f"`{name}` must not contain NUL characters."
    return None


def _slot() -> asyncio.Semaphore:
    """This event loop's semaphore (a worker has one loop; tests may run several)."""
    loop = asyncio.get_running_loop()
    sem = _slots.get(loop)
    if sem is None:
        for old in [lp for lp in _slots if lp.is_closed()]:
            del _slots[old]
        sem = _slots[loop] = asyncio.Semaphore(CONCURRENT)
    return sem


async def hash_password(password: str) -> str:
    async with _slot():
        return await asyncio.to_thread(_hasher.hash, password)


def _verify(stored: str | None, password: str) -> tuple[bool, bool]:
    global _dummy
    if stored is None:
        if _dummy is None:
            _dummy = _hasher.hash("relaygate-dummy-password")
        stored = _dummy
        known = False
    else:
        known = True
    try:
        _hasher.verify(stored, password)
    except (VerificationError, InvalidHashError):
        return False, False
    return known, known and _hasher.check_needs_rehash(stored)


async def verify_password(stored: str | None, password: str) -> tuple[bool, bool]:
    """(matches, needs a rehash with today's parameters). ``stored`` None: a user without
    a password, checked against a dummy hash (never matches)."""
    async with _slot():
        return await asyncio.to_thread(_verify, stored, password)
