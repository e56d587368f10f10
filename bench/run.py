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
import importlib.metadata
import math
import os
import platform
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import aiohttp
import orjson

import loadgen
from loadgen import Result, Sample, Target, percentile

BENCH_DIR = Path(__file__).resolve().parent
REPO = BENCH_DIR.parent
HOST = "127.0.0.1"

# Mock upstream profiles: each runs as its own process; gateways expose each as its own model.
MOCK_PROFILES: dict[str, list[str]] = {
    "fast": ["--latency-ms", "0", "--chunks", "10"],
    "paced": ["--latency-ms", "0", "--chunks", "50", "--chunk-interval-ms", "20"],
    "slow": ["--latency-ms", "100", "--chunks", "10"],
}
MODELS = {"fast": "gpt-4o-mini", "paced": "gpt-4o-mini-paced", "slow": "gpt-4o-mini-slow"}
PACED_INTERVAL_MS = 20.0
PACED_CHUNKS = 50
SLOW_LATENCY_MS = 100.0
LITELLM_MASTER_KEY = "sk-bench-litellm-master"
LITELLM_VERSION = "1.109.1"

# Targets from the issue (the ones checked in the report).
TARGET_ADDED_P50_MS = 0.5
TARGET_ADDED_P99_MS = 1.5
TARGET_TTFT_P50_MS = 1.0
TARGET_VS_LITELLM_RPS = 20.0
TARGET_VS_DIRECT_RPS = 0.25
TARGET_STREAMS = 512
TARGET_ADMITTED_OK = 0.999
TARGET_SHED_MS = 5.0
TARGET_RSS_VS_LITELLM = 0.25
STALL_FACTOR = 10.0  # a gap above STALL_FACTOR x the pacing interval is a stall


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


# ------------------------------------------------------------------------------------------------
# Processes and memory
# ------------------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


class Proc:
    """A child process in its own session (so its whole tree can be stopped)."""

    def __init__(self, name: str, cmd: list[str], env: dict[str, str], log_path: Path) -> None:
        self.name = name
        self.cmd = cmd
        self.log_path = log_path
        self._log: IO[bytes] = open(log_path, "ab")  # noqa: SIM115 - closed in stop()
        self.p = subprocess.Popen(
            cmd,
            env=env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            cwd=str(REPO),
        )

    @property
    def pid(self) -> int:
        return self.p.pid

    def alive(self) -> bool:
        return self.p.poll() is None

    def tail(self, n: int = 30) -> str:
        try:
            lines = self.log_path.read_text(errors="replace").splitlines()
        except OSError:
            return ""
        return "\n".join(lines[-n:])

    def stop(self, timeout: float = 20.0) -> None:
        if self.alive():
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.p.pid, signal.SIGTERM)
            try:
                self.p.wait(timeout)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.p.pid, signal.SIGKILL)
                self.p.wait(10)
        # reap anything left in the group (workers that outlived their parent)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.p.pid, signal.SIGKILL)
        self._log.close()


def _proc_table() -> dict[int, int]:
    """pid -> ppid for every process."""
    table: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as f:
                data = f.read()
        except OSError:
            continue
        rest = data[data.rfind(b")") + 2 :].split()
        table[int(entry)] = int(rest[1])
    return table


def tree_pids(pid: int) -> list[int]:
    table = _proc_table()
    children: dict[int, list[int]] = {}
    for p, pp in table.items():
        children.setdefault(pp, []).append(p)
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        if p in table or p == pid:
            out.append(p)
            todo.extend(children.get(p, []))
    return out


def rss_mb(pid: int) -> float:
    """Sum of VmRSS over the process and all its descendants, in MiB."""
    total_kb = 0
    for p in tree_pids(pid):
        try:
            with open(f"/proc/{p}/status") as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        total_kb += int(line.split()[1])
                        break
        except OSError:
            continue
    return total_kb / 1024.0


_CLK_TCK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """utime + stime of the process and its descendants (live ones), in seconds."""
    total = 0
    for p in tree_pids(pid):
        try:
            with open(f"/proc/{p}/stat", "rb") as fh:
                rest = fh.read().rsplit(b")", 1)[1].split()
            total += int(rest[11]) + int(rest[12])
        except (OSError, IndexError, ValueError):
            continue
    return total / _CLK_TCK


