"""The admin API of model routes (aliases, fallback chains, per-model hedging and
request-shaping rules; the rules are in ``relaygate.services.routes``):

* ``GET /admin/api/model-routes`` - every route, by name; ``POST`` - create one
  (``{"name", "fallbacks", "hedge_after_ms", "description", "shaping", "force"}``);
* ``GET``/``PATCH``/``DELETE /admin/api/model-routes/{name}`` - one route (a name may hold
  ``/``, e.g. ``Qwen/Qwen3-8B``: the rest of the path is the name).

The routes are built with the admin app's helpers (``api/admin_kit.AdminKit``), so
authentication, error bodies and the 405 of other methods are the admin API's. The admin
app reloads this worker's catalog after every write; other workers follow with their
configuration refresh (the write bumps the revision).
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from relaygate.api.admin_kit import AdminKit
from relaygate.services.admin import AdminService
from relaygate.services.routes import RouteService
from relaygate.state import AppState

__all__ = ["model_route_routes"]


def model_route_routes(kit: AdminKit) -> list[Route]:
    respond, body_of = kit.respond, kit.body_of

    def name_of(request: Request) -> str:
        return str(request.path_params["name"])

    async def list_routes(request: Request, _: AdminService, st: AppState) -> Response:
        routes = await RouteService(st.repo).list_routes()
        return respond({"data": [r.to_public() for r in routes]})

    async def create_route(request: Request, _: AdminService, st: AppState) -> Response:
        route = await RouteService(st.repo).create_route(await body_of(request))
        return respond({"data": route.to_public()}, 201)

    async def get_route(request: Request, _: AdminService, st: AppState) -> Response:
        route = await RouteService(st.repo).get_route(name_of(request))
        return respond({"data": route.to_public()})

    async def patch_route(request: Request, _: AdminService, st: AppState) -> Response:
        route = await RouteService(st.repo).update_route(name_of(request), await body_of(request))
        return respond({"data": route.to_public()})

    async def delete_route(request: Request, _: AdminService, st: AppState) -> Response:
        await RouteService(st.repo).delete_route(name_of(request))
        return respond({})

    return [
        kit.resource("/model-routes", {"GET": list_routes, "POST": create_route}),
        kit.resource(
            "/model-routes/{name:path}",
            {"GET": get_route, "PATCH": patch_route, "DELETE": delete_route},
        ),
    ]
