"""The per-request cost of the metrics (docs/metrics.md, docs/benchmarks.md "Metrics"):
``RequestObserver.observe`` for a unary and a streamed request, and the flush that moves
the observations into prometheus_client, in one process and in multiprocess mode
(``serve --workers N``; run again in a child with ``PROMETHEUS_MULTIPROC_DIR`` set, since
prometheus_client picks its value class on import).

    .venv/bin/python bench/metrics_observe.py [--n 50000]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path


async def measure(n: int) -> None:
    from prometheus_client import CollectorRegistry

    from relaygate.catalog import Catalog
    from relaygate.context import RelayContext
    from relaygate.metrics.instruments import Instruments
    from relaygate.metrics.observe import RequestObserver
    from relaygate.providers.base import Target, Usage
    from relaygate.services.admin import AdminService
    from relaygate.storage.crypto import Secrets
    from relaygate.storage.db import create_engine, migrate
    from relaygate.storage.repo import Repository

    work = Path(tempfile.mkdtemp(prefix="relaygate-metrics-bench-"))
    engine = create_engine(f"sqlite+aiosqlite:///{work / 'b.db'}")
    await migrate(engine)
    repo = Repository(engine, Secrets("bench"))
    ch = await AdminService(repo).create_channel(
        {
            "name": "up",
            "provider": "openai_compat",
            "base_url": "http://127.0.0.1:9/v1",
            "keys": ["k"],
            "models": ["gpt-x"],
        }
    )
    catalog = Catalog(repo)
    await catalog.load()
    multi = bool(os.environ.get("PROMETHEUS_MULTIPROC_DIR"))
    obs = RequestObserver(Instruments(None if multi else CollectorRegistry()), catalog, "CNY")
    mode = "multiprocess" if multi else "one process"
    for stream in (False, True):
        ctx = RelayContext("r", "chat")
        ctx.model, ctx.usage, ctx.cost, ctx.stream = "gpt-x", Usage(10, 5, 15), 10, stream
        ctx.target = Target(ch.id, "openai_compat", "openai", "u", "k", "gpt-x")
        ctx.first_byte_at = ctx.started if stream else None
        obs.observe(ctx)
        obs.flush()
        best = flush = float("inf")
        for _ in range(5):
            began = time.perf_counter()
            for _ in range(n):
                obs.observe(ctx)
            best = min(best, (time.perf_counter() - began) / n)
            began = time.perf_counter()
            obs.flush()
            flush = min(flush, time.perf_counter() - began)
        kind = "stream" if stream else "unary"
        print(
            f"{mode:>12} {kind:>6}: observe {best * 1e6:.2f} µs per request, "
            f"flush {flush * 1e6:.0f} µs per tick"
        )
    await engine.dispose()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--n", type=int, default=50_000)
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    a = ap.parse_args()
    asyncio.run(measure(a.n))
    if not a.child:
        with tempfile.TemporaryDirectory() as d:
            env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": d}
            subprocess.run(
                [sys.executable, __file__, "--child", "--n", str(a.n)], env=env, check=True
            )


if __name__ == "__main__":
    main()
