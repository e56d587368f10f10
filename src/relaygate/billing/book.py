"""This worker's side of the budget leases (``storage/leases.py``): reservations and
settlements happen here, in memory, against what the worker has leased.

Per budget (``(scope, target)``) the book keeps ``granted`` (leased from the database,
minus what was given back), ``spent`` (charges settled here, committed or not) and
``reserved`` (requests in flight). ``granted - spent - reserved`` is what this worker
may still promise. When it is not enough, one database round trip leases more; when a
budget has been idle for a while, the unpromised rest is given back so other workers
(and balance displays) see it. A charge beyond its reservation (an upstream that
ignored ``max_tokens``) makes the free part negative; the next reservation leases the
deficit first.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass, field

from relaygate.storage.leases import LeaseStore

__all__ = ["Book"]

log = logging.getLogger("relaygate.billing")

Budget = tuple[str, int]  # (scope, target id)


@dataclass(slots=True)
class _Local:
    granted: int = 0
    spent: int = 0
    reserved: int = 0
    used_at: float = 0.0
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)


class Book:
    def __init__(self, leases: LeaseStore, owner: str, *, idle_return: float = 2.0) -> None:
        self._leases = leases
        self.owner = owner
        self._idle_return = idle_return
        self._local: dict[Budget, _Local] = {}
        self._task: asyncio.Task[None] | None = None

    async def reserve(self, budget: Budget, amount: int, want: int) -> bool:
        """Promise ``amount`` of a budget to a request; leases more (up to ``want``) when
        this worker's share does not cover it. False when the budget cannot cover it."""
        loc = self._local.get(budget)
        if loc is None:
            loc = self._local[budget] = _Local()
        loc.used_at = time.monotonic()
        if loc.granted - loc.spent - loc.reserved >= amount:
            loc.reserved += amount
            return True
        async with loc.lock:  # one lease round trip per budget at a time
            short = amount - (loc.granted - loc.spent - loc.reserved)
            if short > 0:
                got = await self._leases.acquire(
                    self.owner, budget[0], budget[1], short, max(short, want)
                )
                if got == 0:
                    return False
                loc.granted += got
            loc.reserved += amount
            return True

    def settle(self, budget: Budget, reserved: int, charged: int) -> None:
        """A request is over: its promise ends and ``charged`` is spent."""
        loc = self._local.get(budget)
        if loc is None:  # pragma: no cover - settle without reserve is a programming error
            return
        loc.reserved -= reserved
        loc.spent += charged
        loc.used_at = time.monotonic()

    # ---- background: give idle shares back ------------------------------------------
    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def _run(self) -> None:
        renew_at = time.monotonic() + 60.0
        while True:
            await asyncio.sleep(self._idle_return / 2)
            try:
                await self.give_back_idle()
                if time.monotonic() >= renew_at:
                    renew_at = time.monotonic() + 60.0
                    await self._leases.renew(self.owner)
            except Exception:
                log.warning("giving back idle budget leases failed; retrying", exc_info=True)

    async def give_back_idle(self, *, all_idle: bool = False) -> int:
        """Give back the unpromised share of every budget idle for ``idle_return``
        seconds (every budget with nothing in flight when ``all_idle``)."""
        now = time.monotonic()
        total = 0
        for budget, loc in list(self._local.items()):
            if loc.reserved or loc.lock.locked():
                continue
            if not all_idle and now - loc.used_at < self._idle_return:
                continue
            rest = loc.granted - loc.spent
            if rest <= 0:
                continue
            loc.granted -= rest  # first, so a reservation meanwhile cannot promise it
            try:
                await self._leases.give_back(self.owner, budget[0], budget[1], rest)
            except Exception:
                loc.granted += rest
                raise
            total += rest
        return total

    async def close(self) -> None:
        """Stop the background task and give back every idle share (what requests still
        hold is released by the next start's recovery, after their charges)."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        with contextlib.suppress(Exception):
            await self.give_back_idle(all_idle=True)
