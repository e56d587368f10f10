"""The in-process shared state: exact sliding windows, atomic reservations, expiry."""

from __future__ import annotations

from relaygate.sharedstate.memory import InProcessState


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


async def test_sliding_window_has_no_burst_at_a_minute_boundary() -> None:
    clock = Clock()
    st = InProcessState(clock)
    clock.t = 59.0  # three requests just before a fixed-window minute boundary
    assert [await st.hit_window("k", 3, 60.0) for _ in range(3)] == [None, None, None]
    clock.t = 61.0  # … and three just after it: a fixed window would admit them
    wait = await st.hit_window("k", 3, 60.0)
    assert wait is not None and abs(wait - 58.0) < 1e-6  # the oldest leaves the window at 119
    clock.t = 119.0 + 1e-3  # all three left the window: three more, not four
    assert [await st.hit_window("k", 3, 60.0) for _ in range(3)] == [None, None, None]
    assert await st.hit_window("k", 3, 60.0) is not None


async def test_reserve_is_bounded_and_released() -> None:
    st = InProcessState(Clock())
    assert await st.reserve("c", 1, 2)
    assert await st.reserve("c", 1, 2)
    assert not await st.reserve("c", 1, 2)
    await st.release("c", 1)
    assert await st.reserve("c", 1, 2)
    await st.release("c", 5)  # never below zero
    assert await st.incr("c", 0) == 0


async def test_counters_and_values_expire() -> None:
    clock = Clock()
    st = InProcessState(clock)
    assert await st.incr("n", 2, ttl=10) == 2
    await st.set("v", b"x", ttl=5)
    assert await st.get("v") == b"x"
    clock.t += 6
    assert await st.get("v") is None
    assert await st.incr("n", 1, ttl=10) == 3
    clock.t += 5
    assert await st.incr("n", 1, ttl=10) == 1  # expired, started again
    await st.delete("n")
    assert await st.incr("n") == 1


async def test_reservations_expire_from_the_last_one_not_the_first() -> None:
    clock = Clock()
    st = InProcessState(clock)
    assert await st.reserve("c", 1, 2, ttl=10)
    clock.t += 8
    assert await st.reserve("c", 1, 2, ttl=10)  # two held now
    clock.t += 7  # 15 s after the first reservation, 7 s after the last
    assert not await st.reserve("c", 1, 2, ttl=10)  # the held shares did not lapse
    clock.t += 11  # nobody reserved for longer than the ttl: a crashed holder's shares go
    assert await st.reserve("c", 1, 2, ttl=10)
