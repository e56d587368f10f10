"""The ASGI application: the edge dispatcher, lifespan, and health endpoints.

The model API (``/v1/…``) is dispatched by a dict lookup to lean handlers that
speak raw ASGI; everything else (admin JSON API) is a Starlette app mounted
under ``/admin/api``. See ``docs/decisions/0001-raw-asgi-hot-path.md``.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Awaitable, Callable
from urllib.parse import unquote

from relaygate.access_log import AccessLog
from relaygate.api.admin_routes import build_admin_app
from relaygate.api.openai_routes import handle_model, handle_models
from relaygate.asgi import Receive, Request, Scope, Send, ok_body, send_json
from relaygate.catalog import Catalog
from relaygate.errors import (
    NotFound,
    NotImplementedByProvider,
    RelayError,
    ServiceUnavailable,
    send_error,
)
from relaygate.filters.content_log import ContentLogFilter
from relaygate.filters.key_limits import KeyLimitsFilter
from relaygate.logs import setup_logging
from relaygate.pacing import freeze_startup_heap, lower_helper_threads
from relaygate.providers.registry import AdaptorRegistry
from relaygate.relay.chat import handle_chat
from relaygate.relay.embeddings import handle_embeddings
from relaygate.requestlog.writer import UsageLogWriter
from relaygate.settings import Settings
from relaygate.stages import FilterChain
from relaygate.state import AppState
from relaygate.storage.crypto import Secrets, load_or_create_secret
from relaygate.storage.db import create_engine
from relaygate.storage.repo import Repository
from relaygate.transport.factory import create_transport

__all__ = ["RelayGateApp", "create_app"]

log = logging.getLogger("relaygate")

Handler = Callable[[AppState, Request], Awaitable[None]]

RELAY_ROUTES: dict[tuple[str, str], Handler] = {}
for _prefix in ("/v1", ""):
    RELAY_ROUTES[("POST", f"{_prefix}/chat/completions")] = handle_chat
    RELAY_ROUTES[("POST", f"{_prefix}/embeddings")] = handle_embeddings
    RELAY_ROUTES[("GET", f"{_prefix}/models")] = handle_models

# In the product surface (PRODUCT.md §2) but not built yet: say so plainly.
NOT_YET = (
    "/v1/completions",
    "/v1/moderations",
    "/v1/images/",
    "/v1/audio/",
    "/v1/files",
    "/v1/fine_tuning/",
    "/v1/assistants",
    "/v1/threads",
    "/v1/vector_stores",
    "/v1/batches",
    "/v1/responses",
)


class RelayGateApp:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.state: AppState | None = None
        self._admin = build_admin_app(self._require_state)

    def _require_state(self) -> AppState:
        assert self.state is not None, "the admin API is mounted only after start-up"
        return self.state

    async def startup(self) -> None:
        s = self.settings
        setup_logging(s.log_level)
        secrets = Secrets(load_or_create_secret(s.secret_key, s.data_dir))
        engine = create_engine(s.resolved_database_url())
        repo = Repository(engine, secrets)
        catalog = Catalog(repo)
        await catalog.load()
        catalog.start_refresh(s.refresh_interval)
        transport = create_transport(s)
        await transport.start()
        usage_log = UsageLogWriter(repo) if s.log_requests else None
        if usage_log is not None:
            usage_log.start()
        access = None
        if logging.getLogger("relaygate.access").isEnabledFor(logging.INFO):
            access = AccessLog()
            access.start()
        self.state = AppState(
            settings=s,
            secrets=secrets,
            repo=repo,
            catalog=catalog,
            transport=transport,
            adaptors=AdaptorRegistry(),
            filters=FilterChain(
                [KeyLimitsFilter(), *([ContentLogFilter()] if s.log_content else [])]
            ),
            usage_log=usage_log,
            access_log=access,
        )
        self.state.ready = True
        lower_helper_threads()
        frozen = freeze_startup_heap()
        log.info(
            "relaygate worker ready", extra={"revision": catalog.revision, "frozen_objects": frozen}
        )

    async def shutdown(self) -> None:
        st = self.state
        if st is None:
            return
        st.ready = False
        await st.catalog.stop()
        if st.usage_log is not None:
            await st.usage_log.close()
        await st.transport.close()
        if st.access_log is not None:
            await st.access_log.close()
        await st.repo.engine.dispose()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "http":
            await self._http(scope, receive, send)
        elif kind == "lifespan":
            await self._lifespan(receive, send)

    async def _reject(self, req: Request, err: RelayError) -> None:
        s = self.settings
        await send_error(
            req.send,
            err,
            req.request_id,
            envelope=s.envelope,
            openai_statuses=s.openai_status_codes,
        )

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        st = self.state
        s = self.settings
        path: str = scope["path"]
        handler = RELAY_ROUTES.get((scope["method"], path))
        if st is None:
            req = Request(scope, receive, send, s.trust_request_id)
            await self._reject(req, ServiceUnavailable("The gateway is starting; retry shortly."))
            return
        if handler is not None:
            req = Request(scope, receive, send, s.trust_request_id)
            if st.inflight >= s.max_inflight:
                st.shed += 1  # bounded in-flight work: answer at once instead of queueing
                await self._reject(
                    req, ServiceUnavailable("The gateway is at capacity; retry shortly.")
                )
                return
            st.inflight += 1
            try:
                await handler(st, req)
            finally:
                st.inflight -= 1
            return
        if path.startswith("/admin/api"):
            await self._admin(scope, receive, send)
            return
        req = Request(scope, receive, send, s.trust_request_id)
        if scope["method"] == "GET":
            if path in ("/healthz", "/livez"):
                await send_json(send, 200, ok_body({"status": "alive"}, s.envelope), req.request_id)
                return
            if path == "/readyz":
                status = 200 if st.ready else 503
                body = {
                    "status": "ready" if st.ready else "not_ready",
                    "revision": st.catalog.revision,
                    "worker_pid": os.getpid(),
                    "inflight": st.inflight,
                    "shed_total": st.shed,
                    "usage_rows_dropped": st.usage_log.dropped if st.usage_log else 0,
                    "usage_rows_backlog": st.usage_log.backlog if st.usage_log else 0,
                }
                await send_json(send, status, ok_body(body, s.envelope), req.request_id)
                return
            for prefix in ("/v1/models/", "/models/"):
                if path.startswith(prefix) and len(path) > len(prefix):
                    await handle_model(st, req, unquote(path[len(prefix) :]))
                    return
        err: RelayError
        if path.startswith(NOT_YET) or ("/v1" + path).startswith(NOT_YET):
            err = NotImplementedByProvider(
                f"{scope['method']} {path} is not supported by this gateway yet."
            )
        else:
            err = NotFound(f"Unknown URL: {scope['method']} {path}.")
        await self._reject(req, err)

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                try:
                    await self.startup()
                except Exception as exc:
                    log.exception("startup failed")
                    await send({"type": "lifespan.startup.failed", "message": str(exc)})
                    return
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self.shutdown()
                await send({"type": "lifespan.shutdown.complete"})
                return


def create_app(settings: Settings | None = None) -> RelayGateApp:
    return RelayGateApp(settings or Settings.from_env())
