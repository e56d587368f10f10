"""The admin API's view of routing (docs/routing.md):

* ``GET /admin/api/routing/circuits`` - the circuits this worker tracks: channel, model
  (null: the whole channel), ``state`` (open | half_open | closed), seconds left open,
  failures in a row and the current window's outcomes. With Redis every worker sees the
  circuits any of them opened (within ``RELAYGATE_BREAKER_SYNC``); the counts are this
  worker's.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from relaygate.api.admin_kit import AdminKit
from relaygate.services.admin import AdminService
from relaygate.state import AppState

__all__ = ["routing_routes"]


def routing_routes(kit: AdminKit) -> list[Route]:
    async def circuits(request: Request, svc: AdminService, st: AppState) -> Response:
        return kit.respond({"data": st.breakers.states()})

    return [kit.resource("/routing/circuits", {"GET": circuits})]
