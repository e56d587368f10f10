"""The measurement scenarios: added latency, TTFT, chunk gaps, throughput, concurrent streams,
overload, soak and idle memory.

Each runs its systems in interleaved rounds and adds one row per system and round to the
``Report``; a server that dies during a measurement is restarted and the measurement repeated.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import loadgen
from loadgen import Result, Sample, percentile
from procs import log, tree_pids
from results import Report
from systems import PACED_CHUNKS, PACED_INTERVAL_MS, SLOW_LATENCY_MS, System

STALL_FACTOR = 10.0  # a gap above STALL_FACTOR x the pacing interval is a stall


async def settle(system: System, seconds: float = 0.2) -> None:
    """Let the system finish left-over work before the next measurement starts."""
    await system.quiesce()
    await asyncio.sleep(seconds)


async def measured(
    rep: Report, s: System, where: str, fn: Callable[[], Awaitable[dict[str, Any]]]
) -> dict[str, Any]:
    """Run one measurement; if the server died meanwhile, restart it and measure once more.
    Then wait until the server is idle again."""
    row = await fn()
    if await s.revive(rep.notes, where):
        row = await fn()
        if await s.revive(rep.notes, where):
            row["crashed"] = 1
    await settle(s)
    return row


def interleaved(systems: list[System], rounds: int) -> Iterator[tuple[int, System]]:
    for r in range(rounds):
        for s in systems:
            yield r, s


def lat_summary(res: Result) -> dict[str, Any]:
    lat = res.latencies()
    return {
        "requests": res.count,
        "ok": res.ok,
        "errors": res.errors,
        "rps": res.rps,
        "p50": percentile(lat, 50),
        "p90": percentile(lat, 90),
        "p99": percentile(lat, 99),
        "statuses": res.statuses(),
    }


async def sc_latency(rep: Report, systems: list[System]) -> None:
    cfg = rep.cfg
    log("scenario: added latency, concurrency 1, non-stream")
    for r, s in interleaved(systems, cfg.rounds):

        async def one(s: System = s) -> dict[str, Any]:
            res = await loadgen.closed_loop(
                s.target("fast"), 1, cfg.seconds, warmup_s=0.2, kind=cfg.client
            )
            return lat_summary(res)

        rep.add("latency", s.name, await measured(rep, s, "latency", one) | {"round": r})
    log("scenario: streaming time-to-first-token, concurrency 1")
    for r, s in interleaved(systems, cfg.rounds):

        async def one_stream(s: System = s) -> dict[str, Any]:
            res = await loadgen.closed_loop(
                s.target("fast", stream=True), 1, cfg.seconds, 0.2, kind=cfg.client
            )
            ttft = res.ttfts()
            return lat_summary(res) | {
                "ttft_p50": percentile(ttft, 50),
                "ttft_p99": percentile(ttft, 99),
            }

        rep.add("ttft", s.name, await measured(rep, s, "ttft", one_stream) | {"round": r})


async def sc_gaps(rep: Report, systems: list[System]) -> None:
    cfg = rep.cfg
    log(f"scenario: gaps between chunks ({PACED_INTERVAL_MS:.0f} ms pacing), concurrency 4")
    for r, s in interleaved(systems, cfg.rounds):

        async def one(s: System = s) -> dict[str, Any]:
            res = await loadgen.closed_loop(
                s.target("paced", stream=True), 4, max(cfg.seconds, 1.5), kind=cfg.client
            )
            g = res.gaps_ms
            return lat_summary(res) | {
                "gap_p50": percentile(g, 50),
                "gap_p99": percentile(g, 99),
                "gap_max": max(g) if g else math.nan,
            }

        rep.add("gaps", s.name, await measured(rep, s, "gaps", one) | {"round": r})


async def sc_throughput(rep: Report, systems: list[System], workers: int) -> None:
    cfg = rep.cfg
    key = f"throughput_w{workers}"
    log(f"scenario: throughput, {workers} worker(s), wrk -c{cfg.connections}")
    dur = max(2.0 if cfg.quick else 5.0, cfg.seconds)
    for r, s in interleaved(systems, cfg.rounds):

        async def one(s: System = s) -> dict[str, Any]:
            tgt = s.target("fast", timeout_s=10)
            if loadgen.wrk_available():
                w = await asyncio.to_thread(loadgen.run_wrk, tgt, cfg.connections, dur, 1, 10.0)
                return {
                    "rps": w.rps,
                    "p50": w.p50_ms,
                    "p99": w.p99_ms,
                    "errors": w.errors,
                    "requests": w.requests,
                    "tool": "wrk",
                }
            res = await loadgen.closed_loop(tgt, cfg.connections, dur, kind=cfg.client)
            return lat_summary(res) | {"tool": cfg.client}

        rep.add(key, s.name, await measured(rep, s, key, one) | {"round": r})


async def _sample_rss(
    system: System, every_s: float, out: list[tuple[float, float]], stop: asyncio.Event
) -> None:
    t0 = time.monotonic()
    while not stop.is_set():
        out.append((time.monotonic() - t0, system.rss()))
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(stop.wait(), every_s)


async def sc_streams(rep: Report, systems: list[System]) -> None:
    cfg = rep.cfg
    n = cfg.streams
    stream_s = PACED_CHUNKS * PACED_INTERVAL_MS / 1000.0
    dur = max(cfg.seconds, (1.5 if cfg.quick else 2.5) * stream_s)
    stall_ms = STALL_FACTOR * PACED_INTERVAL_MS
    log(f"scenario: {n} concurrent paced streams for {dur:.1f}s")
    for r, s in interleaved(systems, cfg.rounds):

        async def one(s: System = s) -> dict[str, Any]:
            samples: list[tuple[float, float]] = []
            stop = asyncio.Event()
            sampler = asyncio.create_task(_sample_rss(s, 0.25, samples, stop))
            # a stream not done 30 s after the window closes counts as failed (bounds slow ones)
            timeout = dur + 30.0
            client = loadgen.make_client(cfg.client, n, timeout)
            try:
                res = await loadgen.closed_loop(
                    s.target("paced", stream=True, timeout_s=timeout), n, dur, client=client
                )
            finally:
                stop.set()
                await sampler
                await client.close()
            stalled = sum(
                1
                for x in res.samples
                if x.status != 200 or not x.complete or x.max_gap_ms > stall_ms
            )
            g = res.gaps_ms
            peak = max((m for _, m in samples if not math.isnan(m)), default=math.nan)
            return {
                "streams": res.count,
                "ok": res.ok,
                "stalled": stalled,
                "errors": res.errors,
                "statuses": res.statuses(),
                "gap_p50": percentile(g, 50),
                "gap_p99": percentile(g, 99),
                "gap_max": max(g) if g else math.nan,
                "ttft_p99": percentile(res.ttfts(), 99),
                "rss_peak": peak,
            }

        rep.add("streams", s.name, await measured(rep, s, "streams", one) | {"round": r})


def _is_shed(x: Sample) -> bool:
    return x.status in (429, 503)


async def sc_overload(
    rep: Report, direct: System, relay: System | None, lite: System | None
) -> None:
    cfg = rep.cfg
    cap = relay.workers * cfg.overload_inflight / (SLOW_LATENCY_MS / 1000.0) if relay else 0.0
    rg_cpu = rep.med("throughput_w1", "relaygate", "rps")
    if not math.isnan(rg_cpu):
        cap = min(cap, rg_cpu)
    ll_cap = rep.med("throughput_w1", "litellm", "rps")
    rates: dict[str, float] = {"direct": 2 * cap, "relaygate": 2 * cap}
    if lite is not None:
        rates["litellm"] = 2 * (ll_cap if not math.isnan(ll_cap) else 50.0)
    dur = max(2.0, cfg.seconds)
    ok_ms = SLOW_LATENCY_MS * 1.5 + 20.0
    rep.extra["overload"] = {
        "capacity_rps": cap,
        "rates": rates,
        "max_inflight": cfg.overload_inflight,
        "latency_ms": SLOW_LATENCY_MS,
    }
    log(f"scenario: overload at 2x capacity ({rates}) for {dur:.0f}s")
    systems = [x for x in (direct, relay, lite) if x is not None]
    for r, s in interleaved(systems, cfg.rounds):

        async def one(s: System = s) -> dict[str, Any]:
            tgt = s.target("slow", timeout_s=20)
            recovery: list[float] = []

            async def probe() -> None:
                recovery.append(
                    await loadgen.probe_recovery(tgt, ok_ms, limit_s=30, kind=cfg.client)
                )

            res = await loadgen.open_loop(
                tgt, rates[s.name], dur, on_schedule_end=probe, kind=cfg.client
            )
            shed = [x for x in res.samples if _is_shed(x)]
            admitted = [x for x in res.samples if not _is_shed(x)]
            adm_ok = [x for x in admitted if x.status == 200 and x.complete]
            return {
                "offered_rps": rates[s.name],
                "requests": res.count,
                "admitted": len(admitted),
                "admitted_ok": len(adm_ok),
                "admitted_success": len(adm_ok) / len(admitted) if admitted else math.nan,
                "shed": len(shed),
                "shed_frac": len(shed) / res.count if res.count else math.nan,
                "shed_p50": percentile([x.service_ms for x in shed], 50),
                "shed_p99": percentile([x.service_ms for x in shed], 99),
                "admitted_p50": percentile([x.latency_ms for x in adm_ok], 50),
                "admitted_p99": percentile([x.latency_ms for x in adm_ok], 99),
                "admitted_service_p50": percentile([x.service_ms for x in adm_ok], 50),
                "recovery_ms": recovery[0] if recovery else math.nan,
                "send_lag_p99": percentile([x.send_lag_ms for x in res.samples], 99),
                "statuses": res.statuses(),
                "client_dropped": res.client_dropped,
            }

        rep.add("overload", s.name, await measured(rep, s, "overload", one) | {"round": r})


def _slope_mb_per_min(samples: list[tuple[float, float]]) -> float:
    pts = [(t, m) for t, m in samples if not math.isnan(m)]
    if len(pts) < 3:
        return math.nan
    n = len(pts)
    mt = sum(t for t, _ in pts) / n
    mm = sum(m for _, m in pts) / n
    var = sum((t - mt) ** 2 for t, _ in pts)
    if var == 0:
        return math.nan
    cov = sum((t - mt) * (m - mm) for t, m in pts)
    return cov / var * 60.0


async def sc_soak(rep: Report, systems: list[System]) -> None:
    cfg = rep.cfg
    dur = cfg.soak_minutes * 60.0
    every = max(1.0, min(10.0, dur / 60.0))
    for s in systems:
        if s.proc is None:
            continue
        log(f"scenario: soak {s.name} for {cfg.soak_minutes:g} min (8 non-stream + 8 stream)")

        async def one(s: System = s) -> dict[str, Any]:
            samples: list[tuple[float, float]] = []
            stop = asyncio.Event()
            sampler = asyncio.create_task(_sample_rss(s, every, samples, stop))
            try:
                a, b = await asyncio.gather(
                    loadgen.closed_loop(s.target("fast"), 8, dur, kind=cfg.client),
                    loadgen.closed_loop(s.target("fast", stream=True), 8, dur, kind=cfg.client),
                )
            finally:
                stop.set()
                await sampler
            second_half = [(t, m) for t, m in samples if t >= dur / 2]
            vals = [m for _, m in samples if not math.isnan(m)]
            return {
                "minutes": cfg.soak_minutes,
                "requests": a.count + b.count,
                "errors": a.errors + b.errors,
                "rps": a.rps + b.rps,
                "rss_start": vals[0] if vals else math.nan,
                "rss_end": vals[-1] if vals else math.nan,
                "rss_peak": max(vals) if vals else math.nan,
                "slope_all": _slope_mb_per_min(samples),
                "slope_2nd_half": _slope_mb_per_min(second_half),
                "samples": [(round(t, 1), round(m, 2)) for t, m in samples],
            }

        rep.add("soak", s.name, await measured(rep, s, "soak", one) | {"round": 0})


async def measure_idle(rep: Report, systems: list[System], key: str) -> None:
    await asyncio.sleep(2.0)
    for s in systems:
        if s.proc is not None:
            rep.add(key, s.name, {"round": 0, "rss": s.rss(), "procs": len(tree_pids(s.proc.pid))})
