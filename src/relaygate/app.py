"""The ASGI application: the edge dispatcher, lifespan and worker start-up.

The model API (``/v1/…``) is dispatched by a dict lookup to lean handlers that
speak raw ASGI; the admin JSON API is a Starlette app mounted under
``/admin/api``. See ``docs/decisions/0001-raw-asgi-hot-path.md``.
"""

from __future__ import annotations

import contextlib
import logging
import signal
from types import FrameType
from typing import Any

from relaygate.access_log import AccessLog
from relaygate.api.account_routes import ACCOUNT_PATHS, handle_account
from relaygate.api.admin_routes import build_admin_app
from relaygate.api.cors import Cors
from relaygate.api.openai_routes import handle_model
from relaygate.asgi import Receive, Request, Scope, Send, send_json
from relaygate.billing.book import Book
from relaygate.billing.prices import PriceTable
from relaygate.billing.stage import Billing
from relaygate.billing.tokens import use_encoding
from relaygate.catalog import Catalog
from relaygate.console.app import build_console_app
from relaygate.dispatch import (
    HEALTH,
    NOT_YET,
    REALTIME_PATHS,
    RELAY_ROUTES,
    allowed_methods,
    extra_call,
    model_id,
)
from relaygate.edge.gzip import gzip_send
from relaygate.edge.protocol import set_envelope
from relaygate.errors import (
    NotFound,
    NotImplementedByProvider,
    RelayError,
    ServiceUnavailable,
    error_body,
    send_error,
)
from relaygate.filters import load_filter
from relaygate.filters.content_log import ContentLogFilter
from relaygate.filters.limits import LimitsFilter
from relaygate.filters.safety import SafetyFilter
from relaygate.logs import setup_logging
from relaygate.metrics import Metrics, metrics_config
from relaygate.online.factory import build_online
from relaygate.pacing import freeze_startup_heap, limit_malloc_arenas, lower_helper_threads
from relaygate.providers.registry import AdaptorRegistry
from relaygate.relay.multipart import sweep_spools
from relaygate.relay.object_paths import parse_path as parse_object_path
from relaygate.relay.realtime import handle_realtime
from relaygate.requestlog.retention import UsageRollup
from relaygate.requestlog.writer import UsageLogWriter
from relaygate.routing.breakers import Breakers
from relaygate.routing.health import ChannelHealth
from relaygate.routing.router import Router
from relaygate.routing.slots import Slots
from relaygate.routing.tokens import TokenCache
from relaygate.safety.audit import SafetyAudit
from relaygate.safety.config import SafetyRuntime, safety_settings
from relaygate.safety.lists import ListHolder
from relaygate.safety.matcher import compile_policy
from relaygate.safety.moderation import ModerationFilter, Moderator
from relaygate.services.runtime_settings import RuntimeSettings
from relaygate.settings import Settings
from relaygate.sharedstate.factory import create_shared_state
from relaygate.stages import BillingStage, FilterChain, NoBilling
from relaygate.state import AppState
from relaygate.storage.crypto import Secrets, load_or_create_secret
from relaygate.storage.db import create_engine
from relaygate.storage.fingerprint import check_secret
from relaygate.storage.plans import PlanStore
from relaygate.storage.repo import Repository
from relaygate.transport.base import Transport
from relaygate.transport.factory import create_transport

__all__ = ["RelayGateApp", "create_app"]

log = logging.getLogger("relaygate")


