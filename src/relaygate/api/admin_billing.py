"""Admin API routes of billing administration: redemption codes, balance adjustments and
the ledger, plans and user packages (``/admin/api/…``).

``api/admin_routes.py`` mounts them with :func:`billing_routes`, passing a kit of its
helpers (authentication, the envelope and error handling stay there). Every handler
calls :class:`~relaygate.services.billing_admin.BillingAdmin`, which validates input
completely before it writes anything::

    POST   /codes                      generate a batch {count, amount | plan_id, batch?, expires_at?, prefix?}
    GET    /codes                      list: ?batch= &status=unused|used|disabled|expired &used_by= &limit= &before_id=
    GET    /codes.csv?batch=           a batch as CSV
    PATCH  /codes/{id}                 {"status": "disabled"} (unused codes only)
    GET    /users/{id}/balance         balance, leased, free
    POST   /users/{id}/balance         adjust {amount (signed), reason, kind?: adjust|topup, ref?}
    GET    /users/{id}/ledger          ?limit= &before_id= &kind=
    GET    /plans, POST /plans         list (?include_retired=1), create
    GET|PATCH|DELETE /plans/{id}       one plan; DELETE retires a plan in use
    GET    /users/{id}/packages        ?active=1: usable now, in order of use
    POST   /users/{id}/packages        grant {plan_id, expires_at? (credit)}
    DELETE /users/{id}/packages/{pid}  cancel
"""  # noqa: E501

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from relaygate.api.admin_kit import AdminKit
from relaygate.services.admin import AdminService
from relaygate.services.billing_admin import BillingAdmin
from relaygate.state import AppState

__all__ = ["actor_of", "billing_routes"]


def actor_of(request: Request) -> str:
    """The admin making the request (``run`` in ``admin_routes`` records it), for the
    ledger's ``actor`` and a code batch's ``created_by``."""
    user = getattr(request.state, "admin_user", None)
    return str(getattr(user, "username", "admin-api"))


def path_id(request: Request, name: str = "id") -> str:
    return str(request.path_params[name])


def billing_routes(kit: AdminKit) -> list[Route]:
    respond, body_of = kit.respond, kit.body_of

    def svc_of(st: AppState) -> BillingAdmin:
        return BillingAdmin(st.repo)

    def forget(st: AppState, user_id: Any = None) -> None:
        """Drop this worker's cached packages (others follow their cache's expiry)."""
        billing = getattr(st, "billing", None)
        drop = getattr(billing, "forget_packages", None)
        if callable(drop):
            drop(int(user_id) if isinstance(user_id, str) and user_id.isdigit() else None)

    # ---- redemption codes ----------------------------------------------------------------
    async def generate_codes(request: Request, _: AdminService, st: AppState) -> Response:
        batch = await svc_of(st).generate_codes(await body_of(request), actor_of(request))
        return respond({"data": batch}, 201)

    async def list_codes(request: Request, _: AdminService, st: AppState) -> Response:
        return respond({"data": await svc_of(st).list_codes(request.query_params)}, 200)

    async def export_codes(request: Request, _: AdminService, st: AppState) -> Response:
        name, text = await svc_of(st).export_codes_csv(request.query_params)
        return Response(
            text.encode(),
            200,
            headers={"Content-Disposition": f'attachment; filename="{name}"'},
            media_type="text/csv; charset=utf-8",
        )

    async def disable_code(request: Request, _: AdminService, st: AppState) -> Response:
        code = await svc_of(st).disable_code(path_id(request), await body_of(request))
        return respond({"data": code}, 200)

    # ---- balances ------------------------------------------------------------------------
    async def get_balance(request: Request, _: AdminService, st: AppState) -> Response:
        return respond({"data": await svc_of(st).balance(path_id(request))}, 200)

    async def adjust(request: Request, _: AdminService, st: AppState) -> Response:
        body = await body_of(request)
        done = await svc_of(st).adjust(path_id(request), body, actor_of(request))
        return respond({"data": done}, 200)

    async def ledger(request: Request, _: AdminService, st: AppState) -> Response:
        return respond(await svc_of(st).ledger(path_id(request), request.query_params), 200)

    # ---- plans ---------------------------------------------------------------------------
    async def list_plans(request: Request, _: AdminService, st: AppState) -> Response:
        return respond({"data": await svc_of(st).list_plans(request.query_params)}, 200)

    async def create_plan(request: Request, _: AdminService, st: AppState) -> Response:
        return respond({"data": await svc_of(st).create_plan(await body_of(request))}, 201)

    async def get_plan(request: Request, _: AdminService, st: AppState) -> Response:
        return respond({"data": await svc_of(st).get_plan(path_id(request))}, 200)

    async def update_plan(request: Request, _: AdminService, st: AppState) -> Response:
        plan = await svc_of(st).update_plan(path_id(request), await body_of(request))
        forget(st)
        return respond({"data": plan}, 200)

    async def delete_plan(request: Request, _: AdminService, st: AppState) -> Response:
        done = await svc_of(st).delete_plan(path_id(request))
        forget(st)
        return respond({"data": done}, 200)

    # ---- packages ------------------------------------------------------------------------
    async def list_packages(request: Request, _: AdminService, st: AppState) -> Response:
        found = await svc_of(st).list_packages(path_id(request), request.query_params)
        return respond({"data": found}, 200)

    async def grant(request: Request, _: AdminService, st: AppState) -> Response:
        uid = path_id(request)
        pkg = await svc_of(st).grant(uid, await body_of(request))
        forget(st, uid)
        return respond({"data": pkg}, 201)

    async def cancel(request: Request, _: AdminService, st: AppState) -> Response:
        uid = path_id(request)
        pkg = await svc_of(st).cancel_package(uid, path_id(request, "pid"))
        forget(st, uid)
        return respond({"data": pkg}, 200)

    r = kit.resource
    return [
        r("/codes", {"GET": list_codes, "POST": generate_codes}),
        r("/codes.csv", {"GET": export_codes}),
        r("/codes/{id}", {"PATCH": disable_code}),
        r("/users/{id}/balance", {"GET": get_balance, "POST": adjust}),
        r("/users/{id}/ledger", {"GET": ledger}),
        r("/plans", {"GET": list_plans, "POST": create_plan}),
        r("/plans/{id}", {"GET": get_plan, "PATCH": update_plan, "DELETE": delete_plan}),
        r("/users/{id}/packages", {"GET": list_packages, "POST": grant}),
        r("/users/{id}/packages/{pid}", {"DELETE": cancel}),
    ]
