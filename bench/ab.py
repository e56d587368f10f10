"""A/B of the request path: relaygate at an older revision against the working tree,
in alternating ``wrk`` rounds on one worker (docs/performance.md).

    git worktree add /tmp/old <revision>
    .venv/bin/python bench/ab.py --old-src /tmp/old/src --rounds 6 [--stream]

Both instances serve the benchmark's single-channel model (``bench/systems.py``) from
their own data directory; the older one imports relaygate from ``--old-src`` through
``PYTHONPATH``. Prints each round and the medians: throughput at 64 connections and p50
latency at one connection.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

import loadgen
import systems


async def main(old_src: str, rounds: int, seconds: float, stream: bool = False) -> None:
    work = Path(tempfile.mkdtemp(prefix="relaygate-ab-"))
    mocks, urls = await systems.start_mocks(work)
    new_template = systems.setup_relaygate(work, urls)
    plain_env = systems.child_env

    def old_env(extra: dict[str, str] | None = None) -> dict[str, str]:
        env = plain_env(extra)
        env["PYTHONPATH"] = old_src
        return env

    systems.child_env = old_env  # type: ignore[assignment]
    try:
        old_template = systems.setup_relaygate(work, urls)
        old = await systems.start_relaygate(work, old_template, urls, 1, name="old")
    finally:
        systems.child_env = plain_env  # type: ignore[assignment]
    new = await systems.start_relaygate(work, new_template, urls, 1, name="new")
    rps: dict[str, list[float]] = {"old": [], "new": []}
    p50: dict[str, list[float]] = {"old": [], "new": []}
    try:
        for s in (old, new):
            loadgen.run_wrk(s.target("fast", stream), 64, 2.0)  # warm up
        for r in range(rounds):
            pair = (("old", old), ("new", new)) if r % 2 == 0 else (("new", new), ("old", old))
            for name, s in pair:
                w = loadgen.run_wrk(s.target("fast", stream), 64, seconds)
                one = loadgen.run_wrk(s.target("fast", stream), 1, seconds / 2)
                rps[name].append(w.rps)
                p50[name].append(one.p50_ms)
                print(
                    f"round {r + 1} {name}: {w.rps:.0f} req/s (non-2xx {w.non2xx}), "
                    f"p50 at c=1 {one.p50_ms:.3f} ms",
                    flush=True,
                )
    finally:
        for proc in (old.proc, new.proc, *mocks.values()):
            if proc is not None:
                proc.stop()
    for name in ("old", "new"):
        print(
            f"{name}: median {statistics.median(rps[name]):.0f} req/s, "
            f"p50 at c=1 {statistics.median(p50[name]):.3f} ms"
        )
    print(
        f"new/old throughput: {statistics.median(rps['new']) / statistics.median(rps['old']):.3f}"
    )


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--old-src", required=True, help="the older revision's src/ directory")
    ap.add_argument("--rounds", type=int, default=6)
    ap.add_argument("--seconds", type=float, default=5.0)
    ap.add_argument("--stream", action="store_true", help="streamed chat instead of unary")
    a = ap.parse_args()
    asyncio.run(main(a.old_src, a.rounds, a.seconds, a.stream))
