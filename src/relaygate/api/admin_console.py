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

The hash is argon2id with the same parameters as ``console/passwords.py`` (argon2-cffi's
RFC 9106 low-memory profile), made here because the handler layer must not import the
console package above it; a sign-in verifies it like any other and would replace it if the
profile ever changed.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from argon2 import PasswordHasher
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from relaygate.api.admin_kit import AdminKit
from relaygate.errors import InvalidRequest, NotFound
from relaygate.services.admin import AdminService
from relaygate.services.fields import ValidationError
from relaygate.state import AppState
from relaygate.storage.base import Conflict
from relaygate.storage.console import ConsoleStore

__all__ = ["MAX_PASSWORD", "MIN_PASSWORD", "console_routes"]

MIN_PASSWORD = 8  # the console's own rule (console/passwords.py)
MAX_PASSWORD = 128
CONSOLE_ADMIN = "relaygate.console_admin"  # api/admin_routes.py (imports this module)

log = logging.getLogger("relaygate.admin")
_hasher = PasswordHasher()
_slot = asyncio.Semaphore(1)  # at most one 64 MiB hash at a time from this endpoint


def check_new_password(body: dict[str, Any]) -> str:
    unknown = sorted(set(body) - {"password"})
    if unknown:
        raise ValidationError(unknown[0], f"Unknown field `{unknown[0]}`; known: password.")
    value = body.get("password")
    if not isinstance(value, str):
        raise ValidationError("password", "`password` is required (a string).")
    if not MIN_PASSWORD <= len(value) <= MAX_PASSWORD:
        raise ValidationError(
            "password", f"`password` must be {MIN_PASSWORD} to {MAX_PASSWORD} characters."
        )
    if "\x00" in value:
        raise ValidationError("password", "`password` must not contain NUL characters.")
    return value


async def _hash(password: str) -> str:
    async with _slot:
        return await asyncio.to_thread(_hasher.hash, password)


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
            await store.set_password(user.id, await _hash(password))
        except Conflict:  # the user was deleted meanwhile
            raise NotFound(f"No user with id {user.id}.", param="user_id") from None
        ended = await store.delete_user_sessions(user.id)
        log.info("console password set by an admin", extra={"user_id": user.id})
        return kit.respond({"data": {"user_id": user.id, "sessions_ended": ended}})

    return [kit.resource("/users/{id}/console-password", {"POST": set_password})]
