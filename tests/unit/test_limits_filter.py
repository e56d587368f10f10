"""The limits filter on the in-process state: what each limit refuses, what a refusal gives
back, plan limits from the billing slot, the address allow-list, and failing open."""

from __future__ import annotations

import logging
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import pytest
import redis.asyncio as aioredis

from relaygate.context import RelayContext
from relaygate.errors import PolicyError, RateLimited
from relaygate.filters.limits import PLAN_LIMITS, TAKEN, LimitsFilter, PlanLimits
from relaygate.providers.base import Usage
from relaygate.sharedstate.memory import InProcessState
from relaygate.sharedstate.redis import RedisState
from relaygate.storage.records import KeyRecord, UserRecord

NOW = datetime(2030, 1, 1, tzinfo=UTC)
USER = UserRecord(7, "u", "user", "active", NOW)
KEY = KeyRecord(3, 7, "", "api", "h", "zk-…", "active", None, None, NOW)


def ctx(key: KeyRecord = KEY, user: UserRecord = USER, ip: str = "127.0.0.1") -> RelayContext:
    c = RelayContext("rid", "chat", client_ip=ip)
    c.key, c.user = key, user
    return c


async def refused(f: LimitsFilter, c: RelayContext) -> RateLimited:
    with pytest.raises(RateLimited) as info:
        await f.before(c, {})
    err = info.value
    assert err.http_status(False) == 429 and err.code == "rate_limit_exceeded"
    assert err.retry_after is not None and err.retry_after >= 1
    return err


async def test_no_limit_takes_nothing() -> None:
    st = InProcessState()
    f = LimitsFilter(st)
    c = ctx()
    await f.before(c, {})
    assert c._slots is None  # nothing put, nothing counted
    assert st._counters == {} and st._windows == {}
    await f.after(c)


async def test_key_rpm_and_a_later_refusal_gives_the_admission_back() -> None:
    st = InProcessState()
    f = LimitsFilter(st)
    key = replace(KEY, rpm_limit=2)
    await f.before(ctx(key), {})
    await f.before(ctx(key), {})
    err = await refused(f, ctx(key))
    assert "this key allows 2 requests per minute" in err.message
    # the user allows one request per minute: a request the key admits and the user
    # refuses does not count against the key
    st2 = InProcessState()
    f2 = LimitsFilter(st2)
    user = replace(USER, rpm_limit=1)
    await f2.before(ctx(key, user), {})
    err = await refused(f2, ctx(key, user))
    assert "your account allows 1 requests per minute" in err.message
    assert len(st2._windows["rpm:key:3"]) == 1  # only the admitted request


async def test_concurrency_is_held_until_after_and_refusals_release() -> None:
    st = InProcessState()
    f = LimitsFilter(st)
    key = replace(KEY, concurrency_limit=2, rpm_limit=100)
    first, second = ctx(key), ctx(key)
    await f.before(first, {})
    await f.before(second, {})
    third = ctx(key)
    err = await refused(f, third)
    assert "this key allows 2 concurrent requests" in err.message
    assert len(st._windows["rpm:key:3"]) == 2  # the refused request's admission undone
    await f.after(third)  # a refused request holds nothing
    assert st._counters["conc:key:3"][0] == 2
    await f.after(first)
    await f.before(ctx(key), {})  # a slot came free
    # a user's concurrency over all its keys; a refusal there gives back the key's slot
    user = replace(USER, concurrency_limit=1)
    other = replace(KEY, id=4, concurrency_limit=5)
    await f.before(ctx(other, user), {})
    await refused(f, ctx(other, user))
    assert st._counters["conc:key:4"][0] == 1


async def test_tpm_counts_real_tokens_after_and_refuses_before() -> None:
    st = InProcessState()
    f = LimitsFilter(st)
    key = replace(KEY, tpm_limit=100)
    c = ctx(key)
    await f.before(c, {})
    assert c.get(TAKEN) is not None
    c.usage = Usage(prompt_tokens=60, completion_tokens=50, total_tokens=110)
    await f.after(c)
    assert await st.window_total("tpm:key:3", 60) == 110
    err = await refused(f, ctx(key))
    assert "this key allows 100 tokens per minute" in err.message
    assert err.retry_after is not None and 55 <= err.retry_after <= 62
    # an error without usage adds nothing
    user = replace(USER, id=8, tpm_limit=1000)
    failed = ctx(replace(KEY, id=5), user)
    await f.before(failed, {})
    await f.after(failed)
    assert await st.window_total("tpm:user:8", 60) == 0


async def test_plan_limits_from_the_billing_slot() -> None:
    st = InProcessState()
    f = LimitsFilter(st)

    def planned(**limits: Any) -> RelayContext:
        c = ctx()
        c.put(PLAN_LIMITS, PlanLimits(plan_id=2, name="Pro", **limits))
        return c

    await f.before(planned(rpm=1), {})
    err = await refused(f, planned(rpm=1))
    assert "your plan 'Pro' allows 1 requests per minute" in err.message
    st = InProcessState()
    f = LimitsFilter(st)
    await f.before(planned(daily_requests=2, rpm=10), {})
    await f.before(planned(daily_requests=2, rpm=10), {})
    err = await refused(f, planned(daily_requests=2, rpm=10))
    assert "2 requests per day" in err.message
    assert len(st._windows["rpm:plan:2:user:7"]) == 2  # the refused one gave its hit back
    c = planned(tpm=50)
    await f.before(c, {})
    c.usage = Usage(total_tokens=80)
    await f.after(c)
    err = await refused(f, planned(tpm=50))
    assert "tokens per minute" in err.message and "Pro" in err.message


@pytest.mark.parametrize(
    ("ip", "allowed"),
    [
        ("10.1.2.3", True),
        ("203.0.113.7", True),
        ("::ffff:10.0.0.5", True),  # an IPv4 client on a dual-stack socket
        ("2001:db8::1", True),
        ("192.168.1.1", False),
        ("203.0.113.8", False),
        ("", False),
        ("not-an-ip", False),
    ],
)
async def test_ip_allow_list(ip: str, allowed: bool) -> None:
    key = replace(KEY, ip_allow=("10.0.0.0/8", "203.0.113.7", "2001:db8::/32"))
    f = LimitsFilter(InProcessState())
    if allowed:
        await f.before(ctx(key, ip=ip), {})
        return
    with pytest.raises(PolicyError) as info:
        await f.before(ctx(key, ip=ip), {})
    assert info.value.code == "ip_not_allowed" and info.value.http_status(False) == 402
    assert (ip or "unknown") in info.value.message


async def test_a_failing_shared_state_fails_open(caplog: pytest.LogCaptureFixture) -> None:
    dead = RedisState(
        aioredis.Redis.from_url("redis://127.0.0.1:1/0", socket_connect_timeout=0.2), "x:"
    )
    f = LimitsFilter(dead)
    key = replace(KEY, rpm_limit=1, concurrency_limit=1)
    try:
        with caplog.at_level(logging.WARNING, logger="relaygate.limits"):
            for _ in range(3):
                c = ctx(key)
                await f.before(c, {})  # admitted: limits are not enforced without the state
                await f.after(c)
        warnings = [r for r in caplog.records if "limits not enforced" in r.getMessage()]
        assert len(warnings) == 1  # rate-limited warning
    finally:
        await dead.close()
