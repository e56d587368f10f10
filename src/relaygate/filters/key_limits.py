"""Per-key request limits: requests per minute and concurrent requests.

Counted in this worker process. With several workers or nodes each enforces the
limit on its own share of traffic; shared counters in Redis replace these when
scale-out state lands (PRODUCT.md §10). Refusals are 429 ``rate_limit_exceeded``.
"""

from __future__ import annotations

import time
from typing import Any

from relaygate.context import RelayContext
from relaygate.errors import RateLimited

__all__ = ["KeyLimitsFilter"]


class KeyLimitsFilter:
    def __init__(self) -> None:
        self._active: dict[int, int] = {}
        self._window: dict[int, tuple[int, int]] = {}  # key id -> (minute, count)

    async def before(self, ctx: RelayContext, body: dict[str, Any]) -> None:
        key = ctx.key
        if key is None:
            return
        # check every limit first, then count: a refused request uses no budget
        active = self._active.get(key.id, 0)
        if key.concurrency_limit is not None and active >= key.concurrency_limit:
            raise RateLimited(
                f"This key allows {key.concurrency_limit} concurrent requests; "
                "wait for one to finish."
            )
        if key.rpm_limit is not None:
            minute = int(time.time() // 60)
            start, count = self._window.get(key.id, (minute, 0))
            if start != minute:
                count = 0
            if count >= key.rpm_limit:
                raise RateLimited(
                    f"This key allows {key.rpm_limit} requests per minute; retry in a moment."
                )
            self._window[key.id] = (minute, count + 1)
        if key.concurrency_limit is not None:
            self._active[key.id] = active + 1
            ctx.notes["concurrency_held"] = key.id

    async def after(self, ctx: RelayContext) -> None:
        kid = ctx.notes.pop("concurrency_held", None)
        if kid is not None:
            left = self._active.get(kid, 1) - 1
            if left > 0:
                self._active[kid] = left
            else:
                self._active.pop(kid, None)
