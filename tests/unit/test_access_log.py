"""The access log: tuples recorded per request, JSON lines written in slices by a thread."""

from __future__ import annotations

import asyncio
import io

import orjson

from relaygate.access_log import AccessLog


class Sink(io.BytesIO):
    def close(self) -> None:  # keep the bytes readable after the writer is done
        pass


async def test_every_record_becomes_one_json_line_in_order() -> None:
    sink = Sink()
    log = AccessLog(sink, interval=0.01)
    log.start()
    n = 100  # more than three formatting slices
    for i in range(n):
        log.record(
            f"rid-{i}", "POST", "/v1/chat/completions", 200, None, "m", 1, False, 5, None, 7, 9
        )
    await asyncio.sleep(0.1)
    log.record(
        "last", "GET", "/v1/models", 401, "invalid_api_key", None, None, False, 0, None, None, None
    )
    await log.close()
    lines = sink.getvalue().splitlines()
    assert len(lines) == n + 1
    rows = [orjson.loads(x) for x in lines]
    assert [r["request_id"] for r in rows] == [f"rid-{i}" for i in range(n)] + ["last"]
    first, last = rows[0], rows[-1]
    assert first["logger"] == "relaygate.access" and first["status"] == 200
    assert (first["latency_ms"], first["user_id"], first["key_id"]) == (5, 7, 9)
    assert last["error_code"] == "invalid_api_key" and last["model"] is None
    assert first["ts"].endswith("Z") and len(first["ts"]) == len("2026-01-01T00:00:00.000Z")


async def test_nothing_recorded_writes_nothing() -> None:
    sink = Sink()
    log = AccessLog(sink, interval=0.01)
    log.start()
    await asyncio.sleep(0.05)
    await log.close()
    assert sink.getvalue() == b""


def test_timestamps_are_utc_with_milliseconds_across_second_boundaries() -> None:
    from relaygate.access_log import _ts

    base = 1_764_084_016.0  # 2025-11-25T15:20:16Z
    assert _ts(base + 0.1234) == "2025-11-25T15:20:16.123Z"
    assert _ts(base + 0.999) == "2025-11-25T15:20:16.999Z"
    assert _ts(base + 1.0) == "2025-11-25T15:20:17.000Z"
    assert _ts(base + 0.5) == "2025-11-25T15:20:16.500Z"  # back in time: not a stale cache
    assert _ts(base + 86_400.25) == "2025-11-26T15:20:16.250Z"
