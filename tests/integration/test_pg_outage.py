"""PostgreSQL cut off while requests flow (docs/durability.md, "PostgreSQL briefly away"): the
gateway reaches PostgreSQL through a TCP relay the test cuts — every connection dropped, new
ones refused, as in a network outage; the database keeps running. A key the workers already
hold in their configuration snapshot keeps being served by both workers (their balance leases
cover the charges); the request-log rows and charges wait in the spool on disk and are written
once PostgreSQL is reachable again: every row and every charge exactly once."""

from __future__ import annotations

import asyncio
import concurrent.futures
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import asyncpg
import httpx
import pytest
from gateway import Gateway, fresh_pg_database
from tcp_cut import TcpCut

from relaygate.emulator import EmulatorServer, Knobs


@pytest.fixture
def database() -> Iterator[str]:
    with fresh_pg_database("rg_pg_out_") as url:
        yield url


def per_worker(gw: Gateway) -> list[httpx.Client]:
    """One keep-alive connection on each worker (``/readyz`` says which)."""
    chosen: dict[int, httpx.Client] = {}
    for _ in range(200):
        c = httpx.Client(timeout=60)
        pid = int(c.get(gw.base + "/readyz").json()["worker_pid"])
        if pid in chosen:
            c.close()
        else:
            chosen[pid] = c
        if len(chosen) == gw.workers:
            return list(chosen.values())
    raise AssertionError(f"found {len(chosen)} of {gw.workers} workers")


def chat(gw: Gateway, c: httpx.Client, key: str) -> tuple[str, int]:
    r = c.post(
        gw.base_url + "/chat/completions",
        json={"model": "pg-chat", "messages": [{"role": "user", "content": "hi"}]},
        headers={"Authorization": f"Bearer {key}"},
    )
    return r.headers["x-request-id"], r.status_code


async def _rows(url: str, ids: list[str]) -> tuple[dict[str, tuple[int, int]], dict[str, Any]]:
    """Per request id: (log rows, cost of the row) and (charges, amount charged)."""
    conn = await asyncpg.connect(url)
    try:
        logs = await conn.fetch(
            "SELECT request_id, count(*) AS n, sum(cost) AS cost FROM request_logs "
            "WHERE request_id = ANY($1) GROUP BY request_id",
            ids,
        )
        charges = await conn.fetch(
            "SELECT request_id, count(*) AS n, sum(amount) AS amount FROM ledger "
            "WHERE kind = 'charge' AND request_id = ANY($1) GROUP BY request_id",
            ids,
        )
    finally:
        await conn.close()
    return (
        {r["request_id"]: (r["n"], int(r["cost"])) for r in logs},
        {r["request_id"]: (r["n"], int(r["amount"])) for r in charges},
    )


def _spooled(spool: Path) -> int:
    return sum(len(p.read_bytes().splitlines()) for p in spool.glob("requestlog-*.jsonl"))


def test_cached_keys_keep_flowing_while_postgres_is_cut(tmp_path: Path, database: str) -> None:
    pg = urlsplit(database)
    relay = TcpCut(pg.hostname or "127.0.0.1", pg.port or 5432).join()
    via_relay = database.replace(f"{pg.hostname}:{pg.port or 5432}", f"127.0.0.1:{relay.port}")
    up = EmulatorServer("openai", knobs=Knobs(api_key="sk-up"))
    up.start()
    env = {"RELAYGATE_DATABASE_URL": via_relay, "RELAYGATE_REFRESH_INTERVAL": "1"}
    gw = Gateway(tmp_path, env, workers=2).start()
    workers: list[httpx.Client] = []
    try:
        gw.create_channel(
            name="up",
            provider="openai_compat",
            profile="openai",
            base_url=up.base_url,
            keys=["sk-up"],
            models=["pg-chat"],
        )
        gw.admin(
            "POST",
            "/prices",
            {"model": "pg-chat", "input": "2", "output": "8", "per": "1m", "force": True},
        )
        key = gw.create_key(gw.create_user("pg-cut", balance="100"))
        time.sleep(2.5)  # both workers hold the key (polling every second)
        workers = per_worker(gw)
        sent: list[tuple[str, int]] = []
        for c in workers:  # each worker leases a share of the balance
            sent += [chat(gw, c, key) for _ in range(2)]
        assert {s for _, s in sent} == {200}

        relay.cut()
        try:
            # both workers keep answering from their snapshot and leases
            with concurrent.futures.ThreadPoolExecutor(len(workers)) as pool:
                runs = pool.map(lambda c: [chat(gw, c, key) for _ in range(10)], workers)
                during = [r for run in runs for r in run]
            assert [s for _, s in during] == [200] * len(during), during
            sent += during
            # the rows wait on disk (in the crash spool) for the database
            assert _spooled(tmp_path / "spool") >= len(during)
            time.sleep(2)  # the writers retry meanwhile; the refresh fails and is logged
        finally:
            relay.join()

        ids = [i for i, _ in sent]
        logged: dict[str, tuple[int, int]] = {}
        charged: dict[str, Any] = {}
        deadline = time.monotonic() + 30  # the writers retry with back-off
        while time.monotonic() < deadline:
            logged, charged = asyncio.run(_rows(database, ids))
            if len(logged) == len(ids) and len(charged) == len(ids):
                break
            time.sleep(0.3)
        assert len(logged) == len(ids) and len(charged) == len(ids), (len(logged), len(charged))
        for rid in ids:  # exactly once each, and the charge is the row's cost
            rows, cost = logged[rid]
            n, amount = charged[rid]
            assert rows == 1 and n == 1 and cost > 0 and amount == -cost, (rid, logged, charged)
        # after the outage the spool is empty again and requests are served as before
        deadline = time.monotonic() + 10
        while _spooled(tmp_path / "spool") and time.monotonic() < deadline:
            time.sleep(0.2)
        assert _spooled(tmp_path / "spool") == 0
        assert all(chat(gw, c, key)[1] == 200 for c in workers)
    finally:
        for c in workers:
            c.close()
        gw.stop()
        up.stop()
        relay.cut()
