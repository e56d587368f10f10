"""The request-log spool against real databases (SQLite file and the running PostgreSQL):
rows are on disk before record() returns, survive a killed process and are replayed
once, stay in the spool through a database outage of any length, and every row that
is lost is counted."""

from __future__ import annotations

import asyncio
import os
import sqlite3
import subprocess
import sys
import textwrap
from collections.abc import AsyncIterator
from pathlib import Path

import orjson
import pytest
from sqlalchemy import text
from test_usage_log import count, ctx, wait_rows

from relaygate.requestlog.writer import UsageLogWriter
from relaygate.storage.crypto import Secrets
from relaygate.storage.db import create_engine, migrate
from relaygate.storage.repo import Repository


def spool_lines(d: Path) -> list[bytes]:
    out: list[bytes] = []
    for p in sorted(d.glob("requestlog-*.jsonl")):
        out.extend(x for x in p.read_bytes().split(b"\n") if x)
    return out


async def request_ids(repo: Repository) -> list[str]:
    async with repo.engine.connect() as conn:
        rows = await conn.execute(text("SELECT request_id FROM request_logs ORDER BY request_id"))
        return [r[0] for r in rows]


async def wait_for(cond: object, within: float = 10.0) -> None:
    assert callable(cond)
    for _ in range(int(within / 0.05)):
        if cond():
            return
        await asyncio.sleep(0.05)
    assert cond()


async def test_rows_are_in_the_spool_before_record_returns(
    repo: Repository, tmp_path: Path
) -> None:
    spool = tmp_path / "spool"
    w = UsageLogWriter(repo, spool_dir=spool, interval=0.05)
    for i in range(3):
        w.record(ctx(i))
    lines = spool_lines(spool)  # the writer has not run: only the spool has them
    assert [orjson.loads(x)[0] for x in lines] == ["req-00000", "req-00001", "req-00002"]
    assert w.health()["spooled_rows"] == 3
    w.start()
    try:
        assert await wait_rows(repo, 3) == 3
        await wait_for(lambda: not spool_lines(spool))  # committed: the segment is gone
        assert w.health()["spooled_rows"] == 0 and w.backlog == 0
    finally:
        await w.close()
    assert not spool_lines(spool) and await count(repo) == 3


# A separate process records rows into its spool, commits the first few itself (as the
# background writer would), then is killed before it could remove the spool file.
_CHILD = textwrap.dedent(
    """
    import asyncio, os, signal, sys
    from pathlib import Path
    from sqlalchemy.ext.asyncio import create_async_engine
    from relaygate.requestlog.spool import Spool, decode_lines
    from relaygate.requestlog.writer import UsageLogWriter
    from relaygate.storage.crypto import Secrets
    from relaygate.storage.repo import Repository
    from test_usage_log import ctx

    url, schema, spool_dir, first, n, committed = sys.argv[1:]
    first, n, committed = int(first), int(n), int(committed)

    async def main():
        args = {"server_settings": {"search_path": schema}} if schema else {}
        engine = create_async_engine(url, connect_args=args)
        repo = Repository(engine, Secrets("test-secret"))
        w = UsageLogWriter(repo, spool_dir=Path(spool_dir), interval=3600)
        for i in range(first, first + n):
            w.record(ctx(i))
        seg = w._spool.active
        lines, _, _ = Spool.read_lines(seg, committed)
        await repo.insert_request_logs(decode_lines(lines)[0])
        print("recorded", flush=True)
        os.kill(os.getpid(), signal.SIGKILL)

    asyncio.run(main())
    """
)


async def kill_child_after_recording(
    repo: Repository, spool: Path, first: int, n: int, committed: int
) -> None:
    schema = ""
    if repo.engine.dialect.name == "postgresql":
        async with repo.engine.connect() as conn:
            schema = str((await conn.execute(text("SELECT current_schema()"))).scalar_one())
    url = repo.engine.url.render_as_string(hide_password=False)
    args = [url, schema, str(spool), str(first), str(n), str(committed)]
    out = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-c", _CHILD, *args],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).parent)},
        check=False,
    )
    assert out.returncode == -9, out.stderr  # killed, not exited
    assert out.stdout.strip() == "recorded"


