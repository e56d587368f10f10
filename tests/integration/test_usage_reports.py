"""Usage reports on SQLite and on the running PostgreSQL: log queries (filters, keyset
paging), the CSV export, daily rollups, retention, a separate log database, and the admin
API through a real gateway. Rows go in through the writer's own path
(``Repository.insert_request_logs``)."""

from __future__ import annotations

import asyncio
import csv
import io
import sqlite3
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from conftest import Upstreams
from gateway import Gateway, run_cli
from sqlalchemy import select, text

from relaygate.requestlog.retention import UsageRollup
from relaygate.services.fields import ValidationError
from relaygate.services.reports import (
    admin_daily_usage,
    admin_logs,
    admin_logs_csv,
    user_daily_usage,
    user_logs,
    user_logs_csv,
)
from relaygate.storage.crypto import Secrets
from relaygate.storage.db import create_engine, migrate
from relaygate.storage.repo import LOG_COLUMNS, Repository
from relaygate.storage.tables import usage_daily
from relaygate.storage.usage_reports import (
    acquire_lease,
    day_start,
    delete_expired,
    final_day,
    finalize,
    query_logs,
    rollup,
)

TODAY = date(2030, 6, 15)  # fixed: a test run across midnight changes nothing
_DEFAULTS: dict[str, Any] = {
    "endpoint": "chat",
    "stream": False,
    "status": 200,
    "prompt_tokens": 0,
    "completion_tokens": 0,
    "latency_ms": 1,
    "cached_tokens": 0,
    "reasoning_tokens": 0,
    "cost": 0,
    "counts": 0,
}


def log_row(**values: Any) -> tuple[Any, ...]:
    """A row in LOG_COLUMNS order, built by column name (keeps working when columns are
    appended); unnamed columns take their default or NULL."""
    unknown = set(values) - set(LOG_COLUMNS)
    assert not unknown, unknown
    return tuple(values[c] if c in values else _DEFAULTS.get(c) for c in LOG_COLUMNS)


def dataset(
    n: int = 60, start: datetime | None = None, users: tuple[int, int] = (1, 2)
) -> list[dict[str, Any]]:
    """Varied rows, 7 minutes apart: two users (and a NULL one), three keys, two models
    (and a NULL one), statuses ok and error, streams, costs, counts."""
    start = start or day_start(TODAY - timedelta(days=1)) + timedelta(hours=20)
    rows = []
    for i in range(n):
        user = None if i % 11 == 10 else (users[0] if i % 3 else users[1])
        rows.append(
            {
                "request_id": f"q{i:04d}",
                "created_at": start + timedelta(minutes=7 * i),
                "user_id": user,
                "key_id": None if user is None else (20 if user == users[1] else 10 + i % 2),
                "model": (None, "gpt-a", "gpt-b")[i % 5 % 3],
                "channel_id": i % 4 or None,
                "stream": i % 2 == 0,
                "status": (200, 200, 502, 429, 499, 201)[i % 6],
                "prompt_tokens": i,
                "completion_tokens": 2 * i,
                "cost": 1234 * i,
                "counts": i % 3,
            }
        )
    return rows


async def insert(repo: Repository, rows: list[dict[str, Any]]) -> None:
    await repo.insert_request_logs([log_row(**r) for r in rows])


async def all_pages(repo: Repository, limit: int, **filters: Any) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    cursor = None
    while True:
        page = await query_logs(repo.log_engine, **filters, cursor=cursor, limit=limit)
        out.extend(page.rows)
        if page.next_cursor is None:
            return out
        cursor = page.next_cursor


