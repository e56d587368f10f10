"""storage/objects.py (``upstream_objects``) on SQLite and on the running PostgreSQL: the
record of objects created upstream, its one-time billing claim and its cursor paging."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest

from relaygate.storage import objects as objects_module
from relaygate.storage.objects import ObjectRecord, ObjectStore
from relaygate.storage.repo import Repository


async def _add(store: ObjectStore, obj_id: str, *, user: int = 1, kind: str = "file") -> None:
    assert await store.add(obj_id=obj_id, kind=kind, user_id=user, key_id=None, channel_id=3)


async def test_add_get_and_duplicates(repo: Repository) -> None:
    store = repo.objects
    assert await store.get("file-1") is None
    assert await store.add(
        obj_id="file-1",
        kind="file",
        user_id=7,
        key_id=11,
        channel_id=3,
        parent_id=None,
        model="gpt-4o-mini",
        data='{"id": "file-1"}',
    )
    rec = await store.get("file-1")
    assert rec is not None
    assert (rec.id, rec.kind, rec.user_id, rec.key_id, rec.channel_id) == (
        "file-1",
        "file",
        7,
        11,
        3,
    )
    assert (rec.parent_id, rec.model, rec.data, rec.billed, rec.deleted) == (
        None,
        "gpt-4o-mini",
        '{"id": "file-1"}',
        False,
        False,
    )
    assert rec.created_at.tzinfo is not None
    assert abs(rec.created_at - datetime.now(UTC)) < timedelta(minutes=1)
    # the same id again: refused, the first record kept as it was
    assert not await store.add(
        obj_id="file-1", kind="batch", user_id=8, key_id=None, channel_id=4, data="x"
    )
    assert await store.get("file-1") == rec
    # a run under a thread
    assert await store.add(
        obj_id="run_1", kind="run", user_id=7, key_id=None, channel_id=3, parent_id="thread_1"
    )
    run = await store.get("run_1")
    assert (
        run is not None and run.parent_id == "thread_1" and run.key_id is None and run.model is None
    )


async def test_update(repo: Repository) -> None:
    store = repo.objects
    await _add(store, "file-1")
    await store.update("file-1")  # nothing to change
    await store.update("file-1", data='{"status": "processed"}')
    rec = await store.get("file-1")
    assert rec is not None and rec.data == '{"status": "processed"}' and not rec.deleted
    await store.update("file-1", deleted=True)
    rec = await store.get("file-1")
    assert rec is not None and rec.deleted and rec.data == '{"status": "processed"}'
    await store.update("file-1", data="{}", deleted=False)  # deleted stays deleted
    rec = await store.get("file-1")
    assert rec is not None and rec.deleted and rec.data == "{}"
    await store.update("no-such-object", data="{}", deleted=True)  # no error, nothing made
    assert await store.get("no-such-object") is None


async def test_claim_billing_once_under_a_race(repo: Repository) -> None:
    store = repo.objects
    await _add(store, "ftjob-1", kind="fine_tuning.job")
    await _add(store, "ftjob-2", kind="fine_tuning.job")
    wins = await asyncio.gather(*(store.claim_billing("ftjob-1") for _ in range(20)))
    assert sum(wins) == 1
    assert not await store.claim_billing("ftjob-1")
    rec = await store.get("ftjob-1")
    assert rec is not None and rec.billed
    other = await store.get("ftjob-2")
    assert other is not None and not other.billed  # only the object claimed
    await store.unclaim_billing("ftjob-1")
    rec = await store.get("ftjob-1")
    assert rec is not None and not rec.billed
    wins = await asyncio.gather(*(store.claim_billing("ftjob-1") for _ in range(20)))
    assert sum(wins) == 1
    assert not await store.claim_billing("no-such-object")


# ---- paging --------------------------------------------------------------------------------
def _ids(page: list[ObjectRecord]) -> list[str]:
    return [r.id for r in page]


async def _walk(store: ObjectStore, *, limit: int, ascending: bool) -> list[list[str]]:
    """Every page of user 1's files, following ``after`` from the last id of each."""
    pages: list[list[str]] = []
    after: str | None = None
    while True:
        page, more = await store.list(1, "file", limit=limit, after=after, ascending=ascending)
        pages.append(_ids(page))
        if not more:
            return pages
        assert page, "has_more with an empty page"
        after = page[-1].id
        assert len(pages) < 100


async def _walk_back(
    store: ObjectStore, start: str, *, limit: int, ascending: bool
) -> list[list[str]]:
    """Pages before ``start``, following ``before`` from the first id of each."""
    pages: list[list[str]] = []
    before = start
    while True:
        page, more = await store.list(1, "file", limit=limit, before=before, ascending=ascending)
        pages.append(_ids(page))
        if not more:
            return pages
        assert page, "has_more with an empty page"
        before = page[0].id
        assert len(pages) < 100


