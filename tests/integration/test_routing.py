"""Routing and failover against a running gateway and real emulators (docs/routing.md):
priority tiers and weights, user groups, standby channels, affinity, fallback chains,
circuits that open, probe and close, Retry-After, per-channel timeouts, concurrency
caps with a queue, hedging, and the attempt chain in the request log."""

from __future__ import annotations

import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import openai
import orjson
import pytest
from gateway import Gateway

from relaygate.emulator import EmulatorServer

MSG = [{"role": "user", "content": "hi"}]


@dataclass
class Env:
    gw: Gateway
    a: EmulatorServer
    b: EmulatorServer
    c: EmulatorServer
    key: str
    vip_key: str
    ids: dict[str, int]


@pytest.fixture(scope="module")
def rt(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    a, b, c = (EmulatorServer("openai").start() for _ in range(3))
    gw = Gateway(
        Path(tmp_path_factory.mktemp("gw-routing")),
        {
            "RELAYGATE_BREAKER_FAILURES": "3",
            "RELAYGATE_BREAKER_COOLDOWN": "1",
            "RELAYGATE_BREAKER_MAX_COOLDOWN": "2",
            "RELAYGATE_CHANNEL_TEST_INTERVAL": "0",
        },
    ).start()
    ids: dict[str, int] = {}
    try:
        uid = gw.create_user("routing")
        vip = int(
            gw.admin("POST", "/users", {"username": "vip", "group_name": "vip"})["data"]["id"]
        )
        gw.top_up(vip, "100")

        def ch(name: str, emu: EmulatorServer, models: list[str], **kw: Any) -> None:
            ids[name] = gw.create_channel(
                name=name, base_url=emu.base_url, keys=[f"k-{name}"], models=models, **kw
            )

        ch("w-a", a, ["weighted"], weight=3)
        ch("w-b", b, ["weighted"], weight=1)
        ch("t-a", a, ["tiered"], priority=10)
        ch("t-b", b, ["tiered"], priority=0)
        ch("g-vip", a, ["grouped"], priority=10, config={"groups": ["vip"]})
        ch("g-all", b, ["grouped"])
        ch("s-main", a, ["standby"], weight=1)
        ch("s-spare", b, ["standby"], weight=0)
        ch("m-1106", a, ["m-1106"])
        ch("m-0613", b, ["m-0613"])
        ch("cb-a", a, ["circuit"], priority=10)
        ch("cb-b", b, ["circuit"])
        ch("to-a", a, ["timeouts"], priority=10, config={"timeouts": {"first_byte": 0.3}})
        ch("to-b", b, ["timeouts"])
        ch("cap-a", a, ["capped"], priority=10, config={"max_concurrency": 1})
        ch("cap-b", b, ["capped"])
        ch("q-a", a, ["queued"], config={"max_concurrency": 1, "queue_timeout": 5})
        ch("solo", c, ["solo"], config={"max_concurrency": 1})
        ch("h-a", a, ["hedged"], priority=10)
        ch("h-b", b, ["hedged"])
        ch("r-c", c, ["retry-after"])
        gw.admin(
            "POST",
            "/model-routes",
            {"name": "gpt-3.5-turbo-16k", "fallbacks": ["m-1106", "m-0613"]},
        )
        gw.admin(
            "POST", "/model-routes", {"name": "hedged", "fallbacks": [], "hedge_after_ms": 150}
        )
        key = gw.create_key(uid, name="routing")
        vip_key = gw.create_key(vip, name="vip")
        yield Env(gw, a, b, c, key, vip_key, ids)
    finally:
        gw.stop()
        for e in (a, b, c):
            e.stop()


@pytest.fixture(autouse=True)
def _fresh(rt: Env) -> Iterator[None]:
    for e in (rt.a, rt.b, rt.c):
        e.reset(knobs=True, stats=True)
    yield


def client(rt: Env, key: str | None = None) -> openai.OpenAI:
    return openai.OpenAI(api_key=key or rt.key, base_url=rt.gw.base_url, max_retries=0)


_http = httpx.Client(timeout=20)


def chat(rt: Env, model: str, key: str | None = None, **headers: str) -> httpx.Response:
    return _http.post(
        rt.gw.base_url + "/chat/completions",
        content=orjson.dumps({"model": model, "messages": MSG}),
        headers={"Authorization": f"Bearer {key or rt.key}", **headers},
        timeout=20,
    )


def last_log(rt: Env, request_id: str) -> dict[str, Any]:
    """The admin view of one request's log row (rows are written in the background)."""
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        rows = rt.gw.admin("GET", "/logs?limit=50")["data"]
        for row in rows:
            if row["request_id"] == request_id:
                return dict(row)
        time.sleep(0.2)
    raise AssertionError(f"no log row for {request_id}")


# ---- candidates ---------------------------------------------------------------------
def test_weights_split_traffic_inside_a_tier(rt: Env) -> None:
    for _ in range(200):
        assert chat(rt, "weighted").status_code == 200
    share = rt.a.stats.requests / 200
    assert rt.a.stats.requests + rt.b.stats.requests == 200
    assert 0.62 <= share <= 0.88, share  # weights 3:1 -> 0.75 (4 standard deviations)


def test_the_higher_tier_serves_while_it_is_healthy(rt: Env) -> None:
    for _ in range(10):
        assert chat(rt, "tiered").status_code == 200
    assert (rt.a.stats.requests, rt.b.stats.requests) == (10, 0)


def test_a_channel_limited_to_a_group_serves_only_that_group(rt: Env) -> None:
    for _ in range(5):
        assert chat(rt, "grouped").status_code == 200
    assert (rt.a.stats.requests, rt.b.stats.requests) == (0, 5)
    for _ in range(5):
        assert chat(rt, "grouped", key=rt.vip_key).status_code == 200
    assert rt.a.stats.requests == 5


def test_a_weight_0_channel_is_a_standby(rt: Env) -> None:
    for _ in range(20):
        assert chat(rt, "standby").status_code == 200
    assert rt.b.stats.requests == 0
    rt.a.configure(fail_status=500)
    r = chat(rt, "standby")
    assert r.status_code == 200 and rt.b.stats.requests == 1


def test_affinity_keeps_a_conversation_on_one_channel_and_still_fails_over(rt: Env) -> None:
    for _ in range(12):
        assert chat(rt, "weighted", **{"X-Session-Id": "conv-1"}).status_code == 200
    counts = (rt.a.stats.requests, rt.b.stats.requests)
    assert sorted(counts) == [0, 12], counts
    sticky, other = (rt.a, rt.b) if counts[0] else (rt.b, rt.a)
    # many conversations still spread over both channels
    for i in range(40):
        assert chat(rt, "weighted", **{"X-Session-Id": f"spread-{i}"}).status_code == 200
    assert rt.a.stats.requests > counts[0] and rt.b.stats.requests > counts[1]
    # the sticky channel fails: the conversation moves on instead of failing
    sticky.configure(fail_status=503)
    before = other.stats.requests
    r = chat(rt, "weighted", **{"X-Session-Id": "conv-1"})
    assert r.status_code == 200, r.text
    assert other.stats.requests == before + 1


def test_the_prompt_cache_key_is_an_affinity_key(rt: Env) -> None:
    for _ in range(8):
        r = httpx.post(
            rt.gw.base_url + "/chat/completions",
            json={"model": "weighted", "messages": MSG, "prompt_cache_key": "pck-7"},
            headers={"Authorization": f"Bearer {rt.key}"},
            timeout=10,
        )
        assert r.status_code == 200
    assert sorted((rt.a.stats.requests, rt.b.stats.requests)) == [0, 8]


# ---- fallback chains -----------------------------------------------------------------
def test_a_fallback_chain_serves_in_order(rt: Env) -> None:
    c = client(rt)
    r = c.chat.completions.create(model="gpt-3.5-turbo-16k", messages=MSG)  # type: ignore[arg-type]
    assert r.choices[0].message.content
    assert (rt.a.stats.requests, rt.b.stats.requests) == (1, 0)  # the 1106 version first
    rt.a.configure(fail_status=500)
    r = c.chat.completions.with_raw_response.create(model="gpt-3.5-turbo-16k", messages=MSG)  # type: ignore[arg-type]
    assert r.parse().choices[0].message.content
    assert (rt.a.stats.requests, rt.b.stats.requests) == (2, 1)  # then 0613
    row = last_log(rt, r.headers["x-request-id"])
    assert row["model"] == "gpt-3.5-turbo-16k"
    assert [(x["model"], x["status"]) for x in row["attempts"]] == [
        ("m-1106", 500),
        ("m-0613", 200),
    ]
    assert row["channel_id"] == rt.ids["m-0613"]
    listed = {m.id for m in c.models.list()}
    assert "gpt-3.5-turbo-16k" in listed


# ---- retries and circuits -------------------------------------------------------------
def test_the_attempt_chain_says_why(rt: Env) -> None:
    rt.a.configure(fail_status=502)
    r = chat(rt, "tiered")
    assert r.status_code == 200
    row = last_log(rt, r.headers["x-request-id"])
    first, second = row["attempts"]
    assert first["channel_id"] == rt.ids["t-a"] and first["status"] == 502
    assert first["error"] and first["message"]
    assert second == {
        "channel_id": rt.ids["t-b"],
        "model": "tiered",
        "status": 200,
        "ms": second["ms"],
        "error": None,
    }


def test_a_circuit_opens_probes_and_closes(rt: Env) -> None:
    rt.a.configure(fail_status=500)
    for _ in range(3):
        assert chat(rt, "circuit").status_code == 200
    assert rt.a.stats.requests == 3  # three failures in a row open the circuit
    for _ in range(10):
        assert chat(rt, "circuit").status_code == 200
    assert rt.a.stats.requests == 3  # open: not tried while channel b serves
    circuits = rt.gw.admin("GET", "/routing/circuits")["data"]
    mine = [x for x in circuits if x["channel_id"] == rt.ids["cb-a"]]
    assert mine and mine[0]["state"] == "open"
    time.sleep(1.1)
    assert chat(rt, "circuit").status_code == 200
    assert rt.a.stats.requests == 4  # one probe after the cool-down; it failed: open again
    assert chat(rt, "circuit").status_code == 200
    assert rt.a.stats.requests == 4
    rt.a.configure(fail_status=None)
    time.sleep(2.1)  # the cool-down doubled (capped at 2 s here)
    for _ in range(5):
        assert chat(rt, "circuit").status_code == 200
    assert rt.a.stats.requests == 9  # the probe succeeded: closed, a serves again
    circuits = rt.gw.admin("GET", "/routing/circuits")["data"]
    assert all(x["state"] == "closed" for x in circuits if x["channel_id"] == rt.ids["cb-a"])


def test_retry_after_keeps_a_channel_aside_and_a_lone_channel_is_waited_for(rt: Env) -> None:
    rt.a.configure(fail_status=429, retry_after=1, fail_times=1)
    assert chat(rt, "tiered").status_code == 200
    assert chat(rt, "tiered").status_code == 200
    assert (rt.a.stats.requests, rt.b.stats.requests) == (1, 2)  # a is cooling down
    time.sleep(1.1)
    assert chat(rt, "tiered").status_code == 200
    assert rt.a.stats.requests == 2
    # one channel only: its Retry-After (1 s, under RELAYGATE_RETRY_AFTER_MAX) is waited for
    rt.c.configure(fail_status=429, retry_after=1, fail_times=1)
    began = time.monotonic()
    r = chat(rt, "retry-after")
    assert r.status_code == 200, r.text
    assert 0.9 < time.monotonic() - began < 4 and rt.c.stats.requests == 2


def test_a_per_channel_first_byte_timeout_fails_over_quickly(rt: Env) -> None:
    rt.a.configure(hang=True)
    began = time.monotonic()
    r = chat(rt, "timeouts")
    took = time.monotonic() - began
    assert r.status_code == 200, r.text
    assert took < 2.0, took  # the gateway-wide first-byte timeout is 3 s here
    row = last_log(rt, r.headers["x-request-id"])
    assert row["attempts"][0]["error"] == "upstream_timeout"


# ---- concurrency caps -------------------------------------------------------------------
def _together(rt: Env, model: str, n: int) -> list[httpx.Response]:
    with ThreadPoolExecutor(n) as pool:
        return list(pool.map(lambda _: chat(rt, model), range(n)))


def test_a_full_channel_sends_the_request_to_the_next(rt: Env) -> None:
    rt.a.configure(latency_ms=600)
    results = _together(rt, "capped", 2)
    assert [r.status_code for r in results] == [200, 200]
    assert (rt.a.stats.requests, rt.b.stats.requests) == (1, 1)


def test_with_no_other_channel_a_full_one_answers_429(rt: Env) -> None:
    rt.c.configure(latency_ms=600)
    results = _together(rt, "solo", 2)
    statuses = sorted(r.status_code for r in results)
    assert statuses == [200, 429], [r.text for r in results]
    busy = next(r for r in results if r.status_code == 429)
    assert busy.json()["error"]["code"] == "channel_busy" and busy.headers.get("retry-after")


def test_a_queue_waits_for_a_free_slot(rt: Env) -> None:
    rt.a.configure(latency_ms=400)
    began = time.monotonic()
    results = _together(rt, "queued", 3)
    assert [r.status_code for r in results] == [200, 200, 200]
    assert rt.a.stats.requests == 3
    assert time.monotonic() - began >= 1.1  # one at a time


# ---- hedging ----------------------------------------------------------------------------
def test_hedging_answers_from_the_faster_channel_and_bills_once(rt: Env) -> None:
    rt.a.configure(first_token_ms=3000, latency_ms=0)
    c = client(rt)
    began = time.monotonic()
    stream = c.chat.completions.with_raw_response.create(
        model="hedged", messages=MSG, stream=True, stream_options={"include_usage": True}
    )  # type: ignore[call-overload]
    text = "".join(ch.choices[0].delta.content or "" for ch in stream.parse() if ch.choices)
    took = time.monotonic() - began
    assert text and took < 1.5, took
    assert rt.a.stats.requests == 1 and rt.b.stats.requests == 1
    row = last_log(rt, stream.headers["x-request-id"])
    assert row["channel_id"] == rt.ids["h-b"]
    chain = {(x["channel_id"], x["error"], x.get("hedge", False)) for x in row["attempts"]}
    assert chain == {(rt.ids["h-a"], "hedge_lost", False), (rt.ids["h-b"], None, True)}
    assert row["completion_tokens"] > 0
    # a fast first channel is not hedged
    rt.a.configure(first_token_ms=0)
    r = c.chat.completions.create(model="hedged", messages=MSG)  # type: ignore[arg-type]
    assert r.choices[0].message.content and rt.b.stats.requests == 1


def test_an_alias_without_a_price_is_charged_at_the_model_it_stands_for(rt: Env) -> None:
    rt.gw.admin(
        "POST",
        "/prices",
        {
            "model": "m-1106",
            "currency": "CNY",
            "per": "1m",
            "input": "2",
            "output": "8",
            "force": True,
        },
    )
    r = client(rt).chat.completions.with_raw_response.create(
        model="gpt-3.5-turbo-16k", messages=MSG
    )  # type: ignore[arg-type]
    usage = r.parse().usage
    assert usage is not None
    row = last_log(rt, r.headers["x-request-id"])
    expected = usage.prompt_tokens * 2 + usage.completion_tokens * 8  # units of 1e-6 CNY
    assert row["billing"] == "balance" and row["cost_units"] == expected
