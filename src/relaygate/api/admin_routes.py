"""The admin JSON API (``/admin/api/…``), authenticated by an admin token.

Handlers parse the request and call ``relaygate.services.admin.AdminService``, which
validates every write completely before anything is saved. Every write reloads this
worker's catalog at once; other workers follow within ``RELAYGATE_REFRESH_INTERVAL``.
Responses carry the ``code``/``msg`` envelope. Every failure is a JSON error body: an
unexpected exception is answered 500 ``internal_error`` (and logged with its traceback), a
method a path does not support 405 with an ``Allow`` header.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import orjson
from starlette.applications import Starlette
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from relaygate.api.admin_billing import billing_routes
from relaygate.api.admin_console import console_routes
from relaygate.api.admin_health import health_routes
from relaygate.api.admin_kit import AdminKit
from relaygate.api.admin_model_routes import model_route_routes
from relaygate.api.admin_prices import price_routes
from relaygate.api.admin_providers import provider_routes
from relaygate.api.admin_reports import report_routes
from relaygate.api.admin_routing import routing_routes
from relaygate.api.admin_safety import safety_routes
from relaygate.api.admin_settings import settings_routes
from relaygate.api.admin_status import status_routes
from relaygate.catalog import Catalog
from relaygate.errors import (
    AuthError,
    BodyTooLarge,
    InvalidRequest,
    NotFound,
    PolicyError,
    RelayError,
    error_body,
)
from relaygate.providers.profiles import PROFILES
from relaygate.relay.pipeline import extract_key
from relaygate.services.admin import AdminService
from relaygate.services.throttle import Throttle
from relaygate.state import AppState
from relaygate.storage.admin_audit import AuditEntry, AuditStore
from relaygate.storage.records import UserRecord

__all__ = [
    "CONSOLE_ADMIN",
    "CONSOLE_IP",
    "CONSOLE_PATH",
    "TOKEN_RECHECK_INTERVAL",
    "build_admin_app",
]

#: ASGI scope keys set by the console's admin bridge (``console/admin_bridge.py``) once it
#: has checked the session, the admin role and the CSRF token: the acting user, the
#: console path the browser called, and the client's address. Only in-process code can set
#: scope keys, so a request from outside can never present them.
CONSOLE_ADMIN = "relaygate.console_admin"
CONSOLE_PATH = "relaygate.console_path"
CONSOLE_IP = "relaygate.console_ip"

log = logging.getLogger("relaygate.admin")
audit = logging.getLogger("relaygate.audit")

# An unknown admin token makes the worker re-check the database (a token just printed by
# `relaygate admin bootstrap`), at most once per this many seconds per worker.
TOKEN_RECHECK_INTERVAL = 0.5

Handler = Callable[[Request, AdminService, AppState], Awaitable[Response]]


class _Resource:
    """One admin path: its handlers by method; any other method is 405 with ``Allow``.

    An ASGI app rather than a function, so Starlette routes every method here."""

    def __init__(
        self,
        handlers: Mapping[str, Handler],
        run: Callable[[Handler, Request], Awaitable[Response]],
        refuse: Callable[[Request, str], Response],
    ) -> None:
        self.handlers = dict(handlers)
        self.allow = ", ".join(self.handlers)
        self._run = run
        self._refuse = refuse

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        request = Request(scope, receive)
        fn = self.handlers.get(request.method)
        response = self._refuse(request, self.allow) if fn is None else await self._run(fn, request)
        await response(scope, receive, send)


class _JSONErrors:
    """The outermost layer: an exception that escaped Starlette (which has answered it with
    the JSON 500 of ``internal_error`` when it could) never reaches the gateway's edge."""

    def __init__(self, app: ASGIApp, fallback: Callable[[], Response]) -> None:
        self.app = app
        self.fallback = fallback

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        started = False

        async def tracked(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, tracked)
        except Exception:
            if started:  # Starlette's handler answered and logged it; it re-raises by design
                return
            log.exception("admin API request failed", extra={"path": scope.get("path")})
            await self.fallback()(scope, receive, send)


def _int_param(raw: str | None, name: str, default: int, low: int, high: int) -> int:
    if raw is None or raw == "":
        return default
    if not raw.isascii() or not raw.isdigit() or not low <= int(raw) <= high:
        raise InvalidRequest(f"`{name}` must be a whole number from {low} to {high}.", param=name)
    return int(raw)


