"""Scale-out (issue 18): two relaygate nodes of two workers each behind Debian's nginx, on a
PostgreSQL cluster and a Redis server the test owns (tests/integration/cluster.py), with
the OpenAI emulator upstream. Every request goes through nginx, which names the node that
answered in ``X-Upstream``.

- a global RPM limit on a key holds across both nodes (Redis);
- 1,000 concurrent requests on a key funded for 200 never overdraw (PostgreSQL leases);
- an admin change made on one node is seen by the other within a second;
- one node SIGKILLed mid-load loses no billing record (its spool is replayed at restart);
- Redis and PostgreSQL restarted during load lose no record.

Money: the model's only price is output, 1000 CNY per 1M tokens, and the emulator answers
exactly 20 completion tokens, so every answered request costs exactly W = 20,000 units.
"""

from __future__ import annotations

import asyncio
import os
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
from cluster import Nginx, PrivatePostgres, have_cluster_tools, start_node
from gateway import Gateway
from private_redis import PrivateRedis

from relaygate.billing.money import format_amount
from relaygate.emulator import EmulatorServer, Knobs

MISSING = have_cluster_tools()
pytestmark = pytest.mark.skipif(
    bool(MISSING) and not os.environ.get("CI"), reason=f"needs {MISSING}"
)

MODEL = "so-chat"
REPLY = "0123456789" * 8  # the emulator reports (80 + 3) // 4 = 20 completion tokens
W = 20 * 1000  # units charged per answered request
BODY = {"model": MODEL, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 20}


@dataclass
class Cluster:
    pg: PrivatePostgres
    redis: PrivateRedis
    db_url: str
    nodes: list[Gateway]
    nginx: Nginx
    up: EmulatorServer
    env: dict[str, str]
    data: list[Path] = field(default_factory=list)

    @property
    def admin(self) -> Gateway:
        return self.nodes[1]  # node 0 is the one the kill test kills and restarts

    def restart_node(self, i: int) -> None:
        old = self.nodes[i]
        self.nodes[i] = Gateway(self.data[i], self.env, workers=2, port=old.port).start()

    def rows(self, sql: str, *args: Any) -> list[Any]:
        async def fetch() -> list[Any]:
            conn = await asyncpg.connect(self.db_url)
            try:
                return list(await conn.fetch(sql, *args))
            finally:
                await conn.close()

        return asyncio.run(fetch())

    def user(self, balance_units: int, **key_fields: Any) -> tuple[int, str]:
        uid = self.admin.create_user(f"so-{uuid.uuid4().hex[:8]}", format_amount(balance_units))
        key = self.admin.create_key(uid, name="so", **key_fields)
        wait_known(self.nodes, key)
        return uid, key


def wait_known(nodes: list[Gateway], key: str, timeout: float = 10) -> None:
    """Until every node (every worker: several tries each) takes ``key``."""
    deadline = time.monotonic() + timeout
    for gw in nodes:
        good = 0
        while good < 6:
            r = httpx.get(gw.base_url + "/models", headers={"Authorization": f"Bearer {key}"})
            good = good + 1 if r.status_code == 200 else 0
            assert time.monotonic() < deadline, f"node {gw.base} does not know the key"


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    root = Path(tmp_path_factory.mktemp("scaleout"))
    pg = PrivatePostgres()
    redis = PrivateRedis(root / "redis")
    up = EmulatorServer("openai", knobs=Knobs(api_key="sk-up", latency_ms=300, reply=REPLY))
    nodes: list[Gateway] = []
    nginx: Nginx | None = None
    try:
        pg.init()
        redis.start()
        up.start()
        db_url = pg.create_database("relaygate")
        env = {
            "RELAYGATE_DATABASE_URL": db_url,
            "RELAYGATE_REDIS_URL": redis.url,
            "RELAYGATE_REDIS_PREFIX": f"so{uuid.uuid4().hex[:6]}:",
            "RELAYGATE_SECRET_KEY": uuid.uuid4().hex * 2,  # one secret for every node
            "RELAYGATE_REFRESH_INTERVAL": "2",  # the default: only a broadcast is faster
            "RELAYGATE_FIRST_BYTE_TIMEOUT": "10",
            "RELAYGATE_READ_TIMEOUT": "10",
        }
        data = [root / "node0", root / "node1"]
        for d in data:
            nodes.append(start_node(d, env, workers=2))
        nginx = Nginx(root / "nginx", [n.port for n in nodes]).start()
        c = Cluster(pg, redis, db_url, nodes, nginx, up, env, data)
        c.admin.create_channel(
            name="up",
            provider="openai_compat",
            profile="openai",
            base_url=up.base_url,
            keys=["sk-up"],
            models=[MODEL],
        )
        c.admin.admin(
            "POST",
            "/prices",
            {
                "model": MODEL,
                "currency": "CNY",
                "per": "1m",
                "input": "0",
                "output": "1000",
                "per_request": "0",
                "force": True,
            },
        )
        yield c
    finally:
        if nginx is not None:
            nginx.stop()
        for n in nodes:
            n.stop()
        up.stop()
        redis.kill()
        pg.destroy()


