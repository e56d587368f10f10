"""The console's admin pages reach the admin API through this bridge:
``/console/api/admin/<path>`` is ``/admin/api/<path>``, answered by the admin API's own
handlers (``api/admin_routes.py``) in-process, so the console and the admin API can never
disagree about a rule, and every write is in the admin audit log either way.

Before the call is handed over the bridge checks what the console checks for every route
(the request comes from the console's pages, a session, the CSRF token on writes) and that
the signed-in user is an admin (403 ``admin_required`` otherwise). It then names the user
in the ASGI scope (``CONSOLE_ADMIN``), which the admin API takes instead of a token; the
browser's cookie and any ``Authorization`` header are not passed on.
"""

from __future__ import annotations

from collections.abc import Callable

from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from relaygate.api.admin_routes import CONSOLE_ADMIN, CONSOLE_IP, CONSOLE_PATH
from relaygate.console.kit import COOKIE, Call, check_csrf, check_origin, fail
from relaygate.errors import AuthError, NotFound, PolicyError, RelayError
from relaygate.storage.records import UserRecord

__all__ = ["PREFIX", "AdminBridge"]

PREFIX = "/console/api/admin"
_DROP = {b"cookie", b"authorization", b"x-csrf-token"}


class AdminBridge:
    """An ASGI app for every path under :data:`PREFIX`."""

    def __init__(self, admin: ASGIApp, context: Callable[[Request], Call]) -> None:
        self.admin = admin
        self.context = context

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        request = Request(scope, receive)
        try:
            user = await self._admit(request)
        except RelayError as err:
            await fail(err)(scope, receive, send)
            return
        except ClientDisconnect:
            await Response(status_code=499)(scope, receive, send)
            return
        path: str = scope["path"]
        rest = path[len(PREFIX) :]
        inner = dict(scope)
        inner["path"] = "/admin/api" + rest
        inner["raw_path"] = inner["path"].encode()
        inner["root_path"] = ""
        inner["headers"] = [(k, v) for k, v in scope["headers"] if k.lower() not in _DROP]
        inner[CONSOLE_ADMIN] = user
        inner[CONSOLE_PATH] = path
        inner[CONSOLE_IP] = request.client.host if request.client else ""
        await self.admin(inner, receive, send)

    async def _admit(self, request: Request) -> UserRecord:
        rest = request.url.path[len(PREFIX) :]
        if (rest and not rest.startswith("/")) or "/../" in rest + "/" or "/./" in rest + "/":
            raise NotFound(f"Unknown URL: {request.method} {request.url.path}.")
        call = self.context(request)
        changes = request.method not in ("GET", "HEAD")
        if changes:
            check_origin(request)
        call.current = await call.accounts.current(request.cookies.get(COOKIE))
        if call.current is None:
            raise AuthError("Sign in first (no session, or it has ended).", code="not_signed_in")
        if call.current.user.role != "admin":
            raise PolicyError("This page is for administrators.", code="admin_required")
        if changes:
            check_csrf(request, call)
        return call.current.user
