"""Circuit breakers per channel and per channel+model (docs/routing.md, "Circuits").

A circuit opens after a run of ``breaker_failures`` failures in a row, or when the
failure rate over ``breaker_window`` seconds reaches ``breaker_rate`` once the window
holds ``breaker_min_requests`` outcomes. An open circuit keeps its channel (or its
channel for that model) out of the first pass of the attempt loop for a cool-down;
then one request at a time may *probe* it (half-open): a success closes it, a failure
opens it again for twice as long (up to ``breaker_max_cooldown``). An upstream 429 with
``Retry-After`` opens the channel+model circuit for that long without counting as a
failure.

Which failures count where: a connection failure counts against the channel (every
model on it); a timeout or an upstream 5xx counts against the channel+model.

Cost on the hot path: outcomes are kept only for scopes that have failed recently, so a
healthy gateway does one empty-dict test per attempt. Circuits are shared through
:class:`~relaygate.sharedstate.base.SharedState`: opening or closing one writes
``cb:<scope>`` and bumps the ``cb:rev`` counter; every worker reads ``cb:rev`` every
``breaker_sync`` seconds and, when it moved, every circuit in one ``get_many`` — so with
Redis the workers of every node agree within about half a second. With in-process state
each worker keeps its own circuits.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Iterable
from typing import Any

from relaygate.settings import Settings
from relaygate.sharedstate.base import SharedState
from relaygate.sharedstate.memory import InProcessState

__all__ = ["ADMIT", "OPEN", "PROBE", "Breakers", "Scope"]

log = logging.getLogger("relaygate.routing")

Scope = tuple[int, str]  # (channel id, model); model "" = the whole channel

ADMIT, PROBE, OPEN = 0, 1, 2

#: a granted probe that never reported back (its request was cut) frees the slot after this
PROBE_TIMEOUT = 60.0


class _Circuit:
    __slots__ = ("bad", "cooldown", "ok", "open_until", "probing", "run", "window_end")

    def __init__(self, now: float, window: float, cooldown: float) -> None:
        self.ok = 0
        self.bad = 0
        self.run = 0
        self.window_end = now + window
        self.open_until = 0.0  # 0: closed
        self.cooldown = cooldown
        self.probing = 0.0  # when the probe in flight was granted (0: none)


class Breakers:
    def __init__(
        self, shared: SharedState, settings: Settings, clock: Callable[[], float] = time.time
    ) -> None:
        self._shared = shared
        self._s = settings
        self._now = clock
        self._circuits: dict[Scope, _Circuit] = {}
        #: the hot path's view: scopes whose circuit is open or half-open
        self.open: dict[Scope, _Circuit] = {}
        self._rev = -1
        self._tasks: set[asyncio.Task[None]] = set()
        self._sync: asyncio.Task[None] | None = None
        self._scopes: Callable[[], Iterable[Scope]] = tuple

    # ---- hot path ---------------------------------------------------------
    @property
    def tracking(self) -> bool:
        """Whether any circuit holds outcomes (else a success has nothing to update)."""
        return bool(self._circuits)

    def admit(self, channel_id: int, model: str) -> int:
        """Whether an attempt may go to ``channel_id`` for ``model`` now: ``ADMIT``,
        ``PROBE`` (the one half-open probe, granted to this caller; report its outcome)
        or ``OPEN``. Call only when :attr:`open` is non-empty."""
        verdict = ADMIT
        for scope in ((channel_id, ""), (channel_id, model)):
            c = self.open.get(scope)
            if c is None:
                continue
            now = self._now()
            if now < c.open_until or (c.probing and now - c.probing < PROBE_TIMEOUT):
                return OPEN
            verdict = PROBE
        if verdict == PROBE:  # grant the probe on every open scope of this pair
            now = self._now()
            for scope in ((channel_id, ""), (channel_id, model)):
                c = self.open.get(scope)
                if c is not None:
                    c.probing = now
        return verdict

    def success(self, channel_id: int, model: str) -> None:
        if not self._circuits:
            return
        for scope in ((channel_id, ""), (channel_id, model)):
            c = self._circuits.get(scope)
            if c is None:
                continue
            c.run = 0
            if c.open_until:
                self._close(scope, c)
                continue
            now = self._now()
            if now >= c.window_end:
                if c.bad == 0:
                    del self._circuits[scope]  # healthy for a whole window: forget it
                    continue
                c.ok = c.bad = 0
                c.window_end = now + self._s.breaker_window
            c.ok += 1

    def failure(self, channel_id: int, model: str, channel_wide: bool = False) -> None:
        """A failure of the channel for ``model``, counted against the whole channel when
        ``channel_wide`` (it could not be reached), else against the channel+model. A probe
        in flight on the other scope of the pair failed with it."""
        scope = (channel_id, "" if channel_wide else model)
        now = self._now()
        other = self.open.get((channel_id, model if channel_wide else ""))
        if other is not None and other.probing:
            self._reopen((channel_id, model if channel_wide else ""), other, now)
        c = self._circuits.get(scope)
        if c is None:
            c = self._circuits[scope] = _Circuit(now, self._s.breaker_window, 0.0)
        if now >= c.window_end:
            c.ok = c.bad = 0
            c.window_end = now + self._s.breaker_window
        c.bad += 1
        c.run += 1
        if c.probing:  # the probe failed: open again, for longer
            self._reopen(scope, c, now)
        elif not c.open_until:
            total = c.ok + c.bad
            s = self._s
            if c.run >= s.breaker_failures or (
                total >= s.breaker_min_requests and c.bad >= s.breaker_rate * total
            ):
                self._open(scope, c, s.breaker_cooldown, now)

    def _reopen(self, scope: Scope, c: _Circuit, now: float) -> None:
        cooldown = min(max(c.cooldown * 2, self._s.breaker_cooldown), self._max())
        self._open(scope, c, cooldown, now)

    def abandon(self, channel_id: int, model: str) -> None:
        """A granted probe ended without an outcome (the client left): free the slot."""
        for scope in ((channel_id, ""), (channel_id, model)):
            c = self.open.get(scope)
            if c is not None:
                c.probing = 0.0

    def cool(self, channel_id: int, model: str, seconds: float) -> None:
        """The upstream asked for a pause (429 ``Retry-After``): keep the channel out of
        first choice for ``model`` that long, without counting a failure."""
        scope = (channel_id, model)
        now = self._now()
        c = self._circuits.get(scope)
        if c is None:
            c = self._circuits[scope] = _Circuit(now, self._s.breaker_window, 0.0)
        if now + seconds > c.open_until:
            self._open(scope, c, seconds, now, cooldown=c.cooldown)

    # ---- transitions ------------------------------------------------------
    def _max(self) -> float:
        return max(self._s.breaker_max_cooldown, self._s.breaker_cooldown)

    def _open(
        self, scope: Scope, c: _Circuit, seconds: float, now: float, cooldown: float | None = None
    ) -> None:
        c.open_until = now + seconds
        c.cooldown = seconds if cooldown is None else cooldown
        c.probing = 0.0
        self.open[scope] = c
        log.warning(
            "circuit opened",
            extra={"channel_id": scope[0], "model": scope[1] or None, "seconds": seconds},
        )
        self._publish(scope, c)

    def _close(self, scope: Scope, c: _Circuit) -> None:
        self._close_quietly(scope, c)
        log.info("circuit closed", extra={"channel_id": scope[0], "model": scope[1] or None})
        self._publish(scope, None)

    # ---- sharing ----------------------------------------------------------
    @staticmethod
    def _key(scope: Scope) -> str:
        return f"cb:{scope[0]}:{scope[1]}"

    def _publish(self, scope: Scope, c: _Circuit | None) -> None:
        if isinstance(self._shared, InProcessState):
            return  # nobody else reads it
        task = asyncio.get_running_loop().create_task(self._write(scope, c))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _write(self, scope: Scope, c: _Circuit | None) -> None:
        try:
            if c is None:
                await self._shared.delete(self._key(scope))
            else:
                value = f"{c.open_until:.3f} {c.cooldown:.3f}".encode()
                await self._shared.set(self._key(scope), value, ttl=c.cooldown + 3600)
            rev = await self._shared.incr("cb:rev")
            if rev == self._rev + 1:  # only our own change since the last read
                self._rev = rev
        except Exception:
            log.warning("could not share a circuit's state", exc_info=True)

    def start(self, scopes: Callable[[], Iterable[Scope]]) -> None:
        """Read circuits other workers opened or closed, every ``breaker_sync`` seconds.
        ``scopes`` lists every (channel, model) and (channel, "") worth reading."""
        self._scopes = scopes
        if isinstance(self._shared, InProcessState) or self._s.breaker_sync <= 0:
            return
        self._sync = asyncio.get_running_loop().create_task(self._sync_loop())

    async def _sync_loop(self) -> None:
        while True:
            await asyncio.sleep(self._s.breaker_sync)
            try:
                await self.sync()
            except Exception:
                log.debug("circuit sync failed", exc_info=True)

    async def sync(self) -> None:
        rev = await self._shared.incr("cb:rev", 0)
        if rev == self._rev:
            return
        self._rev = rev
        scopes = list(self._scopes())
        values = await self._shared.get_many([self._key(s) for s in scopes])
        now = self._now()
        for scope, raw in zip(scopes, values, strict=True):
            c = self._circuits.get(scope)
            if raw is None:
                if c is not None and c.open_until:
                    self._close_quietly(scope, c)
                continue
            until_s, _, cooldown_s = raw.decode().partition(" ")
            until, cooldown = float(until_s), float(cooldown_s or 0)
            if c is None:
                c = self._circuits[scope] = _Circuit(now, self._s.breaker_window, cooldown)
            if until > c.open_until:
                c.open_until, c.cooldown, c.probing = until, cooldown, 0.0
                self.open[scope] = c

    def _close_quietly(self, scope: Scope, c: _Circuit) -> None:
        """Close without telling the others (they told us, or :meth:`_close` will)."""
        c.open_until = c.probing = c.cooldown = 0.0
        c.ok = c.bad = c.run = 0
        self.open.pop(scope, None)

    async def stop(self) -> None:
        if self._sync is not None:
            self._sync.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sync
        for task in list(self._tasks):
            with contextlib.suppress(Exception):
                await task

    # ---- admin ------------------------------------------------------------
    def states(self) -> list[dict[str, Any]]:
        """Every circuit this worker tracks (admin API)."""
        now = self._now()
        out = []
        for (channel_id, model), c in sorted(self._circuits.items()):
            if c.open_until and now < c.open_until:
                state = "open"
            elif c.open_until:
                state = "half_open"
            else:
                state = "closed"
            out.append(
                {
                    "channel_id": channel_id,
                    "model": model or None,
                    "state": state,
                    "open_seconds_left": round(max(c.open_until - now, 0.0), 3),
                    "failures_in_a_row": c.run,
                    "window": {"ok": c.ok, "failed": c.bad},
                }
            )
        return out
