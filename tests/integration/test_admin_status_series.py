"""The system status series (``GET /admin/api/status/series``, storage/status_series.py):
request-log rows counted in minute and hour buckets on SQLite and PostgreSQL, and the
endpoint on a real gateway after real requests through the openai SDK."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from conftest import Upstreams
from gateway import Gateway, fresh_pg_database

from relaygate.storage.repo import LOG_COLUMNS, Repository
from relaygate.storage.status_series import series

NOW = datetime(2030, 6, 15, 12, 30, 20, tzinfo=UTC)
_DEFAULTS = {"endpoint": "chat", "stream": False, "prompt_tokens": 0, "completion_tokens": 0}


def _row(i: int, at: datetime, status: int, latency: int, channel: int | None) -> tuple[Any, ...]:
    values: dict[str, Any] = {
        **_DEFAULTS,
        "request_id": f"s{i:05d}",
        "created_at": at,
        "status": status,
        "latency_ms": latency,
        "channel_id": channel,
        "model": "m",
    }
    zero = ("cached_tokens", "reasoning_tokens", "cost", "counts")
    return tuple(values.get(c, 0 if c in zero else None) for c in LOG_COLUMNS)


async def test_minute_and_hour_buckets_count_exactly(repo: Repository) -> None:
    minute = NOW.replace(second=0)
    rows = [
        # the current (partial) minute: two rows, one failed
        _row(1, minute + timedelta(seconds=5), 200, 100, 1),
        _row(2, minute + timedelta(seconds=19), 502, 300, 2),
        # the minute before, its very first microsecond and its last one
        _row(3, minute - timedelta(minutes=1), 200, 40, 1),
        _row(4, minute - timedelta(microseconds=1), 429, 60, 1),
        # 59 minutes back: the oldest bucket of the hour
        _row(5, minute - timedelta(minutes=59), 200, 10, None),
        # 60 minutes back: outside the hour, inside the day
        _row(6, minute - timedelta(minutes=60, seconds=1), 200, 10, 3),
        # 25 hours back: outside both
        _row(7, NOW - timedelta(hours=25), 200, 10, 3),
        # a row from the future (another node's clock): never counted
        _row(8, NOW + timedelta(hours=2), 200, 10, 3),
    ]
    await repo.insert_request_logs(rows)

    hour = await series(repo.log_engine, bucket_seconds=60, buckets=60, now=NOW)
    assert len(hour.times) == 60 and hour.times[-1] == minute
    assert hour.start == minute - timedelta(minutes=59) and hour.end == minute + timedelta(
        minutes=1
    )
    assert hour.requests[-1] == 2 and hour.errors[-1] == 1
    assert hour.latency_avg_ms[-1] == 200 and hour.latency_max_ms[-1] == 300
    assert hour.requests[-2] == 2 and hour.errors[-2] == 1 and hour.latency_avg_ms[-2] == 50
    assert hour.requests[0] == 1 and hour.latency_max_ms[0] == 10
    assert sum(hour.requests) == 5 and sum(hour.errors) == 2
    assert hour.latency_avg_ms[1] is None and hour.requests[1] == 0
    by_id = {c.channel_id: c for c in hour.channels}
    assert set(by_id) == {1, 2}  # a row without a channel has no line
    assert hour.channels[0].channel_id == 1  # the busiest first
    assert by_id[1].requests[-1] == 1 and by_id[1].requests[-2] == 2 and by_id[1].errors[-2] == 1
    assert by_id[2].errors[-1] == 1

    day = await series(repo.log_engine, bucket_seconds=3600, buckets=24, now=NOW)
    assert day.times[-1] == NOW.replace(minute=0, second=0)
    assert sum(day.requests) == 6  # rows 1-6
    assert day.requests[-1] == 4  # 12:00-12:30: rows 1-4
    assert day.requests[-2] == 2 and day.errors[-2] == 0  # 11:00: rows 5 and 6


async def test_an_empty_log_answers_zeros(repo: Repository) -> None:
    s = await series(repo.log_engine, bucket_seconds=3600, buckets=24, now=NOW)
    assert s.requests == [0] * 24 and s.latency_avg_ms == [None] * 24 and s.channels == []


@pytest.fixture(params=["sqlite", "postgres"])
def status_gw(
    request: pytest.FixtureRequest, tmp_path: Path, upstreams: Upstreams
) -> Iterator[tuple[Gateway, str]]:
    """A gateway on SQLite or on a fresh PostgreSQL database, with an OpenAI channel."""
    with contextlib.ExitStack() as stack:
        extra = {}
        if request.param == "postgres":
            extra["RELAYGATE_DATABASE_URL"] = stack.enter_context(fresh_pg_database("rg_status_"))
        gw = Gateway(tmp_path, extra).start()
        stack.callback(gw.stop)
        gw.create_channel(
            name="openai",
            provider="openai_compat",
            profile="openai",
            base_url=upstreams.openai.base_url,
            keys=["sk-up-openai"],
            models=["gpt-4o-mini", "error-500"],
        )
        uid = gw.create_user("status-user")
        yield gw, gw.create_key(uid, name="status")


def test_the_endpoint_shows_real_requests_and_refuses_bad_windows(
    status_gw: tuple[Gateway, str],
) -> None:
    gw, key = status_gw
    client = openai.OpenAI(base_url=gw.base_url, api_key=key, max_retries=0)
    before = gw.admin("GET", "/status/series?window=1h")["data"]
    client.chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}]
    )
    with contextlib.suppress(openai.APIStatusError):
        client.chat.completions.create(
            model="error-500", messages=[{"role": "user", "content": "hi"}]
        )
    deadline = time.monotonic() + 10
    while True:  # the log writer batches: rows arrive within a second or so
        data = gw.admin("GET", "/status/series?window=1h")["data"]
        if sum(data["series"]["requests"]) >= sum(before["series"]["requests"]) + 2:
            break
        assert time.monotonic() < deadline, data
        time.sleep(0.2)
    assert data["window"] == "1h" and data["bucket_seconds"] == 60
    assert len(data["times"]) == 60
    for values in data["series"].values():
        assert len(values) == 60
    assert sum(data["series"]["errors"]) >= sum(before["series"]["errors"]) + 1
    assert data["series"]["latency_avg_ms"][-1] is not None or data["series"]["requests"][-2]
    names = {c["name"] for c in data["channels"]}
    assert "openai" in names
    now = data["now"]
    assert now["inflight"] >= 0 and now["max_inflight"] >= 1
    assert {"id", "name", "status"} <= set(now["channels"][0])
    assert isinstance(now["circuits"], list)
    day = gw.admin("GET", "/status/series?window=24h")["data"]
    assert len(day["times"]) == 24 and day["bucket_seconds"] == 3600
    assert sum(day["series"]["requests"]) >= 2

    for query in ("window=7d", "window=", "window=1h&x=1", "window=%00", "window=1h" + "h" * 5000):
        r = httpx.get(
            f"{gw.base}/admin/api/status/series?{query}",
            headers={"Authorization": f"Bearer {gw.admin_token}"},
        )
        if query == "window=":
            assert r.status_code == 200, r.text  # empty: the default window
            continue
        assert 400 <= r.status_code < 500, (query, r.status_code, r.text)
        err = r.json()["error"]
        assert err["param"] in ("window", "x"), err
    r = httpx.get(f"{gw.base}/admin/api/status/series", headers={"Authorization": "Bearer nope"})
    assert r.status_code in (401, 403)
    r = httpx.post(
        f"{gw.base}/admin/api/status/series",
        headers={"Authorization": f"Bearer {gw.admin_token}"},
    )
    assert r.status_code == 405 and r.headers["allow"] == "GET"
