"""``UsageRollup``: the periodic task that keeps ``usage_daily`` current and, with
``RELAYGATE_LOG_RETENTION_DAYS`` set, deletes old raw request rows.

Every worker runs one; each round, the worker that takes the ``usage_rollup`` lease (a row
of ``revisions`` holding an expiry, ``storage.usage_reports.acquire_lease``) does the work
and the others skip it, so the work runs about once per interval whatever the number of
workers. The lease is an economy, not what makes the work correct: a rollup is an
idempotent upsert, and the *final day* lock (``storage.usage_reports.finalize``) keeps a
rollup from ever recomputing a day whose raw rows are being deleted, so two workers
running a round at once (a round that outlasts its lease) do the same work twice, nothing
worse.

A round (:meth:`UsageRollup.run_once`):

1. rolls up today and yesterday (UTC), and every day with raw rows since the last day
   that has aggregates (a gateway stopped for a week, or an installation upgraded with
   months of rows, catches up);
2. with retention on (``N`` days): days before ``today - N`` that have raw rows are rolled
   up one last time and marked final, oldest first; then their raw rows are deleted in
   batches of ``DELETE_BATCH`` (at most ``max_delete_batches`` per round, the rest next
   round). Raw rows are thus kept between ``N`` and ``N + 1`` days.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncEngine

from relaygate.storage.usage_reports import (
    acquire_lease,
    delete_expired,
    final_day,
    finalize,
    first_log_day,
    latest_usage_day,
    next_log_day,
    rollup,
)

__all__ = ["LEASE", "RollupRound", "UsageRollup"]

log = logging.getLogger("relaygate.usage_rollup")

LEASE = "usage_rollup"  # the revisions row of the lease


@dataclass(frozen=True, slots=True)
class RollupRound:
    """What one round did: days rolled up, days made final, raw rows deleted."""

    rolled: int
    finalized: int
    deleted: int


class UsageRollup:
    """Rolls up usage and applies retention every ``interval`` seconds (first round after
    ``first_delay`` seconds, plus a little jitter so workers started together spread)."""

    def __init__(
        self,
        engine: AsyncEngine,
        *,
        retention_days: int = 0,
        interval: float = 300.0,
        first_delay: float = 1.0,
        max_delete_batches: int = 500,
    ) -> None:
        if retention_days < 0:
            raise ValueError("retention_days must be >= 0 (0 keeps raw rows forever)")
        self.engine = engine
        self.retention_days = retention_days
        self.interval = interval
        self.first_delay = first_delay
        self.max_delete_batches = max_delete_batches
        self.rounds = 0  # rounds this worker ran (it held the lease)
        self.last_error: str | None = None
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._loop(), name="usage-rollup")

    async def close(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _loop(self) -> None:
        await asyncio.sleep(self.first_delay + random.uniform(0, min(self.interval, 10) / 10))
        while True:
            try:
                await self.tick()
            except Exception as exc:  # the database may be down: try again next round
                self.last_error = repr(exc)[:500]
                log.warning("usage rollup failed; retrying next round", exc_info=True)
            await asyncio.sleep(self.interval)

    async def tick(self) -> RollupRound | None:
        """One round if this worker takes the lease (None: another worker has it)."""
        if not await acquire_lease(self.engine, LEASE, self.interval * 0.9):
            return None
        done = await self.run_once()
        self.rounds += 1
        self.last_error = None
        if done.finalized or done.deleted:
            log.info(
                "usage rolled up, old request rows deleted",
                extra={"finalized_days": done.finalized, "rows_deleted": done.deleted},
            )
        return done

    async def run_once(self, today: date | None = None) -> RollupRound:
        """One round now, lease or not (see the module docstring)."""
        today = today or datetime.now(UTC).date()
        cutoff = today - timedelta(days=self.retention_days) if self.retention_days else None
        # 1. catch up from the last day with aggregates, and keep today and yesterday current
        yesterday = today - timedelta(days=1)
        start = await latest_usage_day(self.engine) or await first_log_day(self.engine) or today
        start = min(start, yesterday)
        final = await final_day(self.engine)
        if final is not None:
            start = max(start, final + timedelta(days=1))
        if cutoff is not None:
            start = max(start, cutoff)  # older days are made final below
        rolled = 0
        day = start
        while day <= today:
            rolled += await rollup(self.engine, day)
            nxt = await next_log_day(self.engine, day)  # skip days without rows …
            floor = yesterday if day < yesterday else day + timedelta(days=1)  # … not these
            day = floor if nxt is None else min(nxt, floor)
        # 2. retention: make expired days final (oldest first), then delete their rows
        finalized = deleted = 0
        if cutoff is not None:
            expired = await first_log_day(self.engine)
            while expired is not None and expired < cutoff:
                finalized += await finalize(self.engine, expired)
                expired = await next_log_day(self.engine, expired)
            deleted = await delete_expired(self.engine, cutoff, max_batches=self.max_delete_batches)
        return RollupRound(rolled, finalized, deleted)
