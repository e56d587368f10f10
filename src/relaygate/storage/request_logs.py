"""The request log table: batched inserts on the hot path's behalf, and reads for the admin API.

Rows are tuples in ``LOG_COLUMNS`` order (no dicts, no ORM objects): the writer in
``requestlog/writer.py`` builds them and hands over whole batches.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import orjson
from sqlalchemy import insert, select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from relaygate.pacing import paced_map
from relaygate.storage.tables import request_logs

__all__ = ["LOG_COLUMNS", "LogRow", "complete_rows", "insert_request_logs", "list_request_logs"]


LOG_COLUMNS = (
    "request_id",
    "created_at",
    "user_id",
    "key_id",
    "endpoint",
    "model",
    "channel_id",
    "stream",
    "status",
    "error_code",
    "prompt_tokens",
    "completion_tokens",
    "latency_ms",
    "ttft_ms",
    "cached_tokens",
    "reasoning_tokens",
    "log_uid",
    "cost",
    "counts",
    "package_id",
    "billing",
    "attempts",  # JSON text: the attempt chain (context.Attempt.to_json), None when one attempt
    "search",  # JSON text: an online request's search (status, hits, ms), None otherwise
)
LogRow = tuple[Any, ...]  # one request-log row, values in LOG_COLUMNS order; created_at a datetime
# Values of trailing columns a shorter row leaves out (rows built before these columns existed).
_TRAILING_DEFAULTS: dict[str, Any] = {
    "cached_tokens": 0,
    "reasoning_tokens": 0,
    "log_uid": None,
    "cost": 0,
    "counts": 0,
    "package_id": None,
    "billing": None,
    "attempts": None,
    "search": None,
}
_N = len(LOG_COLUMNS)
_PAD = tuple(_TRAILING_DEFAULTS.values())

_LOG_SLICE = 64  # rows encoded per event-loop turn (see insert_request_logs)
_PG_SLICE = 256  # rows per executemany round trip on PostgreSQL
_SQLITE_TS = "%Y-%m-%d %H:%M:%S.%f"  # how SQLAlchemy stores DATETIME on SQLite
_SQLITE_LOG_INSERT = (
    f"INSERT INTO request_logs ({', '.join(LOG_COLUMNS)}) SELECT "
    + ", ".join(f"json_extract(value, '$[{i}]')" for i in range(len(LOG_COLUMNS)))
    # WHERE true: SQLite needs it to tell the upsert's ON from a join's ON
    + " FROM json_each(?) WHERE true ORDER BY key ON CONFLICT (log_uid) DO NOTHING"
)


def _sqlite_log_json(rows: Sequence[LogRow]) -> bytes:
    return orjson.dumps([(r[0], r[1].strftime(_SQLITE_TS), *r[2:]) for r in rows])


_PG_LOG_INSERT = (
    f"INSERT INTO request_logs ({', '.join(LOG_COLUMNS)}) VALUES "
    f"({', '.join(f'${i + 1}' for i in range(len(LOG_COLUMNS)))})"
    " ON CONFLICT (log_uid) DO NOTHING"
)


def complete_rows(rows: Sequence[LogRow]) -> Sequence[LogRow]:
    """Rows may leave out trailing columns (``_TRAILING_DEFAULTS``); fill them in. A batch
    replayed from an older worker's spool may mix short and full rows: each is checked."""
    if all(len(r) == _N for r in rows):
        return rows
    return [r + _PAD[len(r) - _N :] if len(r) < _N else r for r in rows]


async def insert_request_logs(
    engine: AsyncEngine, rows: Sequence[LogRow], conn: AsyncConnection | None = None
) -> None:
    """Insert usage rows (tuples in ``LOG_COLUMNS`` order) in one transaction — the
    caller's ``conn`` when given (the charges of the same rows are then committed with
    them, ``storage/charges.py``), else one of its own.

    Idempotent per ``log_uid``: a row whose ``log_uid`` is already in the table is
    skipped (``ON CONFLICT DO NOTHING``), so replaying a crash spool never doubles a
    row that was committed just before the crash. Rows with a NULL ``log_uid`` are
    always inserted.

    Bypasses SQLAlchemy's per-row type processing, which cost more CPU than the
    rest of the request path at a few thousand rows per second. On SQLite the
    whole batch is one statement reading a JSON document (``json_each``)
    instead of ``executemany``: the gateway's CPU per relayed request fell from
    ~155 to ~129 µs with it (docs/performance.md).
    """
    if not rows:
        return
    rows = complete_rows(rows)
    dialect = engine.dialect
    if dialect.name == "sqlite":
        # Encoding runs on the event loop in slices (see relaygate.pacing): one
        # 4,000-row batch encoded at once held the loop for ~9 ms.
        parts = await paced_map(_sqlite_log_json, rows, _LOG_SLICE)
        doc = parts[0] if len(parts) == 1 else b"[" + b",".join(p[1:-1] for p in parts) + b"]"
        params: Any = (doc.decode(),)
        if conn is not None:
            await conn.exec_driver_sql(_SQLITE_LOG_INSERT, params)
        else:
            async with engine.begin() as own:
                await own.exec_driver_sql(_SQLITE_LOG_INSERT, params)
        return
    if conn is not None:
        await _write_generic(conn, dialect.paramstyle, rows)
    else:
        async with engine.begin() as own:
            await _write_generic(own, dialect.paramstyle, rows)


async def _write_generic(conn: AsyncConnection, paramstyle: str, rows: Sequence[LogRow]) -> None:
    if paramstyle == "numeric_dollar":  # asyncpg: pipelined executemany
        for i in range(0, len(rows), _PG_SLICE):  # each slice awaits the server: loop breathes
            await conn.exec_driver_sql(_PG_LOG_INSERT, list(rows[i : i + _PG_SLICE]))
    else:  # pragma: no cover - any other driver: SQLAlchemy's generic path
        await conn.execute(
            insert(request_logs), [dict(zip(LOG_COLUMNS, r, strict=True)) for r in rows]
        )


async def list_request_logs(
    engine: AsyncEngine, limit: int = 100, user_id: int | None = None
) -> list[dict[str, Any]]:
    q = select(request_logs).order_by(request_logs.c.id.desc()).limit(limit)
    if user_id is not None:
        q = q.where(request_logs.c.user_id == user_id)
    async with engine.connect() as conn:
        rows = (await conn.execute(q)).all()
    out = []
    for r in rows:
        d = {str(k): v for k, v in r._asdict().items()}
        d["created_at"] = (_aware(d["created_at"]) or _now()).isoformat()
        if d.get("attempts"):  # the attempt chain: stored as JSON text, shown as an array
            d["attempts"] = orjson.loads(d["attempts"])
        if d.get("search"):  # an online request's search: JSON text, shown as an object
            d["search"] = orjson.loads(d["search"])
        out.append(d)
    return out


def _aware(dt: datetime | None) -> datetime | None:
    if dt is not None and dt.tzinfo is None:
        return dt.replace(tzinfo=UTC)
    return dt


def _now() -> datetime:
    return datetime.now(UTC)
