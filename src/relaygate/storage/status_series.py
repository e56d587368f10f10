"""The request log over time for the console's system-status page (``api/admin_status.py``).

:func:`series` counts the rows of ``request_logs`` in fixed time buckets (one minute over
the last hour, one hour over the last day) with one ``GROUP BY`` on the bucket number
``floor(epoch seconds / bucket size)``, computed by the database: ``strftime('%s', …)`` on
SQLite (which stores UTC times as text; the fraction is cut off first),
``extract(epoch from …)`` on PostgreSQL. Runs on the log engine (``Repository.log_engine``).
Buckets without a row are answered as zeros, so every list has one value per bucket,
oldest first, the current (partial) bucket last.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import BigInteger, Integer, case, cast, func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from relaygate.storage.tables import request_logs

__all__ = ["MAX_CHANNELS", "ChannelSeries", "Series", "series"]

MAX_CHANNELS = 10  # channels with their own line: the busiest ones of the window


@dataclass(slots=True)
class ChannelSeries:
    channel_id: int
    requests: list[int]
    errors: list[int]


@dataclass(slots=True)
class Series:
    """One value per bucket in every list; ``times`` are the buckets' starts (UTC)."""

    bucket_seconds: int
    times: list[datetime]
    requests: list[int]
    errors: list[int]
    latency_avg_ms: list[int | None]
    latency_max_ms: list[int | None]
    channels: list[ChannelSeries] = field(default_factory=list)

    @property
    def start(self) -> datetime:
        return self.times[0]

    @property
    def end(self) -> datetime:
        return self.times[-1] + timedelta(seconds=self.bucket_seconds)


def _bucket(dialect: str, size: int) -> Any:
    t = request_logs.c
    if dialect == "postgresql":
        epoch = func.floor(func.extract("epoch", t.created_at) / size)
        return cast(epoch, BigInteger)
    # SQLite: the stored text "YYYY-MM-DD HH:MM:SS.ffffff" (UTC) without its fraction (SQLite
    # rounds .999999 up to the next second), read as a Unix time
    whole_seconds = func.substr(t.created_at, 1, 19)
    return cast(func.strftime("%s", whole_seconds), Integer) // size


async def series(
    engine: AsyncEngine, *, bucket_seconds: int, buckets: int, now: datetime | None = None
) -> Series:
    """The last ``buckets`` buckets of ``bucket_seconds`` up to ``now`` (included)."""
    if bucket_seconds < 1 or not 1 <= buckets <= 10_000:
        raise ValueError("bucket_seconds >= 1 and 1 <= buckets <= 10000")
    at = (now or datetime.now(UTC)).astimezone(UTC)
    last = int(at.timestamp()) // bucket_seconds
    first = last - buckets + 1
    start = datetime.fromtimestamp(first * bucket_seconds, UTC)
    t = request_logs.c
    failed = case((t.status >= 400, 1), else_=0)
    async with engine.connect() as conn:
        b = _bucket(conn.dialect.name, bucket_seconds).label("b")
        totals = (
            select(
                b,
                func.count(),
                func.sum(failed),
                func.avg(t.latency_ms),
                func.max(t.latency_ms),
            )
            .where(t.created_at >= start)
            .group_by(b)
        )
        rows = (await conn.execute(totals)).all()
        per_channel = (
            select(t.channel_id, b, func.count(), func.sum(failed))
            .where(t.created_at >= start, t.channel_id.is_not(None))
            .group_by(t.channel_id, b)
        )
        channel_rows = (await conn.execute(per_channel)).all()
    out = Series(
        bucket_seconds,
        [start + timedelta(seconds=i * bucket_seconds) for i in range(buckets)],
        [0] * buckets,
        [0] * buckets,
        [None] * buckets,
        [None] * buckets,
    )
    for bucket, count, errors, avg, most in rows:
        i = int(bucket) - first
        if 0 <= i < buckets:
            out.requests[i] = int(count)
            out.errors[i] = int(errors or 0)
            out.latency_avg_ms[i] = None if avg is None else round(float(avg))
            out.latency_max_ms[i] = None if most is None else int(most)
    by_channel: dict[int, ChannelSeries] = {}
    for cid, bucket, count, errors in channel_rows:
        i = int(bucket) - first
        if not 0 <= i < buckets:
            continue
        one = by_channel.setdefault(int(cid), ChannelSeries(int(cid), [0] * buckets, [0] * buckets))
        one.requests[i] = int(count)
        one.errors[i] = int(errors or 0)
    busiest = sorted(by_channel.values(), key=lambda c: (-sum(c.requests), c.channel_id))
    out.channels = busiest[:MAX_CHANNELS]
    return out