# ------------------------------------------------------------------------------------------------
# Systems under test
# ------------------------------------------------------------------------------------------------


@dataclass
class System:
    name: str  # direct | relaygate | litellm
    urls: dict[str, str]  # profile -> base URL ending in /v1
    models: dict[str, str]
    api_key: str | None = None
    proc: Proc | None = None
    workers: int = 1
    # how to start a replacement after a crash (a new process, maybe on a new port)
    restarter: Callable[[], Awaitable[System]] | None = None
    crashes: int = 0

    def target(self, profile: str, stream: bool = False, timeout_s: float = 60.0) -> Target:
        return Target.chat(
            self.urls[profile], self.models[profile], stream, self.api_key, True, timeout_s
        )

    def rss(self) -> float:
        return rss_mb(self.proc.pid) if self.proc is not None and self.proc.alive() else math.nan

    async def revive(self, notes: list[str], where: str) -> bool:
        """If the server died, note it, start a replacement and return True."""
        if self.proc is None or self.proc.alive():
            return False
        rc = self.proc.p.returncode
        self.crashes += 1
        why = f"signal {-rc}" if rc is not None and rc < 0 else f"exit code {rc}"
        msg = (
            f"{self.name} died during {where} ({why}); it was restarted and the measurement "
            "repeated"
        )
        log(msg + f"\n{self.proc.tail(10)}")
        notes.append(msg + ".")
        self.proc.stop()
        if self.restarter is None:
            raise RuntimeError(f"{self.name} died and cannot be restarted")
        new = await self.restarter()
        self.urls, self.proc = new.urls, new.proc
        await warm_up(self, 3.0 if self.name == "litellm" else 0.5, "raw")
        return True

    async def quiesce(
        self, max_wait_s: float = 90.0, window_s: float = 0.3, busy: float = 0.1
    ) -> float:
        """Wait until the server's CPU use drops below ``busy`` cores (left-over work from the
        previous measurement, e.g. requests the client gave up on, must not leak into the next
        one). Returns seconds waited."""
        if self.proc is None or not self.proc.alive():
            await asyncio.sleep(0.05)
            return 0.0
        t0 = time.monotonic()
        prev = cpu_seconds(self.proc.pid)
        while time.monotonic() - t0 < max_wait_s:
            await asyncio.sleep(window_s)
            cur = cpu_seconds(self.proc.pid)
            if (cur - prev) / window_s < busy:
                return time.monotonic() - t0
            prev = cur
        log(f"{self.name} still busy after {max_wait_s:.0f}s")
        return time.monotonic() - t0


async def wait_http(url: str, proc: Proc, timeout_s: float) -> float:
    """Poll ``url`` until it answers 200; returns seconds waited."""
    t0 = time.monotonic()
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=2)) as s:
        while time.monotonic() - t0 < timeout_s:
            if not proc.alive():
                raise RuntimeError(f"{proc.name} exited during start-up:\n{proc.tail()}")
            with contextlib.suppress(aiohttp.ClientError, asyncio.TimeoutError, OSError):
                async with s.get(url) as r:
                    if r.status == 200:
                        return time.monotonic() - t0
            await asyncio.sleep(0.2)
    raise RuntimeError(f"{proc.name} not ready after {timeout_s:.0f}s:\n{proc.tail()}")


def child_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    env = dict(os.environ)
    env.pop("PYTHONPATH", None)
    env["PYTHONUNBUFFERED"] = "1"
    if extra:
        env.update(extra)
    return env


async def start_mocks(workdir: Path) -> tuple[dict[str, Proc], dict[str, str]]:
    procs: dict[str, Proc] = {}
    urls: dict[str, str] = {}
    for profile, args in MOCK_PROFILES.items():
        port = free_port()
        cmd = [
            sys.executable,
            str(BENCH_DIR / "mock_upstream.py"),
            "--host",
            HOST,
            "--port",
            str(port),
            *args,
        ]
        procs[profile] = Proc(f"mock-{profile}", cmd, child_env(), workdir / f"mock-{profile}.log")
        urls[profile] = f"http://{HOST}:{port}/v1"
    for profile, proc in procs.items():
        await wait_http(urls[profile].removesuffix("/v1") + "/health", proc, 20)
    return procs, urls


