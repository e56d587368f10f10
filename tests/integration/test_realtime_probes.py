"""``/v1/realtime`` as an attacker drives it, through the running gateway: text frames that
are not JSON or not objects, huge frames (under and over the upstream's and the gateway's
frame limits), binary frames, unknown and missing event types, wrong types in
``session.update`` and ``response.create`` fields (with and without shaping rules), a flood
of ``response.create``, a client leaving mid-response, and the upstream emulator killed
(SIGKILL) mid-session.

Every time: the worker keeps running and serving (``/readyz``, a new session answers), the
client gets Realtime ``error`` events or a clean close, every ``response.done`` that passed
is charged exactly once (rows, costs and the balance agree), a response the client left in
the middle of is still charged, and the gateway logs no traceback.
"""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
from gateway import Gateway, free_port
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from relaygate.emulator import EmulatorServer, Knobs
from relaygate.emulator.openai_realtime import realtime_counts

REPLY = "Probing reply."
MAPPING = {"rt": "gpt-realtime", "rt-shaped": "gpt-realtime"}
SHAPING = {"overrides": {"max_tokens": 50}, "drop": ["tools"], "system_prefix": "Prefix."}


class World:
    def __init__(self, gw: Gateway, emu: EmulatorServer, key: str, uid: int) -> None:
        self.gw, self.emu, self.key, self.uid = gw, emu, key, uid

    def connect(self, model: str = "rt", **kw: Any) -> Any:
        headers = {"Authorization": f"Bearer {self.key}", "OpenAI-Beta": "realtime=v1"}
        url = f"ws://127.0.0.1:{self.gw.port}/v1/realtime?model={model}"
        return connect(url, additional_headers=headers, open_timeout=10, **kw)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    emu = EmulatorServer("openai", knobs=Knobs(api_key="sk-up", reply=REPLY, chunks=2)).start()
    gw = Gateway(Path(tmp_path_factory.mktemp("rt-probes")))
    try:
        gw.start()
        gw.create_channel(name="rt", provider="openai_compat", profile="openai",
                          base_url=emu.base_url, keys=["sk-up"], models=[*MAPPING],
                          model_mapping=MAPPING)  # fmt: skip
        gw.admin("POST", "/model-routes", {"name": "rt-shaped", "shaping": SHAPING})
        for model in (*MAPPING, "rt-kill"):
            gw.admin("POST", "/prices", {"currency": "CNY", "per": "1m", "model": model,
                                         "input": "4", "output": "16", "force": True})  # fmt: skip
        uid = gw.create_user("rt-prober", balance="100")
        key = gw.create_key(uid, name="probe")
        time.sleep(1.2)
        yield World(gw, emu, key, uid)
        assert "Traceback" not in gw.logs(), gw.logs()[-4000:]
    finally:
        gw.stop()
        emu.stop()


@pytest.fixture(autouse=True)
def _healthy(world: World) -> Iterator[None]:
    world.emu.configure(chunk_interval_ms=0)
    yield
    assert world.gw.proc is not None and world.gw.proc.poll() is None, "the gateway died"
    assert httpx.get(world.gw.base + "/readyz", timeout=5).status_code == 200
    asyncio.run(_one_response(world))  # the worker still serves sessions


async def _one_response(world: World) -> None:
    async with world.connect() as ws:
        await ws.send(json.dumps({"type": "response.create"}))
        await recv_until(ws, "response.done")


async def recv_until(ws: ClientConnection, kind: str) -> list[dict[str, Any]]:
    got = []
    while True:
        event = json.loads(await asyncio.wait_for(ws.recv(), 10))
        got.append(event)
        if event["type"] == kind:
            return got


def assert_error_event(event: dict[str, Any], code: str | None = None) -> None:
    assert event["type"] == "error", event
    error = event["error"]
    assert isinstance(error["message"], str) and error["message"]
    assert isinstance(error["type"], str) and isinstance(error["code"], str)
    if code is not None:
        assert error["code"] == code, error


def rows(gw: Gateway, request_id: str, n: int) -> list[dict[str, Any]]:
    deadline = time.monotonic() + 10
    while True:
        found: list[dict[str, Any]] = gw.admin("GET", f"/logs?request_id={request_id}")["data"]
        if len(found) >= n or time.monotonic() > deadline:
            assert len(found) == n, [(r["status"], r["cost"]) for r in found]
            return found
        time.sleep(0.1)


def units(row: dict[str, Any]) -> int:
    return int(Decimal(row["cost"]) * 1_000_000)


