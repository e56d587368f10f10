"""``storage/revisions.py`` announces a bump only once its transaction committed (the Redis
broadcast publishes from this hook): with the new value, never for a rollback."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from sqlalchemy.ext.asyncio import create_async_engine

from relaygate.storage import revisions
from relaygate.storage.tables import metadata


async def test_bumps_are_announced_after_commit_only(tmp_path: Path) -> None:
    engine = create_async_engine(f"sqlite+aiosqlite:///{tmp_path / 'rev.db'}")
    async with engine.begin() as conn:
        await conn.run_sync(metadata.create_all)
    seen: list[tuple[str, int]] = []
    remove = revisions.on_bump(lambda name, value: seen.append((name, value)))
    try:
        async with engine.begin() as conn:
            await revisions.bump(conn)
            await revisions.bump(conn, "safety")
            assert seen == []  # not before the commit
        assert seen == [("config", 1), ("safety", 1)]
        with pytest.raises(RuntimeError):
            async with engine.begin() as conn:
                await revisions.bump(conn)
                raise RuntimeError("rolled back")
        await asyncio.sleep(0)
        assert seen == [("config", 1), ("safety", 1)]
        async with engine.begin() as conn:
            await revisions.bump(conn)
            assert await revisions.current(conn) == 2
        assert seen[-1] == ("config", 2)
    finally:
        remove()
        await engine.dispose()
    async with engine.begin() as conn:  # removed: no longer called
        await revisions.bump(conn)
    assert seen[-1] == ("config", 2)
    await engine.dispose()
