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
from pathlib import Path
from urllib.parse import urlsplit

import httpx
from gateway import Gateway
from outage_kit import (
    database_fixture,
    logged_and_charged,
    openai_upstream,
    per_worker,
    post_chat,
    route_to,
)
from tcp_cut import TcpCut

database = database_fixture("rg_pg_out_")


def chat(gw: Gateway, c: httpx.Client, key: str) -> tuple[str, int]:
    r = post_chat(c, gw, key, "pg-chat")
    return r.headers["x-request-id"], r.status_code


def _spooled(spool: Path) -> int:
    return sum(len(p.read_bytes().splitlines()) for p in spool.glob("requestlog-*.jsonl"))


def test_cached_keys_keep_flowing_while_postgres_is_cut(tmp_path: Path, database: str) -> None:
    pg = urlsplit(database)
    relay = TcpCut(pg.hostname or "127.0.0.1", pg.port or 5432).join()
    via_relay = database.replace(f"{pg.hostname}:{pg.port or 5432}", f"127.0.0.1:{relay.port}")
    up = openai_upstream()
    env = {"RELAYGATE_DATABASE_URL": via_relay, "RELAYGATE_REFRESH_INTERVAL": "1"}
    gw = Gateway(tmp_path, env, workers=2).start()
    workers: list[httpx.Client] = []
    try:
        route_to(gw, up, "pg-chat")
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
        charged: dict[str, tuple[int, int]] = {}
        deadline = time.monotonic() + 30  # the writers retry with back-off
        while time.monotonic() < deadline:
            logged, charged = asyncio.run(logged_and_charged(database, ids))
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
