"""The readiness report (``metrics/readiness.py``) on real parts: a SQLite database that
answers, a PostgreSQL URL on a closed port (refused), a server that accepts and never
answers (the timeout), a Redis client on a closed port; the cache and the single check
shared by callers arriving together (counted as real queries)."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import redis.asyncio as aioredis
from metrics_kit import worker
from sqlalchemy import event

from relaygate.context import RelayContext
from relaygate.metrics.config import MetricsConfig, metrics_config
from relaygate.metrics.readiness import REDIS_FALLBACK, Readiness
from relaygate.requestlog.writer import UsageLogWriter
from relaygate.settings import Settings
from relaygate.sharedstate.redis import RedisState
from relaygate.storage.crypto import Secrets
from relaygate.storage.db import create_engine
from relaygate.storage.repo import Repository


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
async def silent_port() -> AsyncIterator[int]:
    """A server that accepts connections and never says a word."""
    held: list[asyncio.StreamWriter] = []

    async def hold(_r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        held.append(w)

    server = await asyncio.start_server(hold, "127.0.0.1", 0)
    yield int(server.sockets[0].getsockname()[1])
    for w in held:
        w.close()
    server.close()
    await server.wait_closed()


def pg_repo(port: int) -> Repository:
    return Repository(
        create_engine(f"postgresql+asyncpg://nobody@127.0.0.1:{port}/none"), Secrets("s")
    )


async def test_ready_and_cached(tmp_path: Path) -> None:
    async with worker(tmp_path) as w:
        queries: list[str] = []
        event.listen(
            w.repo.engine.sync_engine,
            "before_cursor_execute",
            lambda *a: queries.append(str(a[2])),
        )
        r = Readiness(w, MetricsConfig(ready_cache=0.5))
        status, verdict, checks = await r.report()
        assert (status, verdict) == (200, "ready")
        assert checks["database"]["ok"] and checks["database"]["revision"] == w.catalog.revision
        assert checks["redis"] == {"ok": True, "configured": False}
        assert checks["request_log"] == {"ok": True, "enabled": False}
        assert checks["catalog"]["ok"] and checks["catalog"]["channels"] == 0
        assert len(queries) == 1
        # a storm of probes: one check, shared; then the cache
        results = await asyncio.gather(*(r.report() for _ in range(50)))
        assert {x[1] for x in results} == {"ready"}
        assert len(queries) == 1
        await asyncio.sleep(0.6)
        await r.report()
        assert len(queries) == 2
        # the live flags are read on every call, cache or not
        w.draining = True
        assert (await r.report())[:2] == (503, "draining")
        w.draining, w.ready = False, False
        assert (await r.report())[:2] == (503, "not_ready")


async def test_database_refusing_is_degraded_while_the_configuration_is_held(
    tmp_path: Path,
) -> None:
    repo = pg_repo(closed_port())
    async with worker(tmp_path, repo=repo) as w:
        r = Readiness(w, MetricsConfig(ready_cache=0))
        status, verdict, checks = await r.report()
        assert (status, verdict) == (200, "degraded")
        assert checks["database"]["ok"] is False and checks["database"]["error"]
        assert checks["catalog"]["ok"] is True
        assert "configuration loaded before" in checks["catalog"]["effect"]
        w.ready = False  # no configuration held (still starting) and no database
        status, verdict, checks = await r.report()
        assert (status, verdict) == (503, "not_ready")
        assert checks["catalog"]["ok"] is False
    await repo.engine.dispose()


async def test_a_silent_database_is_bounded_by_the_timeout(
    tmp_path: Path, silent_port: int
) -> None:
    repo = pg_repo(silent_port)
    async with worker(tmp_path, repo=repo) as w:
        r = Readiness(w, MetricsConfig(ready_cache=0, ready_timeout=0.3))
        began = time.monotonic()
        status, verdict, checks = await r.report()
        assert time.monotonic() - began < 2.0
        assert (status, verdict) == (200, "degraded")
        assert checks["database"] == {"ok": False, "error": "no answer within 0.3 s"}
    await repo.engine.dispose()


async def test_redis_away_is_degraded_and_says_what_it_means(tmp_path: Path) -> None:
    port = closed_port()
    settings = Settings(data_dir=tmp_path, redis_url=f"redis://127.0.0.1:{port}/0")
    async with worker(tmp_path, settings=settings) as w:
        # fell back at start-up: the in-process state, no round trip needed to know
        r = Readiness(w, MetricsConfig(ready_cache=0))
        status, verdict, checks = await r.report()
        assert (status, verdict) == (200, "degraded")
        assert checks["redis"]["ok"] is False and checks["redis"]["effect"] == REDIS_FALLBACK
        # a client whose server went away
        client = aioredis.Redis.from_url(settings.redis_url, socket_connect_timeout=0.5)
        w.shared = RedisState(client)
        status, verdict, checks = await r.report()
        assert (status, verdict) == (200, "degraded")
        assert checks["redis"]["ok"] is False and "effect" in checks["redis"]
        assert checks["database"]["ok"] is True
        await client.aclose()


async def test_request_log_backlog_over_the_bound_is_degraded(tmp_path: Path) -> None:
    async with worker(tmp_path) as w:
        writer = UsageLogWriter(w.repo, spool_dir=tmp_path / "spool")  # not started: rows wait
        for i in range(7):
            writer.record(RelayContext(f"r{i}", "chat"))
        assert writer.backlog == 7
        w.usage_log = writer
        status, verdict, checks = await Readiness(
            w, MetricsConfig(ready_cache=0, ready_backlog=5)
        ).report()
        assert (status, verdict) == (200, "degraded")
        assert checks["request_log"]["ok"] is False and "spool" in checks["request_log"]["effect"]
        assert checks["request_log"]["rows_backlog"] == 7
        status, verdict, _ = await Readiness(w, MetricsConfig(ready_backlog=10)).report()
        assert verdict == "ready"
        assert await writer.flush()


def test_config_is_checked() -> None:
    assert metrics_config({}) == MetricsConfig()
    cfg = metrics_config(
        {
            "RELAYGATE_METRICS": "0",
            "RELAYGATE_METRICS_TOKEN": " tok-1 ",
            "RELAYGATE_METRICS_INTERVAL": "0.5",
            "RELAYGATE_READY_TIMEOUT": "2",
            "RELAYGATE_READY_CACHE": "0",
            "RELAYGATE_READY_BACKLOG": "10",
        }
    )
    assert cfg == MetricsConfig(False, "tok-1", 0.5, 2.0, 0.0, 10)
    for env, name in (
        ({"RELAYGATE_METRICS": "maybe"}, "RELAYGATE_METRICS"),
        ({"RELAYGATE_METRICS_TOKEN": "a b"}, "RELAYGATE_METRICS_TOKEN"),
        ({"RELAYGATE_METRICS_INTERVAL": "0"}, "RELAYGATE_METRICS_INTERVAL"),
        ({"RELAYGATE_READY_TIMEOUT": "soon"}, "RELAYGATE_READY_TIMEOUT"),
        ({"RELAYGATE_READY_BACKLOG": "1.5"}, "RELAYGATE_READY_BACKLOG"),
    ):
        with pytest.raises(ValueError, match=name):
            metrics_config(env)
