"""Fault injection of the emulators for routing tests (real HTTP on loopback): failures on
every n-th request or at a seeded random rate, a slow first token, and requests that hang
on every n-th call without holding up the others."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest

from relaygate.emulator import EmulatorServer, Knobs

OA_HEADERS = {"Authorization": "Bearer sk-test"}
AN_HEADERS = {"x-api-key": "sk-ant-test", "anthropic-version": "2023-06-01"}
HELLO = [{"role": "user", "content": "Say hi"}]
CHAT = {"model": "gpt-4o", "messages": HELLO}


@pytest.fixture(scope="module")
def emu() -> Iterator[EmulatorServer]:
    with EmulatorServer("openai") as server:
        yield server


@pytest.fixture(scope="module")
def anthropic_emu() -> Iterator[EmulatorServer]:
    with EmulatorServer("anthropic") as server:
        yield server


@pytest.fixture(autouse=True)
def _reset(request: pytest.FixtureRequest) -> Iterator[None]:
    yield
    for name in ("emu", "anthropic_emu"):
        if name in request.fixturenames:
            request.getfixturevalue(name).reset()


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=10) as c:
        yield c


async def statuses(client: httpx.AsyncClient, emu: EmulatorServer, n: int) -> list[int]:
    url = emu.base_url + "/chat/completions"
    return [(await client.post(url, json=CHAT, headers=OA_HEADERS)).status_code for _ in range(n)]


# -- validation ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "changes",
    [
        {"fail_every": 0},
        {"fail_every": 1.5},
        {"fail_every": True},
        {"hang_every": -1},
        {"fail_rate": 1.2},
        {"fail_rate": -0.1},
        {"fail_rate": "half"},
        {"first_token_ms": -5},
        {"seed": "x"},
        {"fail_every": 2, "fail_rate": 0.5},
    ],
)
def test_bad_fault_knobs_are_refused(changes: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        Knobs().with_changes(**changes)


async def test_control_endpoint_accepts_and_refuses_the_new_knobs(
    emu: EmulatorServer, client: httpx.AsyncClient
) -> None:
    new = {"fail_every": 3, "seed": 7, "first_token_ms": 20.0, "hang_every": 5}
    resp = await client.post(emu.origin + "/_emulator/config", json=new)
    assert resp.status_code == 200
    assert {k: resp.json()[k] for k in new} == new
    assert emu.knobs.fail_every == 3 and emu.knobs.hang_every == 5
    bad = await client.post(emu.origin + "/_emulator/config", json={"fail_rate": 2})
    assert bad.status_code == 400 and "fail_rate" in bad.json()["error"]
    assert emu.knobs.fail_rate == 0.0  # a refused change changes nothing


# -- fail_every / fail_rate ---------------------------------------------------------------------


async def test_fail_every_two_fails_exactly_every_other_request(
    emu: EmulatorServer, client: httpx.AsyncClient
) -> None:
    emu.configure(fail_every=2)
    assert await statuses(client, emu, 10) == [200, 500] * 5
    emu.configure(fail_every=3, fail_status=503, retry_after=2)  # the count restarts
    url = emu.base_url + "/chat/completions"
    got = [await client.post(url, json=CHAT, headers=OA_HEADERS) for _ in range(6)]
    assert [r.status_code for r in got] == [200, 200, 503, 200, 200, 503]
    assert got[2].headers["retry-after"] == "2"
    assert got[2].json()["error"]["type"]  # the provider's own error body


async def test_fail_every_counts_concurrent_requests_exactly(
    emu: EmulatorServer, client: httpx.AsyncClient
) -> None:
    emu.configure(fail_every=4)
    url = emu.base_url + "/chat/completions"
    got = await asyncio.gather(
        *(client.post(url, json=CHAT, headers=OA_HEADERS) for _ in range(40))
    )
    assert sorted(r.status_code for r in got) == [200] * 30 + [500] * 10


async def test_fail_times_caps_fail_every(emu: EmulatorServer, client: httpx.AsyncClient) -> None:
    emu.configure(fail_every=2, fail_times=2)
    assert await statuses(client, emu, 8) == [200, 500, 200, 500, 200, 200, 200, 200]


async def test_fail_rate_is_reproducible_with_a_seed_and_near_the_rate(
    emu: EmulatorServer, client: httpx.AsyncClient
) -> None:
    emu.configure(fail_rate=0.3, seed=1234, fail_status=502)
    first = await statuses(client, emu, 200)
    emu.configure(seed=1234)  # same seed again: the same sequence
    second = await statuses(client, emu, 200)
    assert first == second
    assert set(first) == {200, 502}
    failures = first.count(502)
    assert 40 <= failures <= 80, failures  # 60 expected; 40..80 is more than 4 sigma wide
    emu.configure(seed=99)
    assert await statuses(client, emu, 200) != first


async def test_fail_rate_extremes(emu: EmulatorServer, client: httpx.AsyncClient) -> None:
    emu.configure(fail_rate=1.0)
    assert await statuses(client, emu, 5) == [500] * 5
    emu.configure(fail_rate=0.0)
    assert await statuses(client, emu, 5) == [200] * 5


# -- first_token_ms -----------------------------------------------------------------------------


async def _timed_stream(
    client: httpx.AsyncClient,
    url: str,
    body: dict[str, Any],
    headers: dict[str, str],
    marker: bytes,
) -> tuple[float, float, float, bytes]:
    """(headers time, first content time, end time, body), times from the request start."""
    t0 = time.monotonic()
    raw = b""
    first_content = 0.0
    async with client.stream("POST", url, json=body, headers=headers) as resp:
        assert resp.status_code == 200
        t_headers = time.monotonic() - t0
        async for piece in resp.aiter_raw():
            raw += piece
            if not first_content and marker in raw:
                first_content = time.monotonic() - t0
    return t_headers, first_content, time.monotonic() - t0, raw


async def test_first_token_ms_delays_the_first_content_chunk_not_the_headers(
    emu: EmulatorServer, client: httpx.AsyncClient
) -> None:
    emu.configure(first_token_ms=500, chunks=3, chunk_interval_ms=20)
    t_headers, t_first, t_end, raw = await _timed_stream(
        client,
        emu.base_url + "/chat/completions",
        {**CHAT, "stream": True},
        OA_HEADERS,
        b'"content":"Hello',
    )
    assert t_headers < 0.25, t_headers
    assert t_first >= 0.48, t_first
    assert t_end < 1.5
    events = [json.loads(line[6:]) for line in raw.split(b"\n") if line.startswith(b"data: {")]
    assert events[0]["choices"][0]["delta"]["role"] == "assistant"  # sent with the headers
    assert raw.endswith(b"data: [DONE]\n\n")


async def test_first_token_ms_role_chunk_arrives_with_the_headers(
    emu: EmulatorServer, client: httpx.AsyncClient
) -> None:
    emu.configure(first_token_ms=600)
    t0 = time.monotonic()
    async with client.stream(
        "POST",
        emu.base_url + "/chat/completions",
        json={**CHAT, "stream": True},
        headers=OA_HEADERS,
    ) as resp:
        first = await anext(resp.aiter_raw())
        elapsed = time.monotonic() - t0
    assert b'"role":"assistant"' in first and b'"content":"Hello' not in first
    assert elapsed < 0.3, elapsed


async def test_first_token_ms_for_anthropic_streams(
    anthropic_emu: EmulatorServer, client: httpx.AsyncClient
) -> None:
    anthropic_emu.configure(first_token_ms=400)
    body = {"model": "claude-sonnet-4-5", "max_tokens": 64, "messages": HELLO, "stream": True}
    t_headers, t_first, _, raw = await _timed_stream(
        client,
        anthropic_emu.base_url + "/v1/messages",
        body,
        AN_HEADERS,
        b"content_block_delta",
    )
    assert t_headers < 0.25, t_headers
    assert t_first >= 0.38, t_first
    assert raw.index(b"message_start") < raw.index(b"content_block_delta")
    assert b"message_stop" in raw


async def test_first_token_ms_adds_to_latency_when_not_streamed(
    emu: EmulatorServer, client: httpx.AsyncClient
) -> None:
    emu.configure(first_token_ms=200, latency_ms=100)
    t0 = time.monotonic()
    resp = await client.post(emu.base_url + "/chat/completions", json=CHAT, headers=OA_HEADERS)
    elapsed = time.monotonic() - t0
    assert resp.status_code == 200 and resp.json()["choices"][0]["message"]["content"]
    assert 0.29 <= elapsed < 1.0, elapsed


# -- hang_every ---------------------------------------------------------------------------------


async def test_hang_every_three_hangs_the_third_request_only(
    emu: EmulatorServer, client: httpx.AsyncClient
) -> None:
    emu.configure(hang_every=3)
    url = emu.base_url + "/chat/completions"
    results: list[int | str] = []
    for _ in range(5):
        try:
            resp = await client.post(url, json=CHAT, headers=OA_HEADERS, timeout=0.5)
            results.append(resp.status_code)
        except httpx.ReadTimeout:
            results.append("hang")
    assert results == [200, 200, "hang", 200, 200]
    # the client's timeout closed its connection: that released the hung request
    stats = emu.stats
    assert await asyncio.to_thread(stats.wait_for, lambda s: s.in_flight == 0, 3.0)
    assert stats.aborted == 1
    assert not emu.core._hangs


async def test_a_hanging_request_does_not_block_the_others(
    emu: EmulatorServer, client: httpx.AsyncClient
) -> None:
    emu.configure(hang_every=1)  # every request hangs ...
    url = emu.base_url + "/chat/completions"
    hung = [
        asyncio.create_task(client.post(url, json=CHAT, headers=OA_HEADERS, timeout=30))
        for _ in range(3)
    ]
    stats = emu.stats
    assert await asyncio.to_thread(stats.wait_for, lambda s: s.in_flight == 3, 3.0)
    emu.configure(hang_every=None)  # ... until now: new requests are answered at once
    t0 = time.monotonic()
    answers = await asyncio.gather(
        *(client.post(url, json={**CHAT, "stream": True}, headers=OA_HEADERS) for _ in range(5))
    )
    assert [a.status_code for a in answers] == [200] * 5
    assert time.monotonic() - t0 < 1.0
    assert not any(task.done() for task in hung)
    # the answered ones leave the count just after their last byte: wait for that, not longer
    assert await asyncio.to_thread(stats.wait_for, lambda s: s.in_flight == 3, 3.0), stats
    assert not any(task.done() for task in hung)
    for task in hung:  # closing the client connections releases them
        task.cancel()
    await asyncio.gather(*hung, return_exceptions=True)
    assert await asyncio.to_thread(stats.wait_for, lambda s: s.in_flight == 0, 3.0)
    assert stats.aborted == 3
    assert not emu.core._hangs


async def test_hang_every_and_fail_every_share_the_count(
    emu: EmulatorServer, client: httpx.AsyncClient
) -> None:
    emu.configure(hang_every=4, fail_every=2)
    url = emu.base_url + "/chat/completions"
    results: list[int | str] = []
    for _ in range(6):
        try:
            resp = await client.post(url, json=CHAT, headers=OA_HEADERS, timeout=0.4)
            results.append(resp.status_code)
        except httpx.ReadTimeout:
            results.append("hang")
    assert results == [200, 500, 200, "hang", 200, 500]
