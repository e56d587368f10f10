"""The Redis state with its local fallback (``sharedstate/fallback.py``) against a private
``redis-server`` this module starts, stops and starts again on its own port: limits hold
locally while Redis is away, a reservation is released in the store it was taken in, and
Redis gets what was counted meanwhile once it is back."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Iterator

import pytest
import redis.asyncio as aioredis

from integration.private_redis import PrivateRedis
from integration.tcp_cut import TcpCut
from relaygate.sharedstate.base import SharedStateError
from relaygate.sharedstate.fallback import FallbackState
from relaygate.sharedstate.redis import RedisState


@pytest.fixture
def redis_server() -> Iterator[PrivateRedis]:
    r = PrivateRedis()
    r.start()
    yield r
    r.kill()


@pytest.fixture
async def state(redis_server: PrivateRedis) -> AsyncIterator[FallbackState]:
    st = FallbackState(
        await RedisState.connect(redis_server.url, prefix="t:", io_timeout=0.5),
        share=0.5,
        probe_every=0.1,
    )
    yield st
    await st.close()


async def _until(cond: object, seconds: float = 5.0) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if callable(cond) and cond():
            return
        await asyncio.sleep(0.02)
    raise AssertionError("condition not reached")


async def test_outage_limits_locally_and_reconciles(
    redis_server: PrivateRedis, state: FallbackState, caplog: pytest.LogCaptureFixture
) -> None:
    # taken in Redis before the outage
    assert await state.reserve("conc", 1, 4, ttl=60)
    assert await state.hit_window("rpm", 10, 60) is None
    redis_server.kill()
    with caplog.at_level(logging.WARNING, logger="relaygate.sharedstate"):
        # away: the local share of each limit (half of 4 slots, half of 10 a minute)
        assert await state.reserve("conc", 1, 4, ttl=60)
        assert state.degraded
        assert await state.reserve("conc", 1, 4, ttl=60)
        assert not await state.reserve("conc", 1, 4, ttl=60)
        admitted = [await state.hit_window("rpm", 10, 60) is None for _ in range(8)]
        assert admitted == [True] * 5 + [False] * 3
        await state.add_window("tpm", 700, 60)
        assert await state.window_over("tpm", 1000, 60) is not None  # 700 >= 1000 * 0.5
        with pytest.raises(SharedStateError):  # cached values: callers keep their view
            await state.get("v")
        # a local slot goes back locally; then the Redis one (queued while away)
        await state.release("conc", 1)
        await state.release("conc", 1)
        await state.release("conc", 1)
        assert await state.reserve("conc", 1, 4, ttl=60)  # one local slot now held
    warnings = [r for r in caplog.records if "Redis unavailable" in r.getMessage()]
    assert len(warnings) == 1  # one per outage, not per call

    redis_server.start()
    await _until(lambda: not state.degraded)
    client = aioredis.Redis.from_url(redis_server.url)
    try:
        await _until(lambda: True, 0.1)
        # the restarted Redis lost everything: it now holds what the outage counted
        assert await client.get("t:c:conc") == b"1"  # the slot still held, moved to Redis
        assert 0 < await client.pttl("t:c:conc") <= 60_000
        assert await state.window_total("tpm", 60) == 700
        # the outage's five admissions count in Redis's window: five more of ten
        assert await client.zcard("t:w:rpm") == 5
        admitted = [await state.hit_window("rpm", 10, 60) is None for _ in range(6)]
        assert admitted == [True] * 5 + [False]
        # and it is released there
        await state.release("conc", 1)
        assert await client.get("t:c:conc") is None
        assert await state.reserve("conc", 1, 4, ttl=60)
        assert await client.get("t:c:conc") == b"1"
        assert await state.get("v") is None  # values answer again
    finally:
        await client.aclose()


async def test_releases_of_redis_reservations_are_replayed(redis_server: PrivateRedis) -> None:
    """Redis kept its data (a network cut, not a restart): the slots released while it was
    away are given back there once it answers, so nothing stays held for an hour."""
    cut = TcpCut("127.0.0.1", redis_server.port).join()
    st = FallbackState(
        await RedisState.connect(f"redis://127.0.0.1:{cut.port}/0", prefix="t:", io_timeout=0.5),
        share=1.0,
        probe_every=0.1,
    )
    client = aioredis.Redis.from_url(redis_server.url)
    try:
        assert await st.reserve("conc", 1, 3, ttl=600)
        assert await st.reserve("conc", 1, 3, ttl=600)
        cut.cut()
        await st.release("conc", 1)  # fails over: queued
        assert st.degraded
        await st.release("conc", 1)
        assert await client.get("t:c:conc") == b"2"  # still held in Redis meanwhile
        cut.join()
        await _until(lambda: not st.degraded)
        assert await client.get("t:c:conc") is None
    finally:
        await client.aclose()
        await st.close()
        cut.cut()


async def test_start_without_redis_then_join_it(redis_server: PrivateRedis) -> None:
    redis_server.kill()
    st = FallbackState(
        RedisState.create(redis_server.url, prefix="t:", io_timeout=0.5),
        share=1.0,
        probe_every=0.1,
        up=False,
    )
    try:
        assert st.degraded
        assert await st.reserve("day", 1, 100, ttl=3600)
        assert await st.incr("n", 3) == 3
        redis_server.start()
        await _until(lambda: not st.degraded)
        assert await st.incr("n", 0) == 3
        assert await st.reserve("day", 1, 2, ttl=3600)
        assert not await st.reserve("day", 1, 2, ttl=3600)  # 2 of 2: the outage's one counts
    finally:
        await st.close()
