"""Nodes started together on one new PostgreSQL database: their migrations take turns
(an advisory lock, storage/db.py) instead of failing on each other's tables."""

from __future__ import annotations

import asyncio

from gateway import fresh_pg_database
from sqlalchemy import text

from relaygate.storage.db import create_engine, migrate


async def _together(url: str) -> list[str]:
    engines = [create_engine(url) for _ in range(4)]
    try:
        # without the lock they block each other for good (seen: > 300 s) or fail
        await asyncio.wait_for(asyncio.gather(*(migrate(e) for e in engines)), 60)
        async with engines[0].connect() as conn:
            rows = await conn.execute(text("SELECT version_num FROM alembic_version"))
            return [str(r[0]) for r in rows]
    finally:
        for e in engines:
            await e.dispose()


def test_four_processes_migrating_one_new_database_at_once() -> None:
    with fresh_pg_database("rg_mig_") as url:
        versions = asyncio.run(_together(url.replace("postgresql://", "postgresql+asyncpg://")))
    assert len(versions) == 1 and versions[0] >= "0012", versions