async def test_recover_replays_a_killed_writers_rows_once(repo: Repository, tmp_path: Path) -> None:
    spool = tmp_path / "spool"
    await kill_child_after_recording(repo, spool, 0, 20, committed=7)
    await kill_child_after_recording(repo, spool, 100, 30, committed=0)
    assert await count(repo) == 7  # what the first one committed before it died
    assert len(spool_lines(spool)) == 50
    # two workers start at once: each leftover segment is claimed by one of them
    b = UsageLogWriter(repo, spool_dir=spool)
    c = UsageLogWriter(repo, spool_dir=spool)
    try:
        got = await asyncio.gather(b.recover(), c.recover())
        assert sum(got) == 50
    finally:
        await b.close()
        await c.close()
    ids = await request_ids(repo)
    assert ids == [f"req-{i:05d}" for i in [*range(20), *range(100, 130)]]  # each once
    assert not spool_lines(spool)


async def rename_table(repo: Repository, old: str, new: str) -> None:
    async with repo.engine.begin() as conn:
        await conn.execute(text(f"ALTER TABLE {old} RENAME TO {new}"))


async def test_outage_longer_than_any_retry_budget_keeps_every_row(
    repo: Repository, tmp_path: Path
) -> None:
    """The table is gone for many attempts (the old writer dropped a batch after 5); rows
    beyond the memory bound stay only in the spool. Nothing is dropped; health() says
    what is happening; once the table is back every row is there once."""
    spool = tmp_path / "spool"
    w = UsageLogWriter(repo, spool_dir=spool, interval=0.05, max_backoff=0.05, max_queue=10)
    w.start()
    try:
        await rename_table(repo, "request_logs", "request_logs_away")
        for i in range(40):
            w.record(ctx(i))
        await asyncio.sleep(1.0)  # ~20 failed attempts
        h = w.health()
        assert h["db_writable"] is False and h["last_error"] and h["db_unwritable_for_s"] > 0.5
        assert (h["rows_dropped"], h["rows_backlog"], h["spooled_rows"]) == (0, 40, 40)
        assert h["spool_writable"] is True
        assert len(spool_lines(spool)) == 40
        await rename_table(repo, "request_logs_away", "request_logs")
        for i in range(40, 60):
            w.record(ctx(i))
        assert await wait_rows(repo, 60) == 60
        await wait_for(lambda: w.health()["db_writable"] and w.backlog == 0)
        assert w.health()["last_error"] is None and not spool_lines(spool)
    finally:
        await w.close()
    assert await request_ids(repo) == [f"req-{i:05d}" for i in range(60)]
    assert w.dropped == 0


async def test_close_during_outage_leaves_rows_for_the_next_start(
    repo: Repository, tmp_path: Path
) -> None:
    spool = tmp_path / "spool"
    w = UsageLogWriter(repo, spool_dir=spool, interval=0.05)
    w.start()
    await rename_table(repo, "request_logs", "request_logs_away")
    for i in range(5):
        w.record(ctx(i))
    await w.close()  # cannot write: the rows stay in the spool, not dropped
    assert w.dropped == 0 and len(spool_lines(spool)) == 5
    await rename_table(repo, "request_logs_away", "request_logs")
    nxt = UsageLogWriter(repo, spool_dir=spool)
    assert await nxt.recover() == 5
    await nxt.close()
    assert await request_ids(repo) == [f"req-{i:05d}" for i in range(5)]


async def test_rows_lost_without_a_spool_are_counted(repo: Repository) -> None:
    """No spool: rows only in memory that cannot be written at shutdown are dropped,
    counted (the old writer dropped them after five attempts and counted nothing)."""
    w = UsageLogWriter(repo, interval=30, max_queue=4)
    await rename_table(repo, "request_logs", "request_logs_away")
    try:
        for i in range(6):
            w.record(ctx(i))
        assert w.dropped == 2  # over the memory bound
        await w.close()
        assert w.dropped == 6  # and the four the database refused at shutdown
        assert w.health()["rows_dropped"] == 6 and w.backlog == 0
    finally:
        await rename_table(repo, "request_logs_away", "request_logs")


