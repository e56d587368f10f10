"""Two-factor recovery codes of console users (docs/console.md, "Recovery codes"): one row
per code, holding only its keyed hash and when it was used.

``console_recovery_codes`` is declared here on the shared ``metadata`` of
``storage/tables.py`` (migration ``0015`` creates exactly this). ``code_hash`` is what
``console/accounts.py`` computes (an HMAC-SHA256 under the gateway's secret, so the plain
code is never stored); a code is used by setting ``used_at``, once. Rows go with their user
(``ON DELETE CASCADE``). ``replace_codes`` and ``delete_codes`` take the caller's
connection, so ``storage/console.py`` can change them in the same transaction as the TOTP
columns.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import (
    Column,
    DateTime,
    ForeignKey,
    Integer,
    String,
    Table,
    UniqueConstraint,
    case,
    delete,
    func,
    insert,
    select,
    update,
)
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from relaygate.storage.base import aware
from relaygate.storage.tables import metadata

__all__ = [
    "RecoveryCodeStore",
    "RecoveryStatus",
    "console_recovery_codes",
    "delete_codes",
    "replace_codes",
]

console_recovery_codes = Table(
    "console_recovery_codes",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("user_id", Integer, ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
    Column("code_hash", String(64), nullable=False),  # HMAC-SHA256, hex
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("used_at", DateTime(timezone=True), nullable=True),
    # also the index by user (its first column)
    UniqueConstraint("user_id", "code_hash", name="uq_console_recovery_codes_hash"),
)


@dataclass(frozen=True, slots=True)
class RecoveryStatus:
    """A user's codes: how many there are, how many are still unused, and when they were
    made (None when the user has none)."""

    total: int
    left: int
    created_at: datetime | None


async def replace_codes(
    conn: AsyncConnection, user_id: int, hashes: Sequence[str], at: datetime
) -> None:
    """The user's codes become exactly ``hashes`` (the old ones, used or not, are gone)."""
    await delete_codes(conn, user_id)
    if hashes:
        await conn.execute(
            insert(console_recovery_codes),
            [{"user_id": user_id, "code_hash": h, "created_at": at} for h in hashes],
        )


async def delete_codes(conn: AsyncConnection, user_id: int) -> int:
    res = await conn.execute(
        delete(console_recovery_codes).where(console_recovery_codes.c.user_id == user_id)
    )
    return int(res.rowcount or 0)


class RecoveryCodeStore:
    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine

    async def replace(self, user_id: int, hashes: Sequence[str], at: datetime) -> None:
        async with self.engine.begin() as conn:
            await replace_codes(conn, user_id, hashes, at)

    async def use(self, user_id: int, code_hash: str, at: datetime) -> bool:
        """Mark the unused code of this hash as used at ``at`` (atomic: of two requests with
        the same code at once, one wins). False when there is no such unused code."""
        c = console_recovery_codes.c
        async with self.engine.begin() as conn:
            res = await conn.execute(
                update(console_recovery_codes)
                .where(c.user_id == user_id, c.code_hash == code_hash, c.used_at.is_(None))
                .values(used_at=at)
            )
        return bool(res.rowcount)

    async def status(self, user_id: int) -> RecoveryStatus:
        c = console_recovery_codes.c
        q = select(
            func.count(),
            func.coalesce(func.sum(case((c.used_at.is_(None), 1), else_=0)), 0),
            func.min(c.created_at),
        ).where(c.user_id == user_id)
        async with self.engine.connect() as conn:
            total, left, created = (await conn.execute(q)).one()
        return RecoveryStatus(int(total or 0), int(left or 0), aware(created))

    async def delete(self, user_id: int) -> int:
        async with self.engine.begin() as conn:
            return await delete_codes(conn, user_id)
