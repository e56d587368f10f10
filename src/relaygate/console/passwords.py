"""The console's passwords: the rule and argon2id hashing live in ``services/passwords.py``
(shared with the admin API, which must not import the console); re-exported here for the
console's modules."""

from __future__ import annotations

from relaygate.services.passwords import (
    MAX_PASSWORD,
    MIN_PASSWORD,
    hash_password,
    password_problem,
    verify_password,
)

__all__ = ["MAX_PASSWORD", "MIN_PASSWORD", "hash_password", "password_problem", "verify_password"]
