"""AdminService on real storage (SQLite and PostgreSQL): a refused write saves nothing."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from relaygate.catalog import Catalog
from relaygate.errors import AuthError, NotFound
from relaygate.services.admin import AdminService, ConflictError
from relaygate.services.fields import ValidationError
from relaygate.storage.repo import Repository


async def test_user_rules(repo: Repository) -> None:
    svc = AdminService(repo)
    u = await svc.create_user({"username": "bob"})
    with pytest.raises(ValidationError, match="status"):
        await svc.update_user(u.id, {"status": "weird"})
    with pytest.raises(ConflictError, match="already exists"):
        await svc.create_user({"username": "bob"})
    with pytest.raises(NotFound):
        await svc.update_user(99999, {"status": "active"})
    assert (await svc.update_user(u.id, {"status": "disabled"})).status == "disabled"


CHANNEL: dict[str, Any] = {
    "name": "c",
    "base_url": "http://127.0.0.1:9",
    "keys": ["k"],
    "models": ["m"],
}


@pytest.mark.parametrize(
    "change",
    [
        {"profile": "nope"},
        {"base_url": "ftp://x"},
        {"weight": 0},
        {"status": "maybe"},
        {"models": []},
        {"priority": "high"},
        {"priority": True},
        {"model_mapping": [1]},
        {"config": "x"},
        {"keys": [""]},
        {"provider": "anthropic"},
        {"name": "ok", "colour": "red"},
    ],
)
async def test_channel_updates_are_validated_and_nothing_is_saved(
    repo: Repository, change: dict[str, object]
) -> None:
    svc = AdminService(repo)
    ch = await svc.create_channel(CHANNEL)
    before = await repo.revision()
    with pytest.raises(ValidationError):
        await svc.update_channel(ch.id, change)
    [same] = await repo.channels.list()
    assert same == ch and await repo.revision() == before


@pytest.mark.parametrize(
    "change",
    [{"models": 5}, {"models": []}, {"rpm_limit": -1}, {"expires_at": "soon"}, {"kind": "admin"}],
)
async def test_key_updates_are_validated_and_nothing_is_saved(
    repo: Repository, change: dict[str, object]
) -> None:
    svc = AdminService(repo)
    u = await svc.create_user({"username": "kim"})
    key, _ = await svc.create_key({"user_id": u.id, "models": ["m"]})
    before = await repo.revision()
    with pytest.raises(ValidationError):
        await svc.update_key(key.id, change)
    [same] = await repo.keys.list()
    assert same == key and await repo.revision() == before
    # the snapshot the gateway loads at start-up still loads
    cat = Catalog(repo)
    await cat.load()


async def test_revoked_key_stays_revoked(repo: Repository) -> None:
    svc = AdminService(repo)
    u = await svc.create_user({"username": "rex"})
    key, _ = await svc.create_key({"username": "rex"})
    assert (await svc.update_key(key.id, {"status": "disabled"})).status == "disabled"
    assert (await svc.update_key(key.id, {"status": "active"})).status == "active"
    assert (await svc.update_key(key.id, {"status": "revoked"})).status == "revoked"
    for status in ("active", "disabled"):
        with pytest.raises(ValidationError, match="revoked"):
            await svc.update_key(key.id, {"status": status})
    assert (await svc.update_key(key.id, {"name": "old"})).status == "revoked"
    # the storage guard holds even if the service's first read saw an active key
    assert not await repo.keys.update(key.id, {"status": "active"}, unless_status="revoked")
    [same] = await repo.keys.list(u.id)
    assert same.status == "revoked" and same.name == "old"
    with pytest.raises(NotFound):
        await svc.update_key(99999, {"status": "active"})


async def test_service_create_rules(repo: Repository) -> None:
    svc = AdminService(repo, api_key_prefix="rk-")
    u = await svc.create_user({"username": "una"})
    with pytest.raises(ValidationError, match="future"):
        await svc.create_key({"user_id": u.id, "expires_at": "2001-01-01T00:00:00Z"})
    with pytest.raises(ValidationError, match="at least one model"):
        await svc.create_key({"user_id": u.id, "models": []})
    with pytest.raises(ValidationError, match="admin users"):
        await svc.create_key({"user_id": u.id, "kind": "admin"})
    with pytest.raises(NotFound, match="nobody"):
        await svc.create_key({"username": "nobody"})
    with pytest.raises(NotFound):
        await svc.create_key({"user_id": 99999})
    with pytest.raises(ValidationError, match="empty"):
        await svc.create_channel({**CHANNEL, "keys": [""]})
    assert await repo.keys.list() == [] and await repo.channels.list() == []
    _, plain = await svc.create_key({"user_id": u.id})
    assert plain.startswith("rk-")
    token = await svc.bootstrap_admin("root")
    assert token.startswith("rg-admin-")
    with pytest.raises(ValidationError, match="not an admin"):
        await svc.bootstrap_admin("una")
    ollama = await svc.create_channel({**CHANNEL, "keys": [], "profile": "ollama"})
    assert ollama.keys == ()


async def test_expired_key_message_is_true(repo: Repository) -> None:
    """There is no console yet: the expired-key message must not send people to one."""
    u = await repo.users.create("exp")
    _, plain = await repo.keys.create(u.id, expires_at=datetime.now(UTC) - timedelta(seconds=1))
    cat = Catalog(repo)
    await cat.load()
    with pytest.raises(AuthError) as info:
        cat.authenticate(repo.secrets.hash_key(plain))
    assert "expired" in info.value.message and "console" not in info.value.message
    assert "operator" in info.value.message
