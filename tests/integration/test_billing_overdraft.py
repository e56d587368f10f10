"""No overdraft under real concurrency: many concurrent requests on one key whose balance
covers only some of them — only those it covers go through. On SQLite with two worker
processes, and on PostgreSQL with two worker processes.

The set-up makes one request's reservation and its charge exactly known: the model's
input price and per-request price are 0 and its output price is 1000 CNY per 1M tokens
(1000 units per token), every request asks ``max_tokens = 20`` and the emulator answers
exactly 20 completion tokens. So a request reserves W = 20 000 units before the upstream
call and is charged exactly W. The user's balance is K·W (K = 7) and 40 requests are
fired at once, while the emulator's 300 ms latency keeps them in flight together.

The bound: a request goes upstream only once a worker has promised its worst case W out
of a budget lease, and leases are taken with one conditional UPDATE that never leases
more than the balance minus what is leased already; a charge is at most its reservation
(here equal to it). So the charges never exceed the starting balance: at most K requests
succeed and the balance never goes below 0. The slack is the other way: a request may be
refused while another worker holds an idle share of the balance in its lease (workers
give idle shares back after about 2 s), so fewer than K may succeed in the burst. The
burst test therefore asserts 1 ≤ successes ≤ K and that the total charged is ≤ the
starting balance, and then spends the rest one request at a time (waiting for idle
shares to come back after each refusal) to show that exactly K requests were paid for in
all and the balance ends at exactly 0: refusals cost nobody money, and no money is lost
in leases.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
from gateway import Gateway, fresh_pg_database

from relaygate.billing.money import format_amount
from relaygate.emulator import EmulatorServer, Knobs

MODEL = "od-chat"
MAX_TOKENS = 20
REPLY = "0123456789" * 8  # 80 characters: the emulator reports (80 + 3) // 4 = 20 tokens
OUT_UNITS_PER_TOKEN = 1000  # output "1000" CNY per 1M tokens
W = MAX_TOKENS * OUT_UNITS_PER_TOKEN  # reserved (and charged) per request, in units
K = 7  # requests the balance covers
N = 40  # requests fired at once


@pytest.fixture(scope="module")
def up() -> Iterator[EmulatorServer]:
    srv = EmulatorServer("openai", knobs=Knobs(api_key="sk-up", latency_ms=300, reply=REPLY))
    srv.start()
    try:
        yield srv
    finally:
        srv.stop()


@pytest.fixture(params=["sqlite", "postgres"])
def backend(request: pytest.FixtureRequest) -> Iterator[dict[str, str]]:
    """Extra gateway environment: nothing (SQLite in the data directory), or a fresh
    PostgreSQL database dropped afterwards."""
    if request.param == "sqlite":
        yield {}
        return
    with fresh_pg_database("rg_od_") as url:
        yield {"RELAYGATE_DATABASE_URL": url}


def _setup(gw: Gateway, up: EmulatorServer) -> tuple[int, str]:
    gw.create_channel(
        name="up",
        provider="openai_compat",
        profile="openai",
        base_url=up.base_url,
        keys=["sk-up"],
        models=[MODEL],
    )
    gw.admin(
        "POST",
        "/prices",
        {
            "model": MODEL,
            "currency": "CNY",
            "per": "1m",
            "input": "0",
            "output": str(OUT_UNITS_PER_TOKEN),
            "per_request": "0",
            "force": True,
        },
    )
    uid = gw.create_user("od-user", balance=format_amount(K * W))
    key = gw.create_key(uid, name="od")
    # both workers must have reloaded channels and prices (refresh every 0.5 s): a
    # worker that did not know the price would let requests through unpriced
    time.sleep(1.5)
    pids = set()
    for _ in range(40):
        with httpx.Client() as c:
            pids.add(c.get(gw.base + "/readyz").json()["worker_pid"])
    assert len(pids) == 2, f"expected two worker processes, saw {pids}"
    return uid, key


def _body() -> dict[str, Any]:
    return {
        "model": MODEL,
        "messages": [{"role": "user", "content": "spend"}],
        "max_tokens": MAX_TOKENS,
    }


async def _burst(gw: Gateway, key: str) -> list[httpx.Response]:
    """N requests at once, each on its own connection (spread over both workers)."""
    limits = httpx.Limits(max_connections=N, max_keepalive_connections=0)
    headers = {"Authorization": f"Bearer {key}"}
    async with httpx.AsyncClient(base_url=gw.base_url, limits=limits, timeout=30) as c:
        start = asyncio.Event()

        async def one(i: int) -> httpx.Response:
            await start.wait()
            return await c.post(
                "/chat/completions", json=_body(), headers={**headers, "x-request-id": f"od-{i}"}
            )

        tasks = [asyncio.create_task(one(i)) for i in range(N)]
        await asyncio.sleep(0)
        start.set()
        return list(await asyncio.gather(*tasks))


def _refusal(r: httpx.Response) -> str | None:
    """The error code of a refused request (None if it is not a JSON error)."""
    try:
        body = r.json()
    except ValueError:
        return None
    err = body.get("error") if isinstance(body, dict) else None
    if isinstance(err, dict) and err.get("code"):
        return str(err["code"])
    return str(body.get("code")) if isinstance(body, dict) else None


def _settled(gw: Gateway, uid: int, charges: int, timeout: float = 15.0) -> dict[str, Any]:
    """The user's balance once ``charges`` charge rows are committed and every worker has
    given its idle lease share back (leased 0)."""
    deadline = time.monotonic() + timeout
    while True:
        bal = gw.balance(uid)
        got = len(_charges(gw, uid))
        if (bal["leased_units"] == 0 and got >= charges) or time.monotonic() > deadline:
            assert got == charges, f"{got} charge rows in the ledger, expected {charges}"
            assert bal["leased_units"] == 0, f"leases not given back: {bal}"
            return dict(bal)
        time.sleep(0.2)


def _ledger(gw: Gateway, uid: int) -> list[dict[str, Any]]:
    return list(gw.admin("GET", f"/users/{uid}/ledger?limit=1000")["data"])


def _charges(gw: Gateway, uid: int) -> list[dict[str, Any]]:
    return [e for e in _ledger(gw, uid) if e["kind"] == "charge"]


def _logs(gw: Gateway, uid: int) -> list[dict[str, Any]]:
    return list(gw.admin("GET", f"/logs?user_id={uid}&limit=1000")["data"])


def _served_by(data: Path, backend: dict[str, str]) -> Counter[tuple[str, int]]:
    """(worker, status) of every request-log row, read from the database itself (the
    admin API does not show ``log_uid``, whose prefix names the worker)."""
    sql = "SELECT log_uid, status FROM request_logs WHERE log_uid IS NOT NULL"
    url = backend.get("RELAYGATE_DATABASE_URL")
    if url is None:
        with sqlite3.connect(data / "relaygate.db") as conn:
            rows = [(str(u), int(s)) for u, s in conn.execute(sql)]
    else:

        async def fetch() -> list[tuple[str, int]]:
            conn = await asyncpg.connect(url)
            try:
                return [(str(r[0]), int(r[1])) for r in await conn.fetch(sql)]
            finally:
                await conn.close()

        rows = asyncio.run(fetch())
    return Counter((uid.rsplit("-", 1)[0], status) for uid, status in rows)


def test_concurrent_requests_never_overdraw_the_balance(
    tmp_path: Path, up: EmulatorServer, backend: dict[str, str]
) -> None:
    gw = Gateway(tmp_path, backend, workers=2).start()
    try:
        uid, key = _setup(gw, up)
        start = gw.balance(uid)
        assert start["balance_units"] == K * W and start["leased_units"] == 0

        responses = asyncio.run(_burst(gw, key))

        statuses = Counter(r.status_code for r in responses)
        ok = [r for r in responses if r.status_code == 200]
        refused = [r for r in responses if r.status_code != 200]
        db = "postgres" if backend else "sqlite"
        print(f"\n[{db}] burst of {N}: statuses {dict(statuses)}")
        assert 1 <= len(ok) <= K, f"{len(ok)} of {N} went through; the balance covers {K}"
        for r in refused:
            assert r.status_code == 403, (r.status_code, r.text)
            assert _refusal(r) == "insufficient_quota", r.text
        for r in ok:
            assert r.json()["usage"]["completion_tokens"] == MAX_TOKENS

        bal = _settled(gw, uid, len(ok))
        charges = _charges(gw, uid)
        charged = -sum(e["amount_units"] for e in charges)
        owners = Counter(str(e["ref"]).rsplit("-", 1)[0] for e in charges)
        print(f"charged {charged} units in {len(charges)} charges; by worker {dict(owners)}")
        assert all(e["amount_units"] == -W for e in charges), charges
        assert len({e["ref"] for e in charges}) == len(charges)  # once per request
        assert {e["request_id"] for e in charges} == {r.headers["x-request-id"] for r in ok}
        assert charged <= K * W
        assert bal["balance_units"] >= 0
        assert bal["balance_units"] == K * W - charged
        assert _ledger(gw, uid)[0]["balance_after_units"] == bal["balance_units"]
        logs = _logs(gw, uid)
        assert sum(int(row["cost_units"]) for row in logs) == charged
        assert sum(1 for row in logs if row["status"] == 200) == len(ok)
        served = _served_by(tmp_path, backend)
        print(f"request-log rows by (worker, status): {dict(served)}")
        assert sum(served.values()) == N  # every request of the burst has its row

        # the rest of the balance: one request at a time, each refusal followed by a wait
        # for idle lease shares to come back; in all exactly K requests are paid for
        later = 0
        headers = {"Authorization": f"Bearer {key}"}
        with httpx.Client(base_url=gw.base_url, headers=headers, timeout=30) as c:
            for _ in range(3 * K):
                r = c.post("/chat/completions", json=_body())
                if r.status_code == 200:
                    later += 1
                    continue
                assert r.status_code == 403 and _refusal(r) == "insufficient_quota", r.text
                bal = _settled(gw, uid, len(ok) + later)
                if bal["balance_units"] < W:
                    break
        print(f"then {later} more one at a time; final balance {bal['balance_units']}")
        assert len(ok) + later == K
        assert bal["balance_units"] == 0
        assert _ledger(gw, uid)[0]["balance_after_units"] == 0
        assert -sum(e["amount_units"] for e in _charges(gw, uid)) == K * W
    finally:
        gw.stop()
