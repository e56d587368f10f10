"""``/v1/realtime`` through the running gateway, against the OpenAI emulator's realtime
endpoint: shaping rules (the model route's and the channel's) applied to the session the
gateway starts and to the client's ``session.update`` / ``response.create``, under the beta
names (``websockets`` with ``OpenAI-Beta: realtime=v1``) and the GA names (the openai SDK);
audio tokens billed at the model's audio prices to the unit; and a session counted as one
in-flight request (``RELAYGATE_MAX_INFLIGHT``) for its whole life, a session over the bound
refused with a ``service_unavailable`` error event and close code 1013.
"""

from __future__ import annotations

import asyncio
import base64
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
from relaygate.emulator.openai_realtime import (
    AUDIO_BYTES_PER_TOKEN,
    AUDIO_TOKENS_PER_TEXT_TOKEN,
    realtime_counts,
)

REPLY = "Hello from the emulated realtime model, over."
MODEL_RULES = {
    "defaults": {"temperature": 0.6, "max_tokens": 300},
    "drop": ["tools"],
    "system_prefix": "Be polite.",
}
CHANNEL_RULES = {"overrides": {"max_tokens": 100}, "defaults": {"voice": "alloy"}}
AUDIO_PRICE = {
    "model": "rt-audio",
    "input": "4",
    "output": "16",
    "audio_input": "32",
    "audio_output": "64",
}  # fmt: skip  (CNY per 1M tokens)


class World:
    def __init__(self, gw: Gateway, emu: EmulatorServer, key: str, uid: int) -> None:
        self.gw, self.emu, self.key, self.uid = gw, emu, key, uid

    def connect(self, model: str, beta: bool = True, **kw: Any) -> Any:
        headers = {"Authorization": f"Bearer {self.key}"}
        if beta:
            headers["OpenAI-Beta"] = "realtime=v1"
        url = f"ws://127.0.0.1:{self.gw.port}/v1/realtime?model={model}"
        return connect(url, additional_headers=headers, **kw)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    emu = EmulatorServer("openai", knobs=Knobs(api_key="sk-up", reply=REPLY, chunks=2)).start()
    gw = Gateway(Path(tmp_path_factory.mktemp("rt-features")))
    try:
        gw.start()
        common = {"provider": "openai_compat", "profile": "openai", "base_url": emu.base_url,
                  "keys": ["sk-up"]}  # fmt: skip
        gw.create_channel(name="rt-shaped", models=["rt-shaped"], config={"shaping": CHANNEL_RULES},
                          model_mapping={"rt-shaped": "gpt-realtime"}, **common)  # fmt: skip
        gw.create_channel(name="rt-plain", models=["rt-audio"],
                          model_mapping={"rt-audio": "gpt-realtime"}, **common)  # fmt: skip
        gw.admin("POST", "/model-routes", {"name": "rt-shaped", "shaping": MODEL_RULES})
        gw.admin("POST", "/prices", {"currency": "CNY", "per": "1m", **AUDIO_PRICE})
        gw.admin("POST", "/prices", {"currency": "CNY", "per": "1m", "model": "rt-shaped",
                                     "input": "1", "output": "1"})  # fmt: skip
        uid = gw.create_user("rt-features", balance="100")
        key = gw.create_key(uid, name="rt")
        time.sleep(1.2)
        yield World(gw, emu, key, uid)
    finally:
        gw.stop()
        emu.stop()


@pytest.fixture(autouse=True)
def _reset(world: World) -> None:
    realtime_counts(world.emu.impl).events.clear()


async def recv_until(ws: ClientConnection, kind: str) -> list[dict[str, Any]]:
    got = []
    while True:
        event = json.loads(await asyncio.wait_for(ws.recv(), 5))
        got.append(event)
        if event["type"] == kind:
            return got


def rows(gw: Gateway, request_id: str, n: int) -> list[dict[str, Any]]:
    deadline = time.monotonic() + 5
    while True:
        found: list[dict[str, Any]] = gw.admin("GET", f"/logs?request_id={request_id}")["data"]
        if len(found) >= n or time.monotonic() > deadline:
            assert len(found) == n, found
            return found
        time.sleep(0.1)


def received(world: World) -> list[Any]:
    return list(realtime_counts(world.emu.impl).events)