# ---- queries ----------------------------------------------------------------------------
async def test_each_filter_selects_exactly_the_matching_rows(repo: Repository) -> None:
    rows = dataset()
    await insert(repo, rows)
    at = [r["created_at"] for r in rows]
    cases: list[tuple[dict[str, Any], Callable[[dict[str, Any]], bool]]] = [
        ({}, lambda r: True),
        ({"user_id": 2}, lambda r: r["user_id"] == 2),
        ({"key_id": 11}, lambda r: r["key_id"] == 11),
        ({"model": "gpt-b"}, lambda r: r["model"] == "gpt-b"),
        ({"channel_id": 3}, lambda r: r["channel_id"] == 3),
        ({"status": "ok"}, lambda r: r["status"] < 400),
        ({"status": "error"}, lambda r: r["status"] >= 400),  # 499 (client gone) included
        ({"status": 429}, lambda r: r["status"] == 429),
        ({"stream": True}, lambda r: r["stream"]),
        ({"stream": False}, lambda r: not r["stream"]),
        ({"start": at[10], "end": at[20]}, lambda r: at[10] <= r["created_at"] < at[20]),
        ({"request_id": "q0033"}, lambda r: r["request_id"] == "q0033"),
        (
            {"user_id": 1, "model": "gpt-a", "status": "ok", "stream": False},
            lambda r: (
                r["user_id"] == 1
                and r["model"] == "gpt-a"
                and r["status"] < 400
                and not r["stream"]
            ),
        ),
    ]
    for filters, keep in cases:
        want = [r["request_id"] for r in reversed(rows) if keep(r)]
        assert want, filters  # every case selects some rows
        got = await query_logs(repo.log_engine, **filters, limit=1000)
        assert [r["request_id"] for r in got.rows] == want, filters
        assert got.next_cursor is None
    one = (await query_logs(repo.log_engine, request_id="q0007", limit=1)).rows[0]
    assert (one["cost"], one["counts"], one["completion_tokens"], one["status"]) == (
        8638,
        1,
        14,
        200,
    )
    assert one["created_at"] == at[7] and one["created_at"].tzinfo is not None
    assert "log_uid" not in one
    with pytest.raises(ValueError):
        await query_logs(repo.log_engine, limit=1001)


async def test_keyset_pages_have_no_duplicates_or_gaps_while_rows_arrive(
    repo: Repository,
) -> None:
    rows = dataset(250)
    await insert(repo, rows)
    seen: list[dict[str, Any]] = []
    page = await query_logs(repo.log_engine, limit=37)
    seen.extend(page.rows)
    newer = [{**r, "request_id": "n" + r["request_id"]} for r in dataset(15, day_start(TODAY))]
    await insert(repo, newer)  # rows arriving meanwhile are not in this walk
    while page.next_cursor is not None:
        page = await query_logs(repo.log_engine, cursor=page.next_cursor, limit=37)
        assert len(page.rows) <= 37
        seen.extend(page.rows)
    ids = [r["id"] for r in seen]
    assert ids == sorted(set(ids), reverse=True)  # newest first, no duplicates
    assert [r["request_id"] for r in seen] == [r["request_id"] for r in reversed(rows)]
    # a filtered walk: the exact filtered set across pages of 4
    errors = await all_pages(repo, 4, status="error", user_id=1)
    want = [r for r in rows + newer if r["status"] >= 400 and r["user_id"] == 1]
    assert sorted(r["request_id"] for r in errors) == sorted(r["request_id"] for r in want)
    assert len(errors) == len({r["id"] for r in errors})


async def test_report_service_shows_money_and_keeps_users_apart(repo: Repository) -> None:
    rows = dataset()
    await insert(repo, rows)
    got = await admin_logs(repo, {"limit": "3", "user_id": "1"})
    assert orjson.loads(orjson.dumps(got)) == got  # JSON-able as it is (the API's encoder)
    assert len(got["data"]) == 3 and got["next_cursor"] is not None
    first = got["data"][0]
    src = next(r for r in rows if r["request_id"] == first["request_id"])
    assert first["cost_units"] == src["cost"]
    assert Decimal(first["cost"]) * 1_000_000 == src["cost"]  # exact, six decimals
    assert first["cost"] == f"{Decimal(src['cost']) / 1_000_000:.6f}"
    assert first["channel_id"] == src["channel_id"]
    assert datetime.fromisoformat(first["created_at"]) == src["created_at"]
    nxt = await admin_logs(repo, {"limit": "3", "user_id": "1", "cursor": got["next_cursor"]})
    assert not {r["id"] for r in nxt["data"]} & {r["id"] for r in got["data"]}

    mine = await user_logs(repo, 2, {"limit": "1000"})
    assert {r["user_id"] for r in mine["data"]} == {2}
    assert len(mine["data"]) == sum(1 for r in rows if r["user_id"] == 2)
    assert all("channel_id" not in r for r in mine["data"])
    assert (await user_logs(repo, 2, {"user_id": "2", "limit": "1"}))["data"][0]["user_id"] == 2
    for params, param in [
        ({"user_id": "1"}, "user_id"),  # somebody else's rows
        ({"channel_id": "1"}, "channel_id"),  # not a user filter
    ]:
        with pytest.raises(ValidationError) as exc:
            await user_logs(repo, 2, params)
        assert exc.value.param == param
    daily = await user_daily_usage(repo, 2, {"start": "2030-06-14", "end": "2030-06-15"})
    assert daily["data"] == []  # not rolled up yet
    with pytest.raises(ValidationError) as exc:
        await user_daily_usage(repo, 2, {"user_id": "1"})
    assert exc.value.param == "user_id"