# ---- helpers ----------------------------------------------------------------------------
async def _burst(base_url: str, key: str, n: int, tag: str) -> list[httpx.Response]:
    limits = httpx.Limits(max_connections=n, max_keepalive_connections=0)
    headers = {"Authorization": f"Bearer {key}"}
    async with httpx.AsyncClient(base_url=base_url, limits=limits, timeout=60) as c:
        start = asyncio.Event()

        async def one(i: int) -> httpx.Response:
            await start.wait()
            return await c.post(
                "/chat/completions", json=BODY, headers={**headers, "x-request-id": f"{tag}-{i}"}
            )

        tasks = [asyncio.create_task(one(i)) for i in range(n)]
        await asyncio.sleep(0)
        start.set()
        return list(await asyncio.gather(*tasks))


def _code(r: httpx.Response) -> str:
    try:
        body = r.json()
    except ValueError:
        return f"not-json-{r.status_code}"
    err = body.get("error") if isinstance(body, dict) else None
    return str(err.get("code")) if isinstance(err, dict) else str(r.status_code)


def _settle(c: Cluster, uid: int, timeout: float = 60) -> dict[str, Any]:
    """The user's balance once every node has given its idle lease share back."""
    deadline = time.monotonic() + timeout
    while True:
        bal = c.admin.balance(uid)
        if bal["leased_units"] == 0 or time.monotonic() > deadline:
            assert bal["leased_units"] == 0, f"leases not given back: {bal}"
            return dict(bal)
        time.sleep(0.3)


def _wait_rows(c: Cluster, uid: int, want: int, timeout: float = 60) -> list[Any]:
    deadline = time.monotonic() + timeout
    while True:
        rows = c.rows(
            "SELECT request_id, status, cost AS cost_units FROM request_logs WHERE user_id = $1",
            uid,
        )
        if len(rows) >= want or time.monotonic() > deadline:
            return rows
        time.sleep(0.3)


def _charged(c: Cluster, uid: int) -> int:
    rows = c.rows(
        "SELECT COALESCE(SUM(-amount), 0) FROM ledger WHERE user_id = $1 AND kind = 'charge'", uid
    )
    return int(rows[0][0])


# ---- the demonstrations -----------------------------------------------------------------
def test_a_global_rpm_limit_holds_across_both_nodes(cluster: Cluster) -> None:
    # funded far beyond what a lease takes (10.00 each), so that money never refuses one:
    # with 100 W (2.00) the four workers' leases split the balance and a worker whose share
    # ran out could answer insufficient_quota (decision 0007) — a flake seen once
    _, key = cluster.user(5000 * W, rpm_limit=30)
    got = asyncio.run(_burst(cluster.nginx.base_url, key, 90, "rpm"))
    ok = [r for r in got if r.status_code == 200]
    limited = [r for r in got if r.status_code == 429]
    seen = Counter((r.status_code, _code(r)) for r in got)
    assert len(ok) == 30, seen
    assert len(ok) + len(limited) == 90, seen
    # both nodes took part (which node's requests won the 30 slots is a matter of timing)
    nodes = Counter(r.headers.get("x-upstream") for r in got)
    assert len(nodes) == 2, f"nginx should spread the burst over both nodes: {nodes}"


