"""The console as one ASGI app, mounted by ``app.py`` for every path under ``/console``:
the JSON API at ``/console/api/…`` (``routes.py``) and the single-page app (``static/``:
``index.html`` at ``/console``, its files under ``/console/assets/``).

Every API request: a state-changing one must come from the console's own pages
(``kit.check_origin``); the ``rg_session`` cookie names the session; a route that needs a
session answers 401 ``not_signed_in`` without one, and a signed-in state-changing request
needs its CSRF token (``kit.check_csrf``). Every failure is a JSON error; an unexpected one
is logged and answered 500 ``internal_error``. Every response carries a strict
Content-Security-Policy (scripts and styles from the gateway only) and refuses framing.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from starlette.applications import Starlette
from starlette.requests import ClientDisconnect, Request
from starlette.responses import FileResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from relaygate.console.accounts import Accounts
from relaygate.console.admin_bridge import PREFIX, AdminBridge
from relaygate.console.config import ConsoleSettings
from relaygate.console.kit import COOKIE, Call, Handler, check_csrf, check_origin, fail
from relaygate.console.routes import ROUTES
from relaygate.errors import AuthError, InvalidRequest, NotFound, RelayError
from relaygate.state import AppState
from relaygate.storage.console import ConsoleStore

__all__ = ["STATIC_DIR", "build_console_app"]

log = logging.getLogger("relaygate.console")

STATIC_DIR = Path(__file__).parent / "static"
API = "/console/api"

SECURITY_HEADERS = [
    (
        b"content-security-policy",
        b"default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        b"connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; "
        b"frame-ancestors 'none'",
    ),
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
]


class _Guard:
    """The outermost layer: security headers on every response, and an exception that
    escaped Starlette answered as JSON (if nothing was sent yet)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        started = False

        async def guarded(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                message = {**message, "headers": [*message.get("headers", []), *SECURITY_HEADERS]}
            await send(message)

        try:
            await self.app(scope, receive, guarded)
        except Exception:
            if started:
                return
            log.exception("console request failed", extra={"path": scope.get("path")})
            await _internal()(scope, receive, guarded)


def _internal() -> Response:
    return fail(RelayError("The console failed to handle this request; the error is logged."))


class _Endpoint:
    """One API path: its handlers by method (with whether each needs a session); any other
    method is 405 with ``Allow``."""

    def __init__(
        self,
        handlers: dict[str, tuple[Handler, bool]],
        context: Callable[[Request], Call],
    ) -> None:
        self.handlers = handlers
        self.allow = ", ".join(handlers)
        self.context = context

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        request = Request(scope, receive)
        response = await self._respond(request)
        await response(scope, receive, send)

    async def _respond(self, request: Request) -> Response:
        found = self.handlers.get(request.method)
        if found is None:
            err = InvalidRequest(
                f"{request.method} is not allowed on {request.url.path}; allowed: {self.allow}.",
                code="method_not_allowed",
                status=405,
            )
            return fail(err, {"Allow": self.allow})
        handler, needs_session = found
        try:
            call = self.context(request)
            changes = request.method not in ("GET", "HEAD")
            if changes:
                check_origin(request)
            call.current = await call.accounts.current(request.cookies.get(COOKIE))
            if needs_session:
                if call.current is None:
                    raise AuthError(
                        "Sign in first (no session, or it has ended).", code="not_signed_in"
                    )
                if changes:
                    check_csrf(request, call)
            return await handler(request, call)
        except RelayError as err:
            return fail(err)
        except ClientDisconnect:
            return Response(status_code=499)
        except Exception:
            log.exception(
                "console request failed",
                extra={"method": request.method, "path": request.url.path},
            )
            return _internal()


def build_console_app(state: Callable[[], AppState], admin: ASGIApp | None = None) -> ASGIApp:
    """The console app; ``state`` returns the worker's state once it has started; ``admin``
    is the admin API app the admin pages reach through ``admin_bridge.py``.
    The console's settings are read from the environment here (``RELAYGATE_CONSOLE_*``)."""
    cfg = ConsoleSettings.from_env()
    built: dict[int, Accounts] = {}

    def accounts(st: AppState) -> Accounts:
        acc = built.get(id(st))
        if acc is None:
            built.clear()
            acc = Accounts(ConsoleStore(st.repo.engine), st.repo.users, st.secrets, st.shared, cfg)
            built[id(st)] = acc
        return acc

    def context(request: Request) -> Call:
        st = state()
        client = request.client
        ua = request.headers.get("user-agent", "")
        acc = accounts(st)
        signup = st.settings.console_signup  # an admin's runtime setting (None: the env's)
        wanted = cfg.signup if signup is None else signup
        if acc.cfg.signup != wanted:
            acc.cfg = replace(cfg, signup=wanted)
        return Call(st, acc, acc.cfg, client.host if client else "", ua)

    by_path: dict[str, dict[str, tuple[Handler, bool]]] = {}
    for (path, method), entry in ROUTES.items():
        by_path.setdefault(path, {})[method] = entry
    routes: list[Route | Mount] = [
        Route(API + path, _Endpoint(handlers, context)) for path, handlers in by_path.items()
    ]

    async def index(request: Request) -> Response:
        return FileResponse(STATIC_DIR / "index.html", headers={"Cache-Control": "no-cache"})

    async def not_found(request: Request, exc: Exception) -> Response:
        if request.url.path.startswith(API + "/") or request.url.path == API:
            return fail(NotFound(f"Unknown URL: {request.method} {request.url.path}."))
        if request.method in ("GET", "HEAD") and not request.url.path.startswith(
            "/console/assets/"
        ):
            return await index(request)  # a page of the app (it routes by #fragment)
        return fail(NotFound(f"Unknown URL: {request.method} {request.url.path}."))

    async def unexpected(request: Request, exc: Exception) -> Response:
        log.error("console request failed", exc_info=exc, extra={"path": request.url.path})
        return _internal()

    if admin is not None:
        bridge = AdminBridge(admin, context)
        routes += [Route(PREFIX, bridge), Route(PREFIX + "/{rest:path}", bridge)]
    routes += [
        Route("/console", index, methods=["GET", "HEAD"]),
        Route("/console/", index, methods=["GET", "HEAD"]),
        Mount("/console/assets", StaticFiles(directory=STATIC_DIR)),
    ]
    app = Starlette(routes=routes, exception_handlers={404: not_found, Exception: unexpected})
    return _Guard(app)