@pytest.mark.parametrize(
    ("params", "param"),
    [
        ({"limit": "0"}, "limit"),
        ({"limit": "1001"}, "limit"),
        ({"limit": "ten"}, "limit"),
        ({"user_id": "abc"}, "user_id"),
        ({"key_id": "-3"}, "key_id"),
        ({"channel_id": "1.5"}, "channel_id"),
        ({"cursor": "0"}, "cursor"),
        ({"cursor": "x"}, "cursor"),
        ({"cursor": "9" * 30}, "cursor"),  # past a 64-bit id: was a 500
        ({"key_id": "9" * 20}, "key_id"),
        ({"status": "fine"}, "status"),
        ({"status": "700"}, "status"),
        ({"stream": "maybe"}, "stream"),
        ({"start": "yesterday"}, "start"),
        ({"end": "2030-13-01"}, "end"),
        ({"start": "2030-06-02", "end": "2030-06-01"}, "end"),
        ({"model": "x" * 129}, "model"),
        ({"request_id": ""}, "request_id"),
        ({"usr_id": "1"}, "usr_id"),
    ],
)
async def test_bad_log_parameters_are_refused_by_name(
    params: dict[str, str], param: str, tmp_path: Path
) -> None:
    repo = Repository(create_engine(f"sqlite+aiosqlite:///{tmp_path / 'x.db'}"), Secrets("t"))
    try:
        with pytest.raises(ValidationError) as exc:
            await admin_logs(repo, params)
        assert exc.value.param == param and param in exc.value.message
    finally:
        await repo.dispose()


async def test_bad_daily_parameters_are_refused_by_name(tmp_path: Path) -> None:
    repo = Repository(create_engine(f"sqlite+aiosqlite:///{tmp_path / 'x.db'}"), Secrets("t"))
    try:
        for params, param in [
            ({"group_by": "day"}, "group_by"),
            ({"start": "2030-6-1"}, "start"),
            ({"end": "tomorrow"}, "end"),
            ({"start": "2030-06-02", "end": "2030-06-01"}, "end"),
            ({"start": "2029-01-01", "end": "2030-06-01"}, "end"),  # over 366 days
            ({"user_id": "0"}, "user_id"),
            ({"limit": "5"}, "limit"),
        ]:
            with pytest.raises(ValidationError) as exc:
                await admin_daily_usage(repo, params)
            assert exc.value.param == param, params
        with pytest.raises(ValidationError) as exc:
            await admin_logs_csv(repo, {"limit": "5"})  # the export streams every row
        assert exc.value.param == "limit"
    finally:
        await repo.dispose()


