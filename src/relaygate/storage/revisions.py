"""The ``config`` revision: bumped in the same transaction as every configuration write, polled
by every worker to know when to reload its snapshot (see ``relaygate.catalog``)."""

from __future__ import annotations

from sqlalchemy import insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from relaygate.storage.tables import revisions

__all__ = ["bump", "current"]


async def bump(conn: AsyncConnection, name: str = "config") -> None:
    res = await conn.execute(
        update(revisions).where(revisions.c.name == name).values(value=revisions.c.value + 1)
    )
    if res.rowcount == 0:
        await conn.execute(insert(revisions).values(name=name, value=1))


async def current(conn: AsyncConnection, name: str = "config") -> int:
    value = await conn.scalar(select(revisions.c.value).where(revisions.c.name == name))
    return int(value or 0)
