"""Throughput of two relaygate nodes against one, behind Debian's nginx, on PostgreSQL and
Redis (issue 18; docs/benchmarks.md "Scale-out"), and how evenly each node's workers share
the load.

    .venv/bin/python bench/scaleout.py --rounds 4 --seconds 8 [--workers 2]

Each node is ``relaygate serve --workers N`` with its own data directory, sharing one fresh
PostgreSQL database (on the server at RELAYGATE_TEST_PG_DSN, default 127.0.0.1:5432), the
Redis at 127.0.0.1:6379 under a fresh prefix, and one secret key. The upstream is the
benchmark's mock (``bench/mock_upstream.py``); billing is on. Rounds alternate between
nginx → one node and nginx → two nodes (``wrk`` at 64 connections). On a machine whose cores
are already all used by one node, two nodes cannot add throughput: the figure then says
what the extra processes cost, not what a second machine would add.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import uuid
from collections import Counter
from pathlib import Path

import asyncpg

sys.path.insert(0, str(Path(__file__).parent))

import loadgen
import nginx_conf
import systems
from clients import Target

PG = os.environ.get("RELAYGATE_TEST_PG_DSN", "postgresql://postgres@127.0.0.1:5432")


def start_nginx(root: Path, ports: list[int]) -> tuple[subprocess.Popen[bytes], int]:
    port = systems.free_port()
    conf = nginx_conf.write_conf(root, ports, port)
    proc = subprocess.Popen(["nginx", "-p", str(root), "-c", str(conf)])
    return proc, port


async def sql(url: str, query: str) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(url)
    try:
        return list(await conn.fetch(query))
    finally:
        await conn.close()


async def main(rounds: int, seconds: float, workers: int) -> None:
    if shutil.which("nginx") is None:
        raise SystemExit("nginx not found (apt-get install -y nginx)")
    work = Path(tempfile.mkdtemp(prefix="relaygate-scaleout-"))
    db = "rg_bench_" + uuid.uuid4().hex[:8]
    await sql(PG + "/postgres", f'CREATE DATABASE "{db}"')
    db_url = f"{PG}/{db}"
    shared = {
        "RELAYGATE_DATABASE_URL": db_url,
        "RELAYGATE_REDIS_URL": "redis://127.0.0.1:6379/0",
        "RELAYGATE_REDIS_PREFIX": f"bench{uuid.uuid4().hex[:6]}:",
        "RELAYGATE_SECRET_KEY": uuid.uuid4().hex * 2,
    }
    plain_env = systems.child_env

    def cluster_env(extra: dict[str, str] | None = None) -> dict[str, str]:
        return plain_env({**shared, **(extra or {})})

    systems.child_env = cluster_env  # type: ignore[assignment]
    mocks, urls = await systems.start_mocks(work)
    nodes: list[systems.System] = []
    procs: list[subprocess.Popen[bytes]] = []
    try:
        template = systems.setup_relaygate(work, urls)
        for i in range(2):
            nodes.append(
                await systems.start_relaygate(work, template, urls, workers, name=f"node{i}")
            )
        ports = [int(n.urls["fast"].rsplit(":", 1)[1].split("/")[0]) for n in nodes]
        one, one_port = start_nginx(work / "nginx-one", ports[:1])
        two, two_port = start_nginx(work / "nginx-two", ports)
        procs += [one, two]
        await asyncio.sleep(1.0)
        base = nodes[0]

        def target(port: int, stream: bool) -> Target:
            t = base.target("fast", stream)
            return dataclasses.replace(t, url=f"http://127.0.0.1:{port}/v1/chat/completions")

        for port in (one_port, two_port):
            loadgen.run_wrk(target(port, False), 64, 2.0)  # warm up
        results: dict[str, list[float]] = {"one node": [], "two nodes": []}
        for r in range(rounds):
            order = [("one node", one_port), ("two nodes", two_port)]
            if r % 2:
                order.reverse()
            for name, port in order:
                w = loadgen.run_wrk(target(port, False), 64, seconds)
                results[name].append(w.rps)
                print(f"round {r + 1} {name}: {w.rps:.0f} req/s (errors {w.errors})", flush=True)
        for name, values in results.items():
            print(f"{name}: median {statistics.median(values):.0f} req/s over {len(values)}")
        ratio = statistics.median(results["two nodes"]) / statistics.median(results["one node"])
        print(f"two nodes / one node: {ratio:.2f}")
        await asyncio.sleep(2.0)  # the last log batches
        rows = await sql(db_url, "SELECT log_uid FROM request_logs WHERE log_uid IS NOT NULL")
        per_worker = Counter(str(r[0]).rsplit("-", 1)[0] for r in rows)
        total = sum(per_worker.values())
        print(f"requests per worker process ({len(per_worker)} processes, {total} rows):")
        for w, n in sorted(per_worker.items(), key=lambda x: -x[1]):
            print(f"  {w}: {n} ({100 * n / total:.1f} %)")
        print(f"cpu count: {os.cpu_count()}")
    finally:
        systems.child_env = plain_env  # type: ignore[assignment]
        for p in procs:
            p.terminate()
            p.wait(10)
        for n in nodes:
            if n.proc is not None:
                n.proc.stop()
        for m in mocks.values():
            m.stop()
        await sql(PG + "/postgres", f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=4)
    ap.add_argument("--seconds", type=float, default=8.0)
    ap.add_argument("--workers", type=int, default=2)
    a = ap.parse_args()
    asyncio.run(main(a.rounds, a.seconds, a.workers))