@pytest.fixture
def same_instant(monkeypatch: pytest.MonkeyPatch) -> datetime:
    """Every object recorded at one instant: only the id orders them."""
    instant = datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=UTC)
    monkeypatch.setattr(objects_module, "now", lambda: instant)
    return instant


@pytest.mark.parametrize("limit", [1, 2, 3, 5, 7, 20])
@pytest.mark.parametrize("ascending", [False, True])
async def test_paging_with_equal_created_at(
    repo: Repository, same_instant: datetime, limit: int, ascending: bool
) -> None:
    store = repo.objects
    ids = [f"file-{c}" for c in "kbgaejhcfid"]  # not inserted in id order
    for obj_id in ids:
        await _add(store, obj_id)
    rec = await store.get(ids[0])
    assert rec is not None and rec.created_at == same_instant
    # noise: deleted, another user's, another kind
    await _add(store, "file-deleted")
    await store.update("file-deleted", deleted=True)
    await _add(store, "file-z-other-user", user=2)
    await _add(store, "batch_1", kind="batch")
    expected = sorted(ids, reverse=not ascending)
    pages = await _walk(store, limit=limit, ascending=ascending)
    assert [i for p in pages for i in p] == expected  # disjoint, complete, in order
    assert all(len(p) == limit for p in pages[:-1]) and 1 <= len(pages[-1]) <= limit
    # backwards from the last id: the pages before it, each the one just before
    back = await _walk_back(store, expected[-1], limit=limit, ascending=ascending)
    assert [i for p in reversed(back) for i in p] == expected[:-1]
    assert all(len(p) == limit for p in back[:-1])


async def test_paging_newest_first_by_time(
    repo: Repository, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = repo.objects
    base = datetime(2026, 5, 1, tzinfo=UTC)
    # ids against the time order, so the time decides
    for i, obj_id in enumerate(["file-e", "file-d", "file-c", "file-b", "file-a"]):
        monkeypatch.setattr(objects_module, "now", lambda i=i: base + timedelta(seconds=i))
        await _add(store, obj_id)
    page, more = await store.list(1, "file", limit=2)
    assert _ids(page) == ["file-a", "file-b"] and more
    page, more = await store.list(1, "file", limit=2, after="file-b")
    assert _ids(page) == ["file-c", "file-d"] and more
    page, more = await store.list(1, "file", limit=2, after="file-d")
    assert _ids(page) == ["file-e"] and not more
    page, more = await store.list(1, "file", limit=10, ascending=True)
    assert _ids(page) == ["file-e", "file-d", "file-c", "file-b", "file-a"] and not more
    # before: the page just before the cursor, in list order
    page, more = await store.list(1, "file", limit=2, before="file-e")
    assert _ids(page) == ["file-c", "file-d"] and more
    page, more = await store.list(1, "file", limit=2, before="file-c")
    assert _ids(page) == ["file-a", "file-b"] and not more
    page, more = await store.list(1, "file", limit=2, before="file-a")
    assert page == [] and not more
    # after and before together: the objects between them
    page, more = await store.list(1, "file", limit=10, after="file-a", before="file-e")
    assert _ids(page) == ["file-b", "file-c", "file-d"] and not more
    page, more = await store.list(1, "file", limit=2, after="file-a", before="file-e")
    assert _ids(page) == ["file-b", "file-c"] and more


async def test_paging_cursor_edge_cases(repo: Repository, same_instant: datetime) -> None:
    store = repo.objects
    for obj_id in ("file-1", "file-2", "file-3"):
        await _add(store, obj_id)
    await _add(store, "file-gone")
    await store.update("file-gone", deleted=True)
    await _add(store, "file-theirs", user=2)
    everything = ["file-3", "file-2", "file-1"]
    # an unknown cursor, a deleted one, another user's: ignored
    for cursor in ("file-nope", "file-gone", "file-theirs", ""):
        page, more = await store.list(1, "file", limit=10, after=cursor)
        assert _ids(page) == everything and not more
        page, more = await store.list(1, "file", limit=10, before=cursor)
        assert _ids(page) == everything and not more
    # the last page has no more; exactly ``limit`` left is not "more"
    page, more = await store.list(1, "file", limit=3)
    assert _ids(page) == everything and not more
    page, more = await store.list(1, "file", limit=2, after="file-1")
    assert page == [] and not more
    assert await store.list(3, "file", limit=5) == ([], False)
    assert await store.list(1, "vector_store", limit=5) == ([], False)
