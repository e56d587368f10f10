"""The console's settings, read from ``RELAYGATE_CONSOLE_*`` (docs/console.md)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

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


def _text(name: str, default: str = "") -> str:
    return os.environ.get(name, "").strip() or default


def _url(name: str, default: str = "", *, https: bool = True) -> str:
    """An https URL (http only on loopback, for emulators, unless ``https`` is False),
    without a trailing slash."""
    raw = _text(name, default).rstrip("/")
    if not raw:
        return ""
    parts = urlsplit(raw)
    local = parts.hostname in ("127.0.0.1", "localhost", "::1") or not https
    if parts.scheme != "https" and not (parts.scheme == "http" and local):
        raise ValueError(f"{name} must be an https:// URL (http:// only on loopback), not {raw!r}")
    if not parts.netloc or parts.query or parts.fragment:
        raise ValueError(f"{name} must be a plain URL (no query or fragment), not {raw!r}")
    return raw


def _pair(first: str, second: str) -> tuple[str, str]:
    a, b = _text(first), _text(second)
    if bool(a) != bool(b):
        raise ValueError(f"set both {first} and {second}, or neither")
    return a, b


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
    # external sign-in (console/oauth.py): a provider is on when its client id is set
    public_url: str = ""  # RELAYGATE_CONSOLE_PUBLIC_URL: the browser's origin (behind a proxy)
    oidc_issuer: str = ""
    oidc_client_id: str = ""
    oidc_client_secret: str = ""
    oidc_name: str = "OpenID Connect"  # shown on the sign-in button
    oidc_scopes: str = "openid profile email"
    github_client_id: str = ""
    github_client_secret: str = ""
    github_url: str = "https://github.com"
    github_api_url: str = "https://api.github.com"
    oauth_ttl: float = 600.0  # seconds a started external sign-in may take

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
            **_external(),
        )


def _external() -> dict[str, Any]:
    """The external sign-in settings, checked (a half-configured provider stops the start)."""
    issuer = _url("RELAYGATE_CONSOLE_OIDC_ISSUER")
    oidc_id, oidc_secret = _pair(
        "RELAYGATE_CONSOLE_OIDC_CLIENT_ID", "RELAYGATE_CONSOLE_OIDC_CLIENT_SECRET"
    )
    if bool(issuer) != bool(oidc_id):
        raise ValueError(
            "set RELAYGATE_CONSOLE_OIDC_ISSUER together with RELAYGATE_CONSOLE_OIDC_CLIENT_ID "
            "and RELAYGATE_CONSOLE_OIDC_CLIENT_SECRET"
        )
    scopes = " ".join(_text("RELAYGATE_CONSOLE_OIDC_SCOPES", "openid profile email").split())
    if issuer and "openid" not in scopes.split():
        raise ValueError(f"RELAYGATE_CONSOLE_OIDC_SCOPES must include openid, not {scopes!r}")
    gh_id, gh_secret = _pair(
        "RELAYGATE_CONSOLE_GITHUB_CLIENT_ID", "RELAYGATE_CONSOLE_GITHUB_CLIENT_SECRET"
    )
    return {
        "public_url": _url("RELAYGATE_CONSOLE_PUBLIC_URL", https=False),
        "oidc_issuer": issuer,
        "oidc_client_id": oidc_id,
        "oidc_client_secret": oidc_secret,
        "oidc_name": _text("RELAYGATE_CONSOLE_OIDC_NAME", "OpenID Connect")[:64],
        "oidc_scopes": scopes,
        "github_client_id": gh_id,
        "github_client_secret": gh_secret,
        "github_url": _url("RELAYGATE_CONSOLE_GITHUB_URL", "https://github.com"),
        "github_api_url": _url("RELAYGATE_CONSOLE_GITHUB_API_URL", "https://api.github.com"),
    }
