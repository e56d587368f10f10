"""Circuit breakers and in-tier ordering, on their own (routing/breakers.py,
routing/order.py): a clock we move by hand, real in-process shared state."""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import replace
from datetime import UTC, datetime

import pytest

from relaygate.routing.breakers import ADMIT, OPEN, PROBE, Breakers
from relaygate.routing.order import affinity_key, key_slot, weighted_order
from relaygate.settings import Settings
from relaygate.sharedstate.memory import InProcessState
from relaygate.storage.records import ChannelRecord


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _breakers(**kw: float) -> tuple[Breakers, Clock]:
    clock = Clock()
    s = Settings(breaker_failures=3, breaker_cooldown=10, breaker_max_cooldown=40, **kw)  # type: ignore[arg-type]
    return Breakers(InProcessState(), s, clock), clock


def test_a_run_of_failures_opens_then_one_probe_then_close() -> None:
    b, clock = _breakers()
    for _ in range(2):
        b.failure(1, "m")
    assert not b.open  # two in a row: still closed
    b.failure(1, "m")
    assert b.admit(1, "m") == OPEN and b.admit(1, "other") == ADMIT  # per channel+model
    clock.now += 10
    assert b.admit(1, "m") == PROBE
    assert b.admit(1, "m") == OPEN  # one probe at a time
    b.success(1, "m")
    assert not b.open and b.admit(1, "m") == ADMIT


def test_a_failed_probe_doubles_the_cool_down_up_to_the_maximum() -> None:
    b, clock = _breakers()
    for _ in range(3):
        b.failure(1, "m")
    waits = []
    for _ in range(4):
        clock.now += 100
        assert b.admit(1, "m") == PROBE
        b.failure(1, "m")
        waits.append(b.states()[0]["open_seconds_left"])
    assert waits == [20, 40, 40, 40]


def test_a_success_resets_the_run() -> None:
    b, _ = _breakers(breaker_min_requests=1000)  # the rate rule out of the way
    for _ in range(10):
        b.failure(1, "m")
        b.failure(1, "m")
        assert not b.open  # two in a row at most: never opened, not merely closed again
        b.success(1, "m")
    assert not b.open
    b.failure(1, "m")
    b.failure(1, "m")
    b.failure(1, "m")
    assert b.open  # the run still counts once it is unbroken


def test_the_failure_rate_opens_once_the_window_is_full() -> None:
    b, _ = _breakers(breaker_rate=0.5, breaker_min_requests=20)
    for _ in range(9):
        b.failure(1, "m")
        b.success(1, "m")
    assert not b.open  # 18 outcomes: under the minimum
    b.failure(1, "m")  # 10 of 19: still under the minimum
    b.success(1, "m")  # successes never open a circuit
    assert not b.open
    b.failure(1, "m")
    assert b.open  # 11 failures of 21 outcomes >= 50 %


def test_a_connection_failure_counts_against_the_whole_channel() -> None:
    b, _ = _breakers()
    for _ in range(3):
        b.failure(7, "m", channel_wide=True)
    assert b.admit(7, "m") == OPEN and b.admit(7, "any-model") == OPEN
    assert b.admit(8, "m") == ADMIT


def test_retry_after_cools_without_counting_a_failure() -> None:
    b, clock = _breakers()
    b.cool(1, "m", 5)
    assert b.admit(1, "m") == OPEN
    clock.now += 5
    assert b.admit(1, "m") == PROBE
    b.success(1, "m")
    assert not b.open


def test_an_abandoned_probe_frees_the_slot() -> None:
    b, clock = _breakers()
    for _ in range(3):
        b.failure(1, "m")
    clock.now += 10
    assert b.admit(1, "m") == PROBE
    b.abandon(1, "m")
    assert b.admit(1, "m") == PROBE


