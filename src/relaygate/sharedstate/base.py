"""The shared-state interface. Every call is async so a networked implementation
(Redis, with Lua scripts for the atomic ones) can be plugged in without touching
callers; the in-process implementation answers without suspending."""

from __future__ import annotations

from typing import Protocol

__all__ = ["SharedState"]


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

    async def get(self, key: str) -> bytes | None: ...

    async def set(self, key: str, value: bytes, ttl: float | None = None) -> None: ...

    async def delete(self, key: str) -> None: ...

    async def close(self) -> None: ...
