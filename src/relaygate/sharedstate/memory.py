"""In-process shared state: exact within one worker process.

Counters and cached values expire lazily (checked when read) and by a sweep of
at most ``sweep_batch`` entries per write, so memory stays bounded without a
timer task. Sliding windows keep the admission times of the last ``limit``
events per key (a deque): exact, no boundary burst. Token windows keep 60 buckets per
key (``BUCKETS``) and their running total.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from typing import NamedTuple

__all__ = ["BUCKETS", "Drained", "InProcessState"]

#: buckets per token window (``add_window``): a bucket is ``window / BUCKETS`` seconds
BUCKETS = 60


class Drained(NamedTuple):
    """What :meth:`InProcessState.drain` hands over."""

    counters: list[tuple[str, int, float | None]]
    sums: list[tuple[str, int, float]]
    hits: list[tuple[str, list[float], float]]


class _Sum:
    """A token window: ``[bucket index, amount]`` oldest first, and their total."""

    __slots__ = ("buckets", "total")

    def __init__(self) -> None:
        self.buckets: deque[list[int]] = deque()
        self.total = 0


class InProcessState:
    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._now = clock
        self._counters: dict[str, list[float]] = {}  # key -> [value, expires_at or 0]
        self._values: dict[str, tuple[bytes, float]] = {}
        self._windows: dict[str, deque[float]] = {}
        self._sums: dict[str, _Sum] = {}

    def _counter(self, key: str, ttl: float | None, now: float) -> list[float]:
        c = self._counters.get(key)
        if c is not None and c[1] and c[1] <= now:
            c = None
        if c is None:
            c = [0, now + ttl if ttl else 0.0]
            self._counters[key] = c
        return c

    async def incr(self, key: str, amount: int = 1, ttl: float | None = None) -> int:
        c = self._counter(key, ttl, self._now())
        c[0] += amount
        return int(c[0])

    async def reserve(self, key: str, amount: int, limit: int, ttl: float | None = None) -> bool:
        now = self._now()
        c = self._counter(key, ttl, now)
        if c[0] + amount > limit:
            return False
        c[0] += amount
        if ttl:  # the expiry counts from the last reservation: held shares never lapse
            c[1] = now + ttl
        return True

    async def release(self, key: str, amount: int) -> None:
        c = self._counters.get(key)
        if c is None:
            return
        c[0] -= amount
        if c[0] <= 0:
            del self._counters[key]

    async def hit_window(self, key: str, limit: int, window: float) -> float | None:
        now = self._now()
        q = self._windows.get(key)
        if q is None:
            q = self._windows[key] = deque()
        cutoff = now - window
        while q and q[0] <= cutoff:
            q.popleft()
        if len(q) >= limit:
            return max(q[len(q) - limit] + window - now, 0.001)
        q.append(now)
        return None

    async def undo_hit(self, key: str) -> None:
        q = self._windows.get(key)
        if q:
            q.pop()

    def _sum(self, key: str, window: float, now: float) -> tuple[_Sum | None, float, int]:
        """The key's token window with buckets that left it dropped; its bucket size
        and the current bucket's index."""
        res = window / BUCKETS
        cur = int(now // res)
        s = self._sums.get(key)
        if s is not None:
            oldest = cur - BUCKETS  # a bucket counts until it is wholly out of the window
            q = s.buckets
            while q and q[0][0] < oldest:
                s.total -= q.popleft()[1]
            if not q:
                del self._sums[key]
                s = None
        return s, res, cur

    async def add_window(self, key: str, amount: int, window: float) -> None:
        if amount <= 0:
            return
        s, _, cur = self._sum(key, window, self._now())
        if s is None:
            s = self._sums[key] = _Sum()
        if s.buckets and s.buckets[-1][0] == cur:
            s.buckets[-1][1] += amount
        else:
            s.buckets.append([cur, amount])
        s.total += amount

    async def window_total(self, key: str, window: float) -> int:
        s, _, _ = self._sum(key, window, self._now())
        return 0 if s is None else s.total

    async def window_over(self, key: str, limit: int, window: float) -> float | None:
        now = self._now()
        s, res, _ = self._sum(key, window, now)
        if s is None or s.total < limit:
            return None
        remaining = s.total
        for bucket, amount in s.buckets:  # oldest first: when is enough of it gone?
            remaining -= amount
            if remaining < limit:
                return max((bucket + BUCKETS + 1) * res - now, 0.001)
        return window  # not reached: the buckets add up to the total

    async def get(self, key: str) -> bytes | None:
        item = self._values.get(key)
        if item is None:
            return None
        value, expires = item
        if expires and expires <= self._now():
            del self._values[key]
            return None
        return value

    async def get_many(self, keys: list[str]) -> list[bytes | None]:
        return [await self.get(k) for k in keys]

    async def set(self, key: str, value: bytes, ttl: float | None = None) -> None:
        self._values[key] = (value, self._now() + ttl if ttl else 0.0)

    async def delete(self, key: str) -> None:
        self._values.pop(key, None)
        self._counters.pop(key, None)
        self._windows.pop(key, None)
        self._sums.pop(key, None)

    def drain(self, windows: dict[str, float], hits: dict[str, float]) -> Drained:
        """Hand over and forget everything (``fallback.py`` after an outage): the counters
        as ``(key, value, seconds left or None)``, the totals of the token windows named
        in ``windows`` (key -> window seconds) as ``(key, total, window)``, and the
        admissions of the request windows named in ``hits`` (key -> window seconds) as
        ``(key, [age in seconds, ...], window)``."""
        now = self._now()
        counters: list[tuple[str, int, float | None]] = []
        for key, (value, expires) in self._counters.items():
            if value > 0 and (not expires or expires > now):
                counters.append((key, int(value), expires - now if expires else None))
        sums: list[tuple[str, int, float]] = []
        for key, window in windows.items():
            s, _, _ = self._sum(key, window, now)
            if s is not None and s.total > 0:
                sums.append((key, s.total, window))
        admitted: list[tuple[str, list[float], float]] = []
        for key, window in hits.items():
            ages = [now - t for t in self._windows.get(key, ()) if now - t < window]
            if ages:
                admitted.append((key, ages, window))
        self._counters.clear()
        self._values.clear()
        self._windows.clear()
        self._sums.clear()
        return Drained(counters, sums, admitted)

    async def close(self) -> None:
        self._counters.clear()
        self._values.clear()
        self._windows.clear()
        self._sums.clear()
