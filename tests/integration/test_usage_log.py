"""The request-log writer against real databases (SQLite file and the running PostgreSQL):
batching, order, every column including cached and reasoning tokens, the queue bound, a
database outage in the middle, and the flush on close. The crash spool: test_spool.py."""

from __future__ import annotations

import asyncio
import time

from sqlalchemy import text

from relaygate.context import RelayContext
from relaygate.providers.base import Usage
from relaygate.requestlog.writer import UsageLogWriter
from relaygate.storage.repo import Repository


def ctx(i: int, *, status: int = 200, stream: bool = False) -> RelayContext:
    c = RelayContext(f"req-{i:05d}", "chat", model="gpt-4o-mini", stream=stream, status=status)
    c.usage = Usage(
        prompt_tokens=i, completion_tokens=2 * i, cached_tokens=i // 2, reasoning_tokens=i % 3
    )
    c.first_byte_at = c.started + 0.002
    return c


async def count(repo: Repository) -> int:
    async with repo.engine.connect() as conn:
        return int((await conn.execute(text("SELECT count(*) FROM request_logs"))).scalar_one())


async def wait_rows(repo: Repository, n: int, within: float = 10.0) -> int:
    deadline = time.monotonic() + within
    got = await count(repo)
    while got < n and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
        got = await count(repo)
    return got


async def test_rows_are_written_in_batches_in_order(repo: Repository) -> None:
    w = UsageLogWriter(repo, interval=0.05, max_batch=100)
    w.start()
    try:
        for i in range(250):  # more than two batches
            w.record(ctx(i, status=502 if i == 7 else 200, stream=i % 2 == 1))
        assert w.backlog == 250
        assert await wait_rows(repo, 250) == 250
        assert w.backlog == 0 and w.dropped == 0
    finally:
        await w.close()
    rows = await repo.list_request_logs(limit=300)
    assert [r["request_id"] for r in rows] == [f"req-{i:05d}" for i in range(249, -1, -1)]
    r7 = next(r for r in rows if r["request_id"] == "req-00007")
    assert (r7["status"], r7["stream"], r7["prompt_tokens"], r7["completion_tokens"]) == (
        502,
        True,
        7,
        14,
    )
    assert r7["endpoint"] == "chat" and r7["model"] == "gpt-4o-mini" and r7["ttft_ms"] == 2
    assert (r7["cached_tokens"], r7["reasoning_tokens"]) == (3, 1)
    assert sum(r["cached_tokens"] for r in rows) == sum(i // 2 for i in range(250))
    assert len({r["log_uid"] for r in rows}) == 250  # one unique id per recorded row


async def test_queue_bound_counts_what_it_drops(repo: Repository) -> None:
    w = UsageLogWriter(repo, interval=60, max_queue=10)  # not started: nothing drains
    for i in range(15):
        w.record(ctx(i))
    assert w.backlog == 10 and w.dropped == 5
    await w.close()  # close writes what was kept
    assert await count(repo) == 10


async def test_database_outage_loses_nothing(repo: Repository) -> None:
    """The table disappears (renamed away) while rows arrive; the writer retries with
    growing pauses, and once the table is back every row is there exactly once."""
    w = UsageLogWriter(repo, interval=0.05)
    w.start()
    try:
        async with repo.engine.begin() as conn:
            await conn.execute(text("ALTER TABLE request_logs RENAME TO request_logs_away"))
        for i in range(40):
            w.record(ctx(i))
        await asyncio.sleep(0.5)  # at least one failed attempt
        assert w.backlog == 40
        async with repo.engine.begin() as conn:
            await conn.execute(text("ALTER TABLE request_logs_away RENAME TO request_logs"))
        for i in range(40, 60):
            w.record(ctx(i))
        assert await wait_rows(repo, 60) == 60
    finally:
        await w.close()
    ids = [r["request_id"] for r in await repo.list_request_logs(limit=100)]
    assert sorted(ids) == [f"req-{i:05d}" for i in range(60)]


async def test_close_flushes_rows_not_yet_written(repo: Repository) -> None:
    w = UsageLogWriter(repo, interval=30)  # the writer would wait 30 s
    w.start()
    for i in range(5):
        w.record(ctx(i))
    await asyncio.sleep(0.05)
    assert await count(repo) == 0
    await w.close()
    assert await count(repo) == 5
