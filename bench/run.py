"""Benchmark runner: direct-to-mock vs relaygate vs LiteLLM Proxy, interleaved, in one run.

It starts the mock upstreams (bench/mock_upstream.py), relaygate (fresh temp data dir, key, channels
pointing at the mocks) and LiteLLM Proxy (its own venv, see bench/litellm_setup.sh) with the same
number of workers, runs every scenario in interleaved rounds (direct, relaygate, LiteLLM, direct,
relaygate, LiteLLM, ...), takes medians over rounds and writes a Markdown report.

    python bench/run.py                          # full run -> docs/benchmarks.md
    python bench/run.py --quick                  # ~1 min CI smoke, no LiteLLM, exit 1 on regression
    python bench/run.py --no-litellm --soak-minutes 0 --out /tmp/b.md

All traffic stays on 127.0.0.1. Every figure that is compared is a ratio or a difference measured
in the same run: absolute times on a shared 2-core machine drift from run to run.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import os
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path

import orjson

import loadgen
from procs import REPO, Proc, log
from report import render
from results import Config, Report
from scenarios import (
    measure_idle,
    sc_gaps,
    sc_latency,
    sc_overload,
    sc_soak,
    sc_streams,
    sc_throughput,
)
from summary import Guard, guard_failures
from systems import (
    System,
    finish_litellm,
    launch_litellm,
    setup_relaygate,
    start_asgi_floor,
    start_mocks,
    start_relaygate,
    warm_up,
)

# ------------------------------------------------------------------------------------------------
# Orchestration
# ------------------------------------------------------------------------------------------------


async def run_all(cfg: Config, workdir: Path) -> Report:
    rep = Report(cfg, dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"))
    rep.extra["loadavg_start"] = os.getloadavg()
    mocks: dict[str, Proc] = {}
    running: list[System] = []
    everything: list[System] = []
    try:
        mocks, mock_urls = await start_mocks(workdir)
        direct = System("direct", dict(mock_urls), {p: "gpt-4o-mini" for p in mock_urls})
        template = await asyncio.to_thread(setup_relaygate, workdir, mock_urls)
        for i, workers in enumerate(cfg.workers):
            first = i == 0
            ll_proc = None
            if cfg.litellm:
                ll_proc, ll_port = launch_litellm(workdir, mock_urls, workers)
            try:
                if first:
                    # the overload instance (own in-flight bound) starts alongside; it idles
                    relay, ov = await asyncio.gather(
                        start_relaygate(workdir, template, mock_urls, workers),
                        start_relaygate(
                            workdir,
                            template,
                            mock_urls,
                            workers,
                            "relaygate-overload",
                            cfg.overload_inflight,
                        ),
                    )
                    running.append(ov)
                else:
                    relay = await start_relaygate(workdir, template, mock_urls, workers)
                running.append(relay)
                lite = None
                if ll_proc is not None:
                    lite = await finish_litellm(ll_proc, ll_port, workdir, mock_urls, workers)
                    running.append(lite)
            except BaseException:
                if ll_proc is not None:
                    ll_proc.stop()
                raise
            gateways = [x for x in (relay, lite) if x is not None]
            everything += gateways + ([ov] if first else [])
            systems = [direct, *gateways]
            log("warming up")
            for s in systems:
                await warm_up(
                    s, 5.0 if s.name == "litellm" else (0.5 if cfg.quick else 1.0), cfg.client
                )
            await measure_idle(rep, gateways, f"idle_w{workers}")
            if first and cfg.soak_minutes > 0:
                await sc_soak(rep, gateways)
            if first:
                await sc_latency(rep, systems)
                if not cfg.quick:  # the quick run's streams scenario reports gaps too
                    await sc_gaps(rep, systems)
            floor = await start_asgi_floor(workdir, workers)  # reference, throughput only
            try:
                await warm_up(floor, 0.5, cfg.client)
                await sc_throughput(rep, [*systems, floor], workers)
            finally:
                if floor.proc is not None:
                    floor.proc.stop()
            if first:
                await sc_streams(rep, systems)
                try:
                    await warm_up(ov, 0.5, cfg.client)
                    await sc_overload(rep, direct, ov, lite)
                finally:
                    if ov.proc is not None:
                        ov.proc.stop()
                    running.remove(ov)
            for s in gateways:
                if s.proc is not None:
                    s.proc.stop()
                running.remove(s)
    finally:
        for s in running:
            if s.proc is not None:
                s.proc.stop()
        for p in mocks.values():
            p.stop()
    rep.extra["loadavg_end"] = os.getloadavg()
    crashes: dict[str, int] = {}
    for x in everything:
        crashes[x.name] = crashes.get(x.name, 0) + x.crashes
    rep.extra["crashes"] = crashes
    return rep


# ------------------------------------------------------------------------------------------------
# CLI
# ------------------------------------------------------------------------------------------------


def _raise_nofile() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = hard if hard != resource.RLIM_INFINITY else 65536
    if soft < want:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))


#: sections of the report from this line on were written by other scripts (bench/hedging.py):
#: a new run keeps them
KEEP_MARKER = "<!-- sections below are kept by bench/run.py -->"


def kept_sections(path: Path) -> str:
    """The part of an existing report from ``KEEP_MARKER`` on ("" when there is none)."""
    try:
        old = path.read_text()
    except OSError:
        return ""
    at = old.find(KEEP_MARKER)
    return "\n" + old[at:] if at >= 0 else ""


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    p = argparse.ArgumentParser(description="relaygate benchmark runner")
    p.add_argument(
        "--quick",
        action="store_true",
        help="~1 min smoke without LiteLLM; exit 1 if ratios vs direct regress",
    )
    p.add_argument("--no-litellm", action="store_true")
    p.add_argument(
        "--soak-minutes",
        type=float,
        default=None,
        help="soak length per gateway (default 2; 0 in --quick)",
    )
    p.add_argument(
        "--out",
        default=None,
        help="report path (default docs/benchmarks.md; --quick: none unless given)",
    )
    p.add_argument("--json", default=None, help="also write raw results as JSON here")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument(
        "--seconds",
        type=float,
        default=None,
        help="seconds per measurement (default 4; 1 in --quick)",
    )
    p.add_argument("--connections", type=int, default=64, help="wrk connections (throughput)")
    p.add_argument(
        "--streams",
        type=int,
        default=None,
        help="concurrent paced streams (default 512; 64 in --quick)",
    )
    p.add_argument("--workers", default=None, help="worker counts, default '1,2' ('1' in --quick)")
    p.add_argument(
        "--overload-inflight",
        type=int,
        default=32,
        help="RELAYGATE_MAX_INFLIGHT for the overload instance",
    )
    p.add_argument(
        "--min-rps-vs-direct",
        type=float,
        default=0.015,
        help="--quick guard: relaygate throughput / direct throughput",
    )
    p.add_argument("--max-added-p50-ms", type=float, default=5.0, help="--quick guard")
    p.add_argument("--max-added-ttft-ms", type=float, default=5.0, help="--quick guard")
    p.add_argument("--min-admitted-success", type=float, default=0.99, help="--quick guard")
    p.add_argument(
        "--client",
        choices=("raw", "aiohttp"),
        default="raw",
        help="load generator client for everything but wrk",
    )
    p.add_argument("--keep-logs", action="store_true", help="keep the temp dir with server logs")
    p.add_argument(
        "--from-json",
        default=None,
        help="do not run anything: re-render the report from a --json file",
    )
    a = p.parse_args(argv)
    if a.from_json:
        raw = orjson.loads(Path(a.from_json).read_bytes())
        saved = Report(
            Config(**raw["config"]),
            raw.get("started", "?"),
            raw["data"],
            raw["extra"],
            raw.get("notes", []),
        )
        text = render(saved, raw.get("argv", argv))
        if a.out:
            Path(a.out).parent.mkdir(parents=True, exist_ok=True)
            Path(a.out).write_text(text)
        else:
            print(text)
        return 0

    quick = a.quick
    cfg = Config(
        quick=quick,
        rounds=max(1, a.rounds),
        seconds=a.seconds if a.seconds is not None else (1.0 if quick else 4.0),
        connections=a.connections,
        streams=a.streams if a.streams is not None else (64 if quick else 512),
        overload_inflight=a.overload_inflight,
        soak_minutes=a.soak_minutes if a.soak_minutes is not None else (0.0 if quick else 2.0),
        workers=[int(x) for x in (a.workers or ("1" if quick else "1,2")).split(",")],
        litellm=not (quick or a.no_litellm),
        client=a.client,
    )
    out = a.out if a.out is not None else (None if quick else str(REPO / "docs/benchmarks.md"))
    _raise_nofile()
    try:
        import uvloop

        uvloop.install()
    except ImportError:  # pragma: no cover
        pass
    if not loadgen.wrk_available():
        log("wrk not found: throughput uses the aiohttp client (apt-get install -y wrk)")
    workdir = Path(tempfile.mkdtemp(prefix="relaygate-bench-"))
    log(f"logs in {workdir}")
    t0 = time.monotonic()
    try:
        rep = asyncio.run(run_all(cfg, workdir))
    except Exception:
        log(f"benchmark failed; server logs kept in {workdir}")
        raise
    log(f"done in {time.monotonic() - t0:.0f}s")
    text = render(rep, argv)
    if out:
        Path(out).parent.mkdir(parents=True, exist_ok=True)
        Path(out).write_text(text + kept_sections(Path(out)))
        log(f"wrote {out}")
    else:
        print(text)
    if a.json:
        Path(a.json).parent.mkdir(parents=True, exist_ok=True)
        Path(a.json).write_bytes(
            orjson.dumps(
                {
                    "config": vars(cfg),
                    "data": rep.data,
                    "extra": rep.extra,
                    "notes": rep.notes,
                    "started": rep.started,
                    "argv": argv,
                },
                option=orjson.OPT_INDENT_2,
            )
        )
    if not a.keep_logs:
        shutil.rmtree(workdir, ignore_errors=True)
    if quick:
        fails = guard_failures(
            rep,
            Guard(
                a.min_rps_vs_direct, a.max_added_p50_ms, a.max_added_ttft_ms, a.min_admitted_success
            ),
        )
        if fails:
            log("benchmark smoke FAILED: " + "; ".join(fails))
            return 1
        log("benchmark smoke passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
