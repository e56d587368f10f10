"""One contract, two implementations: every test runs on the in-process state and on the
Redis state (the Redis on this machine, ``RELAYGATE_TEST_REDIS_URL``), each Redis run under
its own key prefix, removed afterwards. Real clocks: windows and expiries are short."""

from __future__ import annotations

import asyncio
import logging
import os
import uuid
from collections.abc import AsyncIterator

import pytest
import redis.asyncio as aioredis

from relaygate.settings import Settings
from relaygate.sharedstate.base import SharedState, SharedStateError
from relaygate.sharedstate.factory import create_shared_state, redact_url
from relaygate.sharedstate.fallback import FallbackState
from relaygate.sharedstate.memory import InProcessState
from relaygate.sharedstate.redis import RedisState

REDIS_URL = os.environ.get("RELAYGATE_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


async def _drop(prefix: str) -> None:
    client = aioredis.Redis.from_url(REDIS_URL)
    try:
        keys = [k async for k in client.scan_iter(match=prefix + "*")]
        if keys:
            await client.delete(*keys)
    finally:
        await client.aclose()


@pytest.fixture
async def redis_prefix() -> AsyncIterator[str]:
    prefix = f"rgtest:{uuid.uuid4().hex[:12]}:"
    yield prefix
    await _drop(prefix)


@pytest.fixture(params=["memory", "redis"])
async def state(request: pytest.FixtureRequest, redis_prefix: str) -> AsyncIterator[SharedState]:
    st: SharedState
    if request.param == "memory":
        st = InProcessState()
    else:
        try:
            st = await RedisState.connect(REDIS_URL, prefix=redis_prefix)
        except SharedStateError as exc:  # pragma: no cover - Redis is a service of this machine
            pytest.fail(f"Redis at {REDIS_URL} is not reachable: {exc}")
    yield st
    await st.close()


async def test_counter_adds_and_expires_from_creation(state: SharedState) -> None:
    assert await state.incr("n", 2, ttl=0.3) == 2
    assert await state.incr("n", 3, ttl=0.3) == 5
    await asyncio.sleep(0.4)
    assert await state.incr("n", 1) == 1  # expired: started again
    assert await state.incr("n", 0) == 1


async def test_reserve_is_bounded_and_release_never_goes_below_zero(state: SharedState) -> None:
    assert await state.reserve("c", 1, 2)
    assert await state.reserve("c", 1, 2)
    assert not await state.reserve("c", 1, 2)
    assert not await state.reserve("c", 5, 6)  # 2 + 5 > 6
    await state.release("c", 1)
    assert await state.reserve("c", 1, 2)
    await state.release("c", 10)  # more than held: gone, not negative
    assert await state.incr("c", 0) == 0
    await state.release("never-held", 3)
    assert await state.incr("never-held", 0) == 0


async def test_reservation_expiry_counts_from_the_last_reservation(state: SharedState) -> None:
    assert await state.reserve("r", 1, 5, ttl=0.5)
    await asyncio.sleep(0.3)
    assert await state.reserve("r", 1, 5, ttl=0.5)  # renews the expiry
    await asyncio.sleep(0.3)  # 0.6 s after the first, 0.3 s after the last
    assert await state.incr("r", 0) == 2
    await asyncio.sleep(0.35)
    assert await state.incr("r", 0) == 0  # a crashed holder's share lapsed


async def test_concurrent_reservations_never_exceed_the_limit(state: SharedState) -> None:
    results = await asyncio.gather(*(state.reserve("many", 1, 10, ttl=5) for _ in range(60)))
    assert sum(results) == 10
    assert await state.incr("many", 0) == 10


async def test_sliding_window_admits_limit_then_says_when(state: SharedState) -> None:
    window = 0.8
    assert await state.hit_window("w", 3, window) is None
    await asyncio.sleep(0.3)
    assert [await state.hit_window("w", 3, window) for _ in range(2)] == [None] * 2
    wait = await state.hit_window("w", 3, window)
    assert wait is not None and 0.3 < wait <= 0.5  # when the first admission leaves
    await asyncio.sleep(wait + 0.02)
    assert await state.hit_window("w", 3, window) is None  # the oldest left the window
    assert await state.hit_window("w", 3, window) is not None  # only one slot came free


async def test_undo_hit_gives_back_the_latest_admission(state: SharedState) -> None:
    assert await state.hit_window("u", 2, 30) is None
    assert await state.hit_window("u", 2, 30) is None
    assert await state.hit_window("u", 2, 30) is not None
    await state.undo_hit("u")
    assert await state.hit_window("u", 2, 30) is None
    assert await state.hit_window("u", 2, 30) is not None
    await state.undo_hit("nothing-there")  # harmless


async def test_token_window_totals_and_waits(state: SharedState) -> None:
    window = 1.2
    assert await state.window_total("t", window) == 0
    assert await state.window_over("t", 100, window) is None
    await state.add_window("t", 60, window)
    await state.add_window("t", 50, window)
    await state.add_window("t", 0, window)  # nothing
    assert await state.window_total("t", window) == 110
    assert await state.window_over("t", 111, window) is None
    wait = await state.window_over("t", 110, window)
    # the buckets leave the window within one bucket (window / 60) after the window
    assert wait is not None and 0 < wait <= window + window / 60 + 0.01
    await asyncio.sleep(wait + 0.05)
    assert await state.window_total("t", window) == 0
    assert await state.window_over("t", 110, window) is None


async def test_token_window_wait_is_when_enough_has_left(state: SharedState) -> None:
    window = 1.2
    await state.add_window("t2", 100, window)
    await asyncio.sleep(0.5)
    await state.add_window("t2", 10, window)
    first = await state.window_over("t2", 100, window)  # 110 >= 100: the 100 must leave
    assert first is not None and first < window - 0.3
    only_new = await state.window_over("t2", 10, window)  # even the 10 must leave
    assert only_new is not None and only_new > first + 0.3


async def test_values_expire_and_namespaces_are_separate(state: SharedState) -> None:
    await state.set("v", b"\x00bytes", ttl=0.3)
    assert await state.get("v") == b"\x00bytes"
    assert await state.incr("v", 4) == 4  # a counter of the same name is another thing
    await asyncio.sleep(0.4)
    assert await state.get("v") is None
    await state.set("forever", b"x")
    assert await state.get("forever") == b"x"
    assert await state.get("missing") is None


async def test_get_many_reads_values_in_order(state: SharedState) -> None:
    await state.set("gm:a", b"1")
    await state.set("gm:c", b"3", ttl=60)
    await state.incr("gm:b")  # a counter is not a value
    assert await state.get_many(["gm:a", "gm:b", "gm:c", "gm:none"]) == [b"1", None, b"3", None]
    assert await state.get_many([]) == []


async def test_delete_removes_every_kind_of_entry(state: SharedState) -> None:
    await state.set("d", b"1")
    await state.incr("d", 3)
    assert await state.hit_window("d", 1, 30) is None
    await state.add_window("d", 5, 30)
    await state.delete("d")
    assert await state.get("d") is None
    assert await state.incr("d", 0) == 0
    assert await state.hit_window("d", 1, 30) is None
    assert await state.window_total("d", 30) == 0


# ---- Redis only: shared between "workers", prefixes, failures ------------------------------
async def test_two_redis_clients_share_one_limit(redis_prefix: str) -> None:
    a = await RedisState.connect(REDIS_URL, prefix=redis_prefix)
    b = await RedisState.connect(REDIS_URL, prefix=redis_prefix)
    try:
        hits = await asyncio.gather(
            *(st.hit_window("rpm", 7, 30) for st in [a, b] * 20)
        )  # 40 attempts from two clients, like two workers
        assert sum(1 for h in hits if h is None) == 7
        held = await asyncio.gather(*(st.reserve("conc", 1, 3, ttl=5) for st in [a, b] * 10))
        assert sum(held) == 3
        await a.release("conc", 1)
        assert await b.reserve("conc", 1, 3)
    finally:
        await a.close()
        await b.close()


async def test_redis_prefix_isolates_installations(redis_prefix: str) -> None:
    a = await RedisState.connect(REDIS_URL, prefix=redis_prefix + "one:")
    b = await RedisState.connect(REDIS_URL, prefix=redis_prefix + "two:")
    try:
        assert await a.reserve("k", 1, 1)
        assert await b.reserve("k", 1, 1)  # another prefix: another counter
        assert not await a.reserve("k", 1, 1)
        client = aioredis.Redis.from_url(REDIS_URL)
        try:
            keys = sorted([k.decode() async for k in client.scan_iter(match=redis_prefix + "*")])
        finally:
            await client.aclose()
        assert keys == [f"{redis_prefix}one:c:k", f"{redis_prefix}two:c:k"]
        ttl_client = aioredis.Redis.from_url(REDIS_URL)
        try:
            await a.hit_window("w", 5, 30)
            await a.add_window("s", 5, 30)
            for name in ("w:w", "s:s"):  # every key expires by itself
                assert 0 < await ttl_client.pttl(f"{redis_prefix}one:{name}") <= 31_000
        finally:
            await ttl_client.aclose()
    finally:
        await a.close()
        await b.close()


async def test_unreachable_redis_is_an_error_and_the_factory_falls_back(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with pytest.raises(SharedStateError):
        await RedisState.connect("redis://127.0.0.1:1/0", io_timeout=0.5)
    settings = Settings(redis_url="redis://:hunter2@127.0.0.1:1/0")
    with caplog.at_level(logging.ERROR, logger="relaygate"):
        st = await create_shared_state(settings)
    try:  # local limits now, Redis once it answers (fallback.py)
        assert isinstance(st, FallbackState) and st.degraded
        assert await st.reserve("k", 1, 1) and not await st.reserve("k", 1, 1)
    finally:
        await st.close()
    assert any("unavailable at start-up" in r.getMessage() for r in caplog.records)
    assert "hunter2" not in caplog.text
    assert isinstance(await create_shared_state(Settings(redis_url="nope://x")), InProcessState)
    assert redact_url("redis://:hunter2@h:6379/0") == "redis://:***@h:6379/0"
    assert isinstance(await create_shared_state(Settings()), InProcessState)


async def test_factory_uses_redis_when_configured(redis_prefix: str) -> None:
    st = await create_shared_state(Settings(redis_url=REDIS_URL, redis_prefix=redis_prefix))
    try:
        assert isinstance(st, FallbackState) and not st.degraded
        assert st.primary.prefix == redis_prefix
    finally:
        await st.close()


async def test_redis_errors_after_start_are_shared_state_errors(redis_prefix: str) -> None:
    st = await RedisState.connect(REDIS_URL, prefix=redis_prefix)
    client = aioredis.Redis.from_url(REDIS_URL)
    try:
        await client.set(f"{redis_prefix}c:text", b"not a number")
        with pytest.raises(SharedStateError):
            await st.reserve("text", 1, 5)
    finally:
        await client.aclose()
        await st.close()