class RelayGateApp:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.state: AppState | None = None
        self.cors = Cors(settings.cors_origins)
        self._admin = build_admin_app(self._require_state)
        # /console (docs/console.md); its admin pages reach the admin API in-process
        self._console = build_console_app(self._require_state, self._admin)
        self._rollup: UsageRollup | None = None
        self._book: Book | None = None

    def _require_state(self) -> AppState:
        assert self.state is not None, "the admin API is mounted only after start-up"
        return self.state

    async def startup(self) -> None:
        s = self.settings
        limit_malloc_arenas()  # before the logging and database threads (pacing.py)
        setup_logging(s.log_level)
        sweep_spools()  # uploads of workers killed mid-upload (relay/multipart.py)
        secrets = Secrets(load_or_create_secret(s.secret_key, s.data_dir))
        engine = create_engine(s.resolved_database_url())
        log_url = s.resolved_log_database_url()  # request rows elsewhere (usage-reports.md)
        await check_secret(engine, secrets)  # one secret for every node (storage/fingerprint.py)
        repo = Repository(engine, secrets, log_engine=create_engine(log_url) if log_url else None)
        catalog = Catalog(repo)
        # an admin's runtime settings over the environment's, applied first on every load
        catalog.listeners.append(RuntimeSettings(s, engine, set_envelope).reload)
        await catalog.load()
        catalog.start_refresh(s.refresh_interval, s.redis_url, s.redis_prefix)  # + broadcast
        prices = await PriceTable.load(
            repo.prices, currency=s.currency, usd_rate=s.usd_rate, revision=catalog.revision
        )
        transport = create_transport(s)
        await transport.start()
        # billing charges travel in the request-log rows: with billing on, rows are written
        log_rows = s.log_requests or s.billing
        usage_log = UsageLogWriter(repo, spool_dir=s.data_dir / "spool") if log_rows else None
        if usage_log is not None:
            # rows spooled by workers that died are written once (several workers may start
            # together: each leftover spool file is claimed by one of them)
            await usage_log.recover()
            usage_log.start()
        # daily aggregates and retention; one worker per round does it (requestlog/retention.py)
        self._rollup = UsageRollup(repo.log_engine, retention_days=s.log_retention_days)
        self._rollup.start()
        access = None
        if logging.getLogger("relaygate.access").isEnabledFor(logging.INFO):
            access = AccessLog()
            access.start()
        shared = await create_shared_state(s)  # Redis when RELAYGATE_REDIS_URL is set
        billing = self._billing(repo, catalog, usage_log, prices)
        router = Router(catalog, s.affinity)
        breakers = Breakers(shared, s)
        breakers.start(router.scopes)
        tokens = TokenCache(transport)
        adaptors = AdaptorRegistry()
        health = ChannelHealth(
            catalog=catalog,
            channels=repo.channels,
            router=router,
            adaptors=adaptors,
            tokens=tokens,
            transport=transport,
            shared=shared,
            test_timeout=s.channel_test_timeout,
            reject_ttl=s.key_reject_ttl,
        )
        router.usable_keys = health.usable_keys
        health.start(s.channel_test_interval)  # shared view of rejected keys; the scheduler
        online = build_online(s.data_dir)  # RELAYGATE_SEARCH_* (docs/online.md)
        safety, safety_filters = await self._safety(repo, catalog, router, adaptors, transport)
        stages: list[object] = [
            online,  # a prepare stage: the online triggers
            LimitsFilter(shared),
            *safety_filters,  # content safety: word lists, the moderation model
            *([ContentLogFilter()] if s.log_content else []),
            *(load_filter(spec) for spec in s.extra_filters),
        ]
        self.state = AppState(
            settings=s,
            secrets=secrets,
            repo=repo,
            catalog=catalog,
            transport=transport,
            adaptors=adaptors,
            router=router,
            tokens=tokens,
            shared=shared,
            filters=FilterChain(stages),
            billing=billing,
            usage_log=usage_log,
            health=health,
            breakers=breakers,
            slots=Slots(shared, s.workers),
            access_log=access,
            prices=prices,
            online=online,
            safety=safety,
        )
        if safety is not None:  # the word-list filter only while a list holds a word
            safety.pick_chain(self.state, stages)
        self.state.metrics = Metrics(metrics_config(), self.state)  # docs/metrics.md
        self.state.metrics.start()
        self.state.ready = True
        self._watch_termination()
        lower_helper_threads()
        frozen = freeze_startup_heap()
        log.info(
            "relaygate worker ready", extra={"revision": catalog.revision, "frozen_objects": frozen}
        )

    def _billing(
        self,
        repo: Repository,
        catalog: Catalog,
        usage_log: UsageLogWriter | None,
        prices: PriceTable,
    ) -> BillingStage:
        """The billing stage (docs/billing.md) on the worker's one price table (also the
        public catalogue's), and this worker's budget leases (named after its spool, so a
        crash's are found)."""
        s = self.settings
        use_encoding(s.tokenizer)  # a bad name stops the worker here, before serving
        if not s.billing or usage_log is None:
            return NoBilling()

        async def load_prices() -> PriceTable:
            return await PriceTable.load(
                repo.prices, currency=s.currency, usd_rate=s.usd_rate, revision=catalog.revision
            )

        book = Book(repo.leases, usage_log.owner)
        book.start()
        self._book = book
        stage = Billing(
            prices,
            PlanStore(repo.engine),
            book,
            default_max_output=s.default_max_output,
            lease_units=s.lease_units,
        )
        stage.provisional_line = usage_log.provisional_line
        stage.spool_line = usage_log.spool_line
        stage.chain = catalog.chain  # aliases priced by what they stand for (routing.md)
        catalog.listeners.append(lambda rev: stage.config_changed(rev, load_prices))
        catalog.billing_followers.append(stage.forget_packages)
        return stage

    async def _safety(
        self,
        repo: Repository,
        catalog: Catalog,
        router: Router,
        adaptors: AdaptorRegistry,
        transport: Transport,
    ) -> tuple[SafetyRuntime | None, list[object]]:
        """Content safety (``RELAYGATE_SAFETY_*``, docs/safety.md): the word lists compiled
        now and again whenever they change (a catalog listener), the audit writer, the
        filter after the limits, and the moderation model's stage when one is named."""
        cfg = safety_settings()
        if not cfg.enabled:
            return None, []
        holder = ListHolder(repo.safety, compile_policy, t2s=cfg.t2s)
        await holder.load()
        catalog.listeners.append(holder.config_changed)
        audit = SafetyAudit(repo.safety)
        audit.start()
        runtime = SafetyRuntime(cfg, holder, audit, SafetyFilter(holder, audit, cfg))
        filters: list[object] = [runtime.filter]
        if cfg.moderation_model:
            moderator = Moderator(
                cfg, channels=catalog, targets=router, adaptors=adaptors, transport=transport
            )
            filters.append(ModerationFilter(moderator, audit, cfg))
        return runtime, filters

    def _watch_termination(self) -> None:
        """Mark the worker as draining on SIGTERM/SIGINT (``/readyz`` answers 503 so
        load balancers stop sending), then let the server's own handler run: it stops
        accepting and gives open requests ``RELAYGATE_DRAIN_SECONDS`` to finish."""
        for sig in (signal.SIGTERM, signal.SIGINT):
            try:
                previous = signal.getsignal(sig)
            except ValueError:  # pragma: no cover - not the main thread
                return

            def on_signal(signum: int, frame: FrameType | None, previous: Any = previous) -> None:
                if self.state is not None:
                    self.state.draining = True
                if callable(previous):
                    previous(signum, frame)

            try:
                signal.signal(sig, on_signal)
            except ValueError:  # pragma: no cover - not the main thread
                return

    async def shutdown(self) -> None:
        st = self.state
        if st is None:
            return
        st.ready = False
        if st.metrics is not None:
            await st.metrics.close()
        await st.health.stop()
        if st.online is not None:
            await st.online.close()
        if st.safety is not None:
            await st.safety.close()  # the audit rows still queued
        await st.breakers.stop()
        await st.catalog.stop()
        if self._book is not None:
            await self._book.close()  # idle budget shares back to their budgets
        if st.usage_log is not None:
            await st.usage_log.close()
            if self._book is not None and st.usage_log.backlog == 0:
                # every charge is committed: this worker's leases can go (else the next
                # start releases them after replaying the spool)
                with contextlib.suppress(Exception):
                    await st.repo.leases.release_owner(self._book.owner)
        await st.transport.close()
        await st.shared.close()
        if st.access_log is not None:
            await st.access_log.close()
        if self._rollup is not None:
            await self._rollup.close()
        await st.repo.dispose()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "http":
            try:
                await self._http(scope, receive, send)
            except Exception:
                await self._crashed(scope, receive, send)
        elif kind == "lifespan":
            await self._lifespan(receive, send)
        elif kind == "websocket":
            st = self.state
            if st is None or scope["path"] not in REALTIME_PATHS:
                await receive()  # websocket.connect
                await send({"type": "websocket.close", "code": 1008 if st else 1013})
                return
            await handle_realtime(st, scope, receive, send)

    async def _crashed(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Last resort for an exception no handler caught: log it and answer with the
        JSON error envelope (if the response has not started), never plain text."""
        req = Request(scope, receive, send, False)
        log.exception(
            "unhandled error", extra={"request_id": req.request_id, "path": scope.get("path")}
        )
        err = RelayError(
            "The gateway failed unexpectedly; the operator can find request id "
            f"{req.request_id} in the logs."
        )
        with contextlib.suppress(Exception):  # the response had started: nothing more to say
            await self._reject(req, err)

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
        method: str = scope["method"]
        if path.startswith("/admin/api") and st is not None:
            await self._admin(scope, receive, send)
            return
        if (path == "/console" or path.startswith("/console/")) and st is not None:
            await self._console(scope, receive, send)
            return
        req = Request(scope, receive, send, s.trust_request_id)
        if self.cors.enabled:
            origin = req.headers.get(b"origin")
            if origin is not None:
                allow = self.cors.allowed(origin)
                if allow is not None:
                    if method == "OPTIONS" and b"access-control-request-method" in req.headers:
                        await self._preflight(req, path, allow)
                        return
                    req.send = self.cors.wrap(send, allow)
        if st is None:
            await self._reject(req, ServiceUnavailable("The gateway is starting; retry shortly."))
            return
        handler = RELAY_ROUTES.get((method, path))
        if handler is not None:
            if st.inflight >= s.max_inflight:
                st.shed += 1  # bounded in-flight work: answer at once instead of queueing
                await self._reject(
                    req, ServiceUnavailable("The gateway is at capacity; retry shortly.")
                )
                return
            req.send = gzip_send(req.send, req.headers)  # large JSON answers (edge/gzip.py)
            st.inflight += 1
            try:
                await handler(st, req)
            finally:
                st.inflight -= 1
            return
        if await self._extra(st, req, path, method):
            return
        if path in ACCOUNT_PATHS and await handle_account(st, req):
            return
        if method == "GET":
            health = HEALTH.get(path)
            if health is not None:
                await health(st, req)
                return
            detail = model_id(path)
            if detail is not None:
                await handle_model(st, req, detail)
                return
        await self._unmatched(req, path, method)

    async def _extra(self, st: AppState, req: Request, path: str, method: str) -> bool:
        """The other client formats and the rest of the API surface (``dispatch.py``
        ``extra_call``), within the in-flight bound. False when ``path`` is none of them."""
        try:
            call = extra_call(st, req, path, method)
        except RelayError as err:  # an object path with a malformed id
            await self._reject(req, err)
            return True
        if call is None:
            return False
        if st.inflight >= self.settings.max_inflight:
            st.shed += 1
            await self._reject(
                req, ServiceUnavailable("The gateway is at capacity; retry shortly.")
            )
            return True
        st.inflight += 1
        try:
            await call()
        finally:
            st.inflight -= 1
        return True

    async def _unmatched(self, req: Request, path: str, method: str) -> None:
        allowed = allowed_methods(path)
        if allowed is not None and method not in allowed:
            if method == "OPTIONS":  # a plain OPTIONS (no CORS preflight): say what is served
                await send_json(
                    req.send, 204, b"", req.request_id, [(b"allow", ", ".join(allowed).encode())]
                )
                return
            err = RelayError(
                f"{method} is not allowed on {path}; use {' or '.join(allowed)}.",
                code="method_not_allowed",
                status=405,
            )
            s = self.settings
            body = error_body(err, envelope=s.envelope, status=405)
            extra = [(b"allow", ", ".join(allowed).encode())]
            await send_json(req.send, 405, body, req.request_id, extra)
            return
        err2: RelayError
        if path.startswith(NOT_YET) or ("/v1" + path).startswith(NOT_YET):
            err2 = NotImplementedByProvider(
                f"{method} {path} is not supported by this gateway yet."
            )
        else:
            err2 = NotFound(f"Unknown URL: {method} {path}.")
        await self._reject(req, err2)

    async def _preflight(self, req: Request, path: str, allow: bytes) -> None:
        methods = allowed_methods(path)
        if methods is None:
            try:
                is_object = parse_object_path(path if path.startswith("/v1/") else "/v1" + path)
            except RelayError:
                is_object = None
            # object endpoints (relay/objects.py) take GET, POST and DELETE; a route not
            # built yet takes POST (its 501 comes with the request itself)
            methods = ("GET", "POST", "DELETE") if is_object is not None else ("POST",)
        headers = self.cors.preflight_headers(
            allow, (*methods, "OPTIONS"), req.headers.get(b"access-control-request-headers")
        )
        await req.send({"type": "http.response.start", "status": 204, "headers": headers})
        await req.send({"type": "http.response.body", "body": b""})

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
