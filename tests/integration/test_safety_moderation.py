"""The moderation model (docs/safety.md): RELAYGATE_SAFETY_MODERATION_MODEL names a model
of a channel serving /v1/moderations (here the OpenAI emulator, which flags inputs holding
"kill", "suicide" or "bomb"). A flagged prompt is refused with 402 and never sent upstream;
a failing or slow moderation call does not block; completed answers are checked and a
flagged one is audited."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from gateway import Gateway

from relaygate.emulator import EmulatorServer, Knobs
from relaygate.safety.base import SafetySettings

MODEL = "omni-moderation-latest"


@dataclass
class World:
    gw: Gateway
    chat_up: EmulatorServer
    mod_up: EmulatorServer
    key: str
    uid: int


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    chat_up = EmulatorServer("openai", knobs=Knobs(api_key="sk-chat"))
    mod_up = EmulatorServer("openai", knobs=Knobs(api_key="sk-mod"))
    chat_up.start()
    mod_up.start()
    gw = Gateway(
        Path(tmp_path_factory.mktemp("gw-moderation")),
        {
            "RELAYGATE_SAFETY_MODERATION_MODEL": MODEL,
            "RELAYGATE_SAFETY_MODERATION_TIMEOUT": "0.5",
        },
    ).start()
    try:
        gw.create_channel(
            name="chat",
            provider="openai_compat",
            profile="openai",
            base_url=chat_up.base_url,
            keys=["sk-chat"],
            models=["gpt-4o-mini"],
        )
        gw.create_channel(
            name="moderation",
            provider="openai_compat",
            profile="openai",
            base_url=mod_up.base_url,
            keys=["sk-mod"],
            models=[MODEL],
        )
        uid = gw.create_user("moderated")
        # the key may not use the moderation model: the gateway's own call is not the key's
        key = gw.create_key(uid, models=["gpt-4o-mini"])
        yield World(gw, chat_up, mod_up, key, uid)
    finally:
        gw.stop()
        chat_up.stop()
        mod_up.stop()


@pytest.fixture(autouse=True)
def _reset(world: World) -> Iterator[None]:
    yield
    world.chat_up.reset()
    world.mod_up.reset()


def client(w: World) -> openai.OpenAI:
    return openai.OpenAI(api_key=w.key, base_url=w.gw.base_url, max_retries=0)


def audit_rows(w: World, want: int) -> list[dict[str, Any]]:
    deadline = time.monotonic() + 10
    while True:
        r = httpx.get(
            w.gw.base + f"/admin/api/safety/audit?user_id={w.uid}",
            headers={"Authorization": f"Bearer {w.gw.admin_token}"},
            timeout=10,
        )
        rows: list[dict[str, Any]] = r.json()["data"]
        if len(rows) >= want or time.monotonic() > deadline:
            return rows
        time.sleep(0.2)


def test_flagged_prompt_is_refused_before_any_answer(world: World) -> None:
    with pytest.raises(openai.APIStatusError) as info:
        client(world).chat.completions.create(
            model="gpt-4o-mini",
            messages=[
                {"role": "system", "content": "You are helpful."},
                {"role": "user", "content": "How do I build a bomb?"},
            ],
        )
    assert info.value.status_code == 402
    body: Any = info.value.body
    assert body["code"] == "content_policy_violation"
    assert "moderation" in body["message"] and "illicit" in body["message"]
    # the moderation ran beside the upstream call: the upstream may have answered, but
    # nothing of it reached the client
    assert world.chat_up.stats.requests <= 1
    sent = world.mod_up.stats.bodies[-1]
    assert sent["model"] == MODEL and sent["input"] == [
        "You are helpful.",
        "How do I build a bomb?",
    ]
    rows = audit_rows(world, 1)
    row = rows[0]
    assert row["where"] == "moderation" and row["action"] == "block"
    assert row["list_name"] == f"moderation:{MODEL}" and "illicit" in row["category"]
    assert "bomb" in row["excerpt"]


def test_clean_prompt_passes(world: World) -> None:
    got = client(world).chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "Hello there"}]
    )
    assert got.choices[0].message.content
    assert world.mod_up.stats.requests >= 1 and world.chat_up.stats.requests == 1


@pytest.mark.parametrize("knobs", [{"latency_ms": 2000}, {"fail_status": 500}, {"hang": True}])
def test_failing_moderation_does_not_block(world: World, knobs: dict[str, Any]) -> None:
    world.mod_up.configure(**knobs)
    started = time.monotonic()
    got = client(world).chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "how to kill a process"}]
    )
    assert got.choices[0].finish_reason == "stop"
    assert time.monotonic() - started < 2.0  # the 0.5 s timeout, not the moderation's delay
    assert "the moderation model failed; not blocking" in world.gw.logs()


def test_a_flagged_whole_answer_is_replaced_by_the_notice(world: World) -> None:
    world.chat_up.configure(reply="Here is how to kill the process: use SIGTERM.")
    before = len(audit_rows(world, 0))
    got = client(world).chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "stop a program"}]
    )
    assert got.choices[0].message.content == SafetySettings().notice
    assert got.choices[0].finish_reason == "content_filter"
    rows = audit_rows(world, before + 1)
    assert len(rows) == before + 1
    row = rows[0]
    assert row["where"] == "moderation" and row["action"] == "block"
    assert "kill" in row["excerpt"]


def test_streams_are_refused_before_their_first_byte(world: World) -> None:
    with pytest.raises(openai.APIStatusError) as info:
        client(world).chat.completions.create(
            model="gpt-4o-mini",
            messages=[{"role": "user", "content": "thoughts of suicide"}],
            stream=True,
        )
    assert info.value.status_code == 402
    assert world.chat_up.stats.requests <= 1


def test_the_moderation_runs_beside_the_upstream_call(world: World) -> None:
    """Moderation 0.4 s and upstream 0.4 s: one after the other would take 0.8 s."""
    world.mod_up.configure(latency_ms=400)
    world.chat_up.configure(latency_ms=400)
    c = client(world)
    c.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}])
    started = time.monotonic()
    stream = c.chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "Hello there"}], stream=True
    )
    first = next(iter(stream))  # a stream's answer is not moderated: only the prompt's check
    elapsed = time.monotonic() - started
    assert first.choices
    assert 0.4 <= elapsed < 0.75, elapsed
    list(stream)


def test_a_clients_own_moderation_call_is_answered(world: World) -> None:
    key = world.gw.create_key(world.uid)  # may use every model
    got = openai.OpenAI(api_key=key, base_url=world.gw.base_url, max_retries=0).moderations.create(
        model=MODEL, input="how to build a bomb"
    )
    assert got.results[0].flagged is True
    assert world.mod_up.stats.requests == 1  # the client's call only
