"""``Throttle``: run an async action at most once per interval, coalescing callers.

The admin API uses it to re-check the database for an admin token it does not know yet
(one just printed by ``relaygate admin bootstrap``) without letting invalid tokens make a
database query each: callers that arrive while a run is waiting for its turn join that run,
so a worker makes at most one query per interval however many requests ask.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

__all__ = ["Throttle"]


class Throttle:
    def __init__(self, action: Callable[[], Awaitable[object]], interval: float) -> None:
        self._action = action
        self._interval = interval
        self._next_start = 0.0  # monotonic time the next run may start
        self._waiting: asyncio.Future[None] | None = None  # a run not started yet
        self.runs = 0

    async def run(self) -> None:
        """Return once a run that started after this call finished (raises its error)."""
        if self._waiting is None:
            self._waiting = asyncio.ensure_future(self._run())
            self._waiting.add_done_callback(_consume)
        await asyncio.shield(self._waiting)

    async def _run(self) -> None:
        delay = self._next_start - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        self._waiting = None  # from here on, newcomers need a run of their own
        self._next_start = time.monotonic() + self._interval
        self.runs += 1
        await self._action()


def _consume(fut: asyncio.Future[None]) -> None:
    if not fut.cancelled():
        fut.exception()  # retrieved here so an unawaited failure is not reported twice
