"""``IdentityStore.link`` and ``IdentityStore.unlink`` (storage/console_identities.py) on
SQLite and PostgreSQL: linked, already linked, another user's, one identity per provider;
unlinked, not linked, and the last way in kept — also when two unlinks (or two links of one
provider) run at once."""

from __future__ import annotations

import asyncio
import uuid

from relaygate.storage import console_identities as ci
from relaygate.storage.console import ConsoleStore
from relaygate.storage.console_identities import IdentityStore
from relaygate.storage.repo import Repository


def _name() -> str:
    return f"ln{uuid.uuid4().hex[:8]}"


async def test_link_results(repo: Repository) -> None:
    store = IdentityStore(repo.engine)
    owner = await store.create_user(_name(), "github", "1", None)
    pw = await ConsoleStore(repo.engine).create_account(_name(), "argon2-hash")
    assert await store.link(pw.id, "github", "1", None) == ci.ELSEWHERE
    assert await store.link(pw.id, "oidc", "sub-a", "a@example.test") == ci.LINKED
    assert await store.link(pw.id, "oidc", "sub-a", None) == ci.ALREADY
    assert await store.link(pw.id, "oidc", "sub-b", None) == ci.PROVIDER_TAKEN
    assert await store.link(owner.id, "oidc", "sub-a", None) == ci.ELSEWHERE
    mine = await store.for_user(pw.id)
    assert [(i.provider, i.subject, i.email) for i in mine] == [("oidc", "sub-a", "a@example.test")]
    assert [i.subject for i in await store.for_user(owner.id)] == ["1"]
    assert await store.has_password(pw.id) and not await store.has_password(owner.id)


async def test_unlink_keeps_a_way_in(repo: Repository) -> None:
    store = IdentityStore(repo.engine)
    both = {"github", "oidc"}
    user = await store.create_user(_name(), "github", "g1", None)
    assert await store.unlink(user.id, "oidc", both) == ci.NOT_LINKED
    assert await store.unlink(user.id, "github", both) == ci.LAST_WAY_IN
    assert await store.link(user.id, "oidc", "o1", None) == ci.LINKED
    # the other identity's provider is off: it is no way in
    assert await store.unlink(user.id, "github", {"github"}) == ci.LAST_WAY_IN
    assert await store.unlink(user.id, "github", both) == ci.UNLINKED
    assert await store.unlink(user.id, "oidc", both) == ci.LAST_WAY_IN
    await ConsoleStore(repo.engine).set_password(user.id, "argon2-hash")
    assert await store.unlink(user.id, "oidc", both) == ci.UNLINKED
    assert await store.for_user(user.id) == []


async def test_two_unlinks_at_once_leave_one_way_in(repo: Repository) -> None:
    store = IdentityStore(repo.engine)
    for _ in range(5):
        user = await store.create_user(_name(), "github", f"g-{uuid.uuid4().hex}", None)
        assert await store.link(user.id, "oidc", f"o-{uuid.uuid4().hex}", None) == ci.LINKED
        both = {"github", "oidc"}
        results = await asyncio.gather(
            store.unlink(user.id, "github", both), store.unlink(user.id, "oidc", both)
        )
        assert sorted(results) == [ci.LAST_WAY_IN, ci.UNLINKED]
        assert len(await store.for_user(user.id)) == 1


async def test_two_links_of_one_provider_at_once_keep_one(repo: Repository) -> None:
    """Two different identities of one provider linked to a user at the same moment: the
    unique index on (user, provider) (migration 0016) keeps exactly one."""
    store = IdentityStore(repo.engine)
    for _ in range(5):
        user = await ConsoleStore(repo.engine).create_account(_name(), "argon2-hash")
        results = await asyncio.gather(
            *(store.link(user.id, "oidc", f"o-{uuid.uuid4().hex}", None) for _ in range(4))
        )
        assert sorted(results) == [ci.LINKED] + [ci.PROVIDER_TAKEN] * 3, results
        assert len(await store.for_user(user.id)) == 1
