"""``GET /healthz``, ``/livez`` (the process answers) and ``/readyz`` (this worker
can serve: configuration loaded, dependencies reachable, request log keeping up)."""

from __future__ import annotations

import os
from typing import Any

from relaygate.asgi import Request, ok_body, send_json
from relaygate.state import AppState

__all__ = ["handle_live", "handle_ready"]


async def handle_live(state: AppState, req: Request) -> None:
    await send_json(
        req.send, 200, ok_body({"status": "alive"}, state.settings.envelope), req.request_id
    )


async def handle_ready(state: AppState, req: Request) -> None:
    ready = state.ready and not state.draining
    body: dict[str, Any] = {
        "status": "ready" if ready else ("draining" if state.draining else "not_ready"),
        "revision": state.catalog.revision,
        "worker_pid": os.getpid(),
        "inflight": state.inflight,
        "shed_total": state.shed,
        "usage_rows_dropped": state.usage_log.dropped if state.usage_log else 0,
        "usage_rows_backlog": state.usage_log.backlog if state.usage_log else 0,
        "usage_log": state.usage_log.health() if state.usage_log else None,
    }
    status = 200 if ready else 503
    await send_json(req.send, status, ok_body(body, state.settings.envelope), req.request_id)