def relaygate_bin() -> str | None:
    cand = Path(sys.executable).parent / "relaygate"
    if cand.exists():
        return str(cand)
    return shutil.which("relaygate")


def _run_cli(cmd: list[str], env: dict[str, str]) -> str:
    p = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120, cwd=str(REPO))
    if p.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd[1:4])} failed ({p.returncode}):\n{p.stdout}\n{p.stderr}")
    return p.stdout


def setup_relaygate(workdir: Path, mock_urls: dict[str, str]) -> tuple[Path, str]:
    """A template data dir with one user, one key and one channel per mock; returns (dir, key).

    Each relaygate instance gets its own copy of it (see ``start_relaygate``).
    """
    exe = relaygate_bin()
    if exe is None:
        raise RuntimeError("relaygate CLI not found (pip install -e . in the repo venv)")
    data = Path(tempfile.mkdtemp(prefix="relaygate-template-", dir=workdir))
    env = child_env({"RELAYGATE_DATA_DIR": str(data)})
    _run_cli([exe, "migrate"], env)
    _run_cli([exe, "user", "create", "--username", "bench"], env)
    out = _run_cli([exe, "key", "create", "--user", "bench", "--name", "bench"], env)
    key = out.strip().splitlines()[-1].strip()
    for profile, url in mock_urls.items():
        _run_cli(
            [
                exe,
                "channel",
                "create",
                "--name",
                f"mock-{profile}",
                "--provider",
                "openai_compat",
                "--profile",
                "openai",
                "--base-url",
                url,
                "--api-key",
                "sk-mock",
                "--models",
                MODELS[profile],
            ],
            env,
        )
    return data, key


async def start_relaygate(
    workdir: Path,
    template: tuple[Path, str],
    mock_urls: dict[str, str],
    workers: int,
    name: str = "relaygate",
    max_inflight: int | None = None,
) -> System:
    """Start ``relaygate serve`` on a fresh copy of the template data dir."""
    exe = relaygate_bin()
    assert exe is not None
    tdir, key = template
    data = Path(tempfile.mkdtemp(prefix=f"{name}-w{workers}-data-", dir=workdir))
    shutil.copytree(tdir, data, dirs_exist_ok=True)
    env = child_env({"RELAYGATE_DATA_DIR": str(data)})
    if max_inflight is not None:
        env["RELAYGATE_MAX_INFLIGHT"] = str(max_inflight)
    port = free_port()
    proc = Proc(
        name,
        [exe, "serve", "--host", HOST, "--port", str(port), "--workers", str(workers)],
        env,
        workdir / f"{name}-w{workers}.log",
    )
    waited = await wait_http(f"http://{HOST}:{port}/readyz", proc, 120)
    log(f"{name} ({workers} worker(s)) ready in {waited:.1f}s on port {port}")
    url = f"http://{HOST}:{port}/v1"

    async def restart() -> System:
        return await start_relaygate(workdir, template, mock_urls, workers, name, max_inflight)

    return System(
        "relaygate", dict.fromkeys(mock_urls, url), dict(MODELS), key, proc, workers, restart
    )


def litellm_venv() -> Path:
    return Path(os.environ.get("LITELLM_VENV", "/work/litellm-venv"))


def ensure_litellm() -> Path:
    exe = litellm_venv() / "bin" / "litellm"
    if not exe.exists() or not (litellm_venv() / ".relaygate-bench-litellm").exists():
        log(f"LiteLLM not found in {litellm_venv()}: running bench/litellm_setup.sh")
        subprocess.run(["bash", str(BENCH_DIR / "litellm_setup.sh")], check=True)
    return exe


def litellm_config(mock_urls: dict[str, str]) -> str:
    lines = ["model_list:"]
    for profile, url in mock_urls.items():
        lines += [
            f"  - model_name: {MODELS[profile]}",
            "    litellm_params:",
            "      model: openai/gpt-4o-mini",
            f"      api_base: {url}",
            "      api_key: sk-mock",
        ]
    lines += [
        "litellm_settings:",
        "  num_retries: 0",
        "  callbacks: []",
        "  request_timeout: 120",
        "general_settings:",
        f"  master_key: {LITELLM_MASTER_KEY}",
        "",
    ]
    return "\n".join(lines)


