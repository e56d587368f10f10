"""The benchmark's paced-streams scenario alone, for an A/B of two revisions or a profile
(docs/performance.md, "Paced streams: where the per-chunk CPU went").

    git worktree add /tmp/old_ab <revision>
    .venv/bin/python bench/paced_ab.py --old-src /tmp/old_ab/src --rounds 6 [--direct]
    .venv/bin/python bench/paced_ab.py --profile /tmp/paced.txt --rounds 0   # py-spy

N concurrent closed-loop streams (512 by default) of the ``paced`` mock (50 chunks, 20 ms
apart: 25,600 chunks/s at 512 streams) through one relaygate worker for ``--seconds``
(4 s, as ``bench/run.py``), alternating old and new (and direct-to-mock with ``--direct``)
each round. Per round: streams completed, stalled (gap > 200 ms, error or cut), TTFT p99,
the server's CPU per completed stream, user and system (``/proc``; for direct, the
mock's) and the load average. ``--priced`` serves the paced mock as the catalogue-priced
``gpt-4o-mini``, so every chunk also gets a provisional billing row (the benchmark's paced
model has no price). With ``--profile`` one worker (``--profile-which``) is sampled by
``py-spy record --gil --format raw`` during one extra round and the hottest lines and
functions printed (``--top``; ``--native`` adds C frames).
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import os
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))

import loadgen
import systems
from procs import log, tree_pids

STALL_MS = 200.0
_TCK = os.sysconf("SC_CLK_TCK")


def cpu_split(pid: int) -> tuple[float, float]:
    """(user, system) CPU seconds of a process tree (``/proc/<pid>/stat``)."""
    user = system = 0
    for p in tree_pids(pid):
        try:
            with open(f"/proc/{p}/stat", "rb") as fh:
                rest = fh.read().rsplit(b")", 1)[1].split()
            user += int(rest[11])
            system += int(rest[12])
        except (OSError, IndexError, ValueError):
            continue
    return user / _TCK, system / _TCK


async def one_round(
    s: systems.System, streams: int, seconds: float, mock_pid: int = 0
) -> dict[str, Any]:
    timeout = seconds + 30.0
    client = loadgen.make_client("raw", streams, timeout)
    pid = s.proc.pid if s.proc is not None else mock_pid  # direct: the paced mock's CPU
    user0, sys0 = cpu_split(pid)
    try:
        res = await loadgen.closed_loop(
            s.target("paced", stream=True, timeout_s=timeout), streams, seconds, client=client
        )
    finally:
        await client.close()
    user1, sys1 = cpu_split(pid)
    user, system = user1 - user0, sys1 - sys0
    stalled = sum(
        1 for x in res.samples if x.status != 200 or not x.complete or x.max_gap_ms > STALL_MS
    )
    return {
        "completed": res.ok,
        "stalled": stalled,
        "ttft_p99": loadgen.percentile(res.ttfts(), 99),
        "statuses": res.statuses(),
        "slow_gaps": sum(1 for x in res.samples if x.max_gap_ms > STALL_MS),
        "cpu_ms_per_stream": 1000.0 * (user + system) / res.ok if res.ok else float("nan"),
        "user_ms_per_stream": 1000.0 * user / res.ok if res.ok else float("nan"),
    }


def load_average() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def top_functions(raw: Path, top: int) -> str:
    """Self (per line) and inclusive (per function) sample shares from py-spy's collapsed
    stacks."""
    own: collections.Counter[str] = collections.Counter()
    incl: collections.Counter[str] = collections.Counter()
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, n = line.rpartition(" ")
        if not stack:
            continue
        k = int(n)
        frames = stack.split(";")
        total += k
        own[frames[-1]] += k
        for f in {re.sub(r":\d+\)$", ")", f) for f in frames}:
            incl[f] += k
    if not total:
        return "no samples"
    out = [f"{total} samples", "self %  line"]
    out += [f"{100 * k / total:5.1f}  {f}" for f, k in own.most_common(top)]
    out += ["", "inclusive %  function"]
    out += [f"{100 * k / total:5.1f}  {f}" for f, k in incl.most_common(top)]
    return "\n".join(out)


async def main(a: argparse.Namespace) -> None:
    if a.priced:  # the paced mock behind the catalogue-priced model: provisional rows per chunk
        systems.MODELS.update(fast="gpt-4o-mini-fast", paced="gpt-4o-mini")
    work = Path(tempfile.mkdtemp(prefix="relaygate-paced-ab-"))
    mocks, urls = await systems.start_mocks(work)
    new_template = systems.setup_relaygate(work, urls)
    plain_env = systems.child_env
    gateways: dict[str, systems.System] = {}
    if a.old_src:

        def old_env(extra: dict[str, str] | None = None) -> dict[str, str]:
            env = plain_env(extra)
            env["PYTHONPATH"] = a.old_src
            return env

        systems.child_env = old_env  # type: ignore[assignment]
        try:
            old_template = systems.setup_relaygate(work, urls)
            gateways["old"] = await systems.start_relaygate(work, old_template, urls, 1, name="old")
        finally:
            systems.child_env = plain_env  # type: ignore[assignment]
    gateways["new"] = await systems.start_relaygate(work, new_template, urls, 1, name="new")
    if a.direct:
        gateways["direct"] = systems.System("direct", dict(urls), dict(systems.MODELS))
    results: dict[str, list[dict[str, Any]]] = {k: [] for k in gateways}
    try:
        for s in gateways.values():
            await systems.warm_up(s, 1.0, "raw")
        if a.profile:
            s = gateways[a.profile_which]
            assert s.proc is not None
            out = Path(a.profile)
            spy = await asyncio.create_subprocess_exec(
                *[
                    str(Path(sys.executable).parent / "py-spy"),
                    "record",
                    "--pid",
                    str(s.proc.pid),
                    "--subprocesses",
                    "--gil",  # only the thread holding the GIL: CPU, not waiting threads
                    *(["--native"] if a.native else []),
                    "--format",
                    "raw",
                    "--rate",
                    str(a.rate),
                    "--duration",
                    str(int(a.seconds + 1)),
                    "-o",
                    str(out),
                ],
                stdout=asyncio.subprocess.DEVNULL,
                stderr=asyncio.subprocess.DEVNULL,
            )
            r = await one_round(s, a.streams, a.seconds)
            await asyncio.wait_for(spy.wait(), 60)
            print(f"profiled round: {r}, load average {load_average()}")
            print(top_functions(out, a.top))
            if a.rounds == 0:
                return
        names = list(gateways)
        for rnd in range(a.rounds):
            order = names if rnd % 2 == 0 else names[::-1]
            for name in order:
                s = gateways[name]
                await s.quiesce()
                r = await one_round(s, a.streams, a.seconds, mocks["paced"].pid)
                results[name].append(r)
                print(
                    f"round {rnd + 1} {name}: {r['completed']} completed, {r['stalled']} stalled, "
                    f"TTFT p99 {r['ttft_p99']:.0f} ms, {r['cpu_ms_per_stream']:.2f} ms CPU "
                    f"per stream ({r['user_ms_per_stream']:.2f} user), "
                    f"load average {load_average()}",
                    flush=True,
                )
                if r["stalled"]:
                    print(f"  stalled: {r['slow_gaps']} by a gap, statuses {r['statuses']}")
    finally:
        for proc in (*(g.proc for g in gateways.values()), *mocks.values()):
            if proc is not None:
                proc.stop()
    for name, rs in results.items():
        if not rs:
            continue
        done = [r["completed"] for r in rs]
        cpu = [r["cpu_ms_per_stream"] for r in rs]
        user = [r["user_ms_per_stream"] for r in rs]
        print(
            f"{name}: completed per round median {statistics.median(done):.0f} "
            f"(min {min(done)}, max {max(done)}), CPU per stream median "
            f"{statistics.median(cpu):.2f} ms ({statistics.median(user):.2f} user), "
            f"stalled total {sum(r['stalled'] for r in rs)}"
        )
    if "old" in results and results["old"] and results["new"]:
        ratio = statistics.median(r["completed"] for r in results["new"]) / statistics.median(
            r["completed"] for r in results["old"]
        )
        print(f"new/old completed: {ratio:.3f}")
    log(f"done at {time.strftime('%H:%M:%S')}")


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--old-src", help="the older revision's src/ directory (omit: new only)")
    ap.add_argument("--rounds", type=int, default=6)
    ap.add_argument("--streams", type=int, default=512)
    ap.add_argument("--seconds", type=float, default=4.0)
    ap.add_argument("--profile", help="py-spy raw output path: profile one extra round of new")
    ap.add_argument(
        "--direct", action="store_true", help="also a direct-to-mock round (CPU: the mock's)"
    )
    ap.add_argument("--profile-which", choices=["new", "old"], default="new")
    ap.add_argument("--rate", type=int, default=250, help="py-spy samples per second")
    ap.add_argument("--top", type=int, default=30)
    ap.add_argument(
        "--priced",
        action="store_true",
        help="serve the paced mock as gpt-4o-mini (priced: billing progress and spool per chunk)",
    )
    ap.add_argument("--native", action="store_true", help="py-spy --native (C frames too)")
    args = ap.parse_args()
    if args.profile and not (Path(sys.executable).parent / "py-spy").exists():
        ap.error("--profile needs py-spy in this environment: .venv/bin/pip install py-spy")
    asyncio.run(main(args))
