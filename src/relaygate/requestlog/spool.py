"""The request log's crash spool: every recorded row is appended to a local file
before ``record()`` returns, and the file is removed once its rows are committed to
the database. A worker killed (``kill -9``) with rows not yet in the database leaves
its segments behind; the next worker that starts (or any live worker's periodic scan)
claims them and replays them. See docs/durability.md.

Files live in one directory (``<data dir>/spool`` by default), one line of JSON per row
(``LOG_COLUMNS`` order, ``created_at`` in ISO 8601)::

    requestlog-<pid>-<start ms, hex><4 random hex digits>-<seq>.jsonl

Ownership is an exclusive ``fcntl.flock`` held on an open descriptor for as long as a
worker owns a segment: the kernel drops it when the process dies, however it dies, so
a segment that can be locked has no living owner. A new segment is created under a
hidden name, locked, then renamed into place, so no other worker can lock it between
its creation and its first row. Rows are written with one ``os.write`` on an
``O_APPEND`` descriptor and no ``fsync``: they survive the death of the process (they
are in the kernel's page cache), not a power loss.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import secrets
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import orjson

from relaygate.storage.request_logs import LOG_COLUMNS, LogRow

__all__ = ["PROVISIONAL", "UPDATE", "Segment", "Spool", "decode_lines", "tag_of"]

PREFIX = "requestlog-"
SUFFIX = ".jsonl"
NEW = ".new"  # hidden name of a segment being created: ".requestlog-….jsonl.new"
READ_CHUNK = 4 * 1024 * 1024  # bytes read at once when rows come back from a file
_MIN_COLS = 14  # rows written before cached/reasoning tokens and log_uid existed
#: trailing marker of a provisional row: what a running stream has delivered so far,
#: charged only if its worker dies before the final row (docs/billing.md)
PROVISIONAL = "P"
#: first field of a provisional update: ``["p", log_uid, completion tokens, cost, counts]``,
#: what changed since the stream's provisional row (a few bytes per chunk)
UPDATE = "p"


@dataclass(eq=False, slots=True)
class Segment:
    """One spool file this process owns (its ``fd`` holds the lock)."""

    path: Path
    fd: int
    rows: int = 0  # rows in the file (a claimed one: its whole lines)
    size: int = 0  # bytes in the file
    mem: list[LogRow] | None = None  # every row of the file, when all are in memory
    done: int = 0  # rows of ``mem`` committed (when rows come from memory)
    read_pos: int = 0  # byte offset of the first row not yet committed (from the file)
    claimed: bool = False  # left behind by a dead process


def _count_lines(fd: int) -> int:
    n = pos = 0
    while chunk := os.pread(fd, READ_CHUNK, pos):
        n += chunk.count(b"\n")
        pos += len(chunk)
    return n


def decode_lines(lines: Sequence[bytes]) -> tuple[list[LogRow], int]:
    """Spool lines -> rows; also returns how many lines were unreadable (torn or corrupt).
    A provisional row (a running stream's charge so far) keeps its trailing marker:
    ``len(row) == len(LOG_COLUMNS) + 1``; a provisional update is ``(UPDATE, …)``."""
    rows: list[LogRow] = []
    bad = 0
    n = len(LOG_COLUMNS)
    for line in lines:
        try:
            v = orjson.loads(line)
            if isinstance(v, list) and len(v) == 5 and v[0] == UPDATE:
                rows.append(tuple(v))  # a provisional update (see UPDATE)
                continue
            if isinstance(v, list) and n - 1 <= len(v) <= n and v[-1] == PROVISIONAL:
                # spooled before the last columns (attempts, search) existed
                v[-1:-1] = [None] * (n + 1 - len(v))
            if not isinstance(v, list) or not _MIN_COLS <= len(v) <= n + 1:
                raise ValueError("not a request-log row")
            if len(v) == n + 1 and v[n] != PROVISIONAL:
                raise ValueError("not a request-log row")
            v[1] = datetime.fromisoformat(v[1])
        except (ValueError, TypeError, IndexError):
            bad += 1
            continue
        rows.append(tuple(v))
    return rows, bad


def tag_of(name: str) -> str | None:
    """The worker tag in a segment file name (``requestlog-<tag>-<seq>.jsonl``)."""
    base = name.lstrip(".")
    if not base.startswith(PREFIX):
        return None
    rest = base[len(PREFIX) :].split(".", 1)[0]
    tag, sep, _ = rest.rpartition("-")
    return tag if sep and tag else None


class Spool:
    def __init__(self, directory: Path) -> None:
        self.dir = directory
        # unique per process start, even with pids reused across container restarts
        self.tag = f"{os.getpid()}-{time.time_ns() // 1_000_000:x}{secrets.token_hex(2)}"
        self._seq = 0
        self.active: Segment | None = None
        self.failing = False  # the last append failed
        self.error: str | None = None  # why, last time something failed
        #: tags of dead workers whose segments were claimed (their leases are released
        #: once none of their segments is left)
        self.dead_tags: set[str] = set()

    # ---- own segments ----------------------------------------------------------
    def open(self) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        self.active = self._new_segment()

    def _new_segment(self) -> Segment:
        self._seq += 1
        name = f"{PREFIX}{self.tag}-{self._seq:06d}{SUFFIX}"
        tmp = self.dir / f".{name}{NEW}"
        flags = os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_APPEND | os.O_CLOEXEC
        fd = os.open(tmp, flags, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # a fresh file: nobody holds it
            os.rename(tmp, self.dir / name)
        except OSError:
            os.close(fd)
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
        return Segment(self.dir / name, fd)

    def append(self, line: bytes, *, counted: bool = True) -> bool:
        """Append one encoded row (one ``os.write``); False when it could not be written
        (the file is left without a partial line). A provisional row is not ``counted``
        among the rows waiting to be committed."""
        seg = self.active
        if seg is None:
            return False
        try:
            n = os.write(seg.fd, line)
        except OSError as exc:
            return self._failed(seg, f"spool write failed: {exc}")
        if n != len(line):  # a short write (disk full): cut the partial line off
            return self._failed(seg, "spool write failed: short write (disk full?)")
        seg.size += n
        if counted:
            seg.rows += 1
        self.failing = False
        return True

    def _failed(self, seg: Segment, why: str) -> bool:
        with contextlib.suppress(OSError):
            os.ftruncate(seg.fd, seg.size)
        self.failing = True
        self.error = why
        return False

    def rotate(self) -> Segment | None:
        """Seal the active segment (returned, still locked) and start a new one. None
        when there is nothing to seal or no new segment can be created (then the
        active one goes on)."""
        seg = self.active
        if seg is None or seg.rows == 0:
            return None
        try:
            self.active = self._new_segment()
        except OSError as exc:
            self.error = f"cannot create a spool segment: {exc}"
            return None
        return seg

    def release(self, seg: Segment) -> None:
        """Every row of ``seg`` is committed: remove the file, then give up the lock."""
        with contextlib.suppress(OSError):
            os.unlink(seg.path)
        with contextlib.suppress(OSError):
            os.close(seg.fd)

    def close(self, seg: Segment) -> None:
        """Give up a segment whose rows are not all committed: the file stays for the
        next worker that starts (or an empty file is removed)."""
        if seg.size == 0 and not seg.claimed:
            self.release(seg)
            return
        with contextlib.suppress(OSError):
            os.close(seg.fd)

    # ---- segments of dead processes ---------------------------------------------
    def claim_orphans(self) -> list[Segment]:
        """Lock every segment no living process holds; empty ones are removed."""
        out: list[Segment] = []
        try:
            names = sorted(os.listdir(self.dir))
        except OSError as exc:
            self.error = f"cannot list the spool directory: {exc}"
            return out
        mine = f"{PREFIX}{self.tag}-"
        for name in names:
            if name.startswith(mine) or name.startswith(f".{mine}"):
                continue
            stale_new = name.startswith(f".{PREFIX}") and name.endswith(NEW)
            if not (stale_new or (name.startswith(PREFIX) and name.endswith(SUFFIX))):
                continue
            seg = self._claim(self.dir / name)
            if seg is None:
                continue
            tag = tag_of(name)
            if tag:
                self.dead_tags.add(tag)
            if stale_new or seg.size == 0:  # never held a row
                self.release(seg)
                continue
            out.append(seg)
        return out

    def _claim(self, path: Path) -> Segment | None:
        try:
            fd = os.open(path, os.O_RDWR | os.O_CLOEXEC)
        except OSError:  # gone meanwhile (its owner committed it)
            return None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            st = os.fstat(fd)
            now = os.stat(path)  # still the file at this name (not unlinked meanwhile)?
            if (now.st_dev, now.st_ino) != (st.st_dev, st.st_ino):
                raise FileNotFoundError(path)
        except OSError:  # held by a living worker, or gone
            os.close(fd)
            return None
        return Segment(path, fd, rows=_count_lines(fd), size=st.st_size, claimed=True)

    def has_segments_of(self, tag: str) -> bool:
        """Whether any segment file of the worker ``tag`` is still in the spool."""
        try:
            names = os.listdir(self.dir)
        except OSError:
            return True  # cannot tell: assume so
        mine = f"{PREFIX}{tag}-"
        return any(n.startswith(mine) or n.startswith(f".{mine}") for n in names)

    # ---- reading rows back -------------------------------------------------------
    @staticmethod
    def read_lines(seg: Segment, max_rows: int) -> tuple[list[bytes], int, int]:
        """Up to ``max_rows`` whole lines from ``seg.read_pos``: (lines, the offset after
        them, torn bytes at the end of the file that are not a whole line)."""
        data = os.pread(seg.fd, READ_CHUNK, seg.read_pos)
        at_end = len(data) < READ_CHUNK
        parts = data.split(b"\n")
        tail = parts.pop()  # after the last newline: b"" or a partial line
        lines = parts[:max_rows]
        pos = seg.read_pos + sum(len(x) + 1 for x in lines)
        torn = 0
        if len(lines) == len(parts) and at_end and tail:
            torn = len(tail)  # a line cut short (the writer died or the disk filled mid-line)
            pos += torn
        elif not parts and not at_end:  # one line longer than READ_CHUNK: not ours
            torn = len(data)
            pos += torn
        return [x for x in lines if x], pos, torn
