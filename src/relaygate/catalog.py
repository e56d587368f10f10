"""In-memory view of keys, users, channels and models, served to the hot path.

The snapshot is rebuilt from the database when the ``config`` revision changes:
immediately in the worker that made the change; with Redis, in every other worker and node as
soon as the change is announced (``sharedstate/broadcast.py`` calls :meth:`Catalog.follow`,
typically a few milliseconds); and in any case within ``RELAYGATE_REFRESH_INTERVAL`` seconds
(polling: the fallback while Redis is away, and without Redis).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from relaygate.errors import AuthError, ModelNotFound, PolicyError
from relaygate.storage import revisions
from relaygate.storage.records import ChannelRecord, KeyRecord, ModelRouteRecord, UserRecord
from relaygate.storage.repo import Repository, Snapshot

if TYPE_CHECKING:
    from relaygate.sharedstate.broadcast import ConfigBroadcast

__all__ = ["Catalog", "ModelEntry"]

log = logging.getLogger("relaygate.catalog")


@dataclass(slots=True, frozen=True)
class ModelEntry:
    id: str
    owned_by: str
    created: int


def _expand(name: str, routes: Mapping[str, ModelRouteRecord]) -> tuple[str, ...]:
    """``name``, then its fallbacks in order, each route expanded in place; a model
    appears once, and a cycle (refused when saved) cannot loop."""
    out: list[str] = []
    seen: set[str] = set()

    def walk(model: str) -> None:
        if model in seen:
            return
        seen.add(model)
        out.append(model)
        route = routes.get(model)
        if route is not None:
            for fallback in route.fallbacks:
                walk(fallback)

    walk(name)
    return tuple(out)


class Catalog:
    def __init__(self, repo: Repository) -> None:
        self._repo = repo
        self._snap = Snapshot(0, {}, {}, ())
        self._by_model: dict[str, list[ChannelRecord]] = {}
        self._models: dict[str, ModelEntry] = {}
        self._known_models: set[str] = set()
        self._chains: dict[str, tuple[str, ...]] = {}  # model route -> models to try, in order
        self._hedges: dict[str, float] = {}  # model -> hedging threshold (seconds)
        self._shaping: dict[str, dict[str, Any]] = {}  # model -> shaping rules (routes)
        self._task: asyncio.Task[None] | None = None
        self._reloading = asyncio.Lock()  # one check-and-reload at a time (poll, broadcast)
        self.broadcast: ConfigBroadcast | None = None  # with Redis (start_refresh)
        #: called after every (re)load: caches built from the same revision (prices)
        self.listeners: list[Callable[[int], Awaitable[None]]] = []
        #: called when another worker announces a ``billing`` change (plans, packages,
        #: codes): the billing stage forgets its cached package lists at once
        self.billing_followers: list[Callable[[], None]] = []

    # ---- loading ----------------------------------------------------------
    async def load(self) -> None:
        snap = await self._repo.snapshot()
        by_model: dict[str, list[ChannelRecord]] = {}
        known: set[str] = set()
        models: dict[str, ModelEntry] = {}
        for ch in snap.channels:
            known.update(ch.models)
            if ch.status != "enabled":
                continue
            for m in ch.models:
                by_model.setdefault(m, []).append(ch)
                if m not in models:
                    if ch.is_emulator:
                        owner = "relaygate-emulator"
                    else:
                        owner = ch.profile if ch.provider == "openai_compat" else ch.provider
                    models[m] = ModelEntry(m, owner, int(ch.created_at.timestamp()))
        for chans in by_model.values():
            chans.sort(key=lambda c: (-c.priority, c.id))
        chains: dict[str, tuple[str, ...]] = {}
        hedges: dict[str, float] = {}
        shaping: dict[str, dict[str, Any]] = {}
        for name, route in snap.routes.items():
            if route.shaping:
                shaping[name] = route.shaping
            chain = chains[name] = _expand(name, snap.routes)
            if route.hedge_after_ms:
                hedges[name] = route.hedge_after_ms / 1000
            known.add(name)
            served = next((models[m] for m in chain if m in models), None)
            if name not in models and served is not None:  # an alias: listed like a model
                models[name] = ModelEntry(name, served.owned_by, int(route.created_at.timestamp()))
        self._snap, self._by_model, self._models, self._known_models = snap, by_model, models, known
        self._chains, self._hedges, self._shaping = chains, hedges, shaping
        for listener in self.listeners:
            try:
                await listener(snap.revision)
            except Exception:
                log.warning("a configuration listener failed", exc_info=True)

    @property
    def revision(self) -> int:
        return self._snap.revision

    def start_refresh(self, interval: float, redis_url: str = "", redis_prefix: str = "") -> None:
        """Poll the revision every ``interval`` seconds; with ``redis_url``, also announce
        this worker's changes and follow everyone's (``sharedstate/broadcast.py``)."""
        self._task = asyncio.get_running_loop().create_task(self._refresh_loop(interval))
        if redis_url:
            # imported only when configured (the redis client's memory, as sharedstate/)
            from relaygate.sharedstate.broadcast import ConfigBroadcast

            try:
                self.broadcast = ConfigBroadcast(
                    redis_url, redis_prefix, self.follow, revisions.on_bump
                )
            except ValueError:  # a malformed URL (the shared state logs it): polling only
                return
            self.broadcast.start()

    async def _refresh_loop(self, interval: float) -> None:
        while True:
            await asyncio.sleep(interval)
            try:
                await self._reload_if_newer("poll")
            except Exception:
                log.warning(
                    "configuration refresh failed; serving the last snapshot", exc_info=True
                )

    async def _reload_if_newer(self, why: str) -> bool:
        async with self._reloading:
            if await self._repo.revision() == self._snap.revision:
                return False
            await self.load()
        log.info("configuration reloaded", extra={"revision": self._snap.revision, "by": why})
        return True

    async def follow(self, name: str, revision: int | None) -> None:
        """A configuration change was announced (``sharedstate/broadcast.py``): reload once
        the database shows ``revision`` of ``name`` (None: check whether anything changed).
        The announcement may arrive a moment before the writer's commit is visible, so
        the check is repeated a few times over about a second; polling covers the rest."""
        if name == "billing":  # plans and packages: cached for seconds per worker
            for forget in self.billing_followers:
                forget()
            return
        if name != "config":  # ``safety`` also bumps ``config``
            return
        for pause in (0.0, 0.01, 0.03, 0.1, 0.3, 0.6):
            if revision is not None and self._snap.revision >= revision:
                return
            if pause:
                await asyncio.sleep(pause)
            try:
                if await self._reload_if_newer("broadcast") and revision is None:
                    return
            except Exception:
                log.warning("reloading an announced configuration failed", exc_info=True)
                return
            if revision is None:
                return

    async def reload_if_changed(self) -> bool:
        """Reload now if the database holds a newer revision (one small query).

        For paths off the hot path (the admin API) that must see a change made by
        another process at once, e.g. a token just printed by ``admin bootstrap``.
        """
        if await self._repo.revision() != self._snap.revision:
            await self.load()
            return True
        return False

    async def stop(self) -> None:
        if self.broadcast is not None:
            await self.broadcast.close()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    # ---- hot path ---------------------------------------------------------
    def authenticate(self, key_hash: str) -> tuple[KeyRecord, UserRecord]:
        key = self._snap.keys.get(key_hash)
        if key is None or key.status != "active":
            raise AuthError("Invalid API key. Check the key you sent or create a new one.")
        if key.expires_at is not None and key.expires_at <= datetime.now(UTC):
            raise AuthError("This API key has expired. Ask the operator for a new key.")
        user = self._snap.users.get(key.user_id)
        if user is None:
            raise AuthError("Invalid API key. Check the key you sent or create a new one.")
        if user.status != "active":
            raise PolicyError(
                "This account is disabled. Contact the operator.", code="account_disabled"
            )
        return key, user

    def channels_for(self, model: str) -> list[ChannelRecord] | None:
        """Enabled channels serving ``model``, highest priority first (lowest id on a
        tie); ``None`` when none is enabled. Routing (``routing/``) orders them."""
        return self._by_model.get(model)

    def chain(self, model: str) -> tuple[str, ...]:
        """The models that serve a request for ``model``, in order: the model itself,
        then its route's fallbacks (expanded; an alias's own entry has no channels)."""
        return self._chains.get(model) or (model,)

    def hedge_after(self, model: str) -> float | None:
        """Seconds without a first byte after which a request for ``model`` is hedged."""
        return self._hedges.get(model)

    def shaping(self, model: str) -> dict[str, Any] | None:
        """The request-shaping rules of requests for ``model`` (its route's ``shaping``;
        ``services/shaping.py``), None when it has none."""
        return self._shaping.get(model) if self._shaping else None

    def all_channels(self) -> tuple[ChannelRecord, ...]:
        """Every channel of the snapshot, whatever its status (health checks, admin)."""
        return self._snap.channels

    def is_known(self, model: str) -> bool:
        """Whether any channel, enabled or not, lists ``model``."""
        return model in self._known_models

    def models_for(self, key: KeyRecord) -> list[ModelEntry]:
        allowed = key.models
        return [m for name, m in sorted(self._models.items()) if allowed is None or name in allowed]

    def model_for(self, key: KeyRecord, model: str) -> ModelEntry:
        entry = self._models.get(model)
        if entry is None or (key.models is not None and model not in key.models):
            raise ModelNotFound(f"The model `{model}` does not exist.", param="model")
        return entry
