"""Provisional stream rows in the spool: a full row once, then tiny updates; a dead
worker's last state per stream is what gets charged; ordinary rows are never mistaken
for updates (a client may send ``X-Request-Id: p``)."""

from __future__ import annotations

from datetime import UTC, datetime

import orjson

from relaygate.requestlog.orphans import OrphanStreams
from relaygate.requestlog.spool import PROVISIONAL, UPDATE, decode_lines
from relaygate.storage.repo import LOG_COLUMNS

N = len(LOG_COLUMNS)
COL = {c: i for i, c in enumerate(LOG_COLUMNS)}


def _row(request_id: str, uid: str, completion: int, cost: int) -> list[object]:
    row: list[object] = [None] * N
    row[COL["request_id"]] = request_id
    row[COL["created_at"]] = datetime.now(UTC).isoformat()
    row[COL["endpoint"]] = "chat"
    row[COL["stream"]] = True
    row[COL["status"]] = 503
    row[COL["prompt_tokens"]] = 7
    row[COL["completion_tokens"]] = completion
    row[COL["latency_ms"]] = 1
    row[COL["cached_tokens"]] = row[COL["reasoning_tokens"]] = 0
    row[COL["log_uid"]] = uid
    row[COL["cost"]] = cost
    row[COL["counts"]] = 0
    return row


def test_updates_apply_to_the_dead_workers_provisional_row() -> None:
    lines = [
        orjson.dumps([*_row("r1", "w-1", 3, 30), PROVISIONAL]),
        orjson.dumps([UPDATE, "w-1", 5, 50, 0]),
        orjson.dumps(_row("p", "w-2", 9, 90)),  # an ordinary row whose request id is "p"
        orjson.dumps([UPDATE, "w-1", 8, 80, 0]),
        b'["p", "w-9", 1]',  # malformed: not an update, not a row
    ]
    rows, bad = decode_lines(lines)
    assert bad == 1 and len(rows) == 4
    writer = OrphanStreams()
    final = writer.set_aside(rows, claimed=True)
    assert [r[COL["request_id"]] for r in final] == ["p"]  # the ordinary row goes on
    held = writer.provisional["w-1"]
    assert len(held) == N
    assert (held[COL["completion_tokens"]], held[COL["cost"]]) == (8, 80)  # the last update
    assert [r[COL["log_uid"]] for r in writer.pending()] == ["w-1"]  # no final row for it
    # a living worker's own provisional rows and updates are skipped, rows kept
    writer2 = OrphanStreams()
    assert [r[COL["request_id"]] for r in writer2.set_aside(rows, False)] == ["p"]
    assert writer2.provisional == {}