# ---- CSV ------------------------------------------------------------------------------------
async def test_csv_export_is_streamed_page_by_page_and_escapes_formulas(
    repo: Repository,
) -> None:
    rows = dataset(2100)
    nasty = {
        0: ('=HYPERLINK("http://x")', "+cmd|' /C calc'!A0"),
        1: ("@SUM(1+1)", "-2+3"),
        2: ("\tTAB", "ok-model"),
    }
    for i, (rid, model) in nasty.items():
        rows[i]["request_id"], rows[i]["model"] = rid, model
    await insert(repo, rows)
    body = await admin_logs_csv(repo, {})
    chunks = [c async for c in body]
    assert len(chunks) == 3  # 2,100 rows: three pages of at most 1,000, one chunk each
    parsed = list(csv.reader(io.StringIO(b"".join(chunks).decode())))
    header, data = parsed[0], parsed[1:]
    assert header[:3] == ["id", "request_id", "created_at"]
    assert "cost" in header and header[header.index("cost") + 1] == "cost_units"
    assert "log_uid" not in header and "channel_id" in header
    assert len(data) == 2100
    col = {name: i for i, name in enumerate(header)}
    by_id = {r[col["request_id"]].lstrip("'"): r for r in data}
    assert by_id['=HYPERLINK("http://x")'][col["request_id"]] == '\'=HYPERLINK("http://x")'
    assert by_id['=HYPERLINK("http://x")'][col["model"]] == "'+cmd|' /C calc'!A0"
    assert by_id["@SUM(1+1)"][col["request_id"]] == "'@SUM(1+1)"
    assert by_id["@SUM(1+1)"][col["model"]] == "'-2+3"
    assert by_id["\tTAB"][col["request_id"]] == "'\tTAB"
    assert by_id["\tTAB"][col["model"]] == "ok-model"  # a dash inside is harmless
    r7 = by_id["q0007"]
    assert (r7[col["cost"]], r7[col["cost_units"]], r7[col["stream"]]) == (
        "0.008638",
        "8638",
        "false",
    )
    assert r7[col["ttft_ms"]] == "" and r7[col["status"]] == "200"
    ids = [int(r[col["id"]]) for r in data]
    assert ids == sorted(set(ids), reverse=True)

    # a user's export: own rows only, no channel column, filters apply
    mine = b"".join([c async for c in await user_logs_csv(repo, 2, {"status": "error"})])
    parsed = list(csv.reader(io.StringIO(mine.decode())))
    assert "channel_id" not in parsed[0]
    uid = parsed[0].index("user_id")
    want = [r for r in rows if r["user_id"] == 2 and r["status"] >= 400]
    assert len(parsed) - 1 == len(want) and {r[uid] for r in parsed[1:]} == {"2"}


# ---- rollup ---------------------------------------------------------------------------------
def expected_daily(rows: list[dict[str, Any]], day: date) -> dict[tuple[Any, ...], list[int]]:
    out: dict[tuple[Any, ...], list[int]] = defaultdict(lambda: [0] * 6)
    for r in rows:
        if r["created_at"].astimezone(UTC).date() != day:
            continue
        g = out[(day.isoformat(), r["user_id"] or 0, r["key_id"] or 0, r["model"] or "")]
        g[0] += 1
        g[1] += r["status"] >= 400
        g[2] += r["prompt_tokens"]
        g[3] += r["completion_tokens"]
        g[4] += r["cost"]
        g[5] += r["counts"]
    return dict(out)


async def stored_daily(
    repo: Repository, day: date | None = None
) -> dict[tuple[Any, ...], list[int]]:
    u = usage_daily.c
    q = select(usage_daily)
    if day is not None:
        q = q.where(u.day == day.isoformat())
    async with repo.log_engine.connect() as conn:
        found = (await conn.execute(q)).mappings().all()
    return {
        (r["day"], r["user_id"], r["key_id"], r["model"]): [
            int(r[k])
            for k in ("requests", "errors", "prompt_tokens", "completion_tokens", "cost", "counts")
        ]
        for r in found
    }


