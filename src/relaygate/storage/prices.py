"""The ``prices`` and ``price_groups`` tables. Stores what it is given: values are
validated by ``relaygate.services.prices``.

Every write bumps the ``config`` revision in the same transaction, so every worker reloads
its price table (``billing/prices.py``) with its snapshot. A bulk import is one
transaction: all rows are written, or none.
"""

from __future__ import annotations

import builtins
from collections.abc import Iterable, Mapping
from typing import Any

from sqlalchemy import delete, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from relaygate.storage import revisions
from relaygate.storage.base import Conflict, aware, columns, now
from relaygate.storage.tables import price_groups, prices

__all__ = ["GROUP_COLUMNS", "PRICE_COLUMNS", "PriceStore"]

#: writable columns of a price row (``updated_at`` is set here)
PRICE_COLUMNS = tuple(str(c.name) for c in prices.columns if c.name != "updated_at")
GROUP_COLUMNS = ("name", "multiplier", "description")


def _price_row(r: Any) -> dict[str, Any]:
    row = {name: r[name] for name in PRICE_COLUMNS}
    row["updated_at"] = aware(r["updated_at"])
    return row


class PriceStore:
    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine

    # ---- prices --------------------------------------------------------------------
    async def list(self) -> list[dict[str, Any]]:
        async with self.engine.connect() as conn:
            rows = (await conn.execute(select(prices).order_by(prices.c.model))).mappings()
            return [_price_row(r) for r in rows]

    async def get(self, model: str) -> dict[str, Any] | None:
        async with self.engine.connect() as conn:
            q = select(prices).where(prices.c.model == model)
            row = (await conn.execute(q)).mappings().first()
        return _price_row(row) if row else None

    async def upsert(self, row: Mapping[str, Any]) -> None:
        """Insert or replace the price of ``row["model"]`` (every column given)."""
        await self.upsert_many([row])

    async def upsert_many(self, rows: Iterable[Mapping[str, Any]]) -> int:
        """Insert or replace each row, all in one transaction; returns the number written."""
        values = [columns(r, PRICE_COLUMNS) for r in rows]
        if not values:
            return 0
        stamp = now()
        try:
            async with self.engine.begin() as conn:
                for v in values:
                    await _upsert(conn, prices, prices.c.model, {**v, "updated_at": stamp})
                await revisions.bump(conn)
        except IntegrityError as exc:  # a concurrent insert of the same model
            raise Conflict("a price was written concurrently; retry") from exc
        return len(values)

    async def delete(self, model: str) -> bool:
        async with self.engine.begin() as conn:
            res = await conn.execute(delete(prices).where(prices.c.model == model))
            if res.rowcount:
                await revisions.bump(conn)
        return bool(res.rowcount)

    # ---- price groups --------------------------------------------------------------
    async def list_groups(self) -> builtins.list[dict[str, Any]]:
        async with self.engine.connect() as conn:
            q = select(price_groups).order_by(price_groups.c.name)
            rows = (await conn.execute(q)).mappings()
            return [{name: r[name] for name in GROUP_COLUMNS} for r in rows]

    async def upsert_group(self, row: Mapping[str, Any]) -> None:
        values = columns(row, GROUP_COLUMNS)
        try:
            async with self.engine.begin() as conn:
                await _upsert(conn, price_groups, price_groups.c.name, values)
                await revisions.bump(conn)
        except IntegrityError as exc:
            raise Conflict("the group was written concurrently; retry") from exc

    async def delete_group(self, name: str) -> bool:
        async with self.engine.begin() as conn:
            res = await conn.execute(delete(price_groups).where(price_groups.c.name == name))
            if res.rowcount:
                await revisions.bump(conn)
        return bool(res.rowcount)


async def _upsert(conn: AsyncConnection, table: Any, key: Any, values: dict[str, Any]) -> None:
    """Update the row with ``values[key]``, or insert it (portable across SQLite and
    PostgreSQL; a concurrent insert of the same key fails the transaction)."""
    ident = values[key.name]
    res = await conn.execute(update(table).where(key == ident).values(**values))
    if res.rowcount == 0:
        await conn.execute(insert(table).values(**values))
