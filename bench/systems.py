"""Systems under test: the mock upstreams (direct), relaygate and LiteLLM Proxy.

A ``System`` is what the scenarios talk to: base URLs and model names per mock profile, the
server process (to read its RSS, wait until it is idle and restart it if it dies) and how to
start a replacement.
"""

from __future__ import annotations

import asyncio
import math
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import loadgen
from loadgen import Target
from procs import (
    BENCH_DIR,
    HOST,
    REPO,
    Proc,
    child_env,
    cpu_seconds,
    free_port,
    log,
    rss_mb,
    wait_http,
)

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


async def warm_up(system: System, seconds: float, kind: str) -> None:
    for profile, stream in (("fast", False), ("fast", True), ("paced", True)):
        tgt = system.target(profile, stream)
        conc = 4 if profile == "fast" else 8
        await loadgen.closed_loop(tgt, conc, seconds if profile == "fast" else 1.0, kind=kind)
    await system.quiesce()


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


async def start_asgi_floor(workdir: Path, workers: int) -> System:
    """The reference point of the throughput table: a canned-reply raw ASGI app on the
    same server stack as relaygate (bench/asgi_floor.py)."""
    port = free_port()
    cmd = [
        sys.executable,
        str(BENCH_DIR / "asgi_floor.py"),
        "--host",
        HOST,
        "--port",
        str(port),
        "--workers",
        str(workers),
    ]
    proc = Proc(f"asgi-floor-w{workers}", cmd, child_env(), workdir / f"asgi-floor-w{workers}.log")
    base = f"http://{HOST}:{port}"
    await wait_http(base + "/", proc, 30)
    urls = {p: base + "/v1" for p in MOCK_PROFILES}
    return System("asgi-floor", urls, dict(MODELS), proc=proc, workers=workers)


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
    # billing is on in the benchmark (issue 10): gpt-4o-mini is priced by the shipped
    # catalogue, so every request reserves from a lease and is charged with its log row
    _run_cli(
        [exe, "user", "adjust", "--user", "bench", "--amount", "1000000000", "--reason", "bench"],
        env,
    )
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
    extra_env: dict[str, str] | None = None,
) -> System:
    """Start ``relaygate serve`` on a fresh copy of the template data dir (``extra_env``:
    more environment variables for the server, e.g. ``RELAYGATE_SAFETY=0``)."""
    exe = relaygate_bin()
    assert exe is not None
    tdir, key = template
    data = Path(tempfile.mkdtemp(prefix=f"{name}-w{workers}-data-", dir=workdir))
    shutil.copytree(tdir, data, dirs_exist_ok=True)
    env = child_env({**(extra_env or {}), "RELAYGATE_DATA_DIR": str(data)})
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
        return await start_relaygate(
            workdir, template, mock_urls, workers, name, max_inflight, extra_env
        )

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
