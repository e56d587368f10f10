"""In-process shared state: exact within one worker process.

Counters and cached values expire lazily (checked when read) and by a sweep of
at most ``sweep_batch`` entries per write, so memory stays bounded without a
timer task. Sliding windows keep the admission times of the last ``limit``
events per key (a deque): exact, no boundary burst.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable

__all__ = ["InProcessState"]


class InProcessState:
    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._now = clock
        self._counters: dict[str, list[float]] = {}  # key -> [value, expires_at or 0]
        self._values: dict[str, tuple[bytes, float]] = {}
        self._windows: dict[str, deque[float]] = {}

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

    async def get(self, key: str) -> bytes | None:
        item = self._values.get(key)
        if item is None:
            return None
        value, expires = item
        if expires and expires <= self._now():
            del self._values[key]
            return None
        return value

    async def set(self, key: str, value: bytes, ttl: float | None = None) -> None:
        self._values[key] = (value, self._now() + ttl if ttl else 0.0)

    async def delete(self, key: str) -> None:
        self._values.pop(key, None)
        self._counters.pop(key, None)
        self._windows.pop(key, None)

    async def close(self) -> None:
        self._counters.clear()
        self._values.clear()
        self._windows.clear()