def test_1000_concurrent_requests_on_a_key_funded_for_200_never_overdraw(
    cluster: Cluster,
) -> None:
    uid, key = cluster.user(200 * W)
    got = asyncio.run(_burst(cluster.nginx.base_url, key, 1000, "od"))
    ok = [r for r in got if r.status_code == 200]
    codes = Counter((r.status_code, _code(r)) for r in got if r.status_code != 200)
    assert 1 <= len(ok) <= 200, (len(ok), codes)
    # a refusal is "no money" or, rarely under this contention on one balance row, "retry
    # shortly" (503: a worker's lease round trip did not get through in time; seen twice in
    # 1,000 once in CI) — never an answer beyond the balance, checked below
    busy = [r.json()["error"]["message"] for r in got if r.status_code == 503]
    allowed = {(402, "insufficient_quota"), (403, "insufficient_quota")}
    assert set(codes) <= allowed | {(503, "service_unavailable")}, (codes, busy[:3])
    assert len(busy) <= 20, (codes, busy[:3])
    rows = _wait_rows(cluster, uid, len(got))
    assert len([r for r in rows if r["status"] == 200]) == len(ok)
    bal = _settle(cluster, uid)
    assert bal["balance_units"] == 200 * W - len(ok) * W >= 0, bal
    assert _charged(cluster, uid) == len(ok) * W
    # the rest of the money is spendable, one request at a time, to exactly zero
    spent = len(ok)
    with httpx.Client(base_url=cluster.nginx.base_url, timeout=30) as client:
        refusals = 0
        while spent < 200 and refusals < 20:
            r = client.post(
                "/chat/completions", json=BODY, headers={"Authorization": f"Bearer {key}"}
            )
            if r.status_code == 200:
                spent += 1
            else:
                refusals += 1
                time.sleep(2.5)  # an idle lease share comes back after ~2 s
        r = client.post("/chat/completions", json=BODY, headers={"Authorization": f"Bearer {key}"})
        assert r.status_code != 200, "a request beyond the balance was answered"
    assert spent == 200
    assert _settle(cluster, uid)["balance_units"] == 0


def _refused_from(gw: Gateway, key: str, t0: float, until: float) -> float | None:
    """Probe ``gw`` with ``key`` until ``until``; the send time (from ``t0``) of the first
    probe from which on every probe was refused (401), or None."""
    probes: list[tuple[float, int]] = []
    with httpx.Client(base_url=gw.base_url, headers={"Authorization": f"Bearer {key}"}) as c:
        while time.monotonic() < until:
            sent = time.monotonic() - t0
            probes.append((sent, c.get("/models").status_code))
    since = None
    for sent, status in probes:
        if status != 401:
            since = None
        elif since is None:
            since = sent
    return since


def test_an_admin_change_is_seen_by_both_nodes_within_a_second(cluster: Cluster) -> None:
    """A key revoked through node A is refused by every worker of both nodes (probed
    continuously, new connections spread over the workers) within a second."""
    uid, key = cluster.user(10 * W)
    kid = cluster.admin.admin("GET", f"/keys?user_id={uid}")["data"][0]["id"]
    a, b = cluster.nodes
    t0 = time.monotonic()
    until = t0 + 4
    seen: dict[str, float | None] = {}

    def probe(gw: Gateway) -> None:
        seen[gw.base] = _refused_from(gw, key, t0, until)

    threads = [threading.Thread(target=probe, args=(gw,)) for gw in (a, b)]
    for t in threads:
        t.start()
    a.admin("DELETE", f"/keys/{kid}")  # revoked on node A
    done = time.monotonic() - t0  # the change is committed by now
    for t in threads:
        t.join(10)
    print(f"admin call took {done:.3f} s; refused everywhere from (s after sending it): {seen}")
    assert all(v is not None for v in seen.values()), f"not refused everywhere: {seen}"
    assert max(v for v in seen.values() if v is not None) - done < 1.0, (done, seen)


def _load(
    base_url: str,
    key: str,
    tag: str,
    stop: threading.Event,
    answered: list[str],
    failed: Counter[str],
    threads: int = 6,
    phase: list[str] | None = None,
) -> list[threading.Thread]:
    now = phase or [""]

    def loop(n: int) -> None:
        with httpx.Client(
            base_url=base_url, timeout=20, headers={"Authorization": f"Bearer {key}"}
        ) as client:
            i = 0
            while not stop.is_set():
                i += 1
                rid = f"{tag}-{n}-{i}"
                body = {**BODY, "stream": bool(i % 2)}
                try:
                    if body["stream"]:
                        with client.stream(
                            "POST", "/chat/completions", json=body, headers={"x-request-id": rid}
                        ) as r:
                            lines = [x for x in r.iter_lines() if x]
                        done = r.status_code == 200 and lines and lines[-1] == "data: [DONE]"
                    else:
                        r = client.post(
                            "/chat/completions", json=body, headers={"x-request-id": rid}
                        )
                        done = r.status_code == 200 and bool(r.json().get("choices"))
                except httpx.HTTPError as exc:
                    failed[f"{now[0]}{type(exc).__name__}"] += 1
                    continue
                if done:
                    answered.append(rid)
                else:
                    code = "" if r.status_code == 200 or body["stream"] else _code(r)
                    failed[f"{now[0]}{r.status_code} {code}"] += 1

    out = [threading.Thread(target=loop, args=(n,), daemon=True) for n in range(threads)]
    for t in out:
        t.start()
    return out