# ---- shaping ----------------------------------------------------------------------------
def test_beta_session_is_shaped_from_the_start_and_on_each_update(world: World) -> None:
    async def session() -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        async with world.connect("rt-shaped") as ws:
            assert json.loads(await ws.recv())["type"] == "session.created"
            update = {"temperature": 1.0, "tools": [{"type": "function", "name": "f"}],
                      "instructions": "Talk like a pirate.",
                      "max_response_output_tokens": 4000}  # fmt: skip
            await ws.send(json.dumps({"type": "session.update", "session": update}))
            first = await recv_until(ws, "session.updated")
            response = {"max_response_output_tokens": 5000, "instructions": "Short."}
            await ws.send(json.dumps({"type": "response.create", "response": response}))
            done = await recv_until(ws, "response.done")
        return first, done

    first, done = asyncio.run(session())
    # the gateway's own session.update was answered upstream, but not forwarded
    assert [e["type"] for e in first] == ["session.updated"]
    shaped = first[0]["session"]
    assert shaped["temperature"] == 1.0  # the client's value beats the model's default
    assert shaped["voice"] == "alloy"  # the channel's default, set when the session started
    assert shaped["max_response_output_tokens"] == 100  # the channel's override
    assert shaped["instructions"] == "Be polite.\n\nTalk like a pirate."
    assert "tools" not in shaped  # dropped
    assert done[-1]["response"]["status"] == "completed"
    events = received(world)
    start, client_update, create = events[0], events[1], events[2]
    assert start["type"] == "session.update"
    assert start["event_id"].startswith("event_relaygate_")
    assert start["session"] == {"temperature": 0.6, "max_response_output_tokens": 100,
                                "voice": "alloy", "instructions": "Be polite."}  # fmt: skip
    assert client_update["session"]["max_response_output_tokens"] == 100
    assert create["response"] == {"max_response_output_tokens": 100,
                                  "instructions": "Be polite.\n\nShort."}  # fmt: skip


def test_ga_session_with_the_openai_sdk(world: World) -> None:
    async def session() -> Any:
        client = openai.AsyncOpenAI(api_key=world.key, base_url=world.gw.base_url)
        async with client.realtime.connect(model="rt-shaped") as conn:
            await conn.session.update(
                session={"type": "realtime", "instructions": "Be brief.", "max_output_tokens": 999}
            )
            async for event in conn:
                if event.type == "session.updated":
                    return event.session

    shaped = asyncio.run(session())
    assert shaped.instructions == "Be polite.\n\nBe brief."
    assert shaped.max_output_tokens == 100
    start = received(world)[0]
    # GA names: max_output_tokens; temperature and voice are not GA session fields
    assert start["session"] == {"type": "realtime", "max_output_tokens": 100,
                                "instructions": "Be polite."}  # fmt: skip


def test_a_client_that_never_updates_gets_the_rules_too(world: World) -> None:
    async def session() -> list[dict[str, Any]]:
        async with world.connect("rt-shaped") as ws:
            await ws.send(json.dumps({"type": "response.create"}))
            return await recv_until(ws, "response.done")

    events = asyncio.run(session())
    kinds = [e["type"] for e in events]
    assert "session.updated" not in kinds and kinds[0] == "session.created"
    first = received(world)[0]
    assert first["type"] == "session.update" and first["session"]["instructions"] == "Be polite."


def test_an_unshaped_model_sends_nothing_of_its_own(world: World) -> None:
    async def session() -> None:
        async with world.connect("rt-audio") as ws:
            await ws.send(json.dumps({"type": "response.create"}))
            await recv_until(ws, "response.done")

    asyncio.run(session())
    assert [e["type"] for e in received(world)] == ["response.create"]


