"""The storage suite, run on SQLite and on the machine's running PostgreSQL."""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import text

from relaygate.catalog import Catalog
from relaygate.errors import AuthError, ModelNotFound, PolicyError, ServiceUnavailable
from relaygate.routing.router import Router
from relaygate.storage.crypto import Secrets
from relaygate.storage.db import migrate
from relaygate.storage.repo import Conflict, Repository


async def test_migrate_is_idempotent(repo: Repository) -> None:
    await migrate(repo.engine)
    await migrate(repo.engine)
    assert await repo.users.list() == []


async def test_users_unique_and_update(repo: Repository) -> None:
    u = await repo.users.create("bob")
    with pytest.raises(Conflict):
        await repo.users.create("bob")
    assert await repo.users.update(u.id, {"status": "disabled"})
    got = await repo.users.get(username="bob")
    assert got is not None and got.status == "disabled"


def test_storage_imports_no_provider() -> None:
    """Storage only stores: the provider and profile names are the service layer's concern."""
    code = (
        "import sys, relaygate.storage.repo; "
        "print(sorted(m for m in sys.modules if m.startswith('relaygate.providers')))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    assert out == "[]"


async def test_keys_hashed_and_shown_once(repo: Repository) -> None:
    u = await repo.users.create("carol")
    _rec, plain = await repo.keys.create(u.id, name="k", models=["m1"])
    assert plain.startswith("sk-") and len(plain) > 40
    async with repo.engine.connect() as conn:
        stored = (await conn.execute(text("SELECT key_hash, key_hint FROM api_keys"))).one()
    assert plain not in stored[0] and stored[0] == repo.secrets.hash_key(plain)
    assert stored[1] == f"{plain[:6]}…{plain[-4:]}"
    keys = await repo.keys.list(u.id)
    assert keys[0].models == frozenset({"m1"})
    with pytest.raises(Conflict):
        await repo.keys.create(99999, name="orphan")


async def test_channel_keys_encrypted_at_rest(repo: Repository) -> None:
    ch = await repo.channels.create(
        name="c",
        provider="openai_compat",
        base_url="http://127.0.0.1:1/v1/",
        keys=["sk-upstream-secret-1", "sk-upstream-secret-2"],
        models=["m"],
        model_mapping={"m": "m-up"},
        config={"api_version": "x"},
    )
    async with repo.engine.connect() as conn:
        raw = (await conn.execute(text("SELECT keys_encrypted FROM channels"))).scalar_one()
    assert "sk-upstream" not in raw
    [loaded] = await repo.channels.list()
    assert loaded.keys == ("sk-upstream-secret-1", "sk-upstream-secret-2")
    assert loaded.base_url == "http://127.0.0.1:1/v1"
    assert "sk-upstream" not in str(loaded.to_public())
    other = Repository(repo.engine, Secrets("another-secret"))
    with pytest.raises(ValueError, match="RELAYGATE_SECRET_KEY"):
        await other.channels.list()
    assert await repo.channels.update(ch.id, {"keys": ["sk-new"], "status": "disabled"})
    [loaded] = await repo.channels.list()
    assert loaded.keys == ("sk-new",) and loaded.status == "disabled"


async def test_channel_status_reason(repo: Repository) -> None:
    """The gateway's status change keeps why (and bumps the revision); an operator's clears it."""
    ch = await repo.channels.create(
        name="c", provider="openai_compat", base_url="http://127.0.0.1:1", keys=["k"], models=["m"]
    )
    assert ch.status_reason is None
    r0 = await repo.revision()
    got = await repo.channels.set_status(ch.id, "auto_disabled", "upstream said 401: bad key")
    assert got is not None and got.status == "auto_disabled"
    assert got.status_reason == "upstream said 401: bad key"
    assert await repo.revision() > r0
    [loaded] = (await repo.snapshot()).channels
    assert loaded.status_reason == "upstream said 401: bad key"
    assert loaded.to_public()["status_reason"] == "upstream said 401: bad key"
    assert await repo.channels.update(ch.id, {"priority": 3})
    again = await repo.channels.get(ch.id)
    assert again is not None and again.status_reason == "upstream said 401: bad key"
    assert await repo.channels.update(ch.id, {"status": "enabled"})
    again = await repo.channels.get(ch.id)
    assert again is not None and again.status == "enabled" and again.status_reason is None
    assert await repo.channels.set_status(99999, "disabled", None) is None


async def test_migration_0005_down_and_up(repo: Repository) -> None:
    """0005 adds channels.status_reason, request_logs.attempts and model_routes; it can be
    taken back and applied again."""
    from alembic import command
    from sqlalchemy import inspect

    from relaygate.storage.db import _alembic_config

    def _cols(sync_conn: object, table: str) -> set[str]:
        return {c["name"] for c in inspect(sync_conn).get_columns(table)}  # type: ignore[arg-type]

    async with repo.engine.begin() as conn:
        assert "status_reason" in await conn.run_sync(_cols, "channels")
        assert "attempts" in await conn.run_sync(_cols, "request_logs")
        assert {"name", "fallbacks", "hedge_after_ms"} <= await conn.run_sync(_cols, "model_routes")
        await conn.run_sync(lambda c: command.downgrade(_alembic_config(c), "0004"))
        assert "status_reason" not in await conn.run_sync(_cols, "channels")
        assert "attempts" not in await conn.run_sync(_cols, "request_logs")
    await migrate(repo.engine)
    async with repo.engine.begin() as conn:
        assert "status_reason" in await conn.run_sync(_cols, "channels")


async def test_revision_bumps_on_every_write(repo: Repository) -> None:
    r0 = await repo.revision()
    u = await repo.users.create("dave")
    r1 = await repo.revision()
    await repo.keys.create(u.id)
    r2 = await repo.revision()
    assert r0 < r1 < r2


async def test_catalog_auth_and_routing(repo: Repository) -> None:
    u = await repo.users.create("erin")
    _, plain = await repo.keys.create(u.id, models=["m1", "m2", "gone"])
    _, expired = await repo.keys.create(u.id, expires_at=datetime.now(UTC) - timedelta(seconds=1))
    await repo.channels.create(
        name="a",
        provider="openai_compat",
        base_url="http://x",
        keys=["k1", "k2"],
        models=["m1"],
        priority=0,
    )
    await repo.channels.create(
        name="b",
        provider="openai_compat",
        base_url="http://y",
        keys=["k3"],
        models=["m1"],
        priority=5,
    )
    await repo.channels.create(
        name="off",
        provider="openai_compat",
        base_url="http://z",
        keys=["k"],
        models=["gone"],
        status="disabled",
    )
    cat = Catalog(repo)
    await cat.load()
    key, user = cat.authenticate(repo.secrets.hash_key(plain))
    assert user.username == "erin"
    router = Router(cat)
    first = router.candidates("m1", key)  # (channel, model) pairs
    assert [c.base_url for c, _ in first] == ["http://y", "http://x"]  # higher priority first
    assert router.target(*first[0]).base_url == "http://y"
    with pytest.raises(ModelNotFound):
        router.candidates("m3", key)  # not in allow-list
    with pytest.raises(ModelNotFound):
        router.candidates("m2", key)  # allowed but no channel anywhere
    with pytest.raises(ServiceUnavailable):
        router.candidates("gone", key)  # exists, but its only channel is disabled
    with pytest.raises(AuthError):
        cat.authenticate(repo.secrets.hash_key(expired))
    with pytest.raises(AuthError):
        cat.authenticate(repo.secrets.hash_key("sk-unknown"))
    await repo.users.update(u.id, {"status": "disabled"})
    await cat.load()
    with pytest.raises(PolicyError):
        cat.authenticate(repo.secrets.hash_key(plain))


async def test_request_logs_batch_insert(repo: Repository) -> None:
    now = datetime.now(UTC)
    rows = [
        (f"r{i}", now, 1, 1, "chat", "m", 1, bool(i % 2), 200, None, i, 2 * i, 5, 1)
        for i in range(49)
    ]
    rows.append(
        ("r49", now, None, 2, "embeddings", None, None, True, 502, "upstream_error", 0, 98, 7, None)
    )
    await repo.insert_request_logs(rows)
    got = await repo.list_request_logs(limit=10)
    assert len(got) == 10 and got[0]["request_id"] == "r49"
    last = got[0]  # every column round-trips, NULLs and booleans included
    assert (last["user_id"], last["key_id"], last["endpoint"], last["model"]) == (
        None,
        2,
        "embeddings",
        None,
    )
    assert (last["channel_id"], last["stream"], last["status"], last["error_code"]) == (
        None,
        True,
        502,
        "upstream_error",
    )
    assert (last["prompt_tokens"], last["latency_ms"], last["ttft_ms"]) == (0, 7, None)
    assert datetime.fromisoformat(last["created_at"]) == now
    assert [r["request_id"] for r in got] == [
        f"r{i}" for i in range(49, 39, -1)
    ]  # insertion order kept
    assert got[1]["stream"] is False and got[2]["stream"] is True
    assert sum(r["completion_tokens"] for r in await repo.list_request_logs(limit=100)) == 2 * sum(
        range(50)
    )


async def test_model_routes_store(repo: Repository) -> None:
    r0 = await repo.revision()
    made = await repo.model_routes.create(
        name="gpt-3.5-turbo-16k", fallbacks=["gpt-3.5-turbo-1106", "gpt-3.5-turbo-0613"]
    )
    assert made.fallbacks == ("gpt-3.5-turbo-1106", "gpt-3.5-turbo-0613")
    assert await repo.revision() > r0
    with pytest.raises(Conflict):
        await repo.model_routes.create(name="gpt-3.5-turbo-16k", fallbacks=[])
    await repo.model_routes.create(name="Qwen/Qwen3-8B", fallbacks=[], hedge_after_ms=800)
    got = await repo.model_routes.get("Qwen/Qwen3-8B")
    assert got is not None and got.hedge_after_ms == 800 and got.description == ""
    assert [r.name for r in await repo.model_routes.list()] == [
        "Qwen/Qwen3-8B",
        "gpt-3.5-turbo-16k",
    ]
    r1 = await repo.revision()
    upd = await repo.model_routes.update("gpt-3.5-turbo-16k", {"fallbacks": ["x"]})
    assert upd is not None and upd.fallbacks == ("x",) and upd.updated_at >= upd.created_at
    assert await repo.revision() > r1
    assert await repo.model_routes.update("nope", {"description": "d"}) is None
    snap = await repo.snapshot()
    assert snap.routes["gpt-3.5-turbo-16k"].fallbacks == ("x",)
    assert snap.routes["Qwen/Qwen3-8B"].to_public()["hedge_after_ms"] == 800
    assert await repo.model_routes.delete("Qwen/Qwen3-8B")
    assert not await repo.model_routes.delete("Qwen/Qwen3-8B")
    assert set((await repo.snapshot()).routes) == {"gpt-3.5-turbo-16k"}
