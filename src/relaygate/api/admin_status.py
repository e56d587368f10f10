"""The admin API's system status over time (the console's 系统状态 page, docs/console.md):

* ``GET /admin/api/status/series?window=1h|24h`` - requests, errors and latency of the
  request log per minute over the last hour (``1h``, the default) or per hour over the
  last day (``24h``), the same per channel for the busiest channels of the window
  (``storage/status_series.py``), and what this worker sees now: requests in flight, the
  channels with their status, the circuits.

Every list under ``series`` has one value per entry of ``times`` (the buckets' starts,
UTC, oldest first; the last bucket is the current one, still filling). Latencies are
``null`` for a bucket without requests. Rows reach the log within a second or so of the
request (the log writer's batching).
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from relaygate.api.admin_kit import AdminKit
from relaygate.services.admin import AdminService
from relaygate.services.fields import ValidationError
from relaygate.state import AppState
from relaygate.storage.status_series import series

__all__ = ["WINDOWS", "status_routes"]

#: window -> (bucket seconds, buckets)
WINDOWS = {"1h": (60, 60), "24h": (3600, 24)}


def status_routes(kit: AdminKit) -> list[Route]:
    async def status_series(request: Request, svc: AdminService, st: AppState) -> Response:
        q = request.query_params
        unknown = sorted(set(q) - {"window"})
        if unknown:
            name = unknown[0][:64]
            raise ValidationError(name, f"Unknown parameter `{name}`; only `window` is read.")
        window = q.get("window") or "1h"
        if window not in WINDOWS:
            raise ValidationError("window", "`window` must be '1h' or '24h'.")
        size, count = WINDOWS[window]
        s = await series(st.repo.log_engine, bucket_seconds=size, buckets=count)
        channels = {c.id: c for c in await st.repo.channels.list()}
        data: dict[str, Any] = {
            "window": window,
            "bucket_seconds": s.bucket_seconds,
            "start": s.start.isoformat(),
            "end": s.end.isoformat(),
            "times": [t.isoformat() for t in s.times],
            "series": {
                "requests": s.requests,
                "errors": s.errors,
                "latency_avg_ms": s.latency_avg_ms,
                "latency_max_ms": s.latency_max_ms,
            },
            "channels": [
                {
                    "channel_id": c.channel_id,
                    "name": channels[c.channel_id].name if c.channel_id in channels else None,
                    "requests": c.requests,
                    "errors": c.errors,
                }
                for c in s.channels
            ],
            "now": {
                "inflight": st.inflight,
                "max_inflight": st.settings.max_inflight,
                "channels": [
                    {"id": c.id, "name": c.name, "status": c.status}
                    for c in sorted(channels.values(), key=lambda c: c.id)
                ],
                "circuits": st.breakers.states(),
            },
        }
        return kit.respond({"data": data})

    return [kit.resource("/status/series", {"GET": status_series})]
