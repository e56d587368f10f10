"""``IdentityStore`` (storage/console_identities.py) on SQLite and PostgreSQL: a user created
with its identity in one transaction, found again by (provider, subject), conflicts on a
taken name or an already linked identity, and the row deleted with its user."""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy import delete, func, select

from relaygate.storage.base import Conflict
from relaygate.storage.console_identities import IdentityStore, console_identities
from relaygate.storage.repo import Repository
from relaygate.storage.tables import users


async def test_identities_link_users(repo: Repository) -> None:
    store = IdentityStore(repo.engine)
    name = f"id{uuid.uuid4().hex[:8]}"
    assert await store.find("oidc", "sub-1") is None
    user = await store.create_user(name, "oidc", "sub-1", "a@example.test")
    assert user.username == name and user.status == "active" and user.role == "user"
    found = await store.find("oidc", "sub-1")
    assert found is not None
    ident, again = found
    assert again.id == user.id and ident.email == "a@example.test"
    assert await store.find("github", "sub-1") is None  # subjects are per provider
    assert await store.username_taken(name.upper())
    with pytest.raises(Conflict):
        await store.create_user(name, "github", "1", None)  # the name is taken
    with pytest.raises(Conflict):
        await store.create_user(name + "x", "oidc", "sub-1", None)  # already linked
    assert [i.subject for i in await store.for_user(user.id)] == ["sub-1"]
    # neither failed attempt left a user behind
    async with repo.engine.connect() as conn:
        count = await conn.scalar(
            select(func.count()).select_from(users).where(users.c.username.like(name + "%"))
        )
    assert count == 1
    async with repo.engine.begin() as conn:
        await conn.execute(delete(users).where(users.c.id == user.id))
    async with repo.engine.connect() as conn:
        left = await conn.scalar(select(func.count()).select_from(console_identities))
    assert left == 0  # ON DELETE CASCADE
