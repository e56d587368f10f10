"""Request log writer: rows are queued on the hot path and written in batches
by a background task, never inline."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import UTC, datetime

from relaygate.context import RelayContext
from relaygate.pacing import lower_helper_threads
from relaygate.storage.repo import LogRow, Repository

__all__ = ["UsageLogWriter"]

log = logging.getLogger("relaygate.usage_log")


class UsageLogWriter:
    def __init__(
        self,
        repo: Repository,
        *,
        max_batch: int = 5000,
        max_queue: int = 50_000,
        interval: float = 0.5,
    ) -> None:
        self._repo = repo
        self._rows: list[LogRow] = []  # recorded, not yet taken by the writer
        self._max_queue = max_queue
        self._max_batch = max_batch
        self._interval = interval  # collect rows this long, then write them in one transaction
        self._task: asyncio.Task[None] | None = None
        self._pending: list[LogRow] = []  # taken by the writer, not yet written
        self.dropped = 0

    @property
    def backlog(self) -> int:
        """Rows recorded but not yet written."""
        return len(self._rows) + len(self._pending)

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run())

    def record(self, ctx: RelayContext) -> None:
        usage = ctx.usage
        row = (  # LOG_COLUMNS order
            ctx.request_id,
            datetime.now(UTC),
            ctx.user.id if ctx.user else None,
            ctx.key.id if ctx.key else None,
            ctx.endpoint,
            ctx.model[:128] if ctx.model else None,
            ctx.target.channel_id if ctx.target else None,
            ctx.stream,
            499 if ctx.client_disconnected else ctx.status,
            ctx.error_code,
            usage.prompt_tokens if usage else 0,
            usage.completion_tokens if usage else 0,
            ctx.elapsed_ms(),
            ctx.ttft_ms(),
        )
        if len(self._rows) < self._max_queue:  # a plain list: no queue, no wake-ups per row
            self._rows.append(row)
        else:
            self.dropped += 1

    async def _run(self) -> None:
        while True:
            if len(self._rows) < self._max_batch:
                # one transaction per interval, not per row; no wait when behind
                await asyncio.sleep(self._interval)
            if not self._rows:
                continue
            n = self._max_batch
            batch = self._pending = self._rows[:n]
            del self._rows[:n]
            await self._write(batch)
            self._pending = []

    async def _write(self, batch: list[LogRow]) -> None:
        for attempt in range(5):
            try:
                await self._repo.insert_request_logs(batch)
                lower_helper_threads()  # the database driver's thread, once it exists
                return
            except Exception:
                log.warning("request log write failed (attempt %d)", attempt + 1, exc_info=True)
                await asyncio.sleep(0.2 * 2**attempt)
        log.error("dropping %d request log rows after repeated failures", len(batch))

    async def close(self) -> None:
        """Stop the background task, then write everything not yet written (including
        a batch the task had taken but not finished writing)."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        batch = self._pending + self._rows
        self._pending, self._rows = [], []
        if batch:
            await self._write(batch)
