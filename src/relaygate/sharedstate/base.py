"""The shared-state interface. Every call is async so a networked implementation
(``redis.py``: Redis, with Lua scripts for the atomic ones) is used without touching
callers; the in-process implementation (``memory.py``) answers without suspending.

Two implementations keep the same contract (tests/unit/test_sharedstate_contract.py runs
the same tests on both). Counters, values, admission windows and token windows live in
separate namespaces: the same ``key`` may name one of each, and :meth:`delete` removes all.
"""

from __future__ import annotations

from typing import Protocol

__all__ = ["SharedState", "SharedStateError", "SharedStateUnavailable"]


class SharedStateError(Exception):
    """The shared state could not answer (Redis unreachable or timing out, or refusing a
    command). Callers decide whether to fail open or closed."""


class SharedStateUnavailable(SharedStateError):
    """The shared state is away: Redis refused the connection, dropped it or timed out
    (``fallback.py`` then answers locally until it is back)."""


class SharedState(Protocol):
    async def incr(self, key: str, amount: int = 1, ttl: float | None = None) -> int:
        """Add ``amount`` to a counter (created at 0) and return the new value.
        ``ttl`` (seconds) sets the counter's expiry when it is created."""
        ...

    async def reserve(self, key: str, amount: int, limit: int, ttl: float | None = None) -> bool:
        """Atomically add ``amount`` to a counter if the result stays <= ``limit``;
        True when reserved. ``ttl`` bounds how long a crashed holder's share lives: the
        counter expires ``ttl`` seconds after the last reservation."""
        ...

    async def release(self, key: str, amount: int) -> None:
        """Give back a reservation (the counter never goes below 0)."""
        ...

    async def hit_window(self, key: str, limit: int, window: float) -> float | None:
        """Sliding-window rate limit: admit one event if fewer than ``limit`` were
        admitted in the last ``window`` seconds. Returns None when admitted, else
        the seconds until the next event would be admitted."""
        ...

    async def undo_hit(self, key: str) -> None:
        """Take back the most recent admission of :meth:`hit_window` (a request admitted
        by one limit and refused by a later one does not count)."""
        ...

    async def add_window(self, key: str, amount: int, window: float) -> None:
        """Add ``amount`` (tokens) to a sliding total over the last ``window`` seconds.
        Approximate: amounts are kept in 60 buckets of ``window / 60`` seconds, and a
        bucket counts until it is wholly older than the window (never less than exact)."""
        ...

    async def window_total(self, key: str, window: float) -> int:
        """The total :meth:`add_window` holds for ``key`` over the last ``window`` seconds."""
        ...

    async def window_over(self, key: str, limit: int, window: float) -> float | None:
        """None when the window's total is below ``limit``; else the seconds until enough
        of it has left the window for the total to be below ``limit``."""
        ...

    async def get(self, key: str) -> bytes | None: ...

    async def get_many(self, keys: list[str]) -> list[bytes | None]:
        """The values of ``keys``, in order (one round trip: Redis ``MGET``)."""
        ...

    async def set(self, key: str, value: bytes, ttl: float | None = None) -> None: ...

    async def delete(self, key: str) -> None:
        """Remove the counter, value and windows named ``key``."""
        ...

    async def close(self) -> None:
        """Let go of resources: Redis connections (the data stays in Redis), or the
        in-process state's data."""
        ...
