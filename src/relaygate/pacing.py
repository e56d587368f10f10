"""Background work that shares the event loop with requests, in small slices.

The access log and the request-log writer turn thousands of records into bytes
every fraction of a second. Done in one go, a 4,000-row batch held the loop for
several milliseconds; a request crosses the loop three or four times (read,
upstream write, upstream read, reply), so each one caught in such a window was
delayed by several such pauses — most of the gateway's p99 at concurrency 1.
``paced_map`` cuts the work into slices of ~0.1–0.2 ms and sleeps between them,
so a request waits behind at most one slice.

``lower_helper_threads`` is the same idea for threads: the request-log writer
(SQLite via aiosqlite's thread) and the access-log writer run at a lower
scheduling priority, so on a busy machine the kernel does not hand them the
event loop's core for a full time slice (~3–4 ms pauses seen at concurrency 1).

``freeze_startup_heap`` does it for the garbage collector: the ~86,000 objects
built at startup (modules, SQLAlchemy metadata, the catalog) are moved out of
its reach, so a full collection under load scans only what requests create.
Under load a full collection runs every ~0.4 s; walking them all, it held the
loop 35–43 ms (frozen: 2–3 ms). At saturation (``wrk -c64``) p99 was ~50 ms
against a p50 of 7 ms; frozen, ~11 ms.

``limit_malloc_arenas`` caps glibc's malloc arenas: every thread that allocates gets one
of its own (up to 8 per core), and freed memory stays in it. The database driver's
threads (one per pooled connection: request-log writes, budget leases, reports) made a
worker's RSS settle ~45 MiB higher under load with billing on (176 vs 132 MiB after
100 s of the soak mix; docs/performance.md).
"""

from __future__ import annotations

import asyncio
import ctypes
import gc
import os
import sys
import threading
from collections.abc import Callable, Sequence
from typing import TypeVar

__all__ = ["freeze_startup_heap", "limit_malloc_arenas", "lower_helper_threads", "paced_map"]

T = TypeVar("T")
R = TypeVar("R")

PAUSE = 0.001  # seconds between slices: room for requests to move on


async def paced_map(
    fn: Callable[[Sequence[T]], R], items: Sequence[T], size: int, pause: float = PAUSE
) -> list[R]:
    """``[fn(items[0:size]), fn(items[size:2*size]), …]``, pausing between slices."""
    out: list[R] = []
    for i in range(0, len(items), size):
        if i:
            await asyncio.sleep(pause)
        out.append(fn(items[i : i + size]))
    return out


HELPER_NICENESS = 10
_lowered: set[int] = set()


def lower_helper_threads(niceness: int = HELPER_NICENESS) -> None:
    """Give every Python thread of this process except the main one (the event
    loop) a lower CPU priority. Cheap and idempotent: call it after anything
    that may have started a thread (aiosqlite opens one per connection)."""
    if not hasattr(os, "setpriority"):  # pragma: no cover - not POSIX
        return
    main = threading.main_thread()
    if len(_lowered) > 4096:  # thread ids are reused; forget old ones now and then
        _lowered.clear()
    for t in threading.enumerate():
        tid = t.native_id
        if t is main or tid is None or tid in _lowered:
            continue
        _lowered.add(tid)
        try:  # on Linux a thread id names one thread here
            os.setpriority(os.PRIO_PROCESS, tid, niceness)
        except OSError:  # the thread has just ended, or we may not lower it
            continue


def freeze_startup_heap() -> int:
    """Collect once, then move every object alive now to the collector's permanent
    generation (``gc.freeze``); returns how many objects are frozen. Call it when
    startup is done. Frozen objects are still freed by reference counting; only a
    reference cycle among them is never collected (at worst the catalog snapshot built at
    startup, once, when a refresh replaces it)."""
    gc.collect()
    gc.freeze()
    return gc.get_freeze_count()


_M_ARENA_MAX = -8  # glibc's mallopt parameter


def limit_malloc_arenas(arenas: int = 2) -> bool:
    """Cap glibc malloc arenas for threads created from now on (call before the database
    and logging threads start). Skipped when ``MALLOC_ARENA_MAX`` is set (the operator
    decides) or the C library is not glibc. True when the cap was set."""
    if sys.platform != "linux" or os.environ.get("MALLOC_ARENA_MAX"):
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")
        return bool(libc.mallopt(_M_ARENA_MAX, arenas))
    except (OSError, AttributeError):
        return False
