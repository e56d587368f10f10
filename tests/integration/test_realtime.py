"""``/v1/realtime`` over WebSocket through the running gateway, against the OpenAI emulator's
realtime endpoint: a session relayed both ways (text and binary frames) with the ``websockets``
client and with the openai SDK's realtime client, each ``response.done`` billed as one
request-log row at the model's token prices; the client leaving (the upstream session is
closed too and the gateway stays healthy); the upstream closing (the client gets an error
event and the close); refused handshakes (bad key, unknown model, no balance) answered with an
``error`` event and close code 1008; failover to another channel when an upstream refuses the
upgrade.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from gateway import Gateway
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from relaygate.emulator import EmulatorServer, Knobs
from relaygate.emulator.openai_realtime import realtime_counts

PRICE = {"model": "house-realtime", "input": "4", "output": "16"}  # CNY per 1M tokens
DEAR = {"model": "house-realtime-dear", "input": "100000", "output": "100000"}
MAPPING = {
    "house-realtime": "gpt-realtime",
    "house-realtime-dear": "gpt-realtime",
    "house-realtime-short": "gpt-realtime-close-after-1",
}
REPLY = "Hello from the emulated realtime model, over."


class World:
    def __init__(self, gw: Gateway, emus: list[EmulatorServer], key: str, uid: int) -> None:
        self.gw, self.emus, self.key, self.uid = gw, emus, key, uid

    def url(self, model: str = "house-realtime") -> str:
        return f"ws://127.0.0.1:{self.gw.port}/v1/realtime?model={model}"

    def connect(self, model: str = "house-realtime", key: str | None = None, **kw: Any) -> Any:
        headers = {"Authorization": f"Bearer {key or self.key}", "OpenAI-Beta": "realtime=v1"}
        return connect(self.url(model), additional_headers=headers, **kw)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    knobs = [Knobs(api_key=f"sk-up-{i}", reply=REPLY, chunks=3) for i in (1, 2)]
    emus = [EmulatorServer("openai", knobs=k).start() for k in knobs]
    gw = Gateway(Path(tmp_path_factory.mktemp("realtime")))
    try:
        gw.start()
        for i, emu in enumerate(emus, 1):
            gw.create_channel(
                name=f"openai-{i}",
                provider="openai_compat",
                profile="openai",
                base_url=emu.base_url,
                keys=[f"sk-up-{i}"],
                models=[*MAPPING],
                model_mapping=MAPPING,
                priority=10 - i,  # channel 1 first
            )
        for price in (PRICE, DEAR):
            gw.admin("POST", "/prices", {"currency": "CNY", "per": "1m", **price})
        uid = gw.create_user("rt", balance="100")
        key = gw.create_key(uid, name="rt")
        time.sleep(1.2)  # the workers load the configuration
        yield World(gw, emus, key, uid)
    finally:
        gw.stop()
        for emu in emus:
            emu.stop()


@pytest.fixture(autouse=True)
def _reset(world: World) -> None:
    for emu in world.emus:
        emu.reset(knobs=False, stats=True)
        emu.configure(fail_status=None, fail_times=0)


def rows(gw: Gateway, request_id: str, n: int) -> list[dict[str, Any]]:
    deadline = time.monotonic() + 5
    while True:
        found: list[dict[str, Any]] = gw.admin("GET", f"/logs?request_id={request_id}")["data"]
        if len(found) >= n or time.monotonic() > deadline:
            assert len(found) == n, found
            return found
        time.sleep(0.1)


def units(row: dict[str, Any]) -> int:
    return int(Decimal(row["cost"]) * 1_000_000)


def cost(prompt: int, completion: int) -> int:
    return -(-(prompt * 4_000_000 + completion * 16_000_000) // 1_000_000)


async def recv_until(ws: ClientConnection, kind: str) -> list[dict[str, Any]]:
    got = []
    while True:
        event = json.loads(await asyncio.wait_for(ws.recv(), 5))
        got.append(event)
        if event["type"] == kind:
            return got


def wait_for(cond: Any, what: str) -> None:
    deadline = time.monotonic() + 5
    while not cond():
        assert time.monotonic() < deadline, what
        time.sleep(0.05)


# ---- a session --------------------------------------------------------------------------
def test_two_responses_billed_as_two_rows(world: World) -> None:
    async def session() -> tuple[str, list[list[dict[str, Any]]]]:
        async with world.connect() as ws:
            rid = ws.response.headers["x-request-id"]
            created = json.loads(await ws.recv())
            assert created["type"] == "session.created"
            assert created["session"]["model"] == "gpt-realtime"  # the upstream model
            answers = []
            for text in ("Say hello.", "And once more, with more words this time."):
                item = {"type": "message", "role": "user",
                        "content": [{"type": "input_text", "text": text}]}  # fmt: skip
                await ws.send(json.dumps({"type": "conversation.item.create", "item": item}))
                await ws.send(json.dumps({"type": "response.create"}))
                answers.append(await recv_until(ws, "response.done"))
            await ws.send(b"\x00\x01binary")  # binary frames pass both ways
            assert await asyncio.wait_for(ws.recv(), 5) == b"\x00\x01binary"
        return rid, answers

    before = Decimal(world.gw.balance(world.uid)["balance"])
    rid, answers = asyncio.run(session())
    for events in answers:
        deltas = [e["delta"] for e in events if e["type"] == "response.text.delta"]  # beta
        assert "".join(deltas) == REPLY
    usages = [a[-1]["response"]["usage"] for a in answers]
    assert usages[1]["input_tokens"] > usages[0]["input_tokens"]  # the conversation grew
    found = sorted(rows(world.gw, rid, 2), key=lambda r: r["prompt_tokens"])
    for row, usage in zip(found, usages, strict=True):
        assert row["endpoint"] == "realtime" and row["status"] == 200
        assert row["model"] == "house-realtime"
        assert row["prompt_tokens"] == usage["input_tokens"]
        assert row["completion_tokens"] == usage["output_tokens"]
        assert units(row) == cost(usage["input_tokens"], usage["output_tokens"]) > 0
    # the upstream got the channel's key, the upstream model and the client's OpenAI-Beta
    seen = [r for r in world.emus[0].stats.recorded if r.path == "/v1/realtime"]
    assert seen and seen[-1].headers["Authorization"] == "Bearer sk-up-1"
    assert seen[-1].query["model"] == "gpt-realtime"
    assert seen[-1].headers.get("OpenAI-Beta") == "realtime=v1"
    wait_for(lambda: realtime_counts(world.emus[0].impl).open == 0, "upstream closed")
    spent = sum(units(r) for r in found)
    after = Decimal(world.gw.balance(world.uid)["balance"])
    # (the balance is shown to 4 decimals: 100 units)
    assert abs(int((before - after) * 1_000_000) - spent) < 100


def test_openai_sdk_realtime_client(world: World) -> None:
    async def session() -> list[str]:
        client = openai.AsyncOpenAI(api_key=world.key, base_url=world.gw.base_url)
        kinds: list[str] = []
        async with client.realtime.connect(model="house-realtime") as conn:
            await conn.session.update(session={"type": "realtime", "instructions": "Be brief."})
            await conn.conversation.item.create(
                item={
                    "type": "message",
                    "role": "user",
                    "content": [{"type": "input_text", "text": "Hi"}],
                }
            )
            await conn.response.create()
            async for event in conn:
                kinds.append(event.type)
                if event.type == "response.done":
                    assert event.response.usage is not None
                    assert event.response.usage.output_tokens
                    break
        return kinds

    kinds = asyncio.run(session())
    assert kinds[0] == "session.created"
    assert "response.output_text.delta" in kinds  # GA event names without OpenAI-Beta
    assert kinds[-1] == "response.done"


def test_browser_subprotocol_key(world: World) -> None:
    async def session() -> str | None:
        protocols: Any = ["realtime", f"openai-insecure-api-key.{world.key}"]
        async with connect(world.url(), subprotocols=protocols) as ws:
            assert json.loads(await ws.recv())["type"] == "session.created"
            return ws.subprotocol

    assert asyncio.run(session()) == "realtime"


# ---- either side leaving ------------------------------------------------------------------
def test_client_leaving_closes_the_upstream(world: World) -> None:
    counts = realtime_counts(world.emus[0].impl)
    wait_for(lambda: counts.open == 0, "the earlier tests' sessions closed")  # (a loaded VM)
    ended = counts.ended

    async def session() -> None:
        ws = await world.connect()
        assert json.loads(await ws.recv())["type"] == "session.created"
        await ws.send(json.dumps({"type": "response.create"}))
        await recv_until(ws, "response.created")
        await ws.close()  # mid-response

    asyncio.run(session())
    wait_for(lambda: counts.ended == ended + 1 and counts.open == 0, "upstream session closed")
    assert httpx.get(world.gw.base + "/readyz").status_code == 200
    asyncio.run(_one_response(world))  # the gateway still serves sessions


async def _one_response(world: World) -> None:
    async with world.connect() as ws:
        await ws.send(json.dumps({"type": "response.create"}))
        await recv_until(ws, "response.done")


def test_upstream_closing_reaches_the_client(world: World) -> None:
    async def session() -> tuple[list[dict[str, Any]], int | None]:
        async with world.connect("house-realtime-short") as ws:
            await ws.send(json.dumps({"type": "response.create"}))
            events = await recv_until(ws, "response.done")
            try:
                while True:
                    events.append(json.loads(await asyncio.wait_for(ws.recv(), 5)))
            except ConnectionClosed as closed:
                return events, closed.rcvd.code if closed.rcvd else None

    events, code = asyncio.run(session())
    assert events[-1]["type"] == "error"
    assert events[-1]["error"]["code"] == "upstream_error"
    assert code == 1011


# ---- refusals ---------------------------------------------------------------------------
async def _refused(world: World, model: str, key: str | None) -> tuple[dict[str, Any], int]:
    event, code, _ = await _refused_rid(world, model, key)
    return event, code


async def _refused_rid(
    world: World, model: str, key: str | None
) -> tuple[dict[str, Any], int, str]:
    async with world.connect(model, key=key) as ws:
        rid = ws.response.headers["x-request-id"]
        event = json.loads(await asyncio.wait_for(ws.recv(), 5))
        with pytest.raises(ConnectionClosed) as closed:
            await asyncio.wait_for(ws.recv(), 5)
    rcvd = closed.value.rcvd
    assert rcvd is not None
    return event, rcvd.code, rid


def test_bad_key_unknown_model_and_no_balance_are_refused(world: World) -> None:
    event, code = asyncio.run(_refused(world, "house-realtime", "sk-wrong"))
    assert (event["type"], event["error"]["code"], code) == ("error", "invalid_api_key", 1008)
    event, code = asyncio.run(_refused(world, "no-such-model", None))
    assert (event["error"]["code"], code) == ("model_not_found", 1008)
    poor = world.gw.create_user("rt-poor", balance=None)
    poor_key = world.gw.create_key(poor, name="poor")
    time.sleep(1.2)
    event, code, rid = asyncio.run(_refused_rid(world, "house-realtime", poor_key))
    assert (event["error"]["code"], code) == ("insufficient_quota", 1008)
    [row] = rows(world.gw, rid, 1)  # a refusal after authentication is logged
    assert (row["status"], row["error_code"], units(row)) == (403, "insufficient_quota", 0)
    assert not [r for e in world.emus for r in e.stats.recorded if r.path == "/v1/realtime"]


def test_refused_upgrade_fails_over_to_the_next_channel(world: World) -> None:
    world.emus[0].configure(fail_status=503, fail_times=-1)
    asyncio.run(_one_response(world))
    assert [r for r in world.emus[1].stats.recorded if r.path == "/v1/realtime"]


def test_no_upstream_accepts(world: World) -> None:
    for emu in world.emus:
        emu.configure(fail_status=500, fail_times=-1)
    event, code = asyncio.run(_refused(world, "house-realtime", None))
    assert event["type"] == "error" and event["error"]["type"] == "upstream_error"
    assert code == 1011
    assert world.emus[0].stats.recorded and world.emus[1].stats.recorded  # both were tried


def test_session_ends_when_the_balance_runs_out(world: World) -> None:
    uid = world.gw.create_user("rt-short", balance="1")
    key = world.gw.create_key(uid, name="short")
    time.sleep(1.2)

    async def session() -> tuple[str, list[dict[str, Any]], int | None]:
        async with world.connect("house-realtime-dear", key=key) as ws:
            rid = ws.response.headers["x-request-id"]
            await ws.send(json.dumps({"type": "response.create"}))
            events = await recv_until(ws, "response.done")  # delivered, then charged
            try:
                while True:
                    events.append(json.loads(await asyncio.wait_for(ws.recv(), 5)))
            except ConnectionClosed as closed:
                return rid, events, closed.rcvd.code if closed.rcvd else None

    rid, events, code = asyncio.run(session())
    assert events[-1]["type"] == "error"
    assert events[-1]["error"]["code"] == "insufficient_quota" and code == 1008
    found = rows(world.gw, rid, 2)  # the response, and the session's end
    charged = [r for r in found if r["status"] == 200]
    assert len(charged) == 1 and units(charged[0]) > 1_000_000  # more than the balance
    assert Decimal(world.gw.balance(uid)["balance"]) < 0
    wait_for(lambda: realtime_counts(world.emus[0].impl).open == 0, "upstream closed")
