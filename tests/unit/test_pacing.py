"""relaygate.pacing: sliced background work and lower-priority helper threads."""

from __future__ import annotations

import asyncio
import gc
import itertools
import os
import threading
import time

import pytest

from relaygate.pacing import freeze_startup_heap, lower_helper_threads, paced_map


async def test_paced_map_slices_in_order_and_lets_the_loop_run() -> None:
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            ticks += 1
            await asyncio.sleep(0)

    task = asyncio.get_running_loop().create_task(ticker())
    await asyncio.sleep(0)
    seen_by_slice: list[int] = []

    def work(chunk: list[int] | tuple[int, ...]) -> int:
        seen_by_slice.append(ticks)
        return sum(chunk)

    out = await paced_map(work, list(range(10)), 3, pause=0)
    task.cancel()
    assert out == [0 + 1 + 2, 3 + 4 + 5, 6 + 7 + 8, 9]
    # other tasks ran between every two slices
    assert all(b > a for a, b in itertools.pairwise(seen_by_slice))
    assert await paced_map(work, [], 3) == []


@pytest.mark.skipif(not hasattr(os, "setpriority"), reason="POSIX only")
def test_helper_threads_get_a_lower_priority_main_thread_keeps_its_own() -> None:
    ready = threading.Event()
    stop = threading.Event()
    tid: list[int] = []

    def helper() -> None:
        tid.append(threading.get_native_id())
        ready.set()
        stop.wait(5)

    t = threading.Thread(target=helper)
    t.start()
    ready.wait(5)
    main_before = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
    try:
        lower_helper_threads(niceness=main_before + 5)
        deadline = time.monotonic() + 2
        while os.getpriority(os.PRIO_PROCESS, tid[0]) != main_before + 5:
            assert time.monotonic() < deadline, "helper thread priority was not lowered"
            time.sleep(0.01)
        assert os.getpriority(os.PRIO_PROCESS, threading.get_native_id()) == main_before
    finally:
        stop.set()
        t.join()


def test_freeze_startup_heap_puts_live_objects_out_of_the_collectors_reach() -> None:
    before = [object(), {"startup": True}]  # a tracked container, alive at "startup"
    try:
        frozen = freeze_startup_heap()
        # Frozen objects can still be freed by reference counting (another thread of the
        # test process may drop some at once), so the count can only shrink afterwards.
        assert 0 < gc.get_freeze_count() <= frozen
        tracked = gc.get_objects()
        assert not any(o is before for o in tracked)  # frozen: never scanned again
        after = [object()]
        assert any(o is after for o in gc.get_objects())  # new objects still collected
    finally:
        gc.unfreeze()
    assert any(o is before for o in gc.get_objects())
