"""Reading the request log for reports, the daily aggregates, and retention.

Everything here runs on the *log engine* (``Repository.log_engine``: the main database, or
the separate one of ``RELAYGATE_LOG_DATABASE_URL``), where ``request_logs`` and
``usage_daily`` live. Values are raw (money in integer units, datetimes aware UTC); the
services layer formats them for people (``relaygate.services.reports``).

* :func:`query_logs` - filtered rows, newest first, keyset-paged on ``id`` (a cursor is the
  last ``id`` of a page: the next page is ``id < cursor``, so pages never overlap or skip a
  row, even while rows are being written).
* :func:`rollup` - recompute one UTC day of ``usage_daily`` from the raw rows with one
  ``INSERT … SELECT … GROUP BY … ON CONFLICT DO UPDATE`` (idempotent: running it twice
  gives the same rows; SQLite and PostgreSQL).
* :func:`finalize` / :func:`delete_expired` - retention. A day is *final* once it has been
  rolled up for the last time; only final days lose their raw rows. The last final day is
  a row of ``revisions`` (:data:`FINAL_DAY`) that every rollup locks first, so a rollup can
  never recompute a day whose raw rows are being deleted (it would shrink the aggregate).
* :func:`acquire_lease` - a time lease in ``revisions`` so that, of many workers, about
  one per interval does the periodic work (an economy only: the work is safe when two do
  it at once, see above).
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from datetime import time as dtime
from typing import Any, Literal

from sqlalchemy import ColumnElement, String, and_, case, delete, func, literal, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from relaygate.storage.base import aware
from relaygate.storage.tables import request_logs, revisions, usage_daily

__all__ = [
    "DELETE_BATCH",
    "FINAL_DAY",
    "LOG_FIELDS",
    "MAX_PAGE",
    "GroupBy",
    "LogPage",
    "StatusFilter",
    "acquire_lease",
    "daily_usage",
    "day_start",
    "delete_expired",
    "final_day",
    "finalize",
    "first_log_day",
    "latest_usage_day",
    "next_log_day",
    "query_logs",
    "rollup",
]

MAX_PAGE = 1000  # most rows one query_logs call returns
DELETE_BATCH = 2000  # raw rows deleted per transaction by retention
FINAL_DAY = "usage_final_day"  # revisions row: the last final day as YYYYMMDD (0: none)

#: request_logs columns a report shows: every column but the writer's replay id
LOG_FIELDS: tuple[str, ...] = tuple(str(c.name) for c in request_logs.c if c.name != "log_uid")

StatusFilter = Literal["ok", "error"] | int
GroupBy = Literal["model", "user", "key"]
_GROUP_COLUMNS = {"model": "model", "user": "user_id", "key": "key_id"}
_SUMS = ("requests", "errors", "prompt_tokens", "completion_tokens", "cost", "counts")


@dataclass(frozen=True, slots=True)
class LogPage:
    """One page of rows (dicts keyed by :data:`LOG_FIELDS`), newest first, and the cursor
    of the next page (None: this is the last page)."""

    rows: list[dict[str, Any]]
    next_cursor: int | None


def day_start(day: date) -> datetime:
    """Midnight UTC at the start of ``day``."""
    return datetime.combine(day, dtime(0), tzinfo=UTC)


def _day_int(day: date) -> int:
    return day.year * 10000 + day.month * 100 + day.day


def _int_day(value: int) -> date | None:
    return None if value <= 0 else date(value // 10000, value // 100 % 100, value % 100)


# ---- the raw rows ---------------------------------------------------------------------
async def query_logs(
    engine: AsyncEngine,
    *,
    user_id: int | None = None,
    key_id: int | None = None,
    model: str | None = None,
    channel_id: int | None = None,
    status: StatusFilter | None = None,
    stream: bool | None = None,
    start: datetime | None = None,
    end: datetime | None = None,
    request_id: str | None = None,
    cursor: int | None = None,
    limit: int = 100,
) -> LogPage:
    """Rows matching every given filter, newest (highest ``id``) first.

    ``status``: ``"ok"`` (< 400), ``"error"`` (>= 400, the 499 of a client that went
    away included) or one HTTP status. ``start`` is inclusive, ``end`` exclusive (UTC).
    ``cursor``: the ``next_cursor`` of the previous page."""
    if not 1 <= limit <= MAX_PAGE:
        raise ValueError(f"limit must be 1..{MAX_PAGE}")
    t = request_logs.c
    conds: list[ColumnElement[bool]] = []
    if user_id is not None:
        conds.append(t.user_id == user_id)
    if key_id is not None:
        conds.append(t.key_id == key_id)
    if model is not None:
        conds.append(t.model == model)
    if channel_id is not None:
        conds.append(t.channel_id == channel_id)
    if status == "ok":
        conds.append(t.status < 400)
    elif status == "error":
        conds.append(t.status >= 400)
    elif status is not None:
        conds.append(t.status == status)
    if stream is not None:
        conds.append(t.stream == stream)
    if start is not None:
        conds.append(t.created_at >= start.astimezone(UTC))
    if end is not None:
        conds.append(t.created_at < end.astimezone(UTC))
    if request_id is not None:
        conds.append(t.request_id == request_id)
    if cursor is not None:
        conds.append(t.id < cursor)
    q = (
        select(*(t[name] for name in LOG_FIELDS))
        .where(*conds)
        .order_by(t.id.desc())
        .limit(limit + 1)  # one more tells whether there is a next page
    )
    async with engine.connect() as conn:
        found = (await conn.execute(q)).mappings().all()
    rows = [{str(k): v for k, v in r.items()} for r in found[:limit]]
    for r in rows:
        r["created_at"] = aware(r["created_at"])
    return LogPage(rows, int(rows[-1]["id"]) if len(found) > limit else None)


async def first_log_day(engine: AsyncEngine) -> date | None:
    """The UTC day of the oldest raw row (None: no rows)."""
    return await next_log_day(engine, None)


async def next_log_day(engine: AsyncEngine, after: date | None) -> date | None:
    """The first UTC day after ``after`` (or at all) that has raw rows; an index lookup."""
    q = select(func.min(request_logs.c.created_at))
    if after is not None:
        q = q.where(request_logs.c.created_at >= day_start(after + timedelta(days=1)))
    async with engine.connect() as conn:
        first = aware(await conn.scalar(q))
    return None if first is None else first.astimezone(UTC).date()


# ---- daily aggregates -----------------------------------------------------------------
def _upsert_day(dialect: str, day: date) -> Any:
    """``INSERT INTO usage_daily SELECT … GROUP BY … ON CONFLICT DO UPDATE`` for ``day``.
    A NULL user, key or model (a request refused before authentication) is grouped as
    0 / 0 / '' (the aggregate's primary key has no NULLs)."""
    t = request_logs.c
    user = func.coalesce(t.user_id, 0)
    key = func.coalesce(t.key_id, 0)
    model = func.coalesce(t.model, "")
    lo = day_start(day)
    source = (
        select(
            literal(day.isoformat(), String(10)),
            user,
            key,
            model,
            func.count(),
            func.sum(case((t.status >= 400, 1), else_=0)),
            func.sum(t.prompt_tokens),
            func.sum(t.completion_tokens),
            func.sum(t.cost),
            func.sum(t.counts),
        )
        .where(and_(t.created_at >= lo, t.created_at < lo + timedelta(days=1)))
        .group_by(user, key, model)
    )
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    stmt = insert(usage_daily).from_select(["day", "user_id", "key_id", "model", *_SUMS], source)
    return stmt.on_conflict_do_update(
        index_elements=["day", "user_id", "key_id", "model"],
        set_={name: stmt.excluded[name] for name in _SUMS},
    )


async def _lock_final_day(conn: AsyncConnection) -> int:
    """Take the write lock on the :data:`FINAL_DAY` row (PostgreSQL: a row lock; SQLite:
    the database write lock) and read it; the row is created on first use."""
    touch = update(revisions).where(revisions.c.name == FINAL_DAY).values(value=revisions.c.value)
    if (await conn.execute(touch)).rowcount == 0:
        insert = postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert
        await conn.execute(
            insert(revisions).values(name=FINAL_DAY, value=0).on_conflict_do_nothing()
        )
        await conn.execute(touch)  # a racing creator's row: wait for its lock
    value = await conn.scalar(select(revisions.c.value).where(revisions.c.name == FINAL_DAY))
    return int(value or 0)


async def latest_usage_day(engine: AsyncEngine) -> date | None:
    """The last day that has aggregates (None: none yet); an index lookup."""
    async with engine.connect() as conn:
        value = await conn.scalar(select(func.max(usage_daily.c.day)))
    return None if value is None else date.fromisoformat(str(value))


async def final_day(engine: AsyncEngine) -> date | None:
    """The last final day (its raw rows may be deleted; it is never rolled up again)."""
    async with engine.connect() as conn:
        value = await conn.scalar(select(revisions.c.value).where(revisions.c.name == FINAL_DAY))
    return _int_day(int(value or 0))


async def rollup(engine: AsyncEngine, day: date) -> bool:
    """Recompute the ``usage_daily`` rows of one UTC ``day`` from the raw rows (an upsert:
    idempotent, and aggregates are never deleted). Returns False, changing nothing, for a
    final day: its raw rows may already be partly deleted by retention."""
    async with engine.begin() as conn:
        if _day_int(day) <= await _lock_final_day(conn):
            return False
        await conn.execute(_upsert_day(conn.dialect.name, day))
    return True


async def finalize(engine: AsyncEngine, day: date) -> bool:
    """Roll ``day`` up one last time and mark it, and every day before it, final (in one
    transaction). Days must be finalized oldest first. False: it already was final."""
    async with engine.begin() as conn:
        if _day_int(day) <= await _lock_final_day(conn):
            return False
        await conn.execute(_upsert_day(conn.dialect.name, day))
        await conn.execute(
            update(revisions).where(revisions.c.name == FINAL_DAY).values(value=_day_int(day))
        )
    return True


async def delete_expired(
    engine: AsyncEngine,
    before: date,
    *,
    batch: int = DELETE_BATCH,
    max_batches: int | None = None,
    pause: float = 0.02,
) -> int:
    """Delete raw rows of days before ``before`` that are final, ``batch`` rows per short
    transaction (never one long DELETE holding the table), pausing ``pause`` seconds
    between batches so the request-log writer gets the database in between. Stops after
    ``max_batches`` (None: when done). Returns the number of rows deleted."""
    final = await final_day(engine)
    if final is None:
        return 0
    cut = day_start(min(before, final + timedelta(days=1)))
    t = request_logs.c
    victims = select(t.id).where(t.created_at < cut).limit(batch).scalar_subquery()
    stmt = delete(request_logs).where(t.id.in_(victims))
    deleted = 0
    batches = 0
    while max_batches is None or batches < max_batches:
        async with engine.begin() as conn:
            n = (await conn.execute(stmt)).rowcount
        deleted += n
        batches += 1
        if n < batch:
            break
        await asyncio.sleep(pause)
    return deleted


async def daily_usage(
    engine: AsyncEngine,
    *,
    group_by: GroupBy,
    start: date,
    end: date,
    user_id: int | None = None,
    key_id: int | None = None,
    model: str | None = None,
) -> list[dict[str, Any]]:
    """Daily sums for charts, ``start``..``end`` inclusive, one row per day and group
    (model, user_id or key_id), ordered by day then group. Money in units."""
    u = usage_daily.c
    group = u[_GROUP_COLUMNS[group_by]]
    conds: list[ColumnElement[bool]] = [u.day >= start.isoformat(), u.day <= end.isoformat()]
    if user_id is not None:
        conds.append(u.user_id == user_id)
    if key_id is not None:
        conds.append(u.key_id == key_id)
    if model is not None:
        conds.append(u.model == model)
    q = (
        select(u.day, group, *(func.sum(u[name]).label(name) for name in _SUMS))
        .where(*conds)
        .group_by(u.day, group)
        .order_by(u.day, group)
    )
    async with engine.connect() as conn:
        found = (await conn.execute(q)).mappings().all()
    return [{str(k): (int(v) if k in _SUMS else v) for k, v in r.items()} for r in found]


# ---- one worker at a time ---------------------------------------------------------------
async def acquire_lease(engine: AsyncEngine, name: str, seconds: float) -> bool:
    """Take the lease ``name`` (a ``revisions`` row whose value is its expiry, Unix ms) for
    ``seconds`` if nobody holds it. Leases are never released early: a lease held for an
    interval makes the work run about once per interval across all workers."""
    now_ms = int(time.time() * 1000)
    until = now_ms + int(seconds * 1000)
    r = revisions.c
    async with engine.begin() as conn:
        taken = await conn.execute(
            update(revisions).where(r.name == name, r.value <= now_ms).values(value=until)
        )
        if taken.rowcount == 1:
            return True
        if await conn.scalar(select(r.value).where(r.name == name)) is not None:
            return False
        insert = postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert
        res = await conn.execute(
            insert(revisions).values(name=name, value=until).on_conflict_do_nothing()
        )
        return bool(res.rowcount == 1)
