"""Budget leases: how a worker spends a balance without a database round trip per request.

A *budget* is a user's balance (scope ``u``: ``users.balance``), a key's spending cap
(``k``: ``api_keys.spend_limit - spent``) or a package's quota (``p``:
``user_packages.quota - used``). Each has a ``leased`` column: the part of it that
workers hold. A worker takes a lease with one conditional ``UPDATE`` — it succeeds
only if the free part (budget minus leased) covers it — and then reserves and
settles requests against its lease in memory (``billing/book.py``). So the sum of
what all workers can spend never exceeds the budget: no overdraft, on SQLite with
several workers as on PostgreSQL across nodes.

Charges reach the database later, in the request-log writer's batches
(``storage/charges.py``): each one lowers the budget *and* the lease (and the
``leased`` column) by the same amount. A worker gives back what it does not need
(:func:`give_back`); the leases of a worker that died are released once its spooled
charges are committed (:func:`release_owner`). Lease ids are
``"<owner>:<scope>:<target id>"``; the owner is the worker's spool tag.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import ColumnElement, Table, and_, delete, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from relaygate.storage.base import now
from relaygate.storage.tables import api_keys, balance_leases, user_packages, users

__all__ = ["SCOPES", "STALE_AFTER", "LeaseStore", "lease_id"]

#: a lease not renewed for this long belongs to a worker that is gone (living workers renew
#: every minute; a request holds a promise at most RELAYGATE_TOTAL_TIMEOUT, 30 min, long)
STALE_AFTER = timedelta(hours=1)


@dataclass(frozen=True, slots=True)
class _Scope:
    table: Table
    free: ColumnElement[int]  # what may still be leased


SCOPES: dict[str, _Scope] = {
    "u": _Scope(users, users.c.balance - users.c.leased),
    "k": _Scope(api_keys, api_keys.c.spend_limit - api_keys.c.spent - api_keys.c.leased),
    "p": _Scope(
        user_packages, user_packages.c.quota - user_packages.c.used - user_packages.c.leased
    ),
}


def lease_id(owner: str, scope: str, target: int) -> str:
    return f"{owner}:{scope}:{target}"


class LeaseStore:
    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine

    async def acquire(self, owner: str, scope: str, target: int, need: int, want: int) -> int:
        """Lease at least ``need`` and up to ``want`` units of a budget (at most half of
        what is free beyond ``need``, so other workers are not starved). Returns the
        amount leased; 0 when not even ``need`` is free (or no such budget)."""
        sc = SCOPES[scope]
        t = sc.table
        async with self.engine.begin() as conn:
            # lock the row first (a no-op write), so the free amount read next is still
            # true when the lease is written: SQLite cannot upgrade a stale read to a write
            await conn.execute(update(t).where(t.c.id == target).values(leased=t.c.leased))
            free = (await conn.execute(select(sc.free).where(t.c.id == target))).scalar()
            if free is None or int(free) < need:
                return 0
            grant = max(need, min(want, need + (int(free) - need) // 2))
            res = await conn.execute(
                update(t)
                .where(and_(t.c.id == target, sc.free >= grant))
                .values(leased=t.c.leased + grant)
            )
            if res.rowcount != 1:  # another worker took it meanwhile
                return 0
            await self._add(conn, owner, scope, target, grant)
        return grant

    async def _add(
        self, conn: AsyncConnection, owner: str, scope: str, target: int, amount: int
    ) -> None:
        lid = lease_id(owner, scope, target)
        ts = now()
        res = await conn.execute(
            update(balance_leases)
            .where(balance_leases.c.id == lid)
            .values(amount=balance_leases.c.amount + amount, renewed_at=ts)
        )
        if res.rowcount == 0:
            await conn.execute(
                insert(balance_leases).values(
                    id=lid,
                    scope=scope,
                    target_id=target,
                    owner=owner,
                    amount=amount,
                    created_at=ts,
                    renewed_at=ts,
                )
            )

    async def give_back(self, owner: str, scope: str, target: int, amount: int) -> None:
        """Return ``amount`` of a lease that no request holds (charges not yet committed
        are unaffected: they lower the lease and the budget together later)."""
        if amount <= 0:
            return
        t = SCOPES[scope].table
        lid = lease_id(owner, scope, target)
        async with self.engine.begin() as conn:
            res = await conn.execute(
                update(balance_leases)
                .where(balance_leases.c.id == lid)
                .values(amount=balance_leases.c.amount - amount)
            )
            if res.rowcount == 1:
                await conn.execute(
                    update(t).where(t.c.id == target).values(leased=t.c.leased - amount)
                )

    async def renew(self, owner: str) -> None:
        """Mark a living worker's leases as in use (stale ones are reaped)."""
        async with self.engine.begin() as conn:
            await conn.execute(
                update(balance_leases)
                .where(balance_leases.c.owner == owner)
                .values(renewed_at=now())
            )

    async def release_stale(self, before: datetime) -> int:
        """Release every lease not renewed since ``before``: its worker is gone without a
        trace (a machine lost with its spool). Living workers renew every minute
        (``billing/book.py``), so :data:`STALE_AFTER` of silence means a dead owner.
        Returns how many units went back to their budgets."""
        return await self._release(balance_leases.c.renewed_at < before)

    async def release_owner(self, owner: str) -> int:
        """Release every lease of a worker that is gone, once its spooled charges are
        committed. Idempotent: the rows are deleted as they are released. Returns how
        many units went back to their budgets."""
        return await self._release(balance_leases.c.owner == owner)

    async def _release(self, which: ColumnElement[bool]) -> int:
        async with self.engine.begin() as conn:
            rows = (
                await conn.execute(
                    delete(balance_leases)
                    .where(which)
                    .returning(
                        balance_leases.c.scope, balance_leases.c.target_id, balance_leases.c.amount
                    )
                )
            ).all()
            total = 0
            for scope, target, amount in rows:
                sc = SCOPES.get(str(scope))
                if sc is None or not amount:
                    continue
                t = sc.table
                await conn.execute(
                    update(t).where(t.c.id == int(target)).values(leased=t.c.leased - int(amount))
                )
                total += int(amount)
        return total
