"""``GET /healthz``, ``/livez`` (the process answers), ``/readyz`` (this worker can serve:
each dependency checked, see ``metrics/readiness.py``) and ``/metrics`` (Prometheus text
format; every worker of the node with ``serve --workers N``). docs/metrics.md."""

from __future__ import annotations

import hmac
import os
from typing import Any

from relaygate.asgi import Request, ok_body, send_json
from relaygate.errors import AuthError, NotFound, send_error
from relaygate.metrics import CONTENT_TYPE
from relaygate.state import AppState

__all__ = ["handle_live", "handle_metrics", "handle_ready"]


async def handle_live(state: AppState, req: Request) -> None:
    await send_json(
        req.send, 200, ok_body({"status": "alive"}, state.settings.envelope), req.request_id
    )


async def handle_ready(state: AppState, req: Request) -> None:
    """200 ``ready`` or ``degraded`` (serving, something to look at), 503 ``not_ready`` or
    ``draining``; ``checks`` says why, dependency by dependency."""
    usage_log = state.usage_log
    body: dict[str, Any] = {
        "revision": state.catalog.revision,
        "worker_pid": os.getpid(),
        "inflight": state.inflight,
        "shed_total": state.shed,
        "usage_rows_dropped": usage_log.dropped if usage_log else 0,
        "usage_rows_backlog": usage_log.backlog if usage_log else 0,
        "usage_log": usage_log.health() if usage_log else None,
    }
    metrics = state.metrics
    if metrics is None:  # a state built without metrics (tests): the flags alone
        ready = state.ready and not state.draining
        status = 200 if ready else 503
        verdict = "ready" if ready else ("draining" if state.draining else "not_ready")
    else:
        status, verdict, checks = await metrics.readiness.report()
        body["checks"] = checks
    body = {"status": verdict, **body}
    await send_json(req.send, status, ok_body(body, state.settings.envelope), req.request_id)


async def handle_metrics(state: AppState, req: Request) -> None:
    s = state.settings
    metrics = state.metrics
    if metrics is None or not metrics.enabled:
        err = NotFound("Metrics are off on this gateway (RELAYGATE_METRICS=0).", code="unknown_url")
        await send_error(req.send, err, req.request_id, envelope=s.envelope, openai_statuses=True)
        return
    token = metrics.config.token
    if token and not _bearer_matches(req, token):
        err2 = AuthError(
            "GET /metrics needs `Authorization: Bearer <RELAYGATE_METRICS_TOKEN>`.",
            code="invalid_metrics_token",
        )
        await send_error(req.send, err2, req.request_id, envelope=s.envelope, openai_statuses=True)
        return
    body = await metrics.render()
    headers = [
        (b"content-type", CONTENT_TYPE.encode()),
        (b"content-length", str(len(body)).encode()),
        (b"cache-control", b"no-store"),
        (b"x-request-id", req.request_id.encode()),
    ]
    await req.send({"type": "http.response.start", "status": 200, "headers": headers})
    await req.send({"type": "http.response.body", "body": body})


def _bearer_matches(req: Request, token: str) -> bool:
    auth = req.headers.get(b"authorization", b"")
    scheme, _, given = auth.strip().partition(b" ")
    if scheme.lower() != b"bearer":
        return False
    return hmac.compare_digest(given.strip(), token.encode())