async def test_circuits_travel_through_the_shared_state() -> None:
    """Two workers on one shared state (what Redis gives several processes)."""
    shared = InProcessState()
    s = Settings(breaker_failures=2, breaker_cooldown=30)
    one, two = Breakers(shared, s), Breakers(shared, s)
    # the in-process state is not shared by design; write as a networked one would
    one._shared = two._shared = _Networked(shared)  # type: ignore[assignment]
    one._scopes = two._scopes = lambda: [(1, ""), (1, "m")]
    one.failure(1, "m")
    one.failure(1, "m")
    for task in list(one._tasks):
        await task
    await two.sync()
    assert two.admit(1, "m") == OPEN
    two.open[(1, "m")].open_until = 1.0  # its cool-down has passed
    assert two.admit(1, "m") == PROBE
    two.success(1, "m")
    for task in list(two._tasks):
        await task
    await one.sync()
    assert not one.open  # closed everywhere


class _Networked:
    """The in-process state seen as if it were networked (Breakers skips sharing for
    the in-process type itself)."""

    def __init__(self, inner: InProcessState) -> None:
        self._inner = inner

    def __getattr__(self, name: str) -> object:
        return getattr(self._inner, name)


def _channel(cid: int, weight: int) -> ChannelRecord:
    return ChannelRecord(
        id=cid,
        name=f"c{cid}",
        provider="openai_compat",
        profile="openai",
        base_url="http://127.0.0.1:9",
        keys=("k1", "k2", "k3"),
        models=("m",),
        model_mapping={},
        priority=0,
        weight=weight,
        status="enabled",
        config={},
        is_emulator=False,
        created_at=datetime.now(UTC),
    )


def test_weighted_order_follows_the_weights() -> None:
    tier = [_channel(1, 6), _channel(2, 3), _channel(3, 1)]
    rnd = random.Random(7)
    firsts = Counter(weighted_order(tier, None, rnd)[0].id for _ in range(20_000))
    assert firsts[1] / 20_000 == pytest.approx(0.6, abs=0.02)
    assert firsts[2] / 20_000 == pytest.approx(0.3, abs=0.02)
    assert firsts[3] / 20_000 == pytest.approx(0.1, abs=0.02)


def test_weight_0_is_last_and_affinity_is_stable_and_spread() -> None:
    tier = [_channel(1, 1), _channel(2, 0), _channel(3, 1)]
    assert all(weighted_order(tier, None)[-1].id == 2 for _ in range(50))
    one = [c.id for c in weighted_order(tier, "c:conv-1")]
    assert all([c.id for c in weighted_order(tier, "c:conv-1")] == one for _ in range(20))
    firsts = Counter(weighted_order(tier, f"c:{i}")[0].id for i in range(2000))
    assert set(firsts) == {1, 3} and 800 < firsts[1] < 1200
    # the same key always uses the same upstream key of a channel
    assert len({key_slot("c:conv-1", 1, 3) for _ in range(10)}) == 1
    assert len({key_slot(f"c:{i}", 1, 3) for i in range(100)}) == 3
    # removing a channel moves only the conversations it won
    before = {i: weighted_order(tier, f"c:{i}")[0].id for i in range(500)}
    without3 = [c for c in tier if c.id != 3]
    after = {i: weighted_order(without3, f"c:{i}")[0].id for i in range(500)}
    assert all(after[i] == 1 for i in before if before[i] == 1)


def test_affinity_key_sources() -> None:
    h = {b"x-session-id": b"abc"}
    assert affinity_key("conversation", h, {}, 5) == "c:abc"
    assert affinity_key("conversation", {}, {"prompt_cache_key": "p"}, 5) == "c:p"
    assert affinity_key("conversation", {}, {"prompt_cache_key": 3}, 5) is None
    assert affinity_key("key", {}, {}, 5) == "k:5"
    assert affinity_key("off", h, {}, 5) is None
    long = affinity_key("conversation", {b"x-session-id": b"x" * 10_000}, {}, 5)
    assert long is not None and len(long) < 300
    assert replace(_channel(1, 1), weight=2).weight == 2


def test_channel_policy_parsing_keeps_a_zero_queue() -> None:
    from relaygate.routing.router import parse_policy

    assert parse_policy({"queue_size": 0}).queue_size == 0  # nobody waits
    assert parse_policy({}).queue_size == 100
    p = parse_policy({"timeouts": {"first_byte": 2}, "groups": ["vip"], "max_concurrency": 3})
    assert p.timeouts == (None, 2.0, None) and p.groups == frozenset({"vip"}) and p.capped
    assert not parse_policy({"groups": []}).capped and parse_policy({"groups": []}).groups is None
