"""The audit writer (``safety/audit.py``) and the list holder (``safety/lists.py``) on a
real SQLite database: rows queued and written in batches, a bounded queue that drops and
counts, a failing database that keeps the rows for the next try, the holder's reloads and
its old policy kept when a reload fails."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text

from relaygate.context import RelayContext
from relaygate.safety.audit import SafetyAudit
from relaygate.safety.base import SafetyHit
from relaygate.safety.lists import ListHolder
from relaygate.safety.matcher import compile_policy
from relaygate.storage.db import create_engine, migrate
from relaygate.storage.safety import AuditQuery, SafetyStore

LIST = {
    "name": "l",
    "category": "c",
    "action": "block",
    "groups": None,
    "enabled": True,
    "description": "",
}


@pytest.fixture
async def store(tmp_path: Path) -> Any:
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'a.db'}")
    await migrate(engine)
    yield SafetyStore(engine)
    await engine.dispose()


def hit(word: str, start: int) -> SafetyHit:
    return SafetyHit(word, 1, "l", "c", "block", start, start + len(word))


async def test_rows_are_written_in_batches(store: SafetyStore) -> None:
    audit = SafetyAudit(store, max_batch=2)
    ctx = RelayContext(request_id="req-1", endpoint="chat")
    ctx.model = "m"
    audit.record(ctx, [hit("bad", 4), hit("worse", 10)], "prompt", "say bad or worse")
    audit.record(ctx, [hit("bad", 0)], "stream", "bad")
    assert audit.backlog == 3
    assert await audit.flush() and audit.backlog == 0 and audit.written == 3
    rows = await store.list_audit(AuditQuery())
    assert [(r["word"], r["where"], r["excerpt"]) for r in rows] == [
        ("bad", "stream", "bad"),
        ("worse", "prompt", "say bad or worse"),
        ("bad", "prompt", "say bad or worse"),
    ]
    assert rows[0]["request_id"] == "req-1" and rows[0]["model"] == "m"


async def test_full_queue_drops_and_counts(store: SafetyStore) -> None:
    audit = SafetyAudit(store, max_queue=2)
    ctx = RelayContext(request_id="r", endpoint="chat")
    audit.record(ctx, [hit("a", 0), hit("a", 0), hit("a", 0)], "prompt", "a")
    assert audit.backlog == 2 and audit.dropped == 1
    audit.record(ctx, [hit("a", 0)], "prompt", "a")  # never raises
    assert audit.dropped == 2


async def test_failing_database_keeps_rows(store: SafetyStore) -> None:
    audit = SafetyAudit(store)
    ctx = RelayContext(request_id="r", endpoint="chat")
    audit.record(ctx, [hit("a", 0)], "prompt", "a")
    async with store.engine.begin() as conn:
        await conn.execute(text("ALTER TABLE safety_audit RENAME TO gone"))
    assert not await audit.flush() and audit.backlog == 1
    async with store.engine.begin() as conn:
        await conn.execute(text("ALTER TABLE gone RENAME TO safety_audit"))
    assert await audit.flush() and audit.backlog == 0
    audit.start()
    await audit.close()
    assert audit.dropped == 0


async def test_holder_reloads_and_keeps_the_old_policy(store: SafetyStore) -> None:
    holder = ListHolder(store, compile_policy)
    await holder.load()
    assert holder.policy is None and holder.revision == 0
    lst = await store.create_list(LIST, [("forbidden", None, None)])
    await holder.config_changed(0)
    policy = holder.policy
    assert policy is not None and [h.word for h in policy.scan("a FORBIDDEN b", "x")] == [
        "forbidden"
    ]
    await holder.config_changed(0)  # same revision: the same policy object
    assert holder.policy is policy
    await store.update_list(lst.id, {"enabled": False})  # the revision moves
    async with store.engine.begin() as conn:  # and the load fails
        await conn.execute(text("ALTER TABLE safety_words RENAME TO gone"))
    await holder.config_changed(0)
    assert holder.policy is policy  # kept
    async with store.engine.begin() as conn:
        await conn.execute(text("ALTER TABLE gone RENAME TO safety_words"))
    await holder.config_changed(0)
    assert holder.policy is None  # the only list is disabled now


async def test_runtime_check_and_chain_swap(store: SafetyStore) -> None:
    from relaygate.safety.base import SafetySettings
    from relaygate.safety.config import SafetyRuntime
    from relaygate.stages import FilterChain

    class Word:  # a chunk filter standing for the word-list filter
        def on_chunk(self, ctx: RelayContext, chunk: Any) -> list[Any]:
            return [chunk]

        def on_end(self, ctx: RelayContext) -> list[Any]:
            return []

    class State:
        filters = FilterChain([])

    holder = ListHolder(store, compile_policy)
    await holder.load()
    audit = SafetyAudit(store)
    word = Word()
    runtime = SafetyRuntime(SafetySettings(), holder, audit, word)
    state = State()
    runtime.pick_chain(state, ["other", word])
    assert state.filters.chunk_filters == []  # no list holds a word
    ctx = RelayContext(request_id="r", endpoint="chat")
    assert runtime.check(ctx, "a snippet about okapis", "search") == []
    await store.create_list(LIST, [("okapi", None, None)])
    await holder.config_changed(0)
    assert state.filters.chunk_filters == [word]
    hits = runtime.check(ctx, "a snippet about okapis", "search")
    assert [(h.word, h.action) for h in hits] == [("okapi", "block")]
    assert audit.backlog == 1
    await runtime.close()
    rows = await store.list_audit(AuditQuery())
    assert rows[0]["where"] == "search" and rows[0]["excerpt"] == "a snippet about okapis"