async def _audit(st: AppState, request: Request, user: UserRecord, status: int) -> None:
    """One ``admin_audit`` row for a state-changing call (also logged). A failure to write it
    is logged and does not change the answer: the change itself is already saved."""
    via = "console" if request.scope.get(CONSOLE_ADMIN) is not None else "api"
    path = request.scope.get(CONSOLE_PATH) or request.url.path
    client = request.client
    ip = str(request.scope.get(CONSOLE_IP) or (client.host if client else ""))
    fields = getattr(request.state, "audit_fields", ())
    audit.info(
        "admin action",
        extra={
            "admin_user_id": user.id,
            "via": via,
            "method": request.method,
            "path": path,
            "status": status,
        },
    )
    entry = AuditEntry(user.id, user.username, via, request.method, path, status, fields, ip)
    try:
        await AuditStore(st.repo.engine).add(entry)
    except Exception:
        log.exception("writing the admin audit row failed", extra={"path": path})


def build_admin_app(state: Callable[[], AppState]) -> ASGIApp:
    """The admin app; ``state`` returns the worker's state once it has started."""

    async def reload_catalog() -> None:
        catalog: Catalog = state().catalog
        await catalog.reload_if_changed()

    recheck = Throttle(reload_catalog, TOKEN_RECHECK_INTERVAL)

    def respond(payload: dict[str, Any], status: int = 200) -> Response:
        s = state().settings
        body = {"code": 0, "msg": "ok", **payload} if s.envelope else payload
        return Response(orjson.dumps(body), status, media_type="application/json")

    def fail(err: RelayError, headers: Mapping[str, str] | None = None) -> Response:
        s = state().settings
        status = err.http_status(s.openai_status_codes)
        return Response(
            error_body(err, envelope=s.envelope, status=status),
            status,
            headers=headers,
            media_type="application/json",
        )

    def internal_error() -> Response:
        return fail(RelayError("The server failed to handle this request; the error is logged."))

    async def authenticate(st: AppState, request: Request) -> UserRecord:
        console_admin = request.scope.get(CONSOLE_ADMIN)
        if isinstance(console_admin, UserRecord):
            return console_admin  # the console checked the session, the role and CSRF
        headers = {k.encode(): v.encode() for k, v in request.headers.items()}
        key_hash = st.secrets.hash_key(extract_key(headers))
        try:
            key, user = st.catalog.authenticate(key_hash)
        except AuthError:
            # Perhaps a token created since this worker's last refresh: re-check once.
            try:
                await recheck.run()
            except Exception:
                log.warning("re-checking the configuration failed", exc_info=True)
            key, user = st.catalog.authenticate(key_hash)
        if key.kind != "admin" or user.role != "admin":
            raise PolicyError("This endpoint needs an admin token.", code="admin_required")
        return user

    async def run(fn: Handler, request: Request) -> Response:
        st = state()
        user: UserRecord | None = None
        try:
            user = await authenticate(st, request)
            request.state.admin_user = user  # the actor of billing writes
            s = st.settings
            svc = AdminService(
                st.repo,
                api_key_prefix=s.api_key_prefix,
                personal_key_prefix=s.personal_key_prefix,
                personal_concurrency=s.personal_concurrency,
            )
            response = await fn(request, svc, st)
            if request.method != "GET":
                await st.catalog.load()
                await _audit(st, request, user, response.status_code)
            return response
        except RelayError as err:
            response = fail(err)
            if user is not None and request.method != "GET":
                await _audit(st, request, user, response.status_code)
            return response
        except ClientDisconnect:  # the client went away mid-body: nobody to answer
            log.info("admin API client disconnected", extra={"path": request.url.path})
            return Response(status_code=499)
        except Exception:
            log.exception(
                "admin API request failed",
                extra={"method": request.method, "path": request.url.path},
            )
            return internal_error()

    def refuse_method(request: Request, allow: str) -> Response:
        err = InvalidRequest(
            f"{request.method} is not allowed on {request.url.path}; allowed: {allow}.",
            code="method_not_allowed",
            status=405,
        )
        return fail(err, {"Allow": allow})

    async def body_of(request: Request) -> dict[str, Any]:
        # the model API's body limit applies here too: a larger body is refused with a JSON
        # error before it is read (the server edge would otherwise cut the connection)
        limit = state().settings.max_body_bytes
        too_large = BodyTooLarge(
            f"The request body is larger than the {limit // 1024} KiB this gateway accepts."
        )
        declared = request.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > limit:
            raise too_large
        parts: list[bytes] = []
        size = 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise too_large
            parts.append(chunk)
        raw = b"".join(parts)
        try:
            body = orjson.loads(raw) if raw else {}
        except orjson.JSONDecodeError:
            raise InvalidRequest("The request body is not valid JSON.") from None
        if not isinstance(body, dict):
            raise InvalidRequest("The request body must be a JSON object.")
        request.state.audit_fields = tuple(str(k) for k in body)  # names only, never values
        return body

    def path_id(request: Request) -> str:
        return str(request.path_params["id"])

    # ---- users -------------------------------------------------------------------------
    async def list_users(request: Request, svc: AdminService, st: AppState) -> Response:
        return respond(await svc.search_users(request.query_params))  # ?q=&limit=&after_id=

    async def create_user(request: Request, svc: AdminService, st: AppState) -> Response:
        user = await svc.create_user(await body_of(request))
        return respond({"data": user.to_public()}, 201)

    async def update_user(request: Request, svc: AdminService, st: AppState) -> Response:
        user = await svc.update_user(path_id(request), await body_of(request))
        return respond({"data": user.to_public()})

    # ---- keys --------------------------------------------------------------------------
    async def list_keys(request: Request, svc: AdminService, st: AppState) -> Response:
        keys = await svc.list_keys(request.query_params.get("user_id"))
        return respond({"data": [k.to_public() for k in keys]})

    async def create_key(request: Request, svc: AdminService, st: AppState) -> Response:
        rec, plain = await svc.create_key(await body_of(request))
        return respond({"data": {**rec.to_public(), "key": plain}}, 201)

    async def update_key(request: Request, svc: AdminService, st: AppState) -> Response:
        key = await svc.update_key(path_id(request), await body_of(request))
        return respond({"data": key.to_public()})

    async def delete_key(request: Request, svc: AdminService, st: AppState) -> Response:
        await svc.delete_key(path_id(request))
        return respond({})

    # ---- channels ----------------------------------------------------------------------
    async def list_channels(request: Request, svc: AdminService, st: AppState) -> Response:
        return respond({"data": [c.to_public() for c in await svc.list_channels()]})

    async def create_channel(request: Request, svc: AdminService, st: AppState) -> Response:
        ch = await svc.create_channel(await body_of(request))
        return respond({"data": ch.to_public()}, 201)

    async def update_channel(request: Request, svc: AdminService, st: AppState) -> Response:
        ch = await svc.update_channel(path_id(request), await body_of(request))
        return respond({"data": ch.to_public()})

    async def delete_channel(request: Request, svc: AdminService, st: AppState) -> Response:
        await svc.delete_channel(path_id(request))
        return respond({})

    # ---- admin audit log ---------------------------------------------------------------
    async def list_audit(request: Request, svc: AdminService, st: AppState) -> Response:
        q = request.query_params
        limit = _int_param(q.get("limit"), "limit", 50, 1, 500)
        before = q.get("before")
        actor = q.get("actor_id")
        rows = await AuditStore(st.repo.engine).list(
            limit=limit,
            before_id=None if before is None else _int_param(before, "before", 0, 1, 2**62),
            actor_id=None if actor is None else _int_param(actor, "actor_id", 0, 1, 2**31),
            path_prefix=(q.get("path") or "")[:256],
        )
        return respond({"data": rows, "has_more": len(rows) == limit})

    # ---- read-only -----------------------------------------------------------------------
    async def list_providers(request: Request, svc: AdminService, st: AppState) -> Response:
        return respond(
            {
                "adaptors": st.adaptors.names(),
                "profiles": [{"name": p.name, "label": p.label} for p in PROFILES.values()],
            }
        )

    async def not_found(request: Request, exc: Exception) -> Response:
        return fail(NotFound(f"Unknown URL: {request.method} {request.url.path}."))

    async def unexpected(request: Request, exc: Exception) -> Response:
        log.error(
            "admin API request failed",
            exc_info=exc,
            extra={"method": request.method, "path": request.url.path},
        )
        return internal_error()

    def resource(path: str, handlers: Mapping[str, Handler]) -> Route:
        return Route(f"/admin/api{path}", _Resource(handlers, run, refuse_method))

    kit = AdminKit(resource, respond, body_of)  # what the route modules use
    routes = [
        resource("/users", {"GET": list_users, "POST": create_user}),
        resource("/users/{id}", {"PATCH": update_user}),
        resource("/keys", {"GET": list_keys, "POST": create_key}),
        resource("/keys/{id}", {"PATCH": update_key, "DELETE": delete_key}),
        resource("/channels", {"GET": list_channels, "POST": create_channel}),
        resource("/channels/{id}", {"PATCH": update_channel, "DELETE": delete_channel}),
        *health_routes(kit),  # /channels/{id}/test
        resource("/providers", {"GET": list_providers}),
        resource("/audit", {"GET": list_audit}),
        *provider_routes(kit),  # /channel-types, /channels/{id}/discover-models
        *report_routes(kit),  # /logs, /logs.csv, /usage/daily
        *billing_routes(kit),  # codes, balances, plans
        *price_routes(kit),  # prices, price groups
        *model_route_routes(kit),  # aliases, fallbacks
        *routing_routes(kit),  # circuits
        *safety_routes(kit),  # word lists, import/export, test, audit
        *settings_routes(kit),  # /settings: runtime settings (envelope, statuses, ...)
        *console_routes(kit),  # /users/{id}/console-password, /console-two-factor
        *status_routes(kit),  # status over time (the console's system status)
    ]
    app = Starlette(routes=routes, exception_handlers={404: not_found, Exception: unexpected})
    return _JSONErrors(app, internal_error)
