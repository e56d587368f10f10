"""The operator's search settings from the environment (``RELAYGATE_SEARCH_*``,
docs/online.md). A wrong value stops the start with the variable named."""

from __future__ import annotations

import os
from collections.abc import Mapping

from relaygate.online.base import OnlineSettings

__all__ = ["BACKEND_NAMES", "online_settings"]

BACKEND_NAMES = ("off", "local", "searxng", "tavily", "bocha", "google", "ddgs")

_FLAG_TRUE = ("1", "true", "yes", "on")
_FLAG_FALSE = ("0", "false", "no", "off", "")


def _flag(env: Mapping[str, str], name: str, default: bool) -> bool:
    raw = env.get(name)
    if raw is None:
        return default
    value = raw.strip().lower()
    if value in _FLAG_TRUE:
        return True
    if value in _FLAG_FALSE:
        return False
    raise ValueError(f"{name} must be 1 or 0 (got {raw!r})")


def _number(env: Mapping[str, str], name: str, default: float, lo: float, hi: float) -> float:
    raw = env.get(name)
    if raw is None or not raw.strip():
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ValueError(f"{name} must be a number (got {raw!r})") from None
    if not lo <= value <= hi:
        raise ValueError(f"{name} must be between {lo:g} and {hi:g} (got {raw!r})")
    return value


#: backend-specific settings (online/backends.py reads them from ``OnlineSettings.extra``)
_EXTRA = {
    "ddgs_proxy": "RELAYGATE_SEARCH_DDGS_PROXY",  # the proxy ddgs reaches DuckDuckGo through
    "ddgs_backend": "RELAYGATE_SEARCH_DDGS_BACKEND",  # ddgs engines ("auto", "duckduckgo", …)
    "tavily_depth": "RELAYGATE_SEARCH_TAVILY_DEPTH",  # basic | advanced
}


def online_settings(env: Mapping[str, str] | None = None) -> OnlineSettings:
    """``RELAYGATE_SEARCH_*`` read and checked."""
    env = os.environ if env is None else env
    backend = env.get("RELAYGATE_SEARCH_BACKEND", "off").strip().lower() or "off"
    if backend not in BACKEND_NAMES:
        raise ValueError(
            f"RELAYGATE_SEARCH_BACKEND must be one of {', '.join(BACKEND_NAMES)} (got {backend!r})"
        )
    always = tuple(
        m.strip() for m in env.get("RELAYGATE_SEARCH_ALWAYS", "").split(",") if m.strip()
    )
    return OnlineSettings(
        backend=backend,
        url=env.get("RELAYGATE_SEARCH_URL", "").strip(),
        key=env.get("RELAYGATE_SEARCH_KEY", "").strip(),
        cx=env.get("RELAYGATE_SEARCH_CX", "").strip(),
        results=int(_number(env, "RELAYGATE_SEARCH_RESULTS", 5, 1, 20)),
        timeout=_number(env, "RELAYGATE_SEARCH_TIMEOUT", 5.0, 0.1, 60),
        fetch=_flag(env, "RELAYGATE_SEARCH_FETCH", False),
        fetch_timeout=_number(env, "RELAYGATE_SEARCH_FETCH_TIMEOUT", 3.0, 0.1, 60),
        fetch_max_bytes=int(
            _number(env, "RELAYGATE_SEARCH_FETCH_MAX_BYTES", 2 * 1024 * 1024, 1024, 64 * 1024**2)
        ),
        allow_private=_flag(env, "RELAYGATE_SEARCH_ALLOW_PRIVATE", False),
        budget_tokens=int(_number(env, "RELAYGATE_SEARCH_BUDGET_TOKENS", 3000, 100, 100_000)),
        notice=_flag(env, "RELAYGATE_SEARCH_NOTICE", True),
        always=always,
        rewrite_model=env.get("RELAYGATE_SEARCH_REWRITE_MODEL", "").strip(),
        local_db=env.get("RELAYGATE_SEARCH_LOCAL_DB", "").strip(),
        extra={name: value for name, var in _EXTRA.items() if (value := env.get(var, "").strip())},
    )