async def test_rollup_is_exact_at_day_boundaries_and_idempotent(repo: Repository) -> None:
    rows = dataset(80)  # from 20:00 the day before TODAY to ~05:13 on TODAY
    midnight = day_start(TODAY)
    rows.append(
        {**rows[1], "request_id": "edge-1", "created_at": midnight - timedelta(microseconds=1)}
    )
    rows.append({**rows[1], "request_id": "edge-2", "created_at": midnight})
    await insert(repo, rows)
    yesterday = TODAY - timedelta(days=1)
    assert await rollup(repo.log_engine, yesterday)
    assert await stored_daily(repo) == expected_daily(rows, yesterday)
    assert await rollup(repo.log_engine, TODAY)
    assert await rollup(repo.log_engine, TODAY)  # twice: the same rows
    assert await stored_daily(repo, TODAY) == expected_daily(rows, TODAY)
    assert await stored_daily(repo, yesterday) == expected_daily(rows, yesterday)
    assert ("2030-06-15", 0, 0, "") in await stored_daily(repo, TODAY)  # the NULL user
    late = [{**rows[2], "request_id": "late", "created_at": midnight + timedelta(hours=9)}]
    await insert(repo, late)  # a row arriving later is counted by the next rollup
    assert await rollup(repo.log_engine, TODAY)
    assert await stored_daily(repo, TODAY) == expected_daily(rows + late, TODAY)
    all_rows = rows + late

    # the chart queries, through the service (money shown both ways)
    got = await admin_daily_usage(
        repo, {"group_by": "model", "start": yesterday.isoformat(), "end": TODAY.isoformat()}
    )
    want: dict[tuple[str, Any], list[int]] = defaultdict(lambda: [0] * 6)
    for (day, _u, _k, model), v in (
        expected_daily(all_rows, yesterday) | expected_daily(all_rows, TODAY)
    ).items():
        want[(day, model)] = [a + b for a, b in zip(want[(day, model)], v, strict=True)]
    assert {
        (d["day"], d["model"]): [
            d["requests"],
            d["errors"],
            d["prompt_tokens"],
            d["completion_tokens"],
            d["cost_units"],
            d["counts"],
        ]
        for d in got["data"]
    } == dict(want)
    assert [(d["day"], d["model"]) for d in got["data"]] == sorted(want)  # day, then group
    assert orjson.loads(orjson.dumps(got)) == got
    assert all(Decimal(d["cost"]) * 1_000_000 == d["cost_units"] for d in got["data"])
    assert got["totals"]["requests"] == len(all_rows)
    assert got["totals"]["cost_units"] == sum(r["cost"] for r in all_rows)
    by_user = await admin_daily_usage(
        repo, {"group_by": "user", "start": TODAY.isoformat(), "end": TODAY.isoformat()}
    )
    assert {d["user_id"] for d in by_user["data"]} == {0, 1, 2}
    by_key = await user_daily_usage(
        repo, 1, {"group_by": "key", "start": yesterday.isoformat(), "end": TODAY.isoformat()}
    )
    assert {d["key_id"] for d in by_key["data"]} == {10, 11}
    assert by_key["totals"]["requests"] == sum(1 for r in all_rows if r["user_id"] == 1)


async def test_a_round_catches_up_on_every_day_not_rolled_up(repo: Repository) -> None:
    """The first round rolls up from the oldest row; later rounds from the last day with
    aggregates (a gateway stopped for days), not only today and yesterday."""
    rows: list[dict[str, Any]] = []
    for ago in (30, 8, 6, 4, 0):
        rows += dataset(10, start=day_start(TODAY - timedelta(days=ago)) + timedelta(hours=2))
    await insert(repo, [r for r in rows if r["created_at"] < day_start(TODAY - timedelta(days=7))])
    task = UsageRollup(repo.log_engine)
    first = await task.run_once(TODAY - timedelta(days=7))
    assert first.rolled == 3  # day -30, day -8, and day -7 (today then: no rows, a no-op)
    await insert(repo, [r for r in rows if r["created_at"] >= day_start(TODAY - timedelta(days=7))])
    later = await task.run_once(TODAY)  # a week later
    assert later.deleted == 0 and later.finalized == 0
    want: dict[tuple[Any, ...], list[int]] = {}
    for ago in (30, 8, 6, 4, 0):
        want |= expected_daily(rows, TODAY - timedelta(days=ago))
    assert await stored_daily(repo) == want


# ---- retention ------------------------------------------------------------------------------
async def raw_days(repo: Repository) -> dict[str, int]:
    page = await all_pages(repo, 1000)
    out: dict[str, int] = defaultdict(int)
    for r in page:
        out[r["created_at"].date().isoformat()] += 1
    return dict(out)


