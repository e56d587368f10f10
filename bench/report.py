"""Rendering ``docs/benchmarks.md``: summary, notes, per-round detail tables, method, machine
facts and how to reproduce.
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import math
import os
import platform
import shutil
import subprocess

from results import Config, Report, num
from scenarios import STALL_FACTOR
from summary import Row, f, pct, ratio, summary_rows
from systems import LITELLM_VERSION, PACED_CHUNKS, PACED_INTERVAL_MS, SLOW_LATENCY_MS, litellm_venv


def met(ok: bool | None) -> str:
    return "—" if ok is None else ("yes" if ok else "**no**")


def md_table(headers: list[str], rows: list[list[str]]) -> str:
    out = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    out += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(out)


def detail_tables(rep: Report) -> list[str]:
    parts: list[str] = []
    specs: list[tuple[str, str, list[tuple[str, str, int]]]] = [
        (
            "latency",
            "Latency, concurrency 1, non-stream (ms)",
            [("p50", "p50", 3), ("p99", "p99", 3), ("rps", "req/s", 0), ("errors", "errors", 0)],
        ),
        (
            "ttft",
            "Streaming time-to-first-token, concurrency 1 (ms; 10-chunk streams)",
            [
                ("ttft_p50", "TTFT p50", 3),
                ("ttft_p99", "TTFT p99", 3),
                ("p50", "total p50", 3),
                ("errors", "errors", 0),
            ],
        ),
        (
            "gaps",
            f"Gaps between chunks, {PACED_INTERVAL_MS:.0f} ms pacing, 4 streams (ms)",
            [
                ("gap_p50", "gap p50", 2),
                ("gap_p99", "gap p99", 2),
                ("gap_max", "gap max", 2),
                ("errors", "errors", 0),
            ],
        ),
        *[
            (
                f"throughput_w{w}",
                f"Throughput, {w} worker(s), closed loop {rep.cfg.connections} connections",
                [
                    ("rps", "req/s", 0),
                    ("p50", "p50 ms", 2),
                    ("p99", "p99 ms", 2),
                    ("errors", "errors", 0),
                ],
            )
            for w in rep.cfg.workers
        ],
        (
            "streams",
            f"{rep.cfg.streams} concurrent streams, {PACED_CHUNKS} chunks at "
            f"{PACED_INTERVAL_MS:.0f} ms (stall: gap > "
            f"{STALL_FACTOR * PACED_INTERVAL_MS:.0f} ms, error or cut)",
            [
                ("streams", "streams", 0),
                ("stalled", "stalled/failed", 0),
                ("gap_p99", "gap p99", 2),
                ("gap_max", "gap max", 1),
                ("ttft_p99", "TTFT p99", 1),
                ("rss_peak", "RSS peak MiB", 1),
            ],
        ),
        (
            "overload",
            f"Overload (open loop, 2× capacity, upstream latency {SLOW_LATENCY_MS:.0f} ms)",
            [
                ("offered_rps", "offered/s", 0),
                ("requests", "sent", 0),
                ("admitted", "admitted", 0),
                ("admitted_success", "admitted ok", 4),
                ("shed", "shed", 0),
                ("shed_p50", "shed p50 ms", 2),
                ("shed_p99", "shed p99 ms", 2),
                ("admitted_service_p50", "admitted p50 ms", 1),
                ("admitted_p99", "admitted p99 ms", 1),
                ("recovery_ms", "recovery ms", 0),
                ("send_lag_p99", "client lag p99 ms", 2),
            ],
        ),
        (
            "soak",
            f"Soak, {rep.cfg.soak_minutes:g} min, 8 non-stream + 8 stream clients",
            [
                ("requests", "requests", 0),
                ("errors", "errors", 0),
                ("rps", "req/s", 0),
                ("rss_start", "RSS start", 1),
                ("rss_end", "RSS end", 1),
                ("rss_peak", "RSS peak", 1),
                ("slope_all", "MiB/min all", 2),
                ("slope_2nd_half", "MiB/min 2nd half", 2),
            ],
        ),
    ]
    for key, title, cols in specs:
        block = rep.data.get(key)
        if not block:
            continue
        rows: list[list[str]] = []
        for sysname in ("direct", "relaygate", "litellm", "asgi-floor"):
            for r in block.get(sysname, []):
                rows.append(
                    [sysname, str(r.get("round", 0) + 1)]
                    + [f(num(r.get(c)), d) for c, _, d in cols]
                )
        parts.append(
            f"### {title}\n\n" + md_table(["system", "round", *[h for _, h, _ in cols]], rows)
        )
    for w in rep.cfg.workers:
        block = rep.data.get(f"idle_w{w}")
        if block:
            rows = [
                [sysname, f(num(r.get("rss")), 1), str(r.get("procs", "?"))]
                for sysname, rs in block.items()
                for r in rs
            ]
            parts.append(
                f"### RSS idle after warm-up, {w} worker(s)\n\n"
                + md_table(["system", "RSS MiB (process tree)", "processes"], rows)
            )
    return parts


def _pkg_version(name: str) -> str:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return "—"


def machine_facts(cfg: Config) -> list[tuple[str, str]]:
    cpu = "unknown"
    with contextlib.suppress(OSError), open("/proc/cpuinfo") as fh:
        for line in fh:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    mem = "unknown"
    with contextlib.suppress(OSError), open("/proc/meminfo") as fh:
        for line in fh:
            if line.startswith("MemTotal"):
                mem = f"{int(line.split()[1]) / 1024 / 1024:.1f} GiB"
                break
    facts = [
        ("CPUs (nproc)", str(os.cpu_count())),
        ("CPU model", cpu),
        ("memory", mem),
        ("kernel", platform.release()),
        ("python (runner, mock, relaygate)", platform.python_version()),
    ]
    for pkg in ("relaygate", "aiohttp", "orjson", "uvicorn", "uvloop", "httptools"):
        facts.append((pkg, _pkg_version(pkg)))
    if shutil.which("wrk"):
        p = subprocess.run(["wrk", "-v"], capture_output=True, text=True)
        facts.append(
            ("wrk", (p.stdout or p.stderr).splitlines()[0] if (p.stdout or p.stderr) else "?")
        )
    if cfg.litellm:
        py = litellm_venv() / "bin" / "python"
        code = (
            "import importlib.metadata as m, platform; print(platform.python_version()); "
            "[print(m.version(p)) for p in ('litellm','uvicorn','fastapi','httpx')]"
        )
        p = subprocess.run([str(py), "-c", code], capture_output=True, text=True)
        vals = p.stdout.split()
        if len(vals) == 5:
            facts += [
                ("python (LiteLLM venv)", vals[0]),
                ("litellm", vals[1]),
                ("uvicorn (LiteLLM venv)", vals[2]),
                ("fastapi (LiteLLM venv)", vals[3]),
                ("httpx (LiteLLM venv)", vals[4]),
            ]
    return facts


def unmet_targets(rep: Report, rows: list[Row]) -> list[str]:
    """One line per summary row whose target is not met. Throughput gets its limit computed
    from this run (the bare-ASGI floor); the rest point to the hand-written analysis."""
    out: list[str] = []
    for r in rows:
        if r.ok is not False:
            continue
        if r.figure.startswith("throughput "):
            w = int(r.figure.split()[1])
            k = f"throughput_w{w}"
            d, rg = rep.med(k, "direct", "rps"), rep.med(k, "relaygate", "rps")
            fl = rep.med(k, "asgi-floor", "rps")
            text = f"**{r.figure}**: relaygate serves {pct(ratio(rg, d))} of direct-to-mock."
            if not math.isnan(fl):
                text += (
                    f" A bare ASGI app on the same server stack, doing no work at all, serves "
                    f"{pct(ratio(fl, d))} of direct; relaygate serves {pct(ratio(rg, fl))} of that "
                    "floor while doing two HTTP exchanges per request (client and upstream), auth, "
                    f"JSON and logging. 25 % of direct would be {pct(ratio(0.25 * d, fl), 0)} of "
                    f"the floor: a whole relay in {ratio(fl, 0.25 * d):.1f}× the time of a server "
                    "that only answers (decision 0005)."
                )
            out.append(text)
        else:
            out.append(f"**{r.figure}**: see docs/performance.md for what limits it.")
    if out:
        out.append("What would lift each one: docs/performance.md (hand-written).")
    return out


def render(rep: Report, argv: list[str]) -> str:
    cfg = rep.cfg
    rows = summary_rows(rep)
    cmd = "python bench/run.py" + ("".join(f" {a}" for a in argv) if argv else "")
    la0, la1 = rep.extra.get("loadavg_start"), rep.extra.get("loadavg_end")
    out = [
        "# relaygate benchmarks",
        "",
        f"Generated by `{cmd}` on {rep.started}"
        f"{' (quick smoke run)' if cfg.quick else ''}. Do not edit by hand: re-run the command.",
        "",
        "Each figure is the **median of "
        f"{cfg.rounds} interleaved rounds** (direct, relaygate"
        f"{', LiteLLM' if cfg.litellm else ''}, then again), measured in this one run against the "
        'same mock upstream. "Added" is gateway − direct in the same round. Absolute times on a '
        "shared 2-core machine drift between runs; the ratios are the point.",
        "",
        "## Summary",
        "",
        md_table(
            [
                "figure",
                "direct",
                "relaygate",
                "LiteLLM",
                "relaygate vs direct",
                "relaygate vs LiteLLM",
                "target",
                "met?",
            ],
            [
                [
                    r.figure,
                    r.direct,
                    r.relaygate,
                    r.litellm,
                    r.vs_direct,
                    r.vs_litellm,
                    r.target,
                    met(r.ok),
                ]
                for r in rows
            ],
        ),
        "",
    ]
    notes = list(rep.notes)
    for w in cfg.workers:
        d = rep.med(f"throughput_w{w}", "direct", "rps")
        for sysname in ("relaygate", "litellm"):
            g = rep.med(f"throughput_w{w}", sysname, "rps")
            if not math.isnan(g) and not math.isnan(d) and g >= 0.9 * d:
                notes.append(
                    f"throughput {w} worker(s): {sysname} is within 10% of the mock's "
                    "own ceiling: this result is mock-bound."
                )
    if la0 and la1:
        notes.append(
            f"load average at start {la0[0]:.2f}, at end {la1[0]:.2f} (other work on "
            "the machine skews absolute numbers)."
        )
    if rep.errors:
        notes += [f"error: {e}" for e in rep.errors]
    if notes:
        out += ["## Notes", "", *[f"- {n}" for n in notes], ""]
    unmet = unmet_targets(rep, rows)
    if unmet:
        out += ["## Targets not met: what limits them", "", *[f"- {u}" for u in unmet], ""]
    out += ["## Details", ""]
    for part in detail_tables(rep):
        out += [part, ""]
    out += [
        "## Method",
        "",
        "- **Mock upstream** (`bench/mock_upstream.py`): raw asyncio + httptools + uvloop, one "
        "process per profile: `fast` (no latency, 10-chunk streams), `paced` "
        f"({PACED_CHUNKS} chunks every {PACED_INTERVAL_MS:.0f} ms), `slow` "
        f"({SLOW_LATENCY_MS:.0f} ms latency). Direct rows hit the mocks; the gateways expose "
        "each as a model (`gpt-4o-mini`, `gpt-4o-mini-paced`, `gpt-4o-mini-slow`).",
        "- **relaygate**: fresh data dir (SQLite), one user, one API key, one channel per mock; "
        "key auth, the per-key limits filter, usage extraction, the access log and the request "
        "log (SQLite, batched in the background) are on (defaults); billing, routing failover "
        "and content filtering join as they are built. "
        f"`relaygate serve --workers W`. The overload test uses a second instance with "
        f"`RELAYGATE_MAX_INFLIGHT={cfg.overload_inflight}` (per worker), so its capacity is "
        f"{cfg.overload_inflight} / {SLOW_LATENCY_MS / 1000:g} s per worker.",
        f"- **LiteLLM Proxy {LITELLM_VERSION}** (own venv, `bench/litellm_setup.sh`): "
        "`litellm --config cfg.yaml --num_workers W`, no database, `num_retries: 0`, "
        "`callbacks: []`, master key, `LITELLM_LOCAL_MODEL_COST_MAP=True`, `LITELLM_LOG=ERROR` "
        "(less logging than its default: if anything this favours LiteLLM).",
        "- **Load**: latency, TTFT, gaps, streams, overload and soak use `bench/loadgen.py` "
        f"(`{cfg.client}` client; closed loop at fixed concurrency or open loop at a fixed "
        "rate with latency counted from the scheduled send); throughput uses `wrk` (1 thread, "
        f"{cfg.connections} connections, Lua POST body) when installed. After every "
        "measurement the runner waits until the server is idle (CPU < 0.1 core) so work left "
        "over from one measurement never leaks into the next.",
        "- **Overload**: open loop at twice each system's capacity (relaygate: the in-flight "
        "bound over the upstream latency, capped by its measured throughput; LiteLLM: its "
        "measured throughput; direct: same rate as relaygate). Shed = 429/503; shed times are "
        "counted from the moment the client actually sent (the client's own scheduling lag is "
        "shown separately). Recovery = time "
        "from the end of the overload until a probe request is sent that succeeds within "
        f"{SLOW_LATENCY_MS * 1.5 + 20:.0f} ms.",
        "- **Memory**: RSS summed over the server's process tree (`/proc/*/status` VmRSS), idle "
        "after warm-up, peak while the concurrent streams are open, and sampled over the soak "
        "(slope by least squares, second half only to skip allocator warm-up); the soak runs "
        "right after warm-up, before any other scenario can inflate the heap. Forked workers "
        "share pages, so the sum over-counts them for both gateways alike.",
        "",
        "## Machine",
        "",
        md_table(["fact", "value"], [[k, v] for k, v in machine_facts(cfg)]),
        "",
        "## Reproduce",
        "",
        "```sh",
        "apt-get install -y wrk            # optional: raw throughput (falls back to aiohttp)",
        "bash bench/litellm_setup.sh       # LiteLLM's own venv outside the repo "
        "(LITELLM_VENV=...)",
        ".venv/bin/python bench/run.py     # full run, writes docs/benchmarks.md",
        ".venv/bin/python bench/run.py --quick   # ~1 min smoke without LiteLLM (CI)",
        "```",
        "",
    ]
    return "\n".join(out)
