"""Committing request charges: the request-log writer's batches carry each request's
cost (units charged to the balance) and counts (package quota used); here they become
balance, key and package changes, lease reductions and one ledger row per charged
request, in the same transaction as the request-log rows when both live in one
database.

Idempotent: a charged request's ledger row has ``ref = log_uid``; rows whose ref is
already in the ledger are skipped, so a spool replayed after a crash (or a batch
retried after a commit whose answer was lost) never charges twice.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from typing import Any

import orjson
from sqlalchemy import insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from relaygate.storage.leases import SCOPES, lease_id
from relaygate.storage.request_logs import LOG_COLUMNS, LogRow
from relaygate.storage.tables import api_keys, balance_leases, ledger, user_packages, users

__all__ = ["apply_charges", "owner_of"]

_I = {name: i for i, name in enumerate(LOG_COLUMNS)}
_RID, _AT, _USER, _KEY, _MODEL = (
    _I["request_id"],
    _I["created_at"],
    _I["user_id"],
    _I["key_id"],
    _I["model"],
)
_UID, _COST, _COUNTS, _PKG, _HOW = (
    _I["log_uid"],
    _I["cost"],
    _I["counts"],
    _I["package_id"],
    _I["billing"],
)
_IN_SLICE = 500  # refs per IN (...) lookup


def owner_of(log_uid: str) -> str:
    """The worker that recorded a row: ``log_uid`` is ``"<owner>-<sequence>"``."""
    return log_uid.rsplit("-", 1)[0]


async def apply_charges(conn: AsyncConnection, rows: Sequence[LogRow]) -> int:
    """Apply the charges of ``rows`` not applied before, in the caller's transaction.
    Returns how many requests were charged."""
    charged = [r for r in rows if (r[_COST] or r[_COUNTS]) and r[_UID] and r[_USER] is not None]
    if not charged:
        return 0
    seen = await _already_charged(conn, [r[_UID] for r in charged])
    new = [r for r in charged if r[_UID] not in seen] if seen else charged
    if not new:
        return 0

    by_user: dict[int, int] = defaultdict(int)
    by_key: dict[int, int] = defaultdict(int)
    by_pkg: dict[int, int] = defaultdict(int)
    by_lease: dict[tuple[str, str, int], int] = defaultdict(int)
    for r in new:
        owner = owner_of(r[_UID])
        cost, counts = int(r[_COST] or 0), int(r[_COUNTS] or 0)
        if cost:
            by_user[r[_USER]] += cost
            by_lease[(owner, "u", r[_USER])] += cost
            if r[_KEY] is not None:
                by_key[r[_KEY]] += cost
                by_lease[(owner, "k", r[_KEY])] += cost
        if counts and r[_PKG] is not None:
            by_pkg[r[_PKG]] += counts
            by_lease[(owner, "p", r[_PKG])] += counts

    # the leases that covered these charges shrink with them (a lease already released,
    # e.g. a stale one reaped, no longer counts in ``leased``: nothing to lower there)
    covered: dict[tuple[str, int], int] = defaultdict(int)
    for (owner, scope, target), amount in by_lease.items():
        res = await conn.execute(
            update(balance_leases)
            .where(balance_leases.c.id == lease_id(owner, scope, target))
            .values(amount=balance_leases.c.amount - amount)
        )
        if res.rowcount:
            covered[(scope, target)] += amount

    final: dict[int, int] = {}
    for uid, cost in by_user.items():
        res = await conn.execute(
            update(users)
            .where(users.c.id == uid)
            .values(balance=users.c.balance - cost, leased=users.c.leased - covered[("u", uid)])
            .returning(users.c.balance)
        )
        after = res.scalar()
        final[uid] = int(after) if after is not None else 0
    for kid, cost in by_key.items():
        await conn.execute(
            update(api_keys)
            .where(api_keys.c.id == kid)
            .values(spent=api_keys.c.spent + cost, leased=api_keys.c.leased - covered[("k", kid)])
        )
    for pid, counts in by_pkg.items():
        t = SCOPES["p"].table
        assert t is user_packages
        await conn.execute(
            update(user_packages)
            .where(user_packages.c.id == pid)
            .values(
                used=user_packages.c.used + counts,
                leased=user_packages.c.leased - covered[("p", pid)],
            )
        )

    # one ledger row per charged request, with the balance after it: walk back from
    # the final balance of each user
    running = dict(final)
    entries: list[tuple[Any, ...]] = [()] * len(new)
    for i in range(len(new) - 1, -1, -1):
        r = new[i]
        uid = r[_USER]
        cost = int(r[_COST] or 0)
        after = running.get(uid, 0)
        running[uid] = after + cost
        how = r[_HOW] or "balance"
        reason = f"{r[_MODEL] or ''} ({how}"
        if r[_COUNTS]:
            reason += f", package {r[_PKG]} x{r[_COUNTS]}"
        entries[i] = (  # _LEDGER_COLUMNS order
            uid,
            "charge",
            -cost,
            after,
            (reason + ")")[:256],
            r[_RID],
            r[_KEY],
            r[_UID],
            r[_AT],
        )
    await _insert_ledger(conn, entries)
    return len(new)


# ---- bulk statements (per dialect; SQLAlchemy's per-row parameter processing cost more
# than the rest of a batch — the same reason as storage/request_logs.py) -----------------
_LEDGER_COLUMNS = (
    "user_id",
    "kind",
    "amount",
    "balance_after",
    "reason",
    "request_id",
    "key_id",
    "ref",
    "created_at",
)
_SQLITE_TS = "%Y-%m-%d %H:%M:%S.%f"  # how SQLAlchemy stores DATETIME on SQLite
_SQLITE_LEDGER_INSERT = (
    f"INSERT INTO ledger ({', '.join(_LEDGER_COLUMNS)}) SELECT "
    + ", ".join(f"json_extract(value, '$[{i}]')" for i in range(len(_LEDGER_COLUMNS)))
    + " FROM json_each(?) ORDER BY key"
)
_PG_LEDGER_INSERT = (
    f"INSERT INTO ledger ({', '.join(_LEDGER_COLUMNS)}) VALUES "
    f"({', '.join(f'${i + 1}' for i in range(len(_LEDGER_COLUMNS)))})"
)
_SQLITE_SEEN = "SELECT ref FROM ledger WHERE ref IN (SELECT value FROM json_each(?))"
_PG_SEEN = "SELECT ref FROM ledger WHERE ref = ANY($1::varchar[])"


async def _already_charged(conn: AsyncConnection, refs: list[str]) -> set[str]:
    """The refs (log_uids) that already have a ledger row."""
    dialect = conn.dialect
    if dialect.name == "sqlite":
        res = await conn.exec_driver_sql(_SQLITE_SEEN, (orjson.dumps(refs).decode(),))
        return {str(r[0]) for r in res}
    if dialect.paramstyle == "numeric_dollar":  # asyncpg
        res = await conn.exec_driver_sql(_PG_SEEN, (refs,))
        return {str(r[0]) for r in res}
    seen: set[str] = set()  # pragma: no cover - any other driver
    for i in range(0, len(refs), _IN_SLICE):
        part = refs[i : i + _IN_SLICE]
        seen.update(await conn.scalars(select(ledger.c.ref).where(ledger.c.ref.in_(part))))
    return seen


async def _insert_ledger(conn: AsyncConnection, entries: list[tuple[Any, ...]]) -> None:
    dialect = conn.dialect
    if dialect.name == "sqlite":
        doc = orjson.dumps([(*e[:-1], e[-1].strftime(_SQLITE_TS)) for e in entries])
        await conn.exec_driver_sql(_SQLITE_LEDGER_INSERT, (doc.decode(),))
    elif dialect.paramstyle == "numeric_dollar":  # asyncpg: pipelined executemany
        await conn.exec_driver_sql(_PG_LEDGER_INSERT, entries)
    else:  # pragma: no cover - any other driver
        await conn.execute(
            insert(ledger), [dict(zip(_LEDGER_COLUMNS, e, strict=True)) for e in entries]
        )