def _progress(answered: list[str], more: int, timeout: float = 30) -> None:
    """Until ``more`` further requests were answered (the machine may be slow)."""
    want = len(answered) + more
    deadline = time.monotonic() + timeout
    while len(answered) < want and time.monotonic() < deadline:
        time.sleep(0.05)


def _no_record_lost(c: Cluster, uid: int, start_units: int, answered: list[str]) -> None:
    """Every answered request has exactly one log row; the money moved is exactly the sum
    of the rows' costs, and the balance is what it was minus that."""
    deadline = time.monotonic() + 60
    while True:
        rows = _wait_rows(c, uid, len(answered))
        ids = Counter(r["request_id"] for r in rows)
        missing = [rid for rid in answered if ids[rid] == 0]
        if not missing or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert not missing, f"{len(missing)} answered requests have no log row: {missing[:5]}"
    doubled = [rid for rid, n in ids.items() if n > 1]
    assert not doubled, doubled[:5]
    assert all(r["cost_units"] == W for r in rows if r["request_id"] in set(answered))
    bal = _settle(c, uid)
    logged = sum(int(r["cost_units"] or 0) for r in rows)
    assert _charged(c, uid) == logged
    assert bal["balance_units"] == start_units - logged


def test_a_node_killed_mid_load_loses_no_billing_record(cluster: Cluster) -> None:
    start_units = 100_000 * W
    uid, key = cluster.user(start_units)
    stop = threading.Event()
    answered: list[str] = []
    failed: Counter[str] = Counter()
    threads = _load(cluster.nginx.base_url, key, "kill", stop, answered, failed)
    _progress(answered, 20)
    before = len(answered)
    cluster.nodes[0].kill_node()  # the server and both workers, SIGKILL
    _progress(answered, 20)  # nginx sends everything to node 1 meanwhile
    after_kill = len(answered) - before
    cluster.restart_node(0)  # same data directory: its spool is replayed
    _progress(answered, 20)
    stop.set()
    for t in threads:
        t.join(30)
    print(f"answered before the kill {before}, while node 0 was down {after_kill}; {failed}")
    assert before >= 20 and after_kill >= 20, (before, after_kill, failed)
    _no_record_lost(cluster, uid, start_units, answered)


def test_redis_and_postgres_restarted_during_load_lose_no_record(cluster: Cluster) -> None:
    start_units = 100_000 * W
    uid, key = cluster.user(start_units)
    stop = threading.Event()
    answered: list[str] = []
    failed: Counter[str] = Counter()
    phase = ["before: "]
    threads = _load(cluster.nginx.base_url, key, "svc", stop, answered, failed, phase=phase)
    marks = {}
    _progress(answered, 20)
    marks["redis down"] = len(answered)
    cluster.redis.kill()
    phase[0] = "redis down: "
    _progress(answered, 20, timeout=10)  # answered while Redis is down
    cluster.redis.start()
    phase[0] = "redis back: "
    marks["redis up"] = len(answered)
    _progress(answered, 20)
    marks["pg down"] = len(answered)
    cluster.pg.stop()
    phase[0] = "pg down: "
    _progress(answered, 20, timeout=10)  # answered while PostgreSQL is down
    cluster.pg.start()
    phase[0] = "pg back: "
    marks["pg up"] = len(answered)
    _progress(answered, 20)
    stop.set()
    for t in threads:
        t.join(30)
    marks["end"] = len(answered)
    # requests kept being answered through both outages (cached keys, local limits)
    print(f"answered at each step: {marks}; failures: {dict(failed)}")
    assert marks["redis up"] - marks["redis down"] >= 20, (marks, failed)
    assert marks["pg up"] - marks["pg down"] >= 20, (marks, failed)
    assert marks["end"] - marks["pg up"] >= 20, (marks, failed)
    _no_record_lost(cluster, uid, start_units, answered)
