"""Admin API calls about a user's console account (docs/console.md, "Admin pages: accounts"):

* ``POST /admin/api/users/{id}/console-password`` ``{"password"}`` - set (or replace) the
  user's console password. A user created by the admin API or the CLI has none, so cannot
  sign in to the console until an admin sets one. Every console session of that user ends
  (and any half-done two-factor sign-in). The answer never carries the password; the audit
  row names the field, never its value.

Setting one's own password here through the console is refused
(``use_account_settings``): the account settings page asks for the current password first,
so a left-open session cannot be used to take the account over. With an admin token (a
bootstrap admin without a console password) it is allowed.

The password rule and the argon2id hash are the console's own (``services/passwords.py``,
shared because the handler layer must not import the console package above it); a sign-in
verifies the hash like any other.
"""

from __future__ import annotations

import logging
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from relaygate.api.admin_kit import AdminKit
from relaygate.errors import InvalidRequest, NotFound
from relaygate.services.admin import AdminService
from relaygate.services.fields import ValidationError
from relaygate.services.passwords import (
    MAX_PASSWORD,
    MIN_PASSWORD,
    hash_password,
    password_problem,
)
from relaygate.state import AppState
from relaygate.storage.base import Conflict
from relaygate.storage.console import ConsoleStore

__all__ = ["MAX_PASSWORD", "MIN_PASSWORD", "console_routes"]

CONSOLE_ADMIN = "relaygate.console_admin"  # api/admin_routes.py (imports this module)

log = logging.getLogger("relaygate.admin")


def check_new_password(body: dict[str, Any]) -> str:
    unknown = sorted(set(body) - {"password"})
    if unknown:
        raise ValidationError(unknown[0], f"Unknown field `{unknown[0]}`; known: password.")
    value = body.get("password")
    if not isinstance(value, str):
        raise ValidationError("password", "`password` is required (a string).")
    problem = password_problem(value)
    if problem is not None:
        raise ValidationError("password", problem)
    return value


def console_routes(kit: AdminKit) -> list[Route]:
    async def set_password(request: Request, svc: AdminService, st: AppState) -> Response:
        user = await svc.get_user(str(request.path_params["id"]))
        password = check_new_password(await kit.body_of(request))
        actor = request.scope.get(CONSOLE_ADMIN)
        if actor is not None and getattr(actor, "id", None) == user.id:
            raise InvalidRequest(
                "Change your own password on the account settings page (it asks for the "
                "current one).",
                code="use_account_settings",
                param="id",
            )
        store = ConsoleStore(st.repo.engine)
        try:
            await store.set_password(user.id, await hash_password(password))
        except Conflict:  # the user was deleted meanwhile
            raise NotFound(f"No user with id {user.id}.", param="user_id") from None
        ended = await store.delete_user_sessions(user.id)
        log.info("console password set by an admin", extra={"user_id": user.id})
        return kit.respond({"data": {"user_id": user.id, "sessions_ended": ended}})

    return [kit.resource("/users/{id}/console-password", {"POST": set_password})]
