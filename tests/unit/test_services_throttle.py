"""``Throttle``: the admin API's re-check of unknown tokens runs at most once per interval."""

from __future__ import annotations

import asyncio
import time

import pytest

from relaygate.services.throttle import Throttle


async def test_callers_are_coalesced_and_spaced() -> None:
    starts: list[float] = []

    async def action() -> None:
        starts.append(time.monotonic())
        await asyncio.sleep(0.01)

    t = Throttle(action, 0.2)
    t0 = time.monotonic()
    await t.run()  # the first run starts at once
    assert t.runs == 1 and starts[0] - t0 < 0.1
    # 50 callers at once: one more run, started no earlier than 0.2 s after the first
    await asyncio.gather(*(t.run() for _ in range(50)))
    assert t.runs == 2 and starts[1] - starts[0] >= 0.2 - 1e-3
    # a caller that comes after a run started gets a run of its own, started after it came
    first = asyncio.ensure_future(t.run())
    await asyncio.sleep(0.25)  # the third run has started
    came = time.monotonic()
    await t.run()
    await first
    assert t.runs == 4 and starts[-1] >= came


async def test_failure_reaches_every_waiter_and_the_next_run_is_fresh() -> None:
    calls = 0

    async def action() -> None:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise RuntimeError("database down")

    t = Throttle(action, 0.05)
    results = await asyncio.gather(t.run(), t.run(), return_exceptions=True)
    assert [type(r) for r in results] == [RuntimeError, RuntimeError]
    await t.run()
    assert calls == 2


async def test_a_cancelled_waiter_does_not_cancel_the_run() -> None:
    done = asyncio.Event()

    async def action() -> None:
        await asyncio.sleep(0.05)
        done.set()

    t = Throttle(action, 0.0)
    waiter = asyncio.ensure_future(t.run())
    await asyncio.sleep(0.01)
    waiter.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiter
    await asyncio.wait_for(done.wait(), 1)