# ---- audio billing ----------------------------------------------------------------------
def test_audio_tokens_are_charged_at_the_audio_prices(world: World) -> None:
    audio = base64.b64encode(b"\x00" * (AUDIO_BYTES_PER_TOKEN * 10)).decode()

    async def session(world: World) -> tuple[str, dict[str, Any]]:
        async with world.connect("rt-audio") as ws:
            rid = ws.response.headers["x-request-id"]
            update = {"modalities": ["text", "audio"]}
            await ws.send(json.dumps({"type": "session.update", "session": update}))
            await recv_until(ws, "session.updated")
            await ws.send(json.dumps({"type": "input_audio_buffer.append", "audio": audio}))
            await ws.send(json.dumps({"type": "input_audio_buffer.commit"}))
            await ws.send(json.dumps({"type": "response.create"}))
            done = await recv_until(ws, "response.done")
        return rid, done[-1]["response"]["usage"]

    uid = world.gw.create_user("rt-audio", balance="100")  # a balance of its own
    own = World(world.gw, world.emu, world.gw.create_key(uid, name="audio"), uid)
    time.sleep(1.2)
    before = Decimal(world.gw.balance(uid)["balance"])
    rid, usage = asyncio.run(session(own))
    audio_in = usage["input_token_details"]["audio_tokens"]
    audio_out = usage["output_token_details"]["audio_tokens"]
    text_in = usage["input_token_details"]["text_tokens"]
    text_out = usage["output_token_details"]["text_tokens"]
    assert audio_in == 10 and audio_out == AUDIO_TOKENS_PER_TEXT_TOKEN * text_out > 0
    assert usage["input_tokens"] == text_in + audio_in
    # units (10^-6 CNY): text at 4 and 16, audio at 32 and 64 CNY per 1M tokens, one ceil
    numerator = text_in * 4_000_000 + audio_in * 32_000_000
    numerator += text_out * 16_000_000 + audio_out * 64_000_000
    expected = -(-numerator // 1_000_000)
    as_text = -(-(usage["input_tokens"] * 4_000_000 + usage["output_tokens"] * 16_000_000)
                // 1_000_000)  # fmt: skip
    assert expected > as_text  # the audio prices made a difference
    [row] = rows(world.gw, rid, 1)
    assert row["prompt_tokens"] == usage["input_tokens"]
    assert row["completion_tokens"] == usage["output_tokens"]
    assert int(Decimal(row["cost"]) * 1_000_000) == expected
    after = Decimal(world.gw.balance(uid)["balance"])
    # (the balance is shown to 4 decimals: 100 units)
    assert abs(int((before - after) * 1_000_000) - expected) < 100


# ---- in-flight bound --------------------------------------------------------------------
@pytest.fixture(scope="module")
def tight(world: World, tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    """A second gateway, at most one request in flight, on the same emulator."""
    gw = Gateway(Path(tmp_path_factory.mktemp("rt-inflight")),
                 {"RELAYGATE_MAX_INFLIGHT": "1"})  # fmt: skip
    try:
        gw.start()
        gw.create_channel(name="rt", provider="openai_compat", profile="openai",
                          base_url=world.emu.base_url, keys=["sk-up"], models=["rt-audio"],
                          model_mapping={"rt-audio": "gpt-realtime"})  # fmt: skip
        gw.admin("POST", "/prices", {"currency": "CNY", "per": "1m", **AUDIO_PRICE})
        uid = gw.create_user("rt-tight", balance="100")
        key = gw.create_key(uid, name="rt")
        time.sleep(1.2)
        yield World(gw, world.emu, key, uid)
    finally:
        gw.stop()


async def _refused(tight: World) -> tuple[dict[str, Any], int, str]:
    async with tight.connect("rt-audio") as ws:
        event = json.loads(await asyncio.wait_for(ws.recv(), 5))
        with pytest.raises(ConnectionClosed) as closed:
            await asyncio.wait_for(ws.recv(), 5)
    rcvd = closed.value.rcvd
    assert rcvd is not None
    return event, rcvd.code, rcvd.reason


def test_an_open_session_counts_as_one_request_in_flight(tight: World) -> None:
    async def scenario() -> None:
        async with tight.connect("rt-audio") as ws:
            await ws.send(json.dumps({"type": "response.create"}))
            await recv_until(ws, "response.done")
            # the worker is full while this session is open: sessions and HTTP are shed
            event, code, reason = await _refused(tight)
            assert event["type"] == "error"
            assert event["error"]["code"] == "service_unavailable"
            assert (code, reason) == (1013, "service_unavailable")
            async with httpx.AsyncClient() as http:
                r = await http.post(
                    tight.gw.base_url + "/chat/completions",
                    headers={"Authorization": f"Bearer {tight.key}"},
                    json={"model": "rt-audio", "messages": [{"role": "user", "content": "hi"}]},
                )
            assert r.status_code == 503
            # the openai SDK yields the error event, then raises the close (1013)
            client = openai.AsyncOpenAI(api_key=tight.key, base_url=tight.gw.base_url)
            kinds = []
            with pytest.raises(ConnectionClosed) as closed:
                async with client.realtime.connect(model="rt-audio") as conn:
                    async for ev in conn:
                        kinds.append((ev.type, getattr(getattr(ev, "error", None), "code", None)))
            assert kinds == [("error", "service_unavailable")]
            assert closed.value.rcvd is not None and closed.value.rcvd.code == 1013
        # closed: the slot is free again
        for _ in range(50):
            try:
                async with tight.connect("rt-audio") as ws:
                    await ws.send(json.dumps({"type": "response.create"}))
                    await recv_until(ws, "response.done")
                return
            except (ConnectionClosed, KeyError):
                await asyncio.sleep(0.1)
        raise AssertionError("the in-flight slot was not released")

    asyncio.run(scenario())
    assert "Traceback" not in tight.gw.logs()
