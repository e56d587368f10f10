"""Redemption codes: generated in batches by admins, each redeemed at most once.

A code credits an amount (units) to the redeeming user's balance, or grants a plan (a
package). Redeeming is one transaction whose first statement claims the code::

    UPDATE redemption_codes SET status='used', used_by=…, used_at=…
     WHERE code=:c AND status='unused' AND (expires_at IS NULL OR expires_at > :now)

The row count decides: exactly one of any number of concurrent redemptions claims it
(PostgreSQL locks the row; SQLite takes its write lock with this first write), and the
credit or grant that follows is in the same transaction, so a failure there un-claims
the code. A failed claim is then explained (:func:`why_unclaimed`): unknown, used,
disabled or expired.

Stored statuses are ``unused``, ``used`` and ``disabled``; *expired* is an unused code
past its ``expires_at`` (computed, never stored).
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import and_, insert, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from sqlalchemy.sql.elements import ColumnElement

from relaygate.storage.base import Conflict, aware, now
from relaygate.storage.tables import redemption_codes as rc

__all__ = [
    "ALPHABET",
    "CODE_GROUPS",
    "STATUSES",
    "CodeRecord",
    "CodeStore",
    "claim",
    "new_code",
    "why_unclaimed",
]

#: 30 symbols without the look-alikes 0/O, 1/I/L and U: 24 of them carry ~118 bits
ALPHABET = "ABCDEFGHJKMNPQRSTVWXYZ23456789"
CODE_GROUPS = 6  # groups of four symbols: RG-XXXX-XXXX-XXXX-XXXX-XXXX-XXXX
#: the statuses a listing can filter on (``expired`` is computed)
STATUSES = ("unused", "used", "disabled", "expired")


def new_code(prefix: str = "RG") -> str:
    """An unguessable code from :mod:`secrets`: ``<prefix>-`` and six groups of four."""
    groups = ("".join(secrets.choice(ALPHABET) for _ in range(4)) for _ in range(CODE_GROUPS))
    return f"{prefix}-" + "-".join(groups)


@dataclass(slots=True, frozen=True)
class CodeRecord:
    id: int
    code: str
    amount: int  # units credited; 0 when the code grants a plan
    plan_id: int | None
    batch: str
    status: str  # unused | used | disabled (stored); see display_status()
    created_by: str | None
    created_at: datetime
    expires_at: datetime | None
    used_by: int | None
    used_at: datetime | None

    def display_status(self, at: datetime) -> str:
        if self.status == "unused" and self.expires_at is not None and self.expires_at <= at:
            return "expired"
        return self.status


def code_from_row(r: Any) -> CodeRecord:
    return CodeRecord(
        id=int(r["id"]),
        code=r["code"],
        amount=int(r["amount"]),
        plan_id=r["plan_id"],
        batch=r["batch"],
        status=r["status"],
        created_by=r["created_by"],
        created_at=aware(r["created_at"]) or now(),
        expires_at=aware(r["expires_at"]),
        used_by=r["used_by"],
        used_at=aware(r["used_at"]),
    )


def _not_expired(at: datetime) -> ColumnElement[bool]:
    return or_(rc.c.expires_at.is_(None), rc.c.expires_at > at)


async def claim(conn: AsyncConnection, code: str, user_id: int, at: datetime) -> CodeRecord | None:
    """Mark an unused, unexpired code used by ``user_id``, in the caller's transaction.
    Returns the claimed code, or None when no such claimable code exists."""
    res = await conn.execute(
        update(rc)
        .where(and_(rc.c.code == code, rc.c.status == "unused", _not_expired(at)))
        .values(status="used", used_by=user_id, used_at=at)
        .returning(*rc.c)
    )
    row = res.mappings().first()
    return code_from_row(row) if row else None


async def why_unclaimed(conn: AsyncConnection, code: str, at: datetime) -> str:
    """Why :func:`claim` found nothing: ``unknown``, ``used``, ``disabled`` or ``expired``
    (``unused`` only if it became claimable meanwhile, e.g. a clock step)."""
    row = (await conn.execute(select(rc).where(rc.c.code == code))).mappings().first()
    return "unknown" if row is None else code_from_row(row).display_status(at)


class CodeStore:
    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine

    async def create_batch(
        self,
        codes: Sequence[str],
        *,
        amount: int,
        plan_id: int | None,
        batch: str,
        expires_at: datetime | None,
        created_by: str | None,
    ) -> list[CodeRecord]:
        """Insert a whole batch in one transaction (all or nothing). ``Conflict`` if a code
        exists already (the caller draws new ones)."""
        created = now()
        rows = [
            {
                "code": c,
                "amount": amount,
                "plan_id": plan_id,
                "batch": batch,
                "status": "unused",
                "created_by": created_by,
                "created_at": created,
                "expires_at": expires_at,
            }
            for c in codes
        ]
        try:
            async with self.engine.begin() as conn:
                await conn.execute(insert(rc), rows)
                got = await conn.execute(select(rc).where(rc.c.batch == batch))
                made = {r["code"]: code_from_row(r) for r in got.mappings().all()}
        except IntegrityError as exc:
            raise Conflict("a generated code exists already") from exc
        return [made[c] for c in codes]

    async def get(self, code_id: int) -> CodeRecord | None:
        async with self.engine.connect() as conn:
            row = (await conn.execute(select(rc).where(rc.c.id == code_id))).mappings().first()
        return code_from_row(row) if row else None

    async def batch_exists(self, batch: str) -> bool:
        async with self.engine.connect() as conn:
            row = (await conn.execute(select(rc.c.id).where(rc.c.batch == batch).limit(1))).first()
        return row is not None

    async def search(
        self,
        *,
        batch: str | None = None,
        status: str | None = None,
        used_by: int | None = None,
        before_id: int | None = None,
        limit: int | None = 100,
        at: datetime | None = None,
    ) -> list[CodeRecord]:
        """Newest first; page with ``before_id``. ``status`` is one of :data:`STATUSES`
        (``unused`` means claimable now: unused and not expired). ``limit`` None: all."""
        at = at or now()
        q = select(rc).order_by(rc.c.id.desc())
        if batch is not None:
            q = q.where(rc.c.batch == batch)
        if status == "expired":
            q = q.where(and_(rc.c.status == "unused", rc.c.expires_at <= at))
        elif status == "unused":
            q = q.where(and_(rc.c.status == "unused", _not_expired(at)))
        elif status is not None:
            q = q.where(rc.c.status == status)
        if used_by is not None:
            q = q.where(rc.c.used_by == used_by)
        if before_id is not None:
            q = q.where(rc.c.id < before_id)
        if limit is not None:
            q = q.limit(limit)
        async with self.engine.connect() as conn:
            rows = (await conn.execute(q)).mappings().all()
        return [code_from_row(r) for r in rows]

    async def disable(self, code_id: int) -> bool:
        """Disable an unused code (expired ones too); False if it is used or unknown."""
        async with self.engine.begin() as conn:
            res = await conn.execute(
                update(rc)
                .where(and_(rc.c.id == code_id, rc.c.status == "unused"))
                .values(status="disabled")
            )
        return bool(res.rowcount)
