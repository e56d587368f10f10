"""Content safety on ``/v1/realtime`` (issue 16) through the running gateway, with the
``websockets`` client against the OpenAI emulator's realtime endpoint and word lists made
through the admin API: with no list the frames pass unchanged; a client item, instructions
or response input holding a blocked word never reaches the upstream and the client gets a
``content_policy_violation`` error event naming its ``event_id``; a reply whose blocked word
is split across deltas never shows the word (deltas, ``.done`` text, ``response.done``
output), ends with the notice, and ``response.cancel`` goes upstream while the session
stays open (beta and GA event names); mask lists mask both ways; every hit is audited.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from gateway import Gateway
from websockets.asyncio.client import ClientConnection, connect

from relaygate.emulator import EmulatorServer, Knobs
from relaygate.emulator.openai_realtime import realtime_counts
from relaygate.safety.base import SafetySettings

NOTICE = SafetySettings().notice
MAPPING = {"safe-realtime": "gpt-realtime"}
CLEAN = "Hello there, all fine."
BLOCKED = "zorblax"
MASKED = "quibbit"


class World:
    def __init__(self, gw: Gateway, emu: EmulatorServer, key: str, uid: int) -> None:
        self.gw, self.emu, self.key, self.uid = gw, emu, key, uid

    def connect(self, beta: bool = True) -> Any:
        headers = {"Authorization": f"Bearer {self.key}"}
        if beta:
            headers["OpenAI-Beta"] = "realtime=v1"
        url = f"ws://127.0.0.1:{self.gw.port}/v1/realtime?model=safe-realtime"
        return connect(url, additional_headers=headers)

    def events(self) -> list[Any]:
        return realtime_counts(self.emu.impl).events


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    emu = EmulatorServer("openai", knobs=Knobs(api_key="sk-up", reply=CLEAN, chunks=3)).start()
    gw = Gateway(Path(tmp_path_factory.mktemp("rt-safety")))
    try:
        gw.start()
        gw.create_channel(
            name="openai",
            provider="openai_compat",
            profile="openai",
            base_url=emu.base_url,
            keys=["sk-up"],
            models=[*MAPPING],
            model_mapping=MAPPING,
        )
        gw.admin(
            "POST",
            "/prices",
            {"model": "safe-realtime", "currency": "CNY", "per": "1m", "input": "1", "output": "1"},
        )
        uid = gw.create_user("rts", balance="100")
        key = gw.create_key(uid, name="rts")
        time.sleep(1.2)  # the workers load the configuration
        yield World(gw, emu, key, uid)
    finally:
        gw.stop()
        emu.stop()


@pytest.fixture(autouse=True)
def _reset(world: World) -> None:
    world.emu.reset(knobs=True, stats=True)


@pytest.fixture(scope="module")
def lists(world: World) -> None:
    """A block list and a mask list (after the no-list test ran)."""
    for name, action, word in (("rt-block", "block", BLOCKED), ("rt-mask", "mask", MASKED)):
        body = {"name": name, "category": f"cat-{action}", "action": action, "words": [word]}
        world.gw.admin("POST", "/safety/lists", body)
    time.sleep(1.5)  # every worker reloads its lists


async def recv_until(ws: ClientConnection, kind: str) -> list[dict[str, Any]]:
    got = []
    while True:
        event = json.loads(await asyncio.wait_for(ws.recv(), 5))
        got.append(event)
        if event["type"] == kind:
            return got


def item(text: str, event: str | None = None) -> str:
    body: dict[str, Any] = {
        "type": "conversation.item.create",
        "item": {"type": "message", "role": "user",
                 "content": [{"type": "input_text", "text": text}]},
    }  # fmt: skip
    if event is not None:
        body["event_id"] = event
    return json.dumps(body)


async def answer(ws: ClientConnection) -> list[dict[str, Any]]:
    await ws.send(json.dumps({"type": "response.create"}))
    return await recv_until(ws, "response.done")


def deltas(events: list[dict[str, Any]], kind: str) -> str:
    return "".join(e["delta"] for e in events if e["type"] == kind)


def audit(world: World, where: str) -> list[dict[str, Any]]:
    deadline = time.monotonic() + 5
    while True:
        rows = world.gw.admin("GET", f"/safety/audit?user_id={world.uid}")["data"]
        found = [r for r in rows if r["where"] == where]
        if found or time.monotonic() > deadline:
            return found
        time.sleep(0.1)


# ---- no list: nothing changes ------------------------------------------------------------
def test_no_list_frames_pass_unchanged(world: World) -> None:
    reply = f"say {BLOCKED} now"
    world.emu.configure(reply=reply, chunks=20)
    sent = item(f"tell me {BLOCKED}", "evt_plain")

    async def session() -> list[dict[str, Any]]:
        async with world.connect() as ws:
            await recv_until(ws, "session.created")
            await ws.send(sent)
            await recv_until(ws, "conversation.item.created")
            return await answer(ws)

    before = len(world.events())
    got = asyncio.run(session())
    assert deltas(got, "response.text.delta") == reply
    assert world.events()[before] == json.loads(sent)


# ---- client frames -------------------------------------------------------------------------
def test_blocked_input_never_reaches_upstream(world: World, lists: None) -> None:
    refused = [
        item(f"please say {BLOCKED}", "evt_item"),
        json.dumps({"type": "session.update", "event_id": "evt_session",
                    "session": {"instructions": f"Always say {BLOCKED.upper()}."}}),
        json.dumps({"type": "response.create", "event_id": "evt_response",
                    "response": {"instructions": "ok", "input": [
                        {"type": "function_call_output", "call_id": "c1",
                         "output": f"result: {BLOCKED}"}]}}),
        # the event type spelled with an escape is still recognised
        '{"type":"session\\u002eupdate","event_id":"evt_escaped",'
        f'"session":{{"instructions":"{BLOCKED}"}}}}',
    ]  # fmt: skip

    async def session() -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        async with world.connect() as ws:
            await recv_until(ws, "session.created")
            errors = []
            for frame in refused:
                await ws.send(frame)
                errors.append((await recv_until(ws, "error"))[-1])
            await ws.send(item("a clean question"))  # the session goes on
            await recv_until(ws, "conversation.item.created")
            return errors, await answer(ws)

    before = len(world.events())
    errors, done = asyncio.run(session())
    names = ("evt_item", "evt_session", "evt_response", "evt_escaped")
    for error, event in zip(errors, names, strict=True):
        assert error["error"]["code"] == "content_policy_violation"
        assert error["error"]["type"] == "invalid_request_error"
        assert error["error"]["event_id"] == event
        assert "cat-block" in error["error"]["message"]
        assert BLOCKED not in error["error"]["message"]
    assert deltas(done, "response.text.delta") == CLEAN
    upstream = json.dumps(world.events()[before:])
    assert BLOCKED not in upstream.lower()
    assert [e["type"] for e in world.events()[before:]] == [
        "conversation.item.create",
        "response.create",
    ]
    rows = audit(world, "prompt")
    assert rows and all(r["category"] == "cat-block" for r in rows)


def test_masked_input_is_masked_upstream(world: World, lists: None) -> None:
    async def session() -> None:
        async with world.connect() as ws:
            await recv_until(ws, "session.created")
            await ws.send(item(f"a {MASKED} here"))
            created = await recv_until(ws, "conversation.item.created")
            assert MASKED not in json.dumps(created[-1])

    before = len(world.events())
    asyncio.run(session())
    text = world.events()[before]["item"]["content"][0]["text"]
    assert text == f"a {SafetySettings().mask} here"


# ---- upstream frames -----------------------------------------------------------------------
@pytest.mark.parametrize(
    ("beta", "reply"),
    [
        (True, f"Sure: {BLOCKED} is it"),  # fewer words than chunks: split inside the word
        (False, f"Sure: {BLOCKED} is it"),
        (True, f"Sure: {BLOCKED}"),  # the word ends the text: found when the field is done
    ],
)
def test_blocked_word_split_across_deltas(
    world: World, lists: None, beta: bool, reply: str
) -> None:
    world.emu.configure(reply=reply, chunks=30)
    delta = "response.text.delta" if beta else "response.output_text.delta"
    done = "response.text.done" if beta else "response.output_text.done"

    async def session() -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        async with world.connect(beta) as ws:
            await recv_until(ws, "session.created")
            await ws.send(item("go"))
            first = await answer(ws)
            world.emu.configure(reply=CLEAN, chunks=3)
            return first, await answer(ws)  # the session stays open

    before = len(world.events())
    first, second = asyncio.run(session())
    shown = deltas(first, delta)
    assert BLOCKED not in shown and shown.endswith(NOTICE)
    assert shown.startswith("Sure")
    texts = [e["text"] for e in first if e["type"] == done]
    assert texts == [shown]
    final = first[-1]["response"]["output"][0]["content"][0]["text"]
    assert final == shown
    assert BLOCKED not in json.dumps(first)
    assert not [e for e in first if e["type"] == "error"]  # the cancel's answer is hidden
    cancels = [e for e in world.events()[before:] if e["type"] == "response.cancel"]
    assert len(cancels) == 1 and cancels[0]["event_id"].startswith("event_relaygate_safety_")
    assert first[-1]["response"]["usage"]["output_tokens"] > 0  # billed as the upstream says
    assert deltas(second, delta) == CLEAN
    assert audit(world, "stream")


def test_masked_word_in_reply(world: World, lists: None) -> None:
    reply = f"One {MASKED} two"
    world.emu.configure(reply=reply, chunks=20)

    async def session() -> list[dict[str, Any]]:
        async with world.connect() as ws:
            await recv_until(ws, "session.created")
            await ws.send(item("go"))
            return await answer(ws)

    got = asyncio.run(session())
    masked = f"One {SafetySettings().mask} two"
    assert deltas(got, "response.text.delta") == masked
    assert [e["text"] for e in got if e["type"] == "response.text.done"] == [masked]
    assert got[-1]["response"]["output"][0]["content"][0]["text"] == masked
    assert MASKED not in json.dumps(got)


def test_clean_reply_with_a_list(world: World, lists: None) -> None:
    async def session() -> list[dict[str, Any]]:
        async with world.connect() as ws:
            await recv_until(ws, "session.created")
            await ws.send(item("go"))
            return await answer(ws)

    got = asyncio.run(session())
    assert deltas(got, "response.text.delta") == CLEAN
    assert [e["text"] for e in got if e["type"] == "response.text.done"] == [CLEAN]


@pytest.mark.parametrize("beta", [True, False])
def test_blocked_word_in_transcript(world: World, lists: None, beta: bool) -> None:
    reply = f"Sure: {BLOCKED} is it"
    world.emu.configure(reply=reply, chunks=30)
    prefix = "response.audio" if beta else "response.output_audio"
    modes = {"modalities": ["text", "audio"]} if beta else {"output_modalities": ["audio"]}

    async def session() -> list[dict[str, Any]]:
        async with world.connect(beta) as ws:
            await recv_until(ws, "session.created")
            await ws.send(json.dumps({"type": "session.update", "session": modes}))
            await recv_until(ws, "session.updated")
            await ws.send(item("speak"))
            return await answer(ws)

    got = asyncio.run(session())
    shown = deltas(got, f"{prefix}_transcript.delta")
    assert BLOCKED not in shown and shown.startswith("Sure") and shown.endswith(NOTICE)
    assert [e["transcript"] for e in got if e["type"] == f"{prefix}_transcript.done"] == [shown]
    assert got[-1]["response"]["output"][0]["content"][0]["transcript"] == shown
    assert BLOCKED not in json.dumps(got)
    # the audio after the block is not sent (the audio before it was: it cannot be filtered)
    audio = [e for e in got if e["type"] == f"{prefix}.delta"]
    assert 0 < len(audio) < len(reply)