def launch_litellm(workdir: Path, mock_urls: dict[str, str], workers: int) -> tuple[Proc, int]:
    exe = ensure_litellm()
    cfg = workdir / "litellm.yaml"
    cfg.write_text(litellm_config(mock_urls))
    port = free_port()
    env = child_env({"LITELLM_LOCAL_MODEL_COST_MAP": "True", "LITELLM_LOG": "ERROR"})
    env.pop("VIRTUAL_ENV", None)
    cmd = [
        str(exe),
        "--config",
        str(cfg),
        "--host",
        HOST,
        "--port",
        str(port),
        "--num_workers",
        str(workers),
    ]
    proc = Proc("litellm", cmd, env, workdir / f"litellm-w{workers}.log")
    return proc, port


async def finish_litellm(
    proc: Proc, port: int, workdir: Path, mock_urls: dict[str, str], workers: int
) -> System:
    waited = await wait_http(f"http://{HOST}:{port}/health/liveliness", proc, 240)
    log(f"litellm ({workers} worker(s)) ready in {waited:.1f}s on port {port}")
    url = f"http://{HOST}:{port}/v1"

    async def restart() -> System:
        p2, port2 = launch_litellm(workdir, mock_urls, workers)
        return await finish_litellm(p2, port2, workdir, mock_urls, workers)

    return System(
        "litellm",
        dict.fromkeys(mock_urls, url),
        dict(MODELS),
        LITELLM_MASTER_KEY,
        proc,
        workers,
        restart,
    )


# ------------------------------------------------------------------------------------------------
# Scenario helpers
# ------------------------------------------------------------------------------------------------


@dataclass
class Config:
    quick: bool
    rounds: int
    seconds: float
    connections: int
    streams: int
    overload_inflight: int
    soak_minutes: float
    workers: list[int]
    litellm: bool
    client: str = "raw"
    timeout_s: float = 60.0


@dataclass
class Report:
    cfg: Config
    started: str
    # scenario -> system -> list of per-round dicts
    data: dict[str, dict[str, list[dict[str, Any]]]] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def add(self, scenario: str, system: str, value: dict[str, Any]) -> None:
        self.data.setdefault(scenario, {}).setdefault(system, []).append(value)

    def med(self, scenario: str, system: str, key: str) -> float:
        vals = [num(r.get(key)) for r in self.data.get(scenario, {}).get(system, [])]
        clean = [v for v in vals if not math.isnan(v)]
        return statistics.median(clean) if clean else math.nan

    def med_added(self, scenario: str, system: str, key: str) -> float:
        """Median over rounds of (system - direct) in the same round."""
        gw = self.data.get(scenario, {}).get(system, [])
        base = self.data.get(scenario, {}).get("direct", [])
        diffs = [num(g.get(key)) - num(b.get(key)) for g, b in zip(gw, base, strict=False)]
        clean = [d for d in diffs if not math.isnan(d)]
        return statistics.median(clean) if clean else math.nan


def num(v: Any) -> float:
    """A number from a result row (None, missing or non-numeric -> NaN)."""
    if isinstance(v, bool) or not isinstance(v, int | float):
        return math.nan
    return float(v)


async def settle(system: System, seconds: float = 0.2) -> None:
    """Let the system finish left-over work before the next measurement starts."""
    await system.quiesce()
    await asyncio.sleep(seconds)


async def warm_up(system: System, seconds: float, kind: str) -> None:
    for profile, stream in (("fast", False), ("fast", True), ("paced", True)):
        tgt = system.target(profile, stream)
        conc = 4 if profile == "fast" else 8
        await loadgen.closed_loop(tgt, conc, seconds if profile == "fast" else 1.0, kind=kind)
    await system.quiesce()


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


# ------------------------------------------------------------------------------------------------
# Scenarios
# ------------------------------------------------------------------------------------------------


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
            await sc_throughput(rep, systems, workers)
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
# Report
# ------------------------------------------------------------------------------------------------


def f(x: float | None, digits: int = 2, unit: str = "") -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "—"
    return f"{x:,.{digits}f}{unit}"


