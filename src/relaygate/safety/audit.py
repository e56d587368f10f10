"""The audit of content-safety hits (docs/safety.md): :class:`SafetyAudit`, the
:class:`~relaygate.safety.base.AuditSink` of the gateway.

``record`` runs on the request path: it builds one row per hit (who, which list, the word,
where it was, an excerpt of at most 200 characters around it) and appends it to a bounded
in-memory queue; it never waits and never raises. A background task writes the queue in
batches (one transaction each, every half second or when 500 rows wait). When the queue is
full (the database is down or slow for long), new rows are dropped and counted
(``dropped``), and a warning is logged once per batch that could not be written. The rows
show the word itself: the audit is read only through the admin API.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from datetime import UTC, datetime
from typing import Any

from relaygate.context import RelayContext
from relaygate.safety.base import SafetyHit
from relaygate.storage.safety import SafetyStore

__all__ = ["EXCERPT_CHARS", "WHERE", "SafetyAudit", "excerpt"]

log = logging.getLogger("relaygate.safety")

EXCERPT_CHARS = 200
#: where a hit was found (the audit's ``where``)
WHERE = ("prompt", "answer", "stream", "reasoning", "tool", "search", "moderation")


def excerpt(text: str, start: int, end: int, limit: int = EXCERPT_CHARS) -> str:
    """At most ``limit`` characters of ``text`` around ``text[start:end]``, the hit in the
    middle (the hit itself is cut only when it is longer than ``limit``); ``…`` marks text
    left out at either end."""
    start = max(0, min(start, len(text)))
    end = max(start, min(end, len(text)))
    if len(text) <= limit:
        return text
    room = limit - 2  # the two ellipses, at most
    hit = end - start
    if hit >= room:
        return "…" + text[start : start + room] + "…"
    before = (room - hit) // 2
    lo = max(0, start - before)
    hi = min(len(text), lo + room)
    lo = max(0, hi - room)
    return ("…" if lo > 0 else "") + text[lo:hi] + ("…" if hi < len(text) else "")


class SafetyAudit:
    """Audit rows queued in memory and written in background batches."""

    def __init__(
        self,
        store: SafetyStore,
        *,
        max_queue: int = 10_000,
        max_batch: int = 500,
        interval: float = 0.5,
    ) -> None:
        self._store = store
        self._queue: deque[tuple[Any, ...]] = deque()
        self._max_queue = max_queue
        self._max_batch = max_batch
        self._interval = interval
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.dropped = 0  # rows lost: the queue was full, or closing could not write them
        self.written = 0
        self._failing = False

    # ---- the request path --------------------------------------------------------
    def record(self, ctx: RelayContext, hits: list[SafetyHit], where: str, text: str) -> None:
        try:
            stamp = datetime.now(UTC)
            for hit in hits:
                if len(self._queue) >= self._max_queue:
                    self.dropped += 1
                    continue
                self._queue.append(
                    (
                        stamp,
                        ctx.request_id[:64] if ctx.request_id else None,
                        ctx.user.id if ctx.user else None,
                        ctx.key.id if ctx.key else None,
                        ctx.model[:128] if ctx.model else None,
                        hit.list_id or None,
                        hit.list_name[:64],
                        hit.category[:64],
                        hit.action[:8],
                        hit.word[:100],
                        where[:16],
                        excerpt(text, hit.start, hit.end),
                    )
                )
            if len(self._queue) >= self._max_batch:
                self._wake.set()
        except Exception:  # an audit problem never breaks a request
            log.warning("recording a safety hit failed", exc_info=True)

    # ---- the writer --------------------------------------------------------------
    @property
    def backlog(self) -> int:
        return len(self._queue)

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def _run(self) -> None:
        pause = self._interval
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), pause)
            self._wake.clear()
            # the database refused: wait longer before the next try (up to 10 s)
            pause = self._interval if await self.flush() else min(pause * 2, 10.0)

    async def flush(self) -> bool:
        """Write what is queued, in batches; False when a batch could not be written (its
        rows stay queued, in front)."""
        while self._queue:
            batch = [self._queue[i] for i in range(min(self._max_batch, len(self._queue)))]
            try:
                await self._store.insert_audit(batch)
            except Exception:
                if not self._failing:
                    log.warning("writing safety audit rows failed; retrying", exc_info=True)
                self._failing = True
                return False
            self._failing = False
            for _ in batch:
                self._queue.popleft()
            self.written += len(batch)
        return True

    async def close(self) -> None:
        """Stop the writer and write what is queued (rows that cannot be written are
        counted as dropped and logged)."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if not await self.flush():
            self.dropped += len(self._queue)
            log.error("safety audit rows lost at shutdown", extra={"rows": len(self._queue)})
            self._queue.clear()