async def test_spool_write_failure_is_reported_and_counted(
    repo: Repository, tmp_path: Path
) -> None:
    """The disk is full: spool writes fail with ENOSPC (the segment's descriptor now
    points at /dev/full). Rows go on in memory up to the bound; beyond it they are
    dropped and counted; health() says the spool is not writable."""
    spool = tmp_path / "spool"
    w = UsageLogWriter(repo, spool_dir=spool, interval=30, max_queue=5)
    w.record(ctx(0))
    assert w._spool is not None and w._spool.active is not None
    full = os.open("/dev/full", os.O_WRONLY)
    os.dup2(full, w._spool.active.fd)
    os.close(full)
    for i in range(1, 9):
        w.record(ctx(i))
    h = w.health()
    assert h["spool_writable"] is False and h["rows_dropped"] == 4  # 1 spooled + 4 in memory
    await w.close()
    assert await count(repo) == 5 and w.dropped == 4


@pytest.fixture
async def sqlite_repo(tmp_path: Path) -> AsyncIterator[Repository]:
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'rg.db'}")
    await migrate(engine)
    try:
        yield Repository(engine, Secrets("test-secret"))
    finally:
        await engine.dispose()


def sqlite_ids(path: Path) -> list[str]:
    with sqlite3.connect(path) as conn:
        return [r[0] for r in conn.execute("SELECT request_id FROM request_logs ORDER BY 1")]


def remove_db_files(d: Path) -> None:
    for p in d.glob("rg.db*"):
        p.unlink()


def chattr(flag: str, files: list[str]) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(["chattr", flag, *files], capture_output=True, check=False)


async def test_sqlite_file_deleted_while_running_is_detected(
    sqlite_repo: Repository, tmp_path: Path
) -> None:
    """The database file is deleted under the running writer. SQLite would go on
    writing into the unlinked file; the writer notices, reports it, keeps the rows in
    the spool, and writes them once a database is back at that path."""
    db, spool = tmp_path / "rg.db", tmp_path / "spool"
    w = UsageLogWriter(sqlite_repo, spool_dir=spool, interval=0.05, max_backoff=0.1)
    w.start()
    try:
        for i in range(3):
            w.record(ctx(i))
        assert await wait_rows(sqlite_repo, 3) == 3
        remove_db_files(tmp_path)  # rm rg.db rg.db-wal rg.db-shm
        for i in range(3, 8):
            w.record(ctx(i))
        await wait_for(lambda: w.health()["db_writable"] is False)
        await asyncio.sleep(0.3)
        h = w.health()
        assert h["db_writable"] is False and "rg.db is gone" in str(h["last_error"])
        assert (h["spooled_rows"], h["rows_dropped"]) == (5, 0)
        assert len(spool_lines(spool)) == 5
        fresh = create_engine(f"sqlite+aiosqlite:///{db}")  # the operator restores a database
        await migrate(fresh)
        await fresh.dispose()
        await wait_for(lambda: w.health()["db_writable"] and w.backlog == 0)
    finally:
        await w.close()
    assert sqlite_ids(db) == [f"req-{i:05d}" for i in range(3, 8)]


async def test_sqlite_file_made_read_only_is_reported(
    sqlite_repo: Repository, tmp_path: Path
) -> None:
    """The database file becomes unwritable (immutable attribute: root ignores mode
    bits). Writes fail, health() says so, nothing is dropped; when it is writable
    again every row is written."""
    db, spool = tmp_path / "rg.db", tmp_path / "spool"
    w = UsageLogWriter(sqlite_repo, spool_dir=spool, interval=0.05, max_backoff=0.1)
    w.start()
    files = [str(db), f"{db}-wal"]
    try:
        w.record(ctx(0))
        assert await wait_rows(sqlite_repo, 1) == 1
        lock = chattr("+i", files)
        if lock.returncode != 0:
            pytest.skip(f"chattr +i is not possible here: {lock.stderr.decode().strip()}")
        try:
            for i in range(1, 4):
                w.record(ctx(i))
            await wait_for(lambda: w.health()["db_writable"] is False)
            h = w.health()
            assert h["last_error"] and h["rows_dropped"] == 0 and h["spooled_rows"] == 3
            await asyncio.sleep(0.5)
            assert w.health()["spooled_rows"] == 3 and len(spool_lines(spool)) == 3
        finally:
            assert chattr("-i", files).returncode == 0
        await wait_for(lambda: w.health()["db_writable"] and w.backlog == 0)
    finally:
        await w.close()
    assert sqlite_ids(db) == [f"req-{i:05d}" for i in range(4)] and w.dropped == 0