def cost(usage: dict[str, Any]) -> int:
    return -(-(usage["input_tokens"] * 4_000_000 + usage["output_tokens"] * 16_000_000)
             // 1_000_000)  # fmt: skip


def fresh_user(world: World, name: str) -> World:
    uid = world.gw.create_user(name, balance="100")
    key = world.gw.create_key(uid, name=name)
    time.sleep(1.2)
    return World(world.gw, world.emu, key, uid)


def balance(world: World) -> Decimal:
    return Decimal(world.gw.balance(world.uid)["balance"])


# ---- frames that are not events ---------------------------------------------------------
@pytest.mark.parametrize("frame", ["hello", "[1, 2]", "42", '"text"', "null", "", " ", "\x00"])
def test_text_that_is_not_a_json_object_is_an_error_event(world: World, frame: str) -> None:
    async def session() -> dict[str, Any]:
        async with world.connect() as ws:
            assert json.loads(await ws.recv())["type"] == "session.created"
            await ws.send(frame)
            event = json.loads(await asyncio.wait_for(ws.recv(), 5))
            await ws.send(json.dumps({"type": "response.create"}))  # still open
            await recv_until(ws, "response.done")
            return event

    assert_error_event(asyncio.run(session()), "invalid_event")


@pytest.mark.parametrize(
    "event",
    [
        {"type": "no.such.event"},
        {"type": 5},
        {"type": None},
        {"no_type": True},
        {"type": "session.update", "session": 7},
        {"type": "session.update", "session": "x"},
        {"type": "session.update", "session": [1]},
        {"type": "session.update", "session": None},
        {"type": "session.update"},
        {"type": "session.update", "session": {"instructions": 5}},
        {"type": "session.update", "session": {"instructions": ["a"], "tools": "x"}},
        {"type": "input_audio_buffer.append", "audio": "%%%not base64"},
        {"type": "response.create", "response": 7},
        {"type": "response.create", "response": {"instructions": [1], "max_output_tokens": "x"}},
    ],
)
@pytest.mark.parametrize("model", ["rt", "rt-shaped"])
def test_unknown_and_wrong_typed_events_get_answers(
    world: World, event: dict[str, Any], model: str
) -> None:
    async def session() -> list[dict[str, Any]]:
        async with world.connect(model) as ws:
            assert json.loads(await ws.recv())["type"] == "session.created"
            await ws.send(json.dumps(event))
            await ws.send(json.dumps({"type": "response.create"}))
            return await recv_until(ws, "response.done")

    events = asyncio.run(session())
    kinds = [e["type"] for e in events]
    assert kinds[-1] == "response.done"  # the session went on
    for e in events:
        if e["type"] == "error":
            assert_error_event(e)
    answered = {"error", "session.updated", "response.created"}
    assert answered & set(kinds[:1]), kinds


def test_binary_frames_pass_and_the_session_goes_on(world: World) -> None:
    async def session() -> bytes:
        async with world.connect() as ws:
            assert json.loads(await ws.recv())["type"] == "session.created"
            await ws.send(b"\xff\xfe\x00 not utf-8")
            echoed = await asyncio.wait_for(ws.recv(), 5)
            await ws.send(json.dumps({"type": "response.create"}))
            await recv_until(ws, "response.done")
            assert isinstance(echoed, bytes)
            return echoed

    assert asyncio.run(session()) == b"\xff\xfe\x00 not utf-8"


# ---- huge frames ------------------------------------------------------------------------
def _item(size: int) -> str:
    item = {"type": "message", "role": "user",
            "content": [{"type": "input_text", "text": "a " * (size // 2)}]}  # fmt: skip
    return json.dumps({"type": "conversation.item.create", "item": item})


def test_a_large_frame_within_the_limits_is_relayed(world: World) -> None:
    async def session() -> list[dict[str, Any]]:
        async with world.connect(max_size=None) as ws:
            await ws.send(_item(2 * 1024 * 1024))
            await recv_until(ws, "conversation.item.created")
            await ws.send(json.dumps({"type": "response.create"}))
            return await recv_until(ws, "response.done")

    done = asyncio.run(session())[-1]
    assert done["response"]["usage"]["input_tokens"] > 100_000


@pytest.mark.parametrize("size", [6 * 1024 * 1024, 20 * 1024 * 1024])
def test_frames_over_a_limit_end_the_session_cleanly(world: World, size: int) -> None:
    """6 MiB: over the emulator's 4 MiB frame limit (it closes with 1009, passed on);
    20 MiB: over the gateway's own (uvicorn's 16 MiB: 1009 at once)."""

    async def session() -> int | None:
        async with world.connect(max_size=None) as ws:
            await ws.send(_item(size))
            try:
                while True:
                    event = json.loads(await asyncio.wait_for(ws.recv(), 10))
                    assert event["type"] in ("session.created", "error"), event
                    if event["type"] == "error":
                        assert_error_event(event)
            except ConnectionClosed as closed:
                return closed.rcvd.code if closed.rcvd else None

    assert asyncio.run(session()) in (1009, 1011)


# ---- floods and departures --------------------------------------------------------------
def test_a_response_create_flood_is_billed_once_per_response(world: World) -> None:
    user = fresh_user(world, "rt-flood")
    n = 60

    async def session() -> tuple[str, list[dict[str, Any]]]:
        async with user.connect() as ws:
            rid = ws.response.headers["x-request-id"]
            for _ in range(n):
                await ws.send(json.dumps({"type": "response.create"}))
            dones = []
            while len(dones) < n:
                event = json.loads(await asyncio.wait_for(ws.recv(), 10))
                if event["type"] == "response.done":
                    dones.append(event)
        return rid, dones

    before = balance(user)
    rid, dones = asyncio.run(session())
    ids = {d["response"]["id"] for d in dones}
    assert len(ids) == n
    found = rows(world.gw, rid, n)
    assert all(r["status"] == 200 for r in found)
    expected = sum(cost(d["response"]["usage"]) for d in dones)
    assert sum(units(r) for r in found) == expected
    spent = int((before - balance(user)) * 1_000_000)
    assert abs(spent - expected) < 100  # the balance is shown to 4 decimals


def test_leaving_mid_response_still_charges_the_response(world: World) -> None:
    user = fresh_user(world, "rt-leaver")
    world.emu.configure(chunk_interval_ms=400)  # response.created, a pause, the rest
    counts = realtime_counts(world.emu.impl)
    counts.events.clear()

    async def session() -> str:
        ws = await user.connect()
        rid: str = ws.response.headers["x-request-id"]
        await ws.send(json.dumps({"type": "response.create"}))
        await recv_until(ws, "response.created")
        await ws.close()  # the response is still being generated
        return rid

    before = balance(user)
    rid = asyncio.run(session())
    [row] = rows(world.gw, rid, 1)
    assert row["status"] == 200 and units(row) > 0  # what was done is charged
    assert [e["type"] for e in counts.events] == ["response.create", "response.cancel"]
    spent = int((before - balance(user)) * 1_000_000)
    assert abs(spent - units(row)) < 100


def test_leaving_before_any_response_charges_nothing(world: World) -> None:
    user = fresh_user(world, "rt-quick")

    async def session() -> str:
        ws = await user.connect()
        rid: str = ws.response.headers["x-request-id"]
        assert json.loads(await ws.recv())["type"] == "session.created"
        await ws.close()
        return rid

    rid = asyncio.run(session())
    time.sleep(1)
    found = world.gw.admin("GET", f"/logs?request_id={rid}")["data"]
    assert all(units(r) == 0 for r in found)
    assert balance(user) == Decimal("100")


# ---- the upstream killed ----------------------------------------------------------------
def test_the_upstream_killed_mid_session(world: World) -> None:
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "relaygate", "emulator", "--provider", "openai", "--port",
         str(port), "--api-key", "sk-kill", "--chunk-interval-ms", "300"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                httpx.get(f"http://127.0.0.1:{port}/", timeout=1)
                break
            except httpx.HTTPError:
                assert time.monotonic() < deadline, "the emulator did not start"
                time.sleep(0.1)
        world.gw.create_channel(name="rt-kill", provider="openai_compat", profile="openai",
                                base_url=f"http://127.0.0.1:{port}/v1", keys=["sk-kill"],
                                models=["rt-kill"], model_mapping={"rt-kill": "gpt-realtime"})  # fmt: skip
        user = fresh_user(world, "rt-killed")

        async def session() -> tuple[str, dict[str, Any], list[dict[str, Any]], int | None]:
            async with user.connect("rt-kill") as ws:
                rid = ws.response.headers["x-request-id"]
                await ws.send(json.dumps({"type": "response.create"}))
                done = (await recv_until(ws, "response.done"))[-1]
                await ws.send(json.dumps({"type": "response.create"}))
                await recv_until(ws, "response.created")
                proc.send_signal(signal.SIGKILL)  # mid-response
                after: list[dict[str, Any]] = []
                try:
                    while True:
                        after.append(json.loads(await asyncio.wait_for(ws.recv(), 10)))
                except ConnectionClosed as closed:
                    return rid, done, after, closed.rcvd.code if closed.rcvd else None

        before = balance(user)
        rid, done, after, code = asyncio.run(session())
    finally:
        proc.kill()
        proc.wait(10)
    assert code == 1011
    assert after and after[-1]["type"] == "error"
    assert_error_event(after[-1], "upstream_error")
    found = rows(world.gw, rid, 2)  # the response that was done, and the session's end
    charged = [r for r in found if r["status"] == 200]
    assert len(charged) == 1 and units(charged[0]) == cost(done["response"]["usage"])
    assert [r["status"] for r in found if r["status"] != 200] == [502]
    assert sum(units(r) for r in found) == units(charged[0])
    spent = int((before - balance(user)) * 1_000_000)
    assert abs(spent - units(charged[0])) < 100
