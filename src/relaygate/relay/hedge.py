"""Hedged requests (docs/routing.md, "Hedging").

For a model whose route sets ``hedge_after_ms``, the attempt loop starts the first
candidate and, if no byte has reached the client after that long, starts the next
admissible candidate (another channel) beside it. The first of the two to have its
first byte ready claims the response (``RelayContext.claim``, called by the relay
right before the first write); the other is cancelled at once, so the upstream call is
dropped and the client gets one answer, billed once. If both fail before the first
byte, the attempt loop goes on with the remaining candidates. Both attempts appear in
the request's attempt chain, the second marked ``hedge``, the loser ``hedge_lost``.
"""

from __future__ import annotations

import asyncio
from typing import Protocol

from relaygate.context import Race, RelayContext
from relaygate.errors import RelayError
from relaygate.routing.breakers import ADMIT, OPEN, PROBE
from relaygate.routing.router import Candidate
from relaygate.state import AppState

__all__ = ["hedged"]


class AttemptLoop(Protocol):
    """What hedging needs of ``relay/attempt.py`` ``AttemptLoop``."""

    state: AppState
    ctx: RelayContext
    failed: dict[int, RelayError]

    def more(self) -> bool: ...

    async def attempt(self, cand: Candidate, probe: bool = False, hedge: bool = False) -> bool: ...


async def hedged(
    loop: AttemptLoop,
    first: Candidate,
    probe: bool,
    queue: list[Candidate],
    start: int,
    after: float,
) -> bool:
    """Run ``first``, hedged after ``after`` seconds by the next admissible candidate of
    ``queue[start:]`` (which is removed from ``queue``). True when one of them served
    the request."""
    ctx = loop.ctx
    breakers = loop.state.breakers
    race = Race()
    ctx.race = race
    aio = asyncio.get_running_loop()
    t1 = aio.create_task(loop.attempt(first, probe=probe))
    race.tasks.append(t1)
    tasks: set[asyncio.Task[bool]] = {t1}
    try:
        done, _ = await asyncio.wait(tasks, timeout=after)
        if not done and race.winner is None and loop.more():
            for j in range(start, len(queue)):
                cand = queue[j]
                ch, model = cand
                if ch.id in loop.failed or ch.id == first[0].id:
                    continue
                verdict = breakers.admit(ch.id, model) if breakers.open else ADMIT
                if verdict == OPEN:
                    continue
                del queue[j]
                t2 = aio.create_task(loop.attempt(cand, probe=verdict == PROBE, hedge=True))
                race.tasks.append(t2)
                tasks.add(t2)
                break
        while tasks:
            done, tasks = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                if task.cancelled():
                    continue
                exc = task.exception()
                if exc is not None:
                    raise exc
                if task.result():
                    return True
        return False
    finally:
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
        ctx.race = None
