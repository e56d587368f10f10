"""The admin API's usage reports (docs/usage-reports.md):

* ``GET /admin/api/logs`` - request rows, filtered, newest first, keyset-paged
  (``cursor`` = the previous page's ``next_cursor``);
* ``GET /admin/api/logs.csv`` - the same rows as a streamed CSV export;
* ``GET /admin/api/usage/daily`` - daily sums by model, user or key, for charts.

Parameters are checked by ``relaygate.services.reports`` (a bad one is a 4xx error naming
it). The routes are built with the admin app's own helpers (:class:`AdminKit`), so
authentication, error bodies and the 405 of other methods are the admin API's.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from relaygate.api.admin_kit import AdminKit
from relaygate.services.admin import AdminService
from relaygate.services.reports import admin_daily_usage, admin_logs, admin_logs_csv
from relaygate.state import AppState

__all__ = ["report_routes"]


def report_routes(kit: AdminKit) -> list[Route]:
    async def logs(request: Request, svc: AdminService, st: AppState) -> Response:
        return kit.respond(await admin_logs(st.repo, request.query_params))

    async def logs_csv(request: Request, svc: AdminService, st: AppState) -> Response:
        body = await admin_logs_csv(st.repo, request.query_params)
        return StreamingResponse(
            body,
            media_type="text/csv; charset=utf-8",
            headers={"Content-Disposition": 'attachment; filename="request-logs.csv"'},
        )

    async def daily(request: Request, svc: AdminService, st: AppState) -> Response:
        return kit.respond(await admin_daily_usage(st.repo, request.query_params))

    return [
        kit.resource("/logs", {"GET": logs}),
        kit.resource("/logs.csv", {"GET": logs_csv}),
        kit.resource("/usage/daily", {"GET": daily}),
    ]
