"""The admin JSON API (``/admin/api/…``), authenticated by an admin token.

Every write reloads this worker's catalog at once; other workers follow within
``RELAYGATE_REFRESH_INTERVAL``. Responses carry the ``code``/``msg`` envelope.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any

import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from relaygate.errors import (
    AuthError,
    InvalidRequest,
    NotFound,
    PolicyError,
    RelayError,
    error_body,
)
from relaygate.providers.profiles import PROFILES
from relaygate.relay.pipeline import extract_key
from relaygate.state import AppState
from relaygate.storage.repo import Conflict

__all__ = ["build_admin_app"]

audit = logging.getLogger("relaygate.audit")

Endpoint = Callable[[Request], Awaitable[Response]]


def build_admin_app(state: Callable[[], AppState]) -> Starlette:
    """The admin app; ``state`` returns the worker's state once it has started."""

    def respond(payload: dict[str, Any], status: int = 200) -> Response:
        s = state().settings
        body = {"code": 0, "msg": "ok", **payload} if s.envelope else payload
        return Response(orjson.dumps(body), status, media_type="application/json")

    def fail(err: RelayError) -> Response:
        s = state().settings
        status = err.http_status(s.openai_status_codes)
        return Response(
            error_body(err, envelope=s.envelope, status=status),
            status,
            media_type="application/json",
        )

    def guarded(fn: Callable[[Request, AppState], Awaitable[Response]]) -> Endpoint:
        async def endpoint(request: Request) -> Response:
            st = state()
            try:
                headers = {k.encode(): v.encode() for k, v in request.headers.items()}
                key, user = st.catalog.authenticate(st.secrets.hash_key(extract_key(headers)))
                if key.kind != "admin" or user.role != "admin":
                    raise PolicyError("This endpoint needs an admin token.", code="admin_required")
                response = await fn(request, st)
                if request.method != "GET":
                    await st.catalog.load()
                    audit.info(
                        "admin action",
                        extra={
                            "admin_user_id": user.id,
                            "method": request.method,
                            "path": request.url.path,
                            "status": response.status_code,
                        },
                    )
                return response
            except RelayError as err:
                return fail(err)
            except Conflict as exc:
                return fail(InvalidRequest(str(exc), code="conflict"))
            except (ValueError, TypeError, KeyError) as exc:
                return fail(InvalidRequest(f"Invalid input: {exc}"))

        return endpoint

    async def body_of(request: Request) -> dict[str, Any]:
        raw = await request.body()
        try:
            body = orjson.loads(raw) if raw else {}
        except orjson.JSONDecodeError:
            raise InvalidRequest("The request body is not valid JSON.") from None
        if not isinstance(body, dict):
            raise InvalidRequest("The request body must be a JSON object.")
        return body

    def path_id(request: Request) -> int:
        try:
            return int(request.path_params["id"])
        except ValueError:
            raise NotFound("No such object.") from None

    # ---- users -------------------------------------------------------------
    async def list_users(request: Request, st: AppState) -> Response:
        return respond({"data": [u.to_public() for u in await st.repo.list_users()]})

    async def create_user(request: Request, st: AppState) -> Response:
        b = await body_of(request)
        user = await st.repo.create_user(str(b.get("username", "")), str(b.get("role", "user")))
        return respond({"data": user.to_public()}, 201)

    async def update_user(request: Request, st: AppState) -> Response:
        if not await st.repo.update_user(path_id(request), **await body_of(request)):
            raise NotFound("No such user (or nothing to change).")
        return respond({})

    # ---- keys ----------------------------------------------------------------
    async def list_keys(request: Request, st: AppState) -> Response:
        uid = request.query_params.get("user_id")
        keys = await st.repo.list_keys(int(uid) if uid else None)
        return respond({"data": [k.to_public() for k in keys]})

    async def create_key(request: Request, st: AppState) -> Response:
        b = await body_of(request)
        user_id = b.get("user_id")
        if user_id is None and b.get("username"):
            user = await st.repo.get_user(username=str(b["username"]))
            if user is None:
                raise NotFound("No such user.")
            user_id = user.id
        if not isinstance(user_id, int):
            raise InvalidRequest("`user_id` (integer) or `username` is required.")
        models = b.get("models")
        if models is not None and not (
            isinstance(models, list) and all(isinstance(m, str) for m in models)
        ):
            raise InvalidRequest("`models` must be an array of model names or null.")
        expires = b.get("expires_at")
        kind = str(b.get("kind", "api"))
        if kind == "admin":
            owner = await st.repo.get_user(user_id=user_id)
            if owner is None or owner.role != "admin":
                raise InvalidRequest("Admin tokens can only be created for admin users.")
        rec, plain = await st.repo.create_key(
            user_id,
            name=str(b.get("name", "")),
            kind=kind,
            models=models,
            expires_at=datetime.fromisoformat(expires) if isinstance(expires, str) else None,
            prefix=st.settings.key_prefix,
            rpm_limit=b.get("rpm_limit"),
            concurrency_limit=b.get("concurrency_limit"),
        )
        return respond({"data": {**rec.to_public(), "key": plain}}, 201)

    async def update_key(request: Request, st: AppState) -> Response:
        b = await body_of(request)
        if isinstance(b.get("expires_at"), str):
            b["expires_at"] = datetime.fromisoformat(b["expires_at"])
        if not await st.repo.update_key(path_id(request), **b):
            raise NotFound("No such key (or nothing to change).")
        return respond({})

    async def delete_key(request: Request, st: AppState) -> Response:
        if not await st.repo.delete_key(path_id(request)):
            raise NotFound("No such key.")
        return respond({})

    # ---- channels ------------------------------------------------------------
    async def list_channels(request: Request, st: AppState) -> Response:
        return respond({"data": [c.to_public() for c in await st.repo.list_channels()]})

    async def create_channel(request: Request, st: AppState) -> Response:
        b = await body_of(request)
        provider = str(b.get("provider", "openai_compat"))
        profile = str(b.get("profile", "openai" if provider == "openai_compat" else provider))
        if provider == "openai_compat" and profile not in PROFILES:
            raise InvalidRequest(f"Unknown profile {profile!r}; known: {', '.join(PROFILES)}.")
        keys = b.get("keys")
        if keys is None and b.get("api_key"):
            keys = [b["api_key"]]
        ch = await st.repo.create_channel(
            name=str(b.get("name", "")) or "channel",
            provider=provider,
            profile=profile,
            base_url=str(b.get("base_url", "")),
            keys=[str(k) for k in (keys or [])],
            models=[str(m) for m in b.get("models") or []],
            model_mapping={str(k): str(v) for k, v in (b.get("model_mapping") or {}).items()},
            priority=int(b.get("priority", 0)),
            weight=int(b.get("weight", 1)),
            config=dict(b.get("config") or {}),
            status=str(b.get("status", "enabled")),
        )
        return respond({"data": ch.to_public()}, 201)

    async def update_channel(request: Request, st: AppState) -> Response:
        if not await st.repo.update_channel(path_id(request), **await body_of(request)):
            raise NotFound("No such channel (or nothing to change).")
        return respond({})

    async def delete_channel(request: Request, st: AppState) -> Response:
        if not await st.repo.delete_channel(path_id(request)):
            raise NotFound("No such channel.")
        return respond({})

    async def list_providers(request: Request, st: AppState) -> Response:
        return respond(
            {
                "adaptors": st.adaptors.names(),
                "profiles": [{"name": p.name, "label": p.label} for p in PROFILES.values()],
            }
        )

    async def list_logs(request: Request, st: AppState) -> Response:
        limit = min(int(request.query_params.get("limit", "100")), 1000)
        uid = request.query_params.get("user_id")
        rows = await st.repo.list_request_logs(limit, int(uid) if uid else None)
        return respond({"data": rows})

    async def not_found(request: Request, exc: Exception) -> Response:
        return fail(NotFound(f"Unknown URL: {request.method} {request.url.path}."))

    async def not_allowed(request: Request, exc: Exception) -> Response:
        return fail(InvalidRequest(f"{request.method} is not allowed on {request.url.path}."))

    p = "/admin/api"
    routes = [
        Route(f"{p}/users", guarded(list_users), methods=["GET"]),
        Route(f"{p}/users", guarded(create_user), methods=["POST"]),
        Route(f"{p}/users/{{id}}", guarded(update_user), methods=["PATCH"]),
        Route(f"{p}/keys", guarded(list_keys), methods=["GET"]),
        Route(f"{p}/keys", guarded(create_key), methods=["POST"]),
        Route(f"{p}/keys/{{id}}", guarded(update_key), methods=["PATCH"]),
        Route(f"{p}/keys/{{id}}", guarded(delete_key), methods=["DELETE"]),
        Route(f"{p}/channels", guarded(list_channels), methods=["GET"]),
        Route(f"{p}/channels", guarded(create_channel), methods=["POST"]),
        Route(f"{p}/channels/{{id}}", guarded(update_channel), methods=["PATCH"]),
        Route(f"{p}/channels/{{id}}", guarded(delete_channel), methods=["DELETE"]),
        Route(f"{p}/providers", guarded(list_providers), methods=["GET"]),
        Route(f"{p}/logs", guarded(list_logs), methods=["GET"]),
    ]
    return Starlette(routes=routes, exception_handlers={404: not_found, 405: not_allowed})


_ = AuthError  # re-exported for type readers: admin auth failures are AuthErrors