async def test_retention_deletes_only_rolled_up_days_and_keeps_aggregates(
    repo: Repository,
) -> None:
    rows: list[dict[str, Any]] = []
    for ago in (9, 5, 3, 2, 1, 0):
        rows += dataset(30, start=day_start(TODAY - timedelta(days=ago)) + timedelta(hours=1))
    for i, r in enumerate(rows):
        r["request_id"] = f"r{i:04d}"
    await insert(repo, rows)
    task = UsageRollup(repo.log_engine, retention_days=2)
    done = await task.run_once(TODAY)
    cutoff = TODAY - timedelta(days=2)
    assert (done.finalized, done.deleted) == (3, 90)  # days -9, -5, -3: rolled up, then gone
    left = await raw_days(repo)
    assert sorted(left) == [(TODAY - timedelta(days=a)).isoformat() for a in (2, 1, 0)]
    assert await final_day(repo.log_engine) == TODAY - timedelta(days=3)
    want: dict[tuple[Any, ...], list[int]] = {}
    for ago in (9, 5, 3, 2, 1, 0):
        want |= expected_daily(rows, TODAY - timedelta(days=ago))
    assert await stored_daily(repo) == want  # aggregates of deleted days kept, all exact
    # a final day is never recomputed (its raw rows are gone): the aggregate stays
    assert not await rollup(repo.log_engine, TODAY - timedelta(days=5))
    assert await stored_daily(repo) == want
    # the next round: nothing more to delete, aggregates unchanged
    again = await task.run_once(TODAY)
    assert (again.finalized, again.deleted) == (0, 0) and await stored_daily(repo) == want
    # a day later, day -2 expires in its turn
    later = await task.run_once(TODAY + timedelta(days=1))
    assert (later.finalized, later.deleted) == (1, 30)
    assert cutoff.isoformat() not in await raw_days(repo)
    assert await stored_daily(repo) == want


async def test_retention_deletes_in_small_batches(repo: Repository) -> None:
    old = dataset(50, start=day_start(TODAY - timedelta(days=4)))
    await insert(repo, old + dataset(5, start=day_start(TODAY)))
    assert await delete_expired(repo.log_engine, TODAY) == 0  # nothing final yet
    assert await finalize(repo.log_engine, TODAY - timedelta(days=4))
    assert await delete_expired(repo.log_engine, TODAY, batch=7, max_batches=3) == 21
    assert await delete_expired(repo.log_engine, TODAY, batch=7) == 29
    assert list(await raw_days(repo)) == [TODAY.isoformat()]
    assert sum(v[0] for v in (await stored_daily(repo)).values()) == 50


async def test_rollups_racing_retention_never_shrink_an_aggregate(repo: Repository) -> None:
    """The final-day lock: rollups of a day running while it is finalized and deleted
    either finish before (full data) or see it final and change nothing."""
    day = TODAY - timedelta(days=6)
    rows = dataset(400, start=day_start(day))[:200]  # 200 rows within the day
    await insert(repo, rows)
    want = expected_daily(rows, day)

    done = asyncio.Event()
    runs = 0

    async def retention() -> None:
        await asyncio.sleep(0.01)
        await finalize(repo.log_engine, day)
        await delete_expired(repo.log_engine, TODAY, batch=10, pause=0.001)
        done.set()

    async def rollups() -> None:  # all along the deletion
        nonlocal runs
        while not done.is_set():
            await rollup(repo.log_engine, day)
            runs += 1

    await asyncio.gather(retention(), rollups(), rollups())
    assert await raw_days(repo) == {} and runs > 2
    assert await stored_daily(repo) == want


async def test_the_lease_lets_one_worker_run_a_round(repo: Repository) -> None:
    assert await acquire_lease(repo.log_engine, "t-lease", 0.3)
    assert not await acquire_lease(repo.log_engine, "t-lease", 0.3)
    await asyncio.sleep(0.35)
    assert await acquire_lease(repo.log_engine, "t-lease", 0.3)
    await insert(repo, dataset(10, start=datetime.now(UTC) - timedelta(minutes=80)))
    a = UsageRollup(repo.log_engine, interval=30)
    b = UsageRollup(repo.log_engine, interval=30)
    rounds = await asyncio.gather(a.tick(), b.tick())
    assert sorted(r is None for r in rounds) == [False, True]  # exactly one ran
    assert sum(v[0] for v in (await stored_daily(repo)).values()) == 10
    assert a.rounds + b.rounds == 1


