"""Redis with a local fallback: the shared state a worker uses when ``RELAYGATE_REDIS_URL`` is
set (docs/limits.md, "When Redis is away").

While Redis answers, every call goes straight to :class:`~relaygate.sharedstate.redis.RedisState`
(no extra round trip, no extra suspension). The first call that fails or times out marks Redis
as away: one warning is logged for the outage and from then on the counting calls (counters,
reservations, request and token windows) are answered by an in-process
:class:`~relaygate.sharedstate.memory.InProcessState`, with every limit scaled by the worker's
local share (``RELAYGATE_LOCAL_LIMIT_SHARE``, by default ``1 / RELAYGATE_WORKERS``, at least 1),
so limits still hold — per worker — and never fail open. The cached values (``get``/``set``/
``delete``: circuit states, rejected upstream keys) raise :class:`SharedStateError` instead, so
their callers keep the view they last read rather than trusting a private, empty one.

A reservation is released in the store it was taken in: amounts reserved locally are tracked
per key, and a Redis reservation given back while Redis is away is queued. A probe PINGs Redis
every ``probe_every`` seconds; when it answers, new calls go to Redis again and the outage is
reconciled: the queued releases are replayed, the local counters (concurrency slots still held,
daily request counts) are added to Redis's, the tokens the local token windows counted are added
to Redis's windows, and the local admissions of the request windows are merged into Redis's (at
their own times) — so RPM and TPM limits remember what was used during the outage.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

from relaygate.sharedstate.base import SharedStateError, SharedStateUnavailable
from relaygate.sharedstate.memory import InProcessState
from relaygate.sharedstate.redis import RedisState

__all__ = ["FallbackState"]

log = logging.getLogger("relaygate.sharedstate")


class FallbackState:
    def __init__(
        self,
        primary: RedisState,
        share: float = 1.0,
        probe_every: float = 1.0,
        up: bool = True,
    ) -> None:
        self._p = primary
        self._local = InProcessState()
        self.share = share
        self._every = probe_every
        self._up = up
        self._held: dict[str, int] = {}  # amounts reserved locally and not yet released
        self._releases: list[tuple[str, int]] = []  # Redis reservations freed while away
        self._windows: dict[str, float] = {}  # token windows written locally -> window
        self._hits: dict[str, float] = {}  # request windows admitted locally -> window
        self._moving: set[str] = set()  # local counters not yet added to Redis's
        self._deferred: dict[str, int] = {}  # releases of those, applied once moved
        self._reconciling = False  # Redis answers again; the outage's counts are being added
        self._probe: asyncio.Task[None] | None = None
        self._since = 0.0
        #: outages seen by this worker (for tests and logs)
        self.outages = 0
        if not up:
            self._since = time.monotonic()
            self.outages = 1
            self._start_probe()

    @property
    def primary(self) -> RedisState:
        return self._p

    @property
    def degraded(self) -> bool:
        """True while Redis is away and the local state answers, and until what the outage
        counted has been added to Redis (new calls already go there meanwhile)."""
        return not self._up or self._reconciling

    def _cap(self, limit: int) -> int:
        return max(1, int(limit * self.share))

    def _fail(self, exc: SharedStateError) -> None:
        if not self._up:
            return
        self._up = False
        self.outages += 1
        self._since = time.monotonic()
        log.warning(
            "Redis unavailable: limits are enforced by this worker alone until it is back",
            extra={"error": str(exc), "local_limit_share": self.share},
        )
        self._start_probe()

    def _start_probe(self) -> None:
        if self._probe is None or self._probe.done():
            self._probe = asyncio.get_running_loop().create_task(self._probe_loop())

    # ---- counting: Redis, else local -----------------------------------------------------
    async def incr(self, key: str, amount: int = 1, ttl: float | None = None) -> int:
        if self._up:
            try:
                return await self._p.incr(key, amount, ttl)
            except SharedStateUnavailable as exc:
                self._fail(exc)
        return await self._local.incr(key, amount, ttl)

    async def reserve(self, key: str, amount: int, limit: int, ttl: float | None = None) -> bool:
        if self._up:
            try:
                return await self._p.reserve(key, amount, limit, ttl)
            except SharedStateUnavailable as exc:
                self._fail(exc)
        ok = await self._local.reserve(key, amount, self._cap(limit), ttl)
        if ok:
            self._held[key] = self._held.get(key, 0) + amount
        return ok

    async def release(self, key: str, amount: int) -> None:
        held = self._held.get(key)
        if held:  # taken locally: given back locally
            if held <= amount:
                del self._held[key]
            else:
                self._held[key] = held - amount
            await self._local.release(key, amount)
            return
        if self._moving and key in self._moving:  # being added to Redis: after that
            self._deferred[key] = self._deferred.get(key, 0) + amount
            return
        if self._up:
            try:
                await self._p.release(key, amount)
                return
            except SharedStateUnavailable as exc:
                self._fail(exc)
        self._releases.append((key, amount))  # taken in Redis: given back there later

    async def hit_window(self, key: str, limit: int, window: float) -> float | None:
        if self._up:
            try:
                return await self._p.hit_window(key, limit, window)
            except SharedStateUnavailable as exc:
                self._fail(exc)
        self._hits[key] = window
        return await self._local.hit_window(key, self._cap(limit), window)

    async def undo_hit(self, key: str) -> None:
        if self._up:
            try:
                await self._p.undo_hit(key)
                return
            except SharedStateUnavailable as exc:
                self._fail(exc)
        await self._local.undo_hit(key)

    async def add_window(self, key: str, amount: int, window: float) -> None:
        if self._up:
            try:
                await self._p.add_window(key, amount, window)
                return
            except SharedStateUnavailable as exc:
                self._fail(exc)
        self._windows[key] = window
        await self._local.add_window(key, amount, window)

    async def window_total(self, key: str, window: float) -> int:
        if self._up:
            try:
                return await self._p.window_total(key, window)
            except SharedStateUnavailable as exc:
                self._fail(exc)
        return await self._local.window_total(key, window)

    async def window_over(self, key: str, limit: int, window: float) -> float | None:
        if self._up:
            try:
                return await self._p.window_over(key, limit, window)
            except SharedStateUnavailable as exc:
                self._fail(exc)
        return await self._local.window_over(key, self._cap(limit), window)

    # ---- cached values: Redis only (callers keep their last view while it is away) -------
    def _away(self) -> SharedStateUnavailable:
        return SharedStateUnavailable("Redis is away (the local fallback holds no shared values)")

    async def get(self, key: str) -> bytes | None:
        if not self._up:
            raise self._away()
        try:
            return await self._p.get(key)
        except SharedStateUnavailable as exc:
            self._fail(exc)
            raise

    async def get_many(self, keys: list[str]) -> list[bytes | None]:
        if not self._up:
            raise self._away()
        try:
            return await self._p.get_many(keys)
        except SharedStateUnavailable as exc:
            self._fail(exc)
            raise

    async def set(self, key: str, value: bytes, ttl: float | None = None) -> None:
        if not self._up:
            raise self._away()
        try:
            await self._p.set(key, value, ttl)
        except SharedStateUnavailable as exc:
            self._fail(exc)
            raise

    async def delete(self, key: str) -> None:
        if not self._up:
            raise self._away()
        try:
            await self._p.delete(key)
        except SharedStateUnavailable as exc:
            self._fail(exc)
            raise

    # ---- coming back ----------------------------------------------------------------------
    async def _probe_loop(self) -> None:
        while not self._up:
            await asyncio.sleep(self._every)
            try:
                await self._p.ping()
            except SharedStateError:
                continue
            await self._p.reset_connections()  # connections from before the outage are dead
            await self._reconcile()

    async def _reconcile(self) -> None:
        """Redis answers again: new calls go there, and what was counted locally is added."""
        releases, self._releases = self._releases, []
        counters, sums, hits = self._local.drain(self._windows, self._hits)
        self._held.clear()
        self._windows = {}
        self._hits = {}
        self._moving = {key for key, _, _ in counters}
        self._up = True
        self._reconciling = True
        replayed = added = 0
        try:
            for key, amount in releases:
                await self._p.release(key, amount)
                replayed += 1
            for key, value, ttl in counters:
                await self._p.incr(key, value, ttl)
                self._moving.discard(key)
                freed = self._deferred.pop(key, 0)
                if freed:
                    await self._p.release(key, freed)
            for key, total, window in sums:
                await self._p.add_window(key, total, window)
                added += 1
            for key, ages, window in hits:
                await self._p.merge_hits(key, ages, window)
        except SharedStateError as exc:
            # the admissions not merged are dropped: the local window restarts empty
            await self._keep(releases[replayed:], counters, sums[added:])
            self._fail(exc)
            return
        finally:
            self._reconciling = False
        log.warning(
            "Redis is back: limits are shared again",
            extra={
                "outage_seconds": round(time.monotonic() - self._since, 1),
                "releases_replayed": len(releases),
                "counters_added": len(counters),
                "token_windows_added": len(sums),
                "request_windows_merged": len(hits),
            },
        )

    async def _keep(
        self,
        releases: list[tuple[str, int]],
        counters: list[tuple[str, int, float | None]],
        sums: list[tuple[str, int, float]],
    ) -> None:
        """Away again while reconciling: what is not in Redis yet stays local, for next time."""
        self._releases = releases + self._releases
        for key, value, ttl in counters:
            if key in self._moving:
                value -= self._deferred.pop(key, 0)
                if value > 0:
                    await self._local.incr(key, value, ttl)
                    self._held[key] = self._held.get(key, 0) + value
        for key, total, window in sums:
            self._windows[key] = window
            await self._local.add_window(key, total, window)
        self._moving = set()
        self._deferred.clear()

    async def close(self) -> None:
        if self._probe is not None:
            self._probe.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._probe
        await self._p.close()
        await self._local.close()