def pct(x: float, digits: int = 1) -> str:
    return "—" if math.isnan(x) else f"{x * 100:.{digits}f}%"


def ratio(a: float, b: float) -> float:
    if math.isnan(a) or math.isnan(b) or b == 0:
        return math.nan
    return a / b


def met(ok: bool | None) -> str:
    return "—" if ok is None else ("yes" if ok else "**no**")


def check(value: float, pred: Callable[[float], bool]) -> bool | None:
    return None if math.isnan(value) else pred(value)


@dataclass
class Row:
    figure: str
    direct: str
    relaygate: str
    litellm: str
    vs_direct: str
    vs_litellm: str
    target: str
    ok: bool | None


def summary_rows(rep: Report) -> list[Row]:
    m, ma = rep.med, rep.med_added
    rows: list[Row] = []

    # added latency, non-stream
    for q, tgt in (("p50", TARGET_ADDED_P50_MS), ("p99", TARGET_ADDED_P99_MS)):
        d = m("latency", "direct", q)
        rg, ll = m("latency", "relaygate", q), m("latency", "litellm", q)
        arg, all_ = ma("latency", "relaygate", q), ma("latency", "litellm", q)
        rows.append(
            Row(
                f"latency c=1 non-stream {q} (ms)",
                f(d, 3),
                _va(rg, arg, 3),
                _va(ll, all_, 3),
                f"{_signed(arg, 3)} ms",
                _times(all_, arg, "less added"),
                f"added ≤ {tgt} ms",
                None if math.isnan(arg) else arg <= tgt,
            )
        )
    # TTFT
    for q in ("p50", "p99"):
        k = f"ttft_{q}"
        d, rg, ll = m("ttft", "direct", k), m("ttft", "relaygate", k), m("ttft", "litellm", k)
        arg, all_ = ma("ttft", "relaygate", k), ma("ttft", "litellm", k)
        rows.append(
            Row(
                f"stream TTFT c=1 {q} (ms)",
                f(d, 3),
                _va(rg, arg, 3),
                _va(ll, all_, 3),
                f"{_signed(arg, 3)} ms",
                _times(all_, arg, "less added"),
                f"added ≤ {TARGET_TTFT_P50_MS} ms" if q == "p50" else "—",
                check(arg, lambda v: v <= TARGET_TTFT_P50_MS) if q == "p50" else None,
            )
        )
    # gaps
    for q in ("gap_p50", "gap_p99") if "gaps" in rep.data else ():
        d, rg, ll = m("gaps", "direct", q), m("gaps", "relaygate", q), m("gaps", "litellm", q)
        arg, all_ = ma("gaps", "relaygate", q), ma("gaps", "litellm", q)
        rows.append(
            Row(
                f"gap between chunks {q[4:]} (ms, {PACED_INTERVAL_MS:.0f} ms pacing)",
                f(d, 2),
                _va(rg, arg, 2),
                _va(ll, all_, 2),
                f"{_signed(arg)} ms",
                "—",
                "—",
                None,
            )
        )
    # throughput
    for w in rep.cfg.workers:
        k = f"throughput_w{w}"
        d, rg, ll = m(k, "direct", "rps"), m(k, "relaygate", "rps"), m(k, "litellm", "rps")
        vd, vl = ratio(rg, d), ratio(rg, ll)
        ok_parts = [check(vd, lambda v: v >= TARGET_VS_DIRECT_RPS)]
        if rep.cfg.litellm:
            ok_parts.append(check(vl, lambda v: v >= TARGET_VS_LITELLM_RPS))
        ok = None if any(p is None for p in ok_parts) else all(p for p in ok_parts if p is not None)
        rows.append(
            Row(
                f"throughput {w} worker{'s' if w > 1 else ''} (req/s, c={rep.cfg.connections})",
                f(d, 0),
                f(rg, 0),
                f(ll, 0),
                pct(vd),
                _x(vl),
                f"≥ {TARGET_VS_DIRECT_RPS:.0%} of direct, ≥ {TARGET_VS_LITELLM_RPS:.0f}× LiteLLM",
                ok,
            )
        )
    # streams held
    n = rep.cfg.streams
    st = {s: m("streams", s, "stalled") for s in ("direct", "relaygate", "litellm")}
    okn = {s: m("streams", s, "ok") for s in st}
    rows.append(
        Row(
            f"{n} concurrent paced streams: stalled or failed (median of rounds)",
            f(st["direct"], 0),
            f(st["relaygate"], 0),
            f(st["litellm"], 0),
            "—",
            "—",
            f"0 stalls at ≥ {TARGET_STREAMS} streams"
            + ("" if n >= TARGET_STREAMS else f" (not checked: only {n} run)"),
            check(st["relaygate"], lambda v: v == 0) if n >= TARGET_STREAMS else None,
        )
    )
    rows.append(
        Row(
            "… streams completed per round",
            f(okn["direct"], 0),
            f(okn["relaygate"], 0),
            f(okn["litellm"], 0),
            "—",
            "—",
            "—",
            None,
        )
    )
    # overload
    ov = rep.extra.get("overload", {})
    adm = {s: m("overload", s, "admitted_success") for s in ("direct", "relaygate", "litellm")}
    rows.append(
        Row(
            "overload 2× capacity: admitted requests that succeeded",
            pct(adm["direct"], 2),
            pct(adm["relaygate"], 2),
            pct(adm["litellm"], 2),
            "—",
            "—",
            f"≥ {TARGET_ADMITTED_OK:.1%}",
            check(adm["relaygate"], lambda v: v >= TARGET_ADMITTED_OK),
        )
    )
    shed = {s: m("overload", s, "shed_p99") for s in ("direct", "relaygate", "litellm")}
    frac = {s: m("overload", s, "shed_frac") for s in ("direct", "relaygate", "litellm")}
    rows.append(
        Row(
            "overload: shed responses p99 (ms) [share shed]",
            f"{f(shed['direct'], 2)} [{pct(frac['direct'])}]",
            f"{f(shed['relaygate'], 2)} [{pct(frac['relaygate'])}]",
            f"{f(shed['litellm'], 2)} [{pct(frac['litellm'])}]",
            "—",
            "—",
            f"≤ {TARGET_SHED_MS:g} ms",
            check(shed["relaygate"], lambda v: v <= TARGET_SHED_MS),
        )
    )
    rec = {s: m("overload", s, "recovery_ms") for s in ("direct", "relaygate", "litellm")}
    rows.append(
        Row(
            "overload: recovery after load stops (ms)",
            f(rec["direct"], 0),
            f(rec["relaygate"], 0),
            f(rec["litellm"], 0),
            "—",
            "—",
            "—",
            None,
        )
    )
    if ov:
        rows.append(
            Row(
                "… offered rate (req/s)",
                f(ov["rates"].get("direct"), 0),
                f(ov["rates"].get("relaygate"), 0),
                f(ov["rates"].get("litellm"), 0),
                "—",
                "—",
                "2× each system's capacity",
                None,
            )
        )
    # memory
    w0 = rep.cfg.workers[0]
    idle_rg, idle_ll = m(f"idle_w{w0}", "relaygate", "rss"), m(f"idle_w{w0}", "litellm", "rss")
    r_idle = ratio(idle_rg, idle_ll)
    rows.append(
        Row(
            f"RSS idle, {w0} worker (MiB)",
            "—",
            f(idle_rg, 1),
            f(idle_ll, 1),
            "—",
            pct(r_idle, 0),
            f"≤ {TARGET_RSS_VS_LITELLM:.0%} of LiteLLM",
            check(r_idle, lambda v: v <= TARGET_RSS_VS_LITELLM) if rep.cfg.litellm else None,
        )
    )
    for w in rep.cfg.workers[1:]:
        i_rg, i_ll = m(f"idle_w{w}", "relaygate", "rss"), m(f"idle_w{w}", "litellm", "rss")
        r_i = ratio(i_rg, i_ll)
        rows.append(
            Row(
                f"RSS idle, {w} workers (MiB)",
                "—",
                f(i_rg, 1),
                f(i_ll, 1),
                "—",
                pct(r_i, 0),
                f"≤ {TARGET_RSS_VS_LITELLM:.0%} of LiteLLM",
                check(r_i, lambda v: v <= TARGET_RSS_VS_LITELLM) if rep.cfg.litellm else None,
            )
        )
    s_rg, s_ll = m("streams", "relaygate", "rss_peak"), m("streams", "litellm", "rss_peak")
    r_st = ratio(s_rg, s_ll)
    rows.append(
        Row(
            f"RSS peak with {n} open streams (MiB)",
            "—",
            f(s_rg, 1),
            f(s_ll, 1),
            "—",
            pct(r_st, 0),
            f"≤ {TARGET_RSS_VS_LITELLM:.0%} of LiteLLM",
            check(r_st, lambda v: v <= TARGET_RSS_VS_LITELLM) if rep.cfg.litellm else None,
        )
    )
    if "soak" in rep.data:
        sl_rg, sl_ll = (
            m("soak", "relaygate", "slope_2nd_half"),
            m("soak", "litellm", "slope_2nd_half"),
        )
        rows.append(
            Row(
                f"RSS growth over {rep.cfg.soak_minutes:g} min soak, 2nd half (MiB/min)",
                "—",
                f(sl_rg, 2),
                f(sl_ll, 2),
                "—",
                "—",
                "flat (≤ 1 MiB/min)",
                check(sl_rg, lambda v: v <= 1.0),
            )
        )
    return rows


