"""The attempt chain of a request-log row (``request_logs.attempts``), on SQLite and
PostgreSQL: built from ``ctx.attempts`` by the writer, inserted by the batch insert of each
database, shown to admins as a JSON array (null when there is none), as its JSON text in the
CSV export, and never to users (it names channels)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import orjson

from relaygate.context import Attempt, RelayContext
from relaygate.requestlog.spool import PROVISIONAL, decode_lines
from relaygate.requestlog.writer import _row
from relaygate.services.reports import admin_logs, admin_logs_csv, user_logs
from relaygate.storage.repo import LOG_COLUMNS, Repository

CHAIN = [
    Attempt(3, "up-a", 503, 41, "upstream_error", "the upstream answered 503"),
    Attempt(4, "up-b", 200, 120),
]


def _ctx(request_id: str, attempts: list[Attempt] | None) -> RelayContext:
    ctx = RelayContext(request_id=request_id, endpoint="chat", model="m")
    ctx.attempts = attempts
    return ctx


def test_writer_row_carries_the_chain() -> None:
    row = _row(_ctx("r1", CHAIN), None, 200, None, "uid-1")
    at = LOG_COLUMNS.index("attempts")
    assert len(row) == len(LOG_COLUMNS) and LOG_COLUMNS[at + 1 :] == ("search",)
    assert orjson.loads(row[at]) == [a.to_json() for a in CHAIN]
    assert _row(_ctx("r2", None), None, 200, None, "uid-2")[at] is None
    assert row[-1] is None  # no online search


async def test_admins_see_the_chain_users_do_not(repo: Repository) -> None:
    user = await repo.users.create("att")
    rows: list[Any] = []
    for rid, chain in (("with-chain", CHAIN), ("without", None)):
        ctx = _ctx(rid, chain)
        row = list(_row(ctx, None, 200, None, f"uid-{rid}"))
        row[LOG_COLUMNS.index("user_id")] = user.id
        row[LOG_COLUMNS.index("created_at")] = datetime.now(UTC)
        rows.append(tuple(row))
    await repo.insert_request_logs(rows)

    shown = {r["request_id"]: r for r in (await admin_logs(repo, {}))["data"]}
    assert shown["with-chain"]["attempts"] == [
        {
            "channel_id": 3,
            "model": "up-a",
            "status": 503,
            "ms": 41,
            "error": "upstream_error",
            "message": "the upstream answered 503",
        },
        {"channel_id": 4, "model": "up-b", "status": 200, "ms": 120, "error": None},
    ]
    assert shown["without"]["attempts"] is None
    mine = (await user_logs(repo, user.id, {}))["data"]
    assert len(mine) == 2 and all("attempts" not in r and "channel_id" not in r for r in mine)
    csv = b"".join([c async for c in await admin_logs_csv(repo, {})]).decode()
    assert "attempts" in csv.splitlines()[0]
    assert '""channel_id"":3' in csv  # the JSON text, CSV-quoted
    listed = {r["request_id"]: r for r in await repo.list_request_logs()}
    assert listed["with-chain"]["attempts"][0]["channel_id"] == 3
    assert listed["without"]["attempts"] is None


def test_a_provisional_row_spooled_before_the_column_still_reads() -> None:
    """A spool left by a worker of the previous version: its provisional rows have one
    column less; read back, they are provisional rows with no chain."""
    row = list(_row(_ctx("old", None), None, 503, "stream_cut", "uid-old"))
    row[1] = row[1].isoformat()
    old = orjson.dumps([*row[:-1], PROVISIONAL])
    new = orjson.dumps([*row[:-1], '[{"channel_id":1}]', PROVISIONAL])
    rows, bad = decode_lines([old, new])
    assert bad == 0 and [len(r) for r in rows] == [len(LOG_COLUMNS) + 1] * 2
    assert rows[0][-2:] == (None, PROVISIONAL)
    assert rows[1][-2:] == ('[{"channel_id":1}]', PROVISIONAL)
