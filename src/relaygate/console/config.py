"""The console's settings, read from ``RELAYGATE_CONSOLE_*`` (docs/console.md)."""

from __future__ import annotations

import os
from dataclasses import dataclass

__all__ = ["ConsoleSettings"]


def _flag(name: str, default: bool) -> bool:
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    return raw.strip().lower() in ("1", "true", "yes", "on")


def _number(name: str, default: float, minimum: float) -> float:
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ValueError(f"{name} must be a number, not {raw!r}") from None
    if value < minimum:
        raise ValueError(f"{name} must be at least {minimum}, not {raw!r}")
    return value


@dataclass(frozen=True, slots=True)
class ConsoleSettings:
    signup: bool = True  # RELAYGATE_CONSOLE_SIGNUP: anyone may create an account
    secure_cookies: bool = False  # RELAYGATE_CONSOLE_SECURE_COOKIES: Secure even over HTTP
    session_ttl: float = 7 * 86400.0  # a session ends this long after sign-in
    session_idle: float = 86400.0  # ... or after this long without a request
    signin_ip_limit: int = 30  # sign-in attempts per client address per window
    signin_user_limit: int = 5  # failed sign-ins per username per window
    signin_window: float = 900.0  # seconds
    signup_ip_limit: int = 10  # accounts created per client address per hour
    totp_ticket_ttl: float = 300.0  # the password step is valid this long for the code step
    max_keys: int = 100  # keys (not revoked) one user may hold

    @classmethod
    def from_env(cls) -> ConsoleSettings:
        return cls(
            signup=_flag("RELAYGATE_CONSOLE_SIGNUP", True),
            secure_cookies=_flag("RELAYGATE_CONSOLE_SECURE_COOKIES", False),
            session_ttl=_number("RELAYGATE_CONSOLE_SESSION_TTL", 7 * 86400.0, 1),
            session_idle=_number("RELAYGATE_CONSOLE_SESSION_IDLE", 86400.0, 1),
            signin_ip_limit=int(_number("RELAYGATE_CONSOLE_SIGNIN_IP_LIMIT", 30, 1)),
            signin_user_limit=int(_number("RELAYGATE_CONSOLE_SIGNIN_USER_LIMIT", 5, 1)),
            signin_window=_number("RELAYGATE_CONSOLE_SIGNIN_WINDOW", 900.0, 1),
            signup_ip_limit=int(_number("RELAYGATE_CONSOLE_SIGNUP_IP_LIMIT", 10, 1)),
            max_keys=int(_number("RELAYGATE_CONSOLE_MAX_KEYS", 100, 1)),
        )
