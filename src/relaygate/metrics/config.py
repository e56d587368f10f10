"""The operator's metrics settings from the environment (``RELAYGATE_METRICS*``,
docs/metrics.md). A wrong value stops the start with the variable named."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

__all__ = ["MULTIPROC_ENV", "MetricsConfig", "metrics_config"]

#: prometheus_client's multiprocess directory; set by ``relaygate serve --workers N`` (N > 1)
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
_DEFAULT_BACKLOG = 50_000


@dataclass(frozen=True, slots=True)
class MetricsConfig:
    enabled: bool = True  # RELAYGATE_METRICS: observe requests and serve /metrics
    token: str = ""  # RELAYGATE_METRICS_TOKEN: when set, /metrics needs this bearer token
    interval: float = 2.0  # RELAYGATE_METRICS_INTERVAL: how often gauges are sampled
    ready_timeout: float = 1.0  # RELAYGATE_READY_TIMEOUT: each readiness check's bound
    ready_cache: float = 1.0  # RELAYGATE_READY_CACHE: a readiness report is reused this long
    #: RELAYGATE_READY_BACKLOG: request-log rows waiting above which readiness says degraded
    ready_backlog: int = _DEFAULT_BACKLOG


def _float(env: Mapping[str, str], name: str, default: float, low: float, high: float) -> float:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ValueError(f"{name} must be a number of seconds (got {raw!r})") from None
    if not low <= value <= high:
        raise ValueError(f"{name} must be between {low} and {high} (got {raw!r})")
    return value


def metrics_config(env: Mapping[str, str] | None = None) -> MetricsConfig:
    """``RELAYGATE_METRICS*`` and ``RELAYGATE_READY_*`` read and checked."""
    env = os.environ if env is None else env
    flag = env.get("RELAYGATE_METRICS", "1").strip().lower()
    if flag not in ("1", "true", "yes", "on", "0", "false", "no", "off", ""):
        raise ValueError(f"RELAYGATE_METRICS must be 1 or 0 (got {flag!r})")
    token = env.get("RELAYGATE_METRICS_TOKEN", "").strip()
    if any(ord(c) < 33 or ord(c) > 126 for c in token):
        raise ValueError("RELAYGATE_METRICS_TOKEN must be printable ASCII without spaces")
    raw_backlog = env.get("RELAYGATE_READY_BACKLOG", "").strip()
    try:
        backlog = int(raw_backlog) if raw_backlog else _DEFAULT_BACKLOG
    except ValueError:
        raise ValueError(
            f"RELAYGATE_READY_BACKLOG must be a whole number (got {raw_backlog!r})"
        ) from None
    return MetricsConfig(
        enabled=flag not in ("0", "false", "no", "off"),
        token=token,
        interval=_float(env, "RELAYGATE_METRICS_INTERVAL", 2.0, 0.1, 3600.0),
        ready_timeout=_float(env, "RELAYGATE_READY_TIMEOUT", 1.0, 0.05, 30.0),
        ready_cache=_float(env, "RELAYGATE_READY_CACHE", 1.0, 0.0, 60.0),
        ready_backlog=max(1, backlog),
    )
