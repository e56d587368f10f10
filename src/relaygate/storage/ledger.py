"""The ledger: every credit and debit of a user's balance, append-only.

``users.balance`` is the committed balance; ``users.leased`` is the part of it that
workers hold as leases for requests in flight (``storage/leases.py``). A ledger row is
written in the same transaction as the balance change it records, with the balance
after it, so the ledger of a user always sums to the balance.

Request charges are written by the request-log writer in batches
(``storage/charges.py``); everything else (top-ups, redemptions, admin adjustments,
grants) goes through :func:`post` here, one transaction each.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from relaygate.storage.base import Conflict, aware, now
from relaygate.storage.tables import ledger, users

__all__ = [
    "KINDS",
    "Insufficient",
    "LedgerEntry",
    "LedgerStore",
    "post",
]

#: ledger kinds: ``charge`` (a request), ``refund``, ``topup``, ``redeem`` (a code),
#: ``adjust`` (an admin, with a reason), ``grant`` (a plan's credit)
KINDS = ("charge", "refund", "topup", "redeem", "adjust", "grant")


class Insufficient(ValueError):
    """A debit larger than what the user has free (balance minus leases)."""

    def __init__(self, free: int) -> None:
        super().__init__(f"only {free} units are free")
        self.free = free


@dataclass(slots=True, frozen=True)
class LedgerEntry:
    id: int
    user_id: int
    kind: str
    amount: int
    balance_after: int
    reason: str
    request_id: str | None
    key_id: int | None
    ref: str | None
    actor: str | None
    created_at: datetime

    def to_public(self) -> dict[str, Any]:
        """Amounts in units; the API layer adds them as decimal strings too."""
        return {
            "id": self.id,
            "user_id": self.user_id,
            "kind": self.kind,
            "amount_units": self.amount,
            "balance_after_units": self.balance_after,
            "reason": self.reason,
            "request_id": self.request_id,
            "key_id": self.key_id,
            "ref": self.ref,
            "actor": self.actor,
            "created_at": self.created_at.isoformat(),
        }


async def post(
    conn: AsyncConnection,
    user_id: int,
    amount: int,
    *,
    kind: str,
    reason: str = "",
    ref: str | None = None,
    actor: str | None = None,
    request_id: str | None = None,
    key_id: int | None = None,
) -> int:
    """Credit (``amount`` > 0) or debit (< 0) a balance and write its ledger row, in the
    caller's transaction. A debit must leave the balance at or above what is leased
    (money promised to requests in flight), else :class:`Insufficient`. A ``ref`` that
    is already in the ledger raises :class:`Conflict` (the movement was made before).
    Returns the balance after. Raises ``LookupError`` for an unknown user."""
    if kind not in KINDS:
        raise ValueError(f"unknown ledger kind {kind!r}")
    q = update(users).where(users.c.id == user_id)
    if amount < 0:
        q = q.where(users.c.balance - users.c.leased >= -amount)
    res = await conn.execute(q.values(balance=users.c.balance + amount).returning(users.c.balance))
    after = res.scalar()
    if after is None:
        row = (
            await conn.execute(select(users.c.balance, users.c.leased).where(users.c.id == user_id))
        ).first()
        if row is None:
            raise LookupError(f"no user {user_id}")
        raise Insufficient(int(row[0]) - int(row[1]))
    try:
        await conn.execute(
            insert(ledger).values(
                user_id=user_id,
                kind=kind,
                amount=amount,
                balance_after=int(after),
                reason=reason[:256],
                request_id=request_id,
                key_id=key_id,
                ref=ref,
                actor=actor,
                created_at=now(),
            )
        )
    except IntegrityError as exc:
        raise Conflict(f"ledger reference {ref!r} was already used") from exc
    return int(after)


def _entry(r: Any) -> LedgerEntry:
    return LedgerEntry(
        id=int(r["id"]),
        user_id=int(r["user_id"]),
        kind=r["kind"],
        amount=int(r["amount"]),
        balance_after=int(r["balance_after"]),
        reason=r["reason"],
        request_id=r["request_id"],
        key_id=r["key_id"],
        ref=r["ref"],
        actor=r["actor"],
        created_at=aware(r["created_at"]) or now(),
    )


class LedgerStore:
    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine

    async def post(self, user_id: int, amount: int, **kw: Any) -> int:
        """:func:`post` in a transaction of its own."""
        async with self.engine.begin() as conn:
            return await post(conn, user_id, amount, **kw)

    async def balance(self, user_id: int) -> tuple[int, int] | None:
        """(committed balance, leased part) of a user; None if there is no such user."""
        async with self.engine.connect() as conn:
            row = (
                await conn.execute(
                    select(users.c.balance, users.c.leased).where(users.c.id == user_id)
                )
            ).first()
        return (int(row[0]), int(row[1])) if row else None

    async def entries(
        self,
        *,
        user_id: int | None = None,
        kind: str | None = None,
        before_id: int | None = None,
        limit: int = 100,
    ) -> list[LedgerEntry]:
        """Newest first; page with ``before_id`` (the last id of the previous page)."""
        q = select(ledger).order_by(ledger.c.id.desc()).limit(limit)
        if user_id is not None:
            q = q.where(ledger.c.user_id == user_id)
        if kind is not None:
            q = q.where(ledger.c.kind == kind)
        if before_id is not None:
            q = q.where(ledger.c.id < before_id)
        async with self.engine.connect() as conn:
            rows = (await conn.execute(q)).mappings().all()
        return [_entry(r) for r in rows]
