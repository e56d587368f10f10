"""The admin API of the price catalogue (docs/prices.md):

* ``GET /admin/api/prices`` - the effective catalogue (stored rows and the defaults they do
  not replace, each with its ``origin``); ``POST`` - create or replace one model's price;
  ``PUT`` - bulk import ``{"prices": [...], "force": false}``, all rows or none;
* ``GET``/``PATCH``/``DELETE /admin/api/prices/{model}`` - one model (``PATCH`` of a
  default stores the default with the change; ``DELETE`` reverts to the default);
* ``GET``/``POST /admin/api/price-groups``, ``DELETE /admin/api/price-groups/{name}`` -
  group multipliers.

Writes are validated by ``relaygate.services.prices``. The routes are built with the admin
app's helpers (:class:`AdminKit`), so authentication, error bodies and the 405 of other
methods are the admin API's. After a write this worker's price table is reloaded at once;
other workers follow with their configuration refresh (the write bumps the revision).
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from relaygate.api.admin_kit import AdminKit
from relaygate.api.pricing import reload_prices
from relaygate.services.admin import AdminService
from relaygate.services.prices import PriceService
from relaygate.state import AppState

__all__ = ["price_routes"]


def _service(st: AppState) -> PriceService:
    s = st.settings
    return PriceService(st.repo, st.catalog.is_known, currency=s.currency, usd_rate=s.usd_rate)


def price_routes(kit: AdminKit) -> list[Route]:
    respond, body_of = kit.respond, kit.body_of

    def model_of(request: Request) -> str:
        return str(request.path_params["model"])

    async def list_prices(request: Request, _: AdminService, st: AppState) -> Response:
        return respond({"data": await _service(st).list_prices(), "currency": st.settings.currency})

    async def upsert_price(request: Request, _: AdminService, st: AppState) -> Response:
        row = await _service(st).upsert_price(await body_of(request))
        await reload_prices(st)
        return respond({"data": row})

    async def import_prices(request: Request, _: AdminService, st: AppState) -> Response:
        rows = await _service(st).import_prices(await body_of(request))
        await reload_prices(st)
        return respond({"data": rows, "count": len(rows)})

    async def get_price(request: Request, _: AdminService, st: AppState) -> Response:
        return respond({"data": await _service(st).get_price(model_of(request))})

    async def patch_price(request: Request, _: AdminService, st: AppState) -> Response:
        row = await _service(st).patch_price(model_of(request), await body_of(request))
        await reload_prices(st)
        return respond({"data": row})

    async def delete_price(request: Request, _: AdminService, st: AppState) -> Response:
        await _service(st).delete_price(model_of(request))
        await reload_prices(st)
        return respond({})

    async def list_groups(request: Request, _: AdminService, st: AppState) -> Response:
        return respond({"data": await _service(st).list_groups()})

    async def upsert_group(request: Request, _: AdminService, st: AppState) -> Response:
        group = await _service(st).upsert_group(await body_of(request))
        await reload_prices(st)
        return respond({"data": group})

    async def delete_group(request: Request, _: AdminService, st: AppState) -> Response:
        await _service(st).delete_group(str(request.path_params["name"]))
        await reload_prices(st)
        return respond({})

    return [
        kit.resource("/prices", {"GET": list_prices, "POST": upsert_price, "PUT": import_prices}),
        # model names may hold "/" (e.g. "Qwen/Qwen3-8B"): the rest of the path is the name
        kit.resource(
            "/prices/{model:path}",
            {"GET": get_price, "PATCH": patch_price, "DELETE": delete_price},
        ),
        kit.resource("/price-groups", {"GET": list_groups, "POST": upsert_group}),
        kit.resource("/price-groups/{name}", {"DELETE": delete_group}),
    ]
