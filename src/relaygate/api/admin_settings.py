"""The admin API of runtime settings (``services/runtime_settings.py``;
docs/configuration.md, "Runtime settings"):

* ``GET /admin/api/settings`` - every field with its current value, the environment's
  default, whether an admin overrode it, when and by whom;
* ``PATCH /admin/api/settings`` - ``{"envelope": false, "usd_rate": "7.1",
  "console_signup": null, ...}``: each named field set (``null``: back to the default).
  The body is checked whole first; the change and the ``config`` revision bump are one
  transaction, so every worker applies it with its next configuration reload.

Built with the admin app's helpers (``api/admin_kit.AdminKit``): authentication, error
bodies, the 405 of other methods and the audit row (field names only) are the admin API's.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from relaygate.api.admin_kit import AdminKit
from relaygate.services.admin import AdminService
from relaygate.services.runtime_settings import check_changes, runtime_for
from relaygate.state import AppState

__all__ = ["settings_routes"]


def settings_routes(kit: AdminKit) -> list[Route]:
    respond, body_of = kit.respond, kit.body_of

    async def show(st: AppState) -> Response:
        runtime = runtime_for(st.settings, st.repo.engine)
        return respond({"data": runtime.view(await runtime.store.all())})

    async def get_settings(request: Request, _: AdminService, st: AppState) -> Response:
        return await show(st)

    async def patch_settings(request: Request, _: AdminService, st: AppState) -> Response:
        body = await body_of(request)
        request.state.audit_fields = tuple(sorted(str(k)[:64] for k in body))
        changes = check_changes(body)
        user = getattr(request.state, "admin_user", None)
        by = str(getattr(user, "username", "") or "")[:64]
        runtime = runtime_for(st.settings, st.repo.engine)
        await runtime.store.change(changes, by)
        await st.catalog.load()  # this worker at once (the listener applies the overrides)
        return await show(st)

    return [kit.resource("/settings", {"GET": get_settings, "PATCH": patch_settings})]
