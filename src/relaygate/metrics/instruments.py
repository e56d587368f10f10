"""Every Prometheus metric relaygate exports (``relaygate_*``, docs/metrics.md), created
once per worker on its own registry (one worker) or unregistered (several workers: each
value lives in prometheus_client's multiprocess files and a scrape reads them all)."""

from __future__ import annotations

import platform
from importlib.metadata import PackageNotFoundError, version

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

__all__ = ["DURATION_BUCKETS", "TTFT_BUCKETS", "Instruments"]

#: whole requests: a cached answer in milliseconds up to a long generation in minutes
DURATION_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)
#: the first streamed bytes: milliseconds (a fast upstream) to tens of seconds (reasoning)
TTFT_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60)


class Instruments:
    """The metric objects. ``registry`` None: multiprocess mode (nothing registered here;
    :mod:`relaygate.metrics.exposition` collects the files)."""

    def __init__(self, registry: CollectorRegistry | None) -> None:
        r = registry
        # ---- per finished request (metrics/observe.py) ----------------------------------
        self.requests = Counter(
            "relaygate_requests",
            "Finished requests by endpoint, public model, serving channel, HTTP status and "
            "error code ('' when none).",
            ("endpoint", "model", "channel", "status", "code"),
            registry=r,
        )
        self.duration = Histogram(
            "relaygate_request_duration_seconds",
            "Time from the request's arrival until its answer was complete.",
            ("endpoint", "model", "stream"),
            buckets=DURATION_BUCKETS,
            registry=r,
        )
        self.ttft = Histogram(
            "relaygate_time_to_first_token_seconds",
            "Streamed requests: time from arrival until the client got the first bytes.",
            ("model",),
            buckets=TTFT_BUCKETS,
            registry=r,
        )
        self.tokens = Counter(
            "relaygate_tokens",
            "Tokens of finished requests by model and kind (prompt, completion).",
            ("model", "kind"),
            registry=r,
        )
        self.cost = Counter(
            "relaygate_cost_units",
            "Money charged, in units (one millionth of the currency), as the request log "
            "records it.",
            ("model", "currency"),
            registry=r,
        )
        self.failed_attempts = Counter(
            "relaygate_upstream_failed_attempts",
            "Upstream attempts that failed (the request may still have been served by "
            "another attempt), by channel and error code.",
            ("channel", "code"),
            registry=r,
        )
        self.failovers = Counter(
            "relaygate_failovers",
            "Requests that took more than one upstream attempt (failover or hedging).",
            ("model",),
            registry=r,
        )
        # ---- sampled from the worker (metrics/sampler.py) -------------------------------
        self.inflight = Gauge(
            "relaygate_inflight_requests",
            "Requests being served now (summed over the node's live workers).",
            registry=r,
            multiprocess_mode="livesum",
        )
        self.log_backlog = Gauge(
            "relaygate_request_log_backlog_rows",
            "Request-log rows recorded but not yet written to the database.",
            registry=r,
            multiprocess_mode="livesum",
        )
        self.log_dropped = Counter(
            "relaygate_request_log_dropped_rows",
            "Request-log rows lost (see docs/durability.md).",
            registry=r,
        )
        self.audit_backlog = Gauge(
            "relaygate_safety_audit_backlog_rows",
            "Content-safety audit rows waiting to be written.",
            registry=r,
            multiprocess_mode="livesum",
        )
        self.shed = Counter(
            "relaygate_shed_requests",
            "Requests refused with 503 because the worker was at RELAYGATE_MAX_INFLIGHT.",
            registry=r,
        )
        self.channel_healthy = Gauge(
            "relaygate_channel_healthy",
            "1 when the channel is enabled, has an upstream key in rotation and its circuit "
            "is not open; 0 otherwise (the lowest of the node's live workers).",
            ("channel",),
            registry=r,
            multiprocess_mode="livemin",
        )
        self.circuit = Gauge(
            "relaygate_channel_circuit_state",
            "The channel's worst circuit (channel-wide or one of its models): 0 closed, "
            "1 half-open, 2 open (the highest of the node's live workers).",
            ("channel",),
            registry=r,
            multiprocess_mode="livemax",
        )
        self.workers = Gauge(
            "relaygate_workers",
            "Live worker processes serving this node's /metrics.",
            registry=r,
            multiprocess_mode="livesum",
        )
        self.info = Gauge(
            "relaygate_build_info",
            "Always 1; the labels say which relaygate and Python run.",
            ("version", "python"),
            registry=r,
            multiprocess_mode="max",
        )
        self.info.labels(_version(), platform.python_version()).set(1)


def _version() -> str:
    try:
        return version("relaygate")
    except PackageNotFoundError:  # pragma: no cover - run from a source tree, not installed
        return "unknown"
