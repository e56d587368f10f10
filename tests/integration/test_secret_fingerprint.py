"""One database, one secret: the first process records the secret's fingerprint, a process
with another secret refuses to start (storage/fingerprint.py), on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from gateway import fresh_pg_database

from relaygate.storage.crypto import Secrets
from relaygate.storage.db import create_engine, migrate
from relaygate.storage.fingerprint import SecretMismatch, check_secret


async def _scenario(url: str) -> None:
    engine = create_engine(url)
    try:
        await migrate(engine)
        first, other = Secrets("s" * 40), Secrets("t" * 40)
        assert first.fingerprint() != other.fingerprint()
        assert "s" * 40 not in first.fingerprint()
        # eight processes of the first node starting at the same moment
        others = [create_engine(url) for _ in range(7)]
        try:
            await asyncio.gather(*(check_secret(e, first) for e in [engine, *others]))
        finally:
            for e in others:
                await e.dispose()
        await check_secret(engine, first)  # and again later: fine
        with pytest.raises(SecretMismatch, match="RELAYGATE_SECRET_KEY"):
            await check_secret(engine, other)
    finally:
        await engine.dispose()


def test_sqlite(tmp_path: Path) -> None:
    asyncio.run(_scenario(f"sqlite+aiosqlite:///{tmp_path / 'fp.db'}"))


def test_postgres() -> None:
    with fresh_pg_database("rg_fp_") as url:
        asyncio.run(_scenario(url.replace("postgresql://", "postgresql+asyncpg://", 1)))
