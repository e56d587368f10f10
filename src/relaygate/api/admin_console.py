"""Admin API calls about a user's console account (docs/console.md, "Admin pages: accounts"):

* ``POST /admin/api/users/{id}/console-password`` ``{"password"}`` - set (or replace) the
  user's console password. A user created by the admin API or the CLI has none, so cannot
  sign in to the console until an admin sets one. Every console session of that user ends
  (and any half-done two-factor sign-in). The answer never carries the password; the audit
  row names the field, never its value.

* ``GET /admin/api/users/{id}/console-two-factor`` - whether the user has a console
  password, two-factor on, and how many unused recovery codes are left. Never a secret.
* ``DELETE /admin/api/users/{id}/console-two-factor`` (no body, or ``{}``) - turn the
  user's two-factor sign-in off, for a user who lost both the authenticator and the
  recovery codes: the TOTP secret and its used step are cleared, the flag turned off, the
  recovery codes deleted and every console session of the user ended, in one transaction
  (``storage/console.py``'s ``reset_two_factor``). The user then signs in with the password
  alone and may turn two-factor on again. When it was not on, nothing changes and the
  answer is still 200, with ``"was_on": false`` (a repeated call is harmless, and a script
  need not tell the two apart unless it wants to).

Setting one's own password here through the console is refused
(``use_account_settings``): the account settings page asks for the current password first,
so a left-open session cannot be used to take the account over. Turning off one's own
two-factor here is refused the same way (the settings page asks for a code). With an admin
token (a bootstrap admin without a console password) both are allowed.

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
from relaygate.storage.console_recovery import RecoveryCodeStore

__all__ = ["MAX_PASSWORD", "MIN_PASSWORD", "console_routes"]

CONSOLE_ADMIN = "relaygate.console_admin"  # api/admin_routes.py (imports this module)

log = logging.getLogger("relaygate.admin")
console_log = logging.getLogger("relaygate.console")


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


def _no_body(body: dict[str, Any]) -> None:
    if body:
        name = sorted(body)[0]
        raise ValidationError(name, f"Unknown field `{name}`; this call takes no body.")


def _not_self(request: Request, user_id: int, what: str) -> None:
    actor = request.scope.get(CONSOLE_ADMIN)
    if actor is not None and getattr(actor, "id", None) == user_id:
        raise InvalidRequest(what, code="use_account_settings", param="id")


def console_routes(kit: AdminKit) -> list[Route]:
    async def set_password(request: Request, svc: AdminService, st: AppState) -> Response:
        user = await svc.get_user(str(request.path_params["id"]))
        password = check_new_password(await kit.body_of(request))
        _not_self(
            request,
            user.id,
            "Change your own password on the account settings page (it asks for the current one).",
        )
        store = ConsoleStore(st.repo.engine)
        try:
            await store.set_password(user.id, await hash_password(password))
        except Conflict:  # the user was deleted meanwhile
            raise NotFound(f"No user with id {user.id}.", param="user_id") from None
        ended = await store.delete_user_sessions(user.id)
        log.info("console password set by an admin", extra={"user_id": user.id})
        return kit.respond({"data": {"user_id": user.id, "sessions_ended": ended}})

    async def two_factor(request: Request, svc: AdminService, st: AppState) -> Response:
        user = await svc.get_user(str(request.path_params["id"]))
        creds = await ConsoleStore(st.repo.engine).credentials(user.id)
        on = creds is not None and creds.totp_enabled
        left = (await RecoveryCodeStore(st.repo.engine).status(user.id)).left if on else 0
        return kit.respond(
            {
                "data": {
                    "user_id": user.id,
                    "password_set": creds is not None,
                    "two_factor_enabled": on,
                    "recovery_codes_left": left,
                }
            }
        )

    async def reset_two_factor(request: Request, svc: AdminService, st: AppState) -> Response:
        user = await svc.get_user(str(request.path_params["id"]))
        _no_body(await kit.body_of(request))
        _not_self(
            request,
            user.id,
            "Turn off your own two-factor sign-in on the account settings page (it asks for "
            "a code).",
        )
        done = await ConsoleStore(st.repo.engine).reset_two_factor(user.id)
        admin = getattr(request.state, "admin_user", None)
        console_log.info(
            "two-factor sign-in turned off by an admin"
            if done.was_on
            else "admin two-factor reset: it was not on",
            extra={"user_id": user.id, "admin_user_id": getattr(admin, "id", None)},
        )
        return kit.respond(
            {
                "data": {
                    "user_id": user.id,
                    "was_on": done.was_on,
                    "recovery_codes_deleted": done.recovery_codes_deleted,
                    "sessions_ended": done.sessions_ended,
                }
            }
        )

    return [
        kit.resource("/users/{id}/console-password", {"POST": set_password}),
        kit.resource(
            "/users/{id}/console-two-factor", {"GET": two_factor, "DELETE": reset_two_factor}
        ),
    ]
