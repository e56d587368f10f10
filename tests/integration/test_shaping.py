"""Request shaping through the running gateway, on SQLite and on PostgreSQL (a fresh
database: the 0007 migration runs on it): the openai SDK sends chat requests, and the body
each emulated upstream received shows the rules applied — a default temperature set when the
client sent none and not when it sent one, an override, a dropped parameter, a system-prompt
prefix — per model (a model route's ``shaping``), per channel (``config.shaping``), both
(model first), on a failover (the first channel's rules are not carried to the second), on
an Anthropic channel (the chat body shaped before the adaptor's translation), streamed and
not. Refusals of bad rules through the admin API name the field; clearing a route's rules
takes effect at once. The migration itself is taken down and up again on both databases."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from gateway import Gateway, fresh_pg_database

from relaygate.emulator import EmulatorServer, Knobs
from relaygate.storage.db import migrate
from relaygate.storage.repo import Repository

MODEL_RULES = {
    "defaults": {"temperature": 0},
    "overrides": {"top_p": 0.5},
    "drop": ["presence_penalty"],
    "system_prefix": "Model prefix.",
}
CHANNEL_RULES = {
    "defaults": {"temperature": 0.2},
    "overrides": {"max_tokens": 64},
    "drop": ["seed"],
    "system_prefix": "Channel prefix.",
}


@dataclass
class World:
    gw: Gateway
    a: EmulatorServer  # OpenAI: the plain channel, and the first (failing) failover channel
    b: EmulatorServer  # OpenAI: the shaped channel, and the second failover channel
    claude: EmulatorServer
    client: openai.OpenAI
    shaped_channel: int


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def world(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[World]:
    emus = [
        EmulatorServer("openai", knobs=Knobs(api_key="sk-a")),
        EmulatorServer("openai", knobs=Knobs(api_key="sk-b")),
        EmulatorServer("anthropic", knobs=Knobs(api_key="sk-ant")),
    ]
    for e in emus:
        e.start()

    def run(extra: dict[str, str]) -> Iterator[World]:
        gw = Gateway(Path(tmp_path_factory.mktemp(f"gw-shaping-{request.param}")), extra)
        gw.start()
        try:
            yield _seed(gw, *emus)
        finally:
            gw.stop()

    try:
        if request.param == "sqlite":
            yield from run({})
        else:
            with fresh_pg_database("rg_shaping_") as url:
                yield from run({"RELAYGATE_DATABASE_URL": url})
    finally:
        for e in emus:
            e.stop()


def _seed(gw: Gateway, a: EmulatorServer, b: EmulatorServer, claude: EmulatorServer) -> World:
    uid = gw.create_user("shaper")
    gw.create_channel(
        name="plain",
        base_url=a.base_url,
        keys=["sk-a"],
        models=["sh-model", "sh-other"],
        model_mapping={"sh-model": "gpt-4o-mini", "sh-other": "gpt-4o-mini"},
    )
    gw.create_channel(  # tried first for sh-fo, answers 500
        name="fo-first",
        base_url=a.base_url,
        keys=["sk-a"],
        models=["sh-fo"],
        model_mapping={"sh-fo": "error-500"},
        priority=10,
        config={"shaping": {"overrides": {"temperature": 1.9}, "system_prefix": "Not here."}},
    )
    shaped = gw.create_channel(
        name="shaped",
        base_url=b.base_url,
        keys=["sk-b"],
        models=["sh-chan", "sh-fo"],
        model_mapping={"sh-chan": "gpt-4o-mini", "sh-fo": "gpt-4o-mini"},
        config={"shaping": CHANNEL_RULES},
    )
    gw.create_channel(
        name="claude",
        provider="anthropic",
        base_url=claude.base_url,
        keys=["sk-ant"],
        models=["sh-claude"],
        model_mapping={"sh-claude": "claude-sonnet-4-20250514"},
        config={"shaping": {"defaults": {"temperature": 0}, "system_prefix": "Claude prefix."}},
    )
    gw.admin("POST", "/model-routes", {"name": "sh-model", "shaping": MODEL_RULES})
    key = gw.create_key(uid, name="shaping")
    client = openai.OpenAI(api_key=key, base_url=gw.base_url, max_retries=0)
    return World(gw, a, b, claude, client, shaped)


def admin(gw: Gateway, method: str, path: str, body: Any = None) -> httpx.Response:
    headers = {"Authorization": f"Bearer {gw.admin_token}"}
    return httpx.request(method, gw.base + "/admin/api" + path, json=body, headers=headers)


def chat(w: World, model: str, stream: bool = False, **params: Any) -> None:
    messages = params.pop("messages", [{"role": "user", "content": "Say hi"}])
    if stream:
        chunks = list(
            w.client.chat.completions.create(model=model, messages=messages, stream=True, **params)
        )
        assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    else:
        r = w.client.chat.completions.create(model=model, messages=messages, **params)
        assert r.choices[0].message.content


@pytest.mark.parametrize("stream", [False, True])
def test_model_rules(world: World, stream: bool) -> None:
    chat(world, "sh-model", stream, presence_penalty=1, top_p=0.9)
    sent = world.a.stats.last_body
    assert sent["temperature"] == 0  # the default: the client sent none
    assert sent["top_p"] == 0.5  # the override beat the client's 0.9
    assert "presence_penalty" not in sent  # dropped
    assert sent["messages"] == [
        {"role": "system", "content": "Model prefix."},
        {"role": "user", "content": "Say hi"},
    ]
    chat(world, "sh-model", stream, temperature=0.7)
    assert world.a.stats.last_body["temperature"] == 0.7  # sent: the default yields


def test_model_without_rules_untouched(world: World) -> None:
    chat(world, "sh-other", presence_penalty=1, top_p=0.9)
    sent = world.a.stats.last_body
    assert sent["presence_penalty"] == 1 and sent["top_p"] == 0.9
    assert "temperature" not in sent
    assert sent["messages"] == [{"role": "user", "content": "Say hi"}]


def test_model_then_channel_rules(world: World) -> None:
    world.gw.admin("POST", "/model-routes", {"name": "sh-chan", "shaping": MODEL_RULES})
    try:
        chat(world, "sh-chan", presence_penalty=1, seed=3)
        sent = world.b.stats.last_body
        assert sent["temperature"] == 0  # the model's default came first: the channel's waits
        assert sent["top_p"] == 0.5 and sent["max_tokens"] == 64  # both overrides
        assert "presence_penalty" not in sent and "seed" not in sent  # both drops
        assert sent["messages"][0] == {
            "role": "system",
            "content": "Channel prefix.\n\nModel prefix.",
        }
    finally:
        world.gw.admin("DELETE", "/model-routes/sh-chan")


@pytest.mark.parametrize("stream", [False, True])
def test_channel_rules(world: World, stream: bool) -> None:
    messages = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Say hi"},
    ]
    chat(world, "sh-chan", stream, messages=messages, seed=42, max_tokens=500)
    sent = world.b.stats.last_body
    assert sent["temperature"] == 0.2  # the channel's default
    assert sent["max_tokens"] == 64  # the channel's override
    assert "seed" not in sent  # dropped
    assert sent["messages"][0] == {"role": "system", "content": "Channel prefix.\n\nBe brief."}
    chat(world, "sh-chan", stream, temperature=1.0)
    assert world.b.stats.last_body["temperature"] == 1.0


def test_failover_does_not_carry_the_first_channels_rules(world: World) -> None:
    chat(world, "sh-fo")
    first, second = world.a.stats.last_body, world.b.stats.last_body
    assert first["model"] == "error-500" and first["temperature"] == 1.9  # tried, answered 500
    assert second["model"] == "gpt-4o-mini"
    assert second["temperature"] == 0.2  # the second channel's default, not 1.9
    assert [m["content"] for m in second["messages"]] == ["Channel prefix.", "Say hi"]


def test_anthropic_channel(world: World) -> None:
    chat(world, "sh-claude", stop="END")
    sent = world.claude.stats.last_body
    assert sent["system"] == "Claude prefix."
    assert sent["temperature"] == 0
    assert sent["stop_sequences"] == ["END"]


def test_admin_refusals_and_clearing(world: World) -> None:
    gw = world.gw
    r = admin(
        gw,
        "PATCH",
        f"/channels/{world.shaped_channel}",
        {"config": {"shaping": {"overrides": {"temperature": 5}}}},
    )
    assert r.status_code == 403, r.text
    assert r.json()["error"]["param"] == "config.shaping.overrides.temperature"
    r = admin(
        gw,
        "PATCH",
        f"/channels/{world.shaped_channel}",
        {"config": {"shaping": {"overrides": {"model": "gpt-4o"}}}},
    )
    assert r.status_code == 403 and "may not set or remove" in r.json()["error"]["message"]
    r = admin(gw, "POST", "/model-routes", {"name": "sh-other", "shaping": {"drop": "seed"}})
    assert r.status_code == 403 and r.json()["error"]["param"] == "shaping.drop"
    # a route with only rules needs a model some channel serves
    r = admin(gw, "POST", "/model-routes", {"name": "sh-nowhere", "shaping": {"drop": ["seed"]}})
    assert r.status_code == 403 and r.json()["error"]["param"] == "fallbacks"
    route = gw.admin("GET", "/model-routes/sh-model")["data"]
    assert route["shaping"] == MODEL_RULES and route["fallbacks"] == []
    # the channel kept its rules through the refused patches
    [channel] = [c for c in gw.admin("GET", "/channels")["data"] if c["name"] == "shaped"]
    assert channel["config"]["shaping"] == CHANNEL_RULES
    # clearing the model's rules applies at once
    cleared = gw.admin("PATCH", "/model-routes/sh-model", {"shaping": None})["data"]
    assert cleared["shaping"] is None
    try:
        chat(world, "sh-model", presence_penalty=1)
        sent = world.a.stats.last_body
        assert sent["presence_penalty"] == 1 and "top_p" not in sent
        assert sent["messages"] == [{"role": "user", "content": "Say hi"}]
    finally:
        gw.admin("PATCH", "/model-routes/sh-model", {"shaping": MODEL_RULES})


async def test_migration_0007_down_and_up(repo: Repository) -> None:
    """0007 adds model_routes.shaping; stored rules come back in the snapshot; the migration
    can be taken back and applied again."""
    from alembic import command
    from sqlalchemy import inspect

    from relaygate.storage.db import _alembic_config

    def _cols(sync_conn: object) -> set[str]:
        return {c["name"] for c in inspect(sync_conn).get_columns("model_routes")}  # type: ignore[arg-type]

    made = await repo.model_routes.create(name="m", shaping={"defaults": {"temperature": 0}})
    assert made.shaping == {"defaults": {"temperature": 0}}
    assert (await repo.snapshot()).routes["m"].shaping == {"defaults": {"temperature": 0}}
    updated = await repo.model_routes.update("m", {"shaping": {}})
    assert updated is not None and updated.shaping is None
    async with repo.engine.begin() as conn:
        assert "shaping" in await conn.run_sync(_cols)
        await conn.run_sync(lambda c: command.downgrade(_alembic_config(c), "0006"))
        assert "shaping" not in await conn.run_sync(_cols)
    await migrate(repo.engine)
    async with repo.engine.begin() as conn:
        assert "shaping" in await conn.run_sync(_cols)
    assert (await repo.model_routes.get("m")) is not None


def test_native_responses_are_shaped(world: World) -> None:
    r = world.client.responses.create(model="sh-model", input="Say hi", top_p=0.9)
    assert r.output_text
    sent = world.a.stats.last_body
    assert sent["instructions"].startswith("Model prefix.")  # the system prefix
    assert sent["temperature"] == 0 and sent["top_p"] == 0.5