def _va(value: float, added: float, digits: int) -> str:
    """'value (+added)' or a dash."""
    if math.isnan(value):
        return "—"
    return f"{f(value, digits)} ({_signed(added, digits)})"


def _signed(x: float, digits: int = 2) -> str:
    return "—" if math.isnan(x) else f"{x:+.{digits}f}"


def _x(x: float) -> str:
    return "—" if math.isnan(x) else f"{x:.1f}×"


def _times(other: float, ours: float, word: str) -> str:
    """'N× <word>' when ours is smaller than other (both positive)."""
    if math.isnan(other) or math.isnan(ours) or ours <= 0 or other <= 0:
        return "—"
    return f"{other / ours:.1f}× {word}"


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
        for sysname in ("direct", "relaygate", "litellm"):
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
        "key auth, usage extraction, billing and the request log are on (defaults). "
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


# ------------------------------------------------------------------------------------------------
# Quick-mode regression guard
# ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Guard:
    min_rps_vs_direct: float
    max_added_p50_ms: float
    max_added_ttft_p50_ms: float
    min_admitted_success: float


def guard_failures(rep: Report, g: Guard) -> list[str]:
    fails: list[str] = []
    m, ma = rep.med, rep.med_added

    def need(name: str, value: float, ok: bool) -> None:
        if math.isnan(value) or not ok:
            fails.append(f"{name} = {value:.4g}")

    v = ma("latency", "relaygate", "p50")
    need(f"added latency p50 ms (max {g.max_added_p50_ms})", v, v <= g.max_added_p50_ms)
    v = ma("ttft", "relaygate", "ttft_p50")
    need(f"added TTFT p50 ms (max {g.max_added_ttft_p50_ms})", v, v <= g.max_added_ttft_p50_ms)
    w = rep.cfg.workers[0]
    v = ratio(m(f"throughput_w{w}", "relaygate", "rps"), m(f"throughput_w{w}", "direct", "rps"))
    need(f"throughput relaygate/direct (min {g.min_rps_vs_direct})", v, v >= g.min_rps_vs_direct)
    for key in ("latency", "ttft", f"throughput_w{w}"):
        v = m(key, "relaygate", "errors")
        need(f"{key} errors (must be 0)", v, v == 0)
    v = m("streams", "relaygate", "stalled")
    need(f"{rep.cfg.streams} paced streams stalled (must be 0)", v, v == 0)
    v = float(rep.extra.get("crashes", {}).get("relaygate", 0))
    need("relaygate crashes (must be 0)", v, v == 0)
    v = m("overload", "relaygate", "admitted_success")
    need(
        f"overload admitted success (min {g.min_admitted_success})", v, v >= g.min_admitted_success
    )
    return fails


# ------------------------------------------------------------------------------------------------
# CLI
# ------------------------------------------------------------------------------------------------


def _raise_nofile() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = hard if hard != resource.RLIM_INFINITY else 65536
    if soft < want:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))


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
        Path(out).write_text(text)
        log(f"wrote {out}")
    else:
        print(text)
    if a.json:
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