# ---- a separate log database ----------------------------------------------------------------
async def test_a_separate_log_database_gets_the_rows_and_the_main_one_the_charges(
    tmp_path: Path,
) -> None:
    main = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'main.db'}")
    logs = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'logs.db'}")
    await migrate(main)
    await migrate(logs)
    repo = Repository(main, Secrets("t"), log_engine=logs)
    try:
        user = await repo.users.create("payer")
        async with main.begin() as conn:
            await conn.execute(
                text("UPDATE users SET balance = 1000000 WHERE id = :u"), {"u": user.id}
            )
        rows = [
            {**r, "user_id": user.id, "key_id": None, "log_uid": f"w1-{i}"}
            for i, r in enumerate(dataset(20, start=day_start(TODAY)))
        ]
        await insert(repo, rows)
        await insert(repo, rows)  # replayed (a spool after a crash): logged and charged once
        async with logs.connect() as conn:
            assert await conn.scalar(text("SELECT count(*) FROM request_logs")) == 20
        async with main.connect() as conn:
            assert await conn.scalar(text("SELECT count(*) FROM request_logs")) == 0
            charged = await conn.scalar(text("SELECT count(*) FROM ledger"))
            balance = await conn.scalar(
                text("SELECT balance FROM users WHERE id = :u"), {"u": user.id}
            )
        costly = [r for r in rows if r["cost"] or r["counts"]]
        assert charged == len(costly)
        assert balance == 1_000_000 - sum(r["cost"] for r in rows)
        assert len((await admin_logs(repo, {"limit": "1000"}))["data"]) == 20
        assert [r["request_id"] for r in await repo.list_request_logs(limit=3)] == [
            "q0019",
            "q0018",
            "q0017",
        ]
        await UsageRollup(repo.log_engine).run_once(TODAY)
        async with logs.connect() as conn:
            assert await conn.scalar(text("SELECT sum(requests) FROM usage_daily")) == 20
        async with main.connect() as conn:
            assert await conn.scalar(text("SELECT count(*) FROM usage_daily")) == 0
    finally:
        await repo.dispose()


# ---- the admin API through a real gateway ---------------------------------------------------
@pytest.fixture(scope="module")
def report_gw(tmp_path_factory: pytest.TempPathFactory, upstreams: Upstreams) -> Iterator[Gateway]:
    """A gateway whose request rows live in their own SQLite file, with 2 days' retention;
    that file holds old rows (10 days back) before the gateway starts."""
    data = Path(tmp_path_factory.mktemp("gw-reports"))
    log_db = data / "logs" / "requests.db"
    env = {
        "RELAYGATE_LOG_DATABASE_URL": f"sqlite:///{log_db}",
        "RELAYGATE_LOG_RETENTION_DAYS": "2",
        "RELAYGATE_BILLING": "0",
    }
    gw = Gateway(data, env)
    run_cli(gw.env, "migrate")  # creates both databases
    old_day = datetime.now(UTC).date() - timedelta(days=10)

    async def seed_old() -> None:
        engine = create_engine(f"sqlite+aiosqlite:///{log_db}")
        repo = Repository(engine, Secrets("t"))
        try:
            start = day_start(old_day) + timedelta(hours=1)
            await insert(repo, dataset(24, start=start, users=(101, 102)))
        finally:
            await repo.dispose()

    asyncio.run(seed_old())
    gw.start()
    try:
        uid = gw.create_user("reporter")
        gw.create_channel(
            name="openai",
            provider="openai_compat",
            profile="openai",
            base_url=upstreams.openai.base_url,
            keys=["sk-up-openai"],
            models=["gpt-4o-mini"],
        )
        gw.env["TEST_KEY"] = gw.create_key(uid, name="r")
        gw.env["TEST_USER"] = str(uid)
        gw.env["TEST_OLD_DAY"] = old_day.isoformat()
        gw.env["TEST_LOG_DB"] = str(log_db)
        yield gw
    finally:
        gw.stop()


def admin_get(gw: Gateway, path: str) -> httpx.Response:
    return httpx.get(
        gw.base + "/admin/api" + path,
        headers={"Authorization": f"Bearer {gw.admin_token}"},
        timeout=10,
    )


def wait_for(check: Callable[[], bool], within: float = 15.0) -> bool:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.1)
    return check()


def log_db_count(gw: Gateway, sql: str) -> int:
    db = sqlite3.connect(gw.env["TEST_LOG_DB"])
    try:
        return int(db.execute(sql).fetchone()[0] or 0)
    finally:
        db.close()


