"""Per-key request limits: requests per minute and concurrent requests.

Both go through the shared-state interface (``sharedstate/``): exact per worker
with the in-process implementation, across workers and nodes once a Redis one is
plugged in. The minute is a sliding window (no burst of twice the limit around a
minute boundary), and a refusal says when the next request is admitted
(``Retry-After``). Refusals are 429 ``rate_limit_exceeded``.
"""

from __future__ import annotations

import math
from typing import Any

from relaygate.context import RelayContext, Slot
from relaygate.errors import RateLimited
from relaygate.sharedstate.base import SharedState

__all__ = ["KeyLimitsFilter"]

#: the key id whose concurrency slot this request holds
HELD: Slot[str] = Slot("key_limits.held")

#: a crashed holder's concurrency share is forgotten after this long
_SLOT_TTL = 3600.0


class KeyLimitsFilter:
    def __init__(self, state: SharedState) -> None:
        self._state = state

    async def before(self, ctx: RelayContext, body: dict[str, Any]) -> None:
        key = ctx.key
        if key is None or (key.concurrency_limit is None and key.rpm_limit is None):
            return
        slot = f"conc:key:{key.id}"
        if key.concurrency_limit is not None:
            if not await self._state.reserve(slot, 1, key.concurrency_limit, _SLOT_TTL):
                err = RateLimited(
                    f"This key allows {key.concurrency_limit} concurrent requests; "
                    "wait for one to finish."
                )
                err.retry_after = 1.0
                raise err
            ctx.put(HELD, slot)
        if key.rpm_limit is not None:
            wait = await self._state.hit_window(f"rpm:key:{key.id}", key.rpm_limit, 60.0)
            if wait is not None:
                held = ctx.pop(HELD)  # a refused request holds no concurrency slot
                if held is not None:
                    await self._state.release(held, 1)
                seconds = max(1, math.ceil(wait))
                err = RateLimited(
                    f"This key allows {key.rpm_limit} requests per minute; retry in {seconds} s."
                )
                err.retry_after = float(seconds)
                raise err

    async def after(self, ctx: RelayContext) -> None:
        held = ctx.pop(HELD)
        if held is not None:
            await self._state.release(held, 1)
