"""Request log writer: rows are recorded on the hot path and written in batches by a
background task, never inline.

With a spool directory (the gateway passes ``<data dir>/spool``), ``record()`` first
appends the row to the worker's spool file (``requestlog/spool.py``: one ``os.write``,
no ``fsync``), so a row recorded before the worker is killed is not lost: the next
worker to start replays it (``recover()``). A spool segment is removed only once its
rows are committed; a batch the database refuses stays in the spool and is retried
with growing pauses for as long as it takes. Rows beyond the in-memory bound stay only
in the spool and are read back from it. Every row lost for any reason is counted in
``dropped`` and logged. See docs/durability.md.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import os
import secrets
import time
from collections import deque
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

from relaygate.context import RelayContext, Slot
from relaygate.pacing import lower_helper_threads, paced_map
from relaygate.providers.base import Usage
from relaygate.requestlog.orphans import OrphanStreams
from relaygate.requestlog.spool import PROVISIONAL, UPDATE, Segment, Spool, decode_lines
from relaygate.storage.db import sqlite_path
from relaygate.storage.leases import STALE_AFTER
from relaygate.storage.repo import LogRow, Repository

__all__ = ["UsageLogWriter"]

log = logging.getLogger("relaygate.usage_log")

_DECODE_SLICE = 256  # spool lines decoded per event-loop turn
_NEWLINE = orjson.OPT_APPEND_NEWLINE

#: the log_uid of a request that has spooled a provisional row (its final row reuses it)
LOG_UID: Slot[str] = Slot("requestlog.log_uid")


def _row(
    ctx: RelayContext, usage: Usage | None, status: int, error_code: str | None, uid: str
) -> LogRow:
    """The request-log row of ``ctx`` (``LOG_COLUMNS`` order)."""
    return (
        ctx.request_id,
        datetime.now(UTC),
        ctx.user.id if ctx.user else None,
        ctx.key.id if ctx.key else None,
        ctx.endpoint,
        ctx.model[:128] if ctx.model else None,
        ctx.target.channel_id if ctx.target else None,
        ctx.stream,
        status,
        error_code,
        usage.prompt_tokens if usage else 0,
        usage.completion_tokens if usage else 0,
        ctx.elapsed_ms(),
        ctx.ttft_ms(),
        usage.cached_tokens if usage else 0,
        usage.reasoning_tokens if usage else 0,
        uid,
        ctx.cost,
        ctx.counts,
        ctx.package_id,
        ctx.billing,
        orjson.dumps([a.to_json() for a in ctx.attempts]).decode() if ctx.attempts else None,
        ctx.search,
    )


class UsageLogWriter:
    def __init__(
        self,
        repo: Repository,
        *,
        spool_dir: Path | None = None,
        max_batch: int = 5000,
        max_queue: int = 50_000,
        interval: float = 0.5,
        max_backoff: float = 10.0,
        rescan_interval: float = 30.0,
    ) -> None:
        self._repo = repo
        self._max_queue = max_queue  # rows held in memory at most
        self._max_batch = max_batch
        self._interval = interval  # collect rows this long, then write them in one transaction
        self._max_backoff = max_backoff
        self._rescan_interval = rescan_interval  # look for dead workers' segments this often
        self._task: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()  # one drain at a time (background task, recover, close)
        self._seq = itertools.count(1)
        # rows of the active spool segment, in memory (None: more than fit; read the file)
        self._mem: list[LogRow] | None = []
        self._mem_count = 0  # rows held in memory, everywhere (bounded by max_queue)
        self._sealed: deque[Segment] = deque()  # spool segments waiting to be committed
        self._unspooled: list[LogRow] = []  # rows only in memory (no spool, or it failed)
        self.dropped = 0
        self._drops_unlogged: dict[str, int] = {}
        self._failures = 0  # failed writes in a row
        self._db_failing_since: float | None = None
        self.last_error: str | None = None
        self._spool_failure_logged = False
        self._db_path, self._db_ident = _sqlite_file(repo)
        self._spool: Spool | None = None
        #: this worker's name in log_uids and budget leases: its spool tag (a crashed
        #: worker's leases are found from its spool files), else random
        self.owner = secrets.token_hex(6)
        # dead workers' cut streams, charged for what they delivered (orphans.py)
        self.orphans = OrphanStreams()
        if spool_dir is not None:
            self._spool = Spool(spool_dir)
            self.owner = self._spool.tag
            try:
                self._spool.open()
            except OSError as exc:  # rows are kept in memory only; reported by health()
                self._spool.failing = True
                self._spool.error = self.last_error = f"cannot open the spool: {exc}"
                log.error("request log spool unusable, rows are not crash-safe: %s", exc)

    @property
    def _uid(self) -> str:
        return self.owner + "-"  # log_uid = this prefix + a sequence number

    # ---- the hot path ------------------------------------------------------------
    def _log_uid(self, ctx: RelayContext) -> str:
        uid = ctx.get(LOG_UID)
        return uid if uid is not None else f"{self.owner}-{next(self._seq)}"

    def provisional_line(self, ctx: RelayContext, usage: Usage) -> bytes | None:
        """The spool line of a provisional row: what a running stream has delivered so far
        (``usage``, with the charge in ``ctx.cost``/``counts``). If this worker dies before
        the final row, the next start commits the last such row (docs/billing.md). Built
        *before* the chunk is written to the client and spooled right after
        (:meth:`spool_line`), so the window where a kill leaves a delivered chunk
        uncharged is one syscall wide. Never held in memory."""
        if self._spool is None:
            return None
        uid = ctx.get(LOG_UID)
        if uid is not None:  # the full row is spooled: only what changed (a few bytes)
            return orjson.dumps(
                (UPDATE, uid, usage.completion_tokens, ctx.cost, ctx.counts), option=_NEWLINE
            )
        uid = f"{self.owner}-{next(self._seq)}"
        ctx.put(LOG_UID, uid)
        row = (*_row(ctx, usage, 503, "stream_cut", uid), PROVISIONAL)
        return orjson.dumps(row, option=_NEWLINE)

    def spool_line(self, line: bytes) -> None:
        """Append a provisional row's line (not counted as a row to commit)."""
        spool = self._spool
        if spool is not None:
            spool.append(line, counted=False)

    def record(self, ctx: RelayContext) -> None:
        row = _row(ctx, ctx.usage, ctx.logged_status, ctx.error_code, self._log_uid(ctx))
        spool = self._spool
        if spool is not None and spool.append(orjson.dumps(row, option=_NEWLINE)):
            mem = self._mem
            if mem is not None:
                if self._mem_count < self._max_queue:
                    mem.append(row)
                    self._mem_count += 1
                else:  # from here on this segment's rows are read back from the file
                    self._mem_count -= len(mem)
                    self._mem = None
            return
        if self._mem_count < self._max_queue:  # a plain list: no queue, no wake-ups per row
            self._unspooled.append(row)
            self._mem_count += 1
        else:
            self._drop(1, "in-memory queue full" + (" and spool unwritable" if spool else ""))

    def _drop(self, n: int, reason: str) -> None:
        self.dropped += n
        self._drops_unlogged[reason] = self._drops_unlogged.get(reason, 0) + n

    # ---- what operators see --------------------------------------------------------
    @property
    def backlog(self) -> int:
        """Rows recorded but not yet written."""
        return len(self._unspooled) + self.spooled_rows

    @property
    def spooled_rows(self) -> int:
        """Rows in spool files (this worker's and claimed ones) not yet committed."""
        spool = self._spool
        if spool is None:
            return 0
        active = spool.active.rows if spool.active is not None else 0
        return active + sum(s.rows - s.done for s in self._sealed)

    def health(self) -> dict[str, Any]:
        spool = self._spool
        since = self._db_failing_since
        return {
            "rows_dropped": self.dropped,
            "rows_backlog": self.backlog,
            "spooled_rows": self.spooled_rows,
            "spool_writable": spool is not None and not spool.failing,
            "db_writable": since is None,
            "db_unwritable_for_s": 0.0 if since is None else round(time.monotonic() - since, 1),
            "last_error": self.last_error,
        }

    # ---- background ------------------------------------------------------------------
    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def recover(self) -> int:
        """Claim the spool segments of workers that are gone and write their rows now
        (one attempt; what fails stays claimed and the background task retries it).
        Returns how many rows were written. Call once at start-up; safe with several
        workers starting at once (each segment is claimed by one of them)."""
        if self._spool is None:
            return 0
        async with self._lock:
            orphans = self._spool.claim_orphans()
            if not orphans:
                return 0
            self._sealed.extendleft(reversed(orphans))
            before = sum(s.done for s in orphans)
            if await self._drain_sealed():
                await self.settle_orphans()
            written = sum(s.done for s in orphans) - before
        log.info(
            "request log: replayed spooled rows of stopped workers",
            extra={"segments": len(orphans), "rows": written},
        )
        return written

    async def _run(self) -> None:
        next_scan = time.monotonic() + self._rescan_interval
        while True:
            await asyncio.sleep(self._delay())
            try:
                async with self._lock:
                    if self._spool is not None and time.monotonic() >= next_scan:
                        next_scan = time.monotonic() + self._rescan_interval
                        self._sealed.extend(self._spool.claim_orphans())
                        await self._reap_stale_leases()
                    await self._cycle()
                    if self._spool is not None and self._spool.dead_tags and not self._sealed:
                        await self.settle_orphans()
            except Exception:  # never let the writer die
                log.exception("request log writer cycle failed")
            self._log_troubles()

    def _delay(self) -> float:
        if self._failures:
            return float(min(0.2 * 2 ** (self._failures - 1), self._max_backoff))
        if self.backlog >= self._max_batch:
            return 0.0  # behind: no wait
        return self._interval

    async def _cycle(self) -> None:
        spool = self._spool
        if spool is not None and not self._sealed:
            seg = spool.rotate()  # the active segment's rows become one batch (or a few)
            if seg is not None:
                seg.mem, self._mem = self._mem, []
                self._sealed.append(seg)
        if not await self._drain_sealed():
            return
        while self._unspooled:
            batch = self._unspooled[: self._max_batch]
            if not await self._insert(batch):
                return
            del self._unspooled[: len(batch)]
            self._mem_count -= len(batch)

    async def _drain_sealed(self) -> bool:
        """Write the sealed segments in order; False when a write failed."""
        while self._sealed:
            seg = self._sealed[0]
            if not await self._drain(seg):
                return False
            self._sealed.popleft()
            if seg.mem is not None:
                self._mem_count -= len(seg.mem)
            assert self._spool is not None
            self._spool.release(seg)
        return True

    async def _drain(self, seg: Segment) -> bool:
        n = self._max_batch
        if seg.mem is not None:
            while seg.done < len(seg.mem):
                batch = seg.mem[seg.done : seg.done + n]
                if not await self._insert(batch):
                    return False
                seg.done += len(batch)
            return True
        while True:  # rows read back from the file
            lines, pos, torn = Spool.read_lines(seg, n)
            if pos == seg.read_pos:
                return True
            rows: list[LogRow] = []
            bad = 1 if torn else 0
            for part, b in await paced_map(decode_lines, lines, _DECODE_SLICE):
                rows.extend(part)
                bad += b
            read = len(rows)
            rows = self.orphans.set_aside(rows, seg.claimed)
            aside = read - len(rows)  # provisional rows: set aside, counted as done
            if rows and not await self._insert(rows):
                return False
            if bad:
                self._drop(bad, f"unreadable lines in spool file {seg.path.name}")
            seg.read_pos = pos
            seg.done += len(rows) + bad + aside
            if seg.claimed:
                seg.rows = max(seg.rows, seg.done)

    async def _reap_stale_leases(self) -> None:
        """The leases of a worker gone without a trace (a machine lost with its spool):
        not renewed for ``STALE_AFTER`` (storage/leases.py)."""
        try:
            released = await self._repo.leases.release_stale(datetime.now(UTC) - STALE_AFTER)
        except Exception:
            log.warning("releasing stale budget leases failed", exc_info=True)
            return
        if released:
            log.warning(
                "released budget leases not renewed for an hour (their worker is gone)",
                extra={"units": released},
            )

    async def settle_orphans(self) -> int:
        """After dead workers' segments are drained: write the provisional rows of their
        streams that never got a final row (charging what was delivered), then release
        the budget leases of every dead worker none of whose segments is left. Returns
        the rows written."""
        pending = self.orphans.pending()
        if pending and not await self._insert(pending):
            return 0  # retried on the next cycle
        self.orphans.clear()
        spool = self._spool
        if spool is not None and not self._sealed:
            for tag in list(spool.dead_tags):
                if spool.has_segments_of(tag):
                    continue
                try:
                    released = await self._repo.leases.release_owner(tag)
                except Exception:
                    log.warning("releasing a stopped worker's leases failed", exc_info=True)
                    break
                spool.dead_tags.discard(tag)
                if released:
                    log.info(
                        "released the budget leases of a stopped worker",
                        extra={"worker": tag, "units": released},
                    )
        if pending:
            log.warning(
                "charged streams cut by a stopped worker for what they had delivered",
                extra={"streams": len(pending)},
            )
        return len(pending)

    async def _insert(self, batch: list[LogRow]) -> bool:
        if not await self._db_file_ok():
            return False
        try:
            await self._repo.insert_request_logs(batch)
        except Exception as exc:
            self._failed(f"request log write failed: {exc!r}"[:500], exc)
            return False
        lower_helper_threads()  # the database driver's thread, once it exists
        if not await self._db_file_ok():  # deleted while writing: the rows may be in it
            return False
        self._failures = 0
        if self._db_failing_since is not None:
            log.warning(
                "request log writes work again",
                extra={"after_s": round(time.monotonic() - self._db_failing_since, 1)},
            )
        self._db_failing_since = None
        self.last_error = None
        return True

    def _failed(self, why: str, exc: BaseException | None = None) -> None:
        self._failures += 1
        self.last_error = why
        if self._db_failing_since is None:
            self._db_failing_since = time.monotonic()
            log.error("%s; rows are kept and retried", why, exc_info=exc)
        elif self._failures % 10 == 0:
            log.warning("%s (still failing, attempt %d)", why, self._failures)

    async def _db_file_ok(self) -> bool:
        """SQLite: the database file must still be the one that was opened. A file
        deleted while open keeps taking writes that nobody will ever read; a file
        replaced (restored) is reopened."""
        path = self._db_path
        if path is None:
            return True
        try:
            st = os.stat(path)
        except OSError as exc:
            self._failed(f"database file {path} is gone ({exc.strerror}): deleted while open?")
            return False
        ident = (st.st_dev, st.st_ino)
        if self._db_ident is None:
            self._db_ident = ident
        elif ident != self._db_ident:
            log.warning("database file %s was replaced; reconnecting", path)
            await self._repo.log_engine.dispose()
            self._db_ident = ident
        return True

    def _log_troubles(self) -> None:
        if self._drops_unlogged:
            for reason, n in self._drops_unlogged.items():
                log.error("dropped %d request log rows: %s", n, reason)
            self._drops_unlogged = {}
        spool = self._spool
        if spool is not None and spool.failing != self._spool_failure_logged:
            self._spool_failure_logged = spool.failing
            if spool.failing:
                log.error("request log spool write failed, rows only in memory: %s", spool.error)
            else:
                log.warning("request log spool writes work again")

    async def flush(self) -> bool:
        """Write what this worker has recorded now (a balance display must include the
        requests just answered). False when it did not finish within 2 s."""
        try:
            async with asyncio.timeout(2.0), self._lock:
                await self._cycle()
        except TimeoutError:
            return False
        return self.backlog == 0

    async def close(self) -> None:
        """Stop the background task, then try once to write everything not yet written.
        Spooled rows that cannot be written stay in the spool for the next start; rows
        only in memory that cannot be written are dropped (counted, logged)."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        async with self._lock:
            spool = self._spool
            if spool is not None and spool.active is not None:
                seg, spool.active = spool.active, None
                seg.mem, self._mem = self._mem, None
                self._sealed.append(seg)
            self._failures = 0
            await self._drain_sealed()
            while self._unspooled:
                batch = self._unspooled[: self._max_batch]
                if not await self._insert(batch):
                    break
                del self._unspooled[: len(batch)]
            if self._unspooled:
                self._drop(len(self._unspooled), "database unwritable at shutdown")
                self._unspooled = []
            if spool is not None:
                for seg in self._sealed:
                    spool.close(seg)
                if self._sealed:
                    log.warning(
                        "request log rows left in the spool for the next start",
                        extra={"rows": sum(s.rows - s.done for s in self._sealed)},
                    )
                self._sealed.clear()
        self._log_troubles()


def _sqlite_file(repo: Repository) -> tuple[str | None, tuple[int, int] | None]:
    file = sqlite_path(str(repo.log_engine.url))
    if file is None:
        return None, None
    path = str(file)
    try:
        st = os.stat(path)
    except OSError:
        return path, None
    return path, (st.st_dev, st.st_ino)