def test_gateway_logs_reports_and_retention(report_gw: Gateway) -> None:
    gw = report_gw
    rids = []
    with httpx.Client(timeout=10) as c:
        for i in range(5):
            r = c.post(
                gw.base_url + "/chat/completions",
                headers={"Authorization": f"Bearer {gw.env['TEST_KEY']}"},
                json={
                    "model": "gpt-4o-mini",
                    "messages": [{"role": "user", "content": f"hi {i}"}],
                    "stream": i % 2 == 1,
                },
            )
            assert r.status_code == 200, r.text
            rids.append(r.headers["x-request-id"])
    uid = gw.env["TEST_USER"]
    assert wait_for(lambda: len(admin_get(gw, f"/logs?user_id={uid}").json()["data"]) == 5), (
        gw.logs()
    )
    # the rows are in the log database, not in the main one
    main = sqlite3.connect(gw.env["RELAYGATE_DATA_DIR"] + "/relaygate.db")
    try:
        assert main.execute("SELECT count(*) FROM request_logs").fetchone()[0] == 0
    finally:
        main.close()
    assert log_db_count(gw, f"SELECT count(*) FROM request_logs WHERE user_id = {uid}") == 5

    # filters and paging through the API
    body = admin_get(gw, f"/logs?user_id={uid}&stream=true").json()
    assert body["code"] == 0 and {r["request_id"] for r in body["data"]} == {rids[1], rids[3]}
    assert all(
        isinstance(r["cost"], str) and isinstance(r["cost_units"], int) for r in body["data"]
    )
    pages, cursor = [], ""
    while True:
        page = admin_get(gw, f"/logs?user_id={uid}&limit=2{cursor}").json()
        pages.append([r["request_id"] for r in page["data"]])
        if page["next_cursor"] is None:
            break
        cursor = f"&cursor={page['next_cursor']}"
    assert pages == [rids[4:2:-1], rids[2:0:-1], rids[:1]]
    one = admin_get(gw, f"/logs?request_id={rids[2]}").json()["data"]
    assert len(one) == 1 and one[0]["model"] == "gpt-4o-mini" and one[0]["status"] == 200

    # the CSV export
    r = admin_get(gw, f"/logs.csv?user_id={uid}")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
    assert "attachment" in r.headers["content-disposition"]
    parsed = list(csv.reader(io.StringIO(r.text)))
    assert parsed[0][1] == "request_id" and [p[1] for p in parsed[1:]] == rids[::-1]

    # retention ran at start-up: the 10-day-old rows are gone, their aggregates kept
    old_day = gw.env["TEST_OLD_DAY"]
    assert wait_for(
        lambda: (
            log_db_count(
                gw, "SELECT count(*) FROM request_logs WHERE user_id IS NULL OR user_id != " + uid
            )
            == 0
        )
    ), gw.logs()
    daily = admin_get(gw, f"/usage/daily?group_by=user&start={old_day}&end={old_day}").json()
    assert daily["totals"]["requests"] == 24
    assert {d["user_id"] for d in daily["data"]} == {0, 101, 102}
    assert daily["totals"]["cost_units"] == sum(1234 * i for i in range(24))

    # bad parameters: a clear error naming each
    for query, param in [
        ("/logs?user_id=abc", "user_id"),
        ("/logs?limit=0", "limit"),
        ("/logs?start=last-week", "start"),
        ("/logs?cursor=-1", "cursor"),
        ("/logs?status=bad", "status"),
        ("/logs?colour=red", "colour"),
        ("/logs.csv?limit=10", "limit"),
        ("/usage/daily?group_by=planet", "group_by"),
        ("/usage/daily?start=2030-02-30", "start"),
    ]:
        r = admin_get(gw, query)
        assert r.status_code == 403, (query, r.text)
        assert r.json()["error"]["param"] == param, query
    r = httpx.post(
        gw.base + "/admin/api/logs.csv",
        headers={"Authorization": f"Bearer {gw.admin_token}"},
        timeout=10,
    )
    assert r.status_code == 405 and r.headers["allow"] == "GET"
    assert httpx.get(gw.base + "/admin/api/usage/daily", timeout=10).status_code == 401
