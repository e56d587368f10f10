"""Hedging benchmark (issue 11, docs/routing.md "Hedging"): does a hedged model cut the tail
when one of its channels is slow to the first token?

Starts two OpenAI emulators (``relaygate emulator``, each its own process): one slow to its
first content token (``first_token_ms``), one fast; and a relaygate gateway with two channels
(same priority, same weight) serving two models over both: ``hedge-off`` (plain weighted
routing) and ``hedge-on`` (a model route with ``hedge_after_ms``). Then sends N streamed
requests at concurrency C to each model (closed loop) and prints time-to-first-token and
total time percentiles as a markdown table, with the upstream requests each emulator
received. Time-to-first-token is counted to the first chunk with non-empty ``content``:
the emulator sends its role chunk (empty content) at once, and without hedging the gateway
passes it on, so the first ``data:`` bytes would hide the slow channel.

    .venv/bin/python bench/hedging.py -n 1000 -c 20
    .venv/bin/python bench/hedging.py -n 200 -c 10 --first-token-ms 800 --hedge-after-ms 100

Billing is on (both models priced), so a hedged request goes through the same reserve and
settle as any other.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp
import httpx

from clients import chat_body, make_session
from loadgen import percentile
from procs import HOST, Proc, child_env, free_port, log, wait_http
from systems import relaygate_bin

MODELS = ("hedge-off", "hedge-on")
#: a chunk with some content (the role chunk's ``"content":""`` does not match)
CONTENT = re.compile(rb'"content":\s*"[^"]')


class Emulator:
    """One ``relaygate emulator`` process and its control endpoints."""

    def __init__(self, exe: str, name: str, workdir: Path) -> None:
        self.port = free_port()
        self.origin = f"http://{HOST}:{self.port}"
        self.base_url = self.origin + "/v1"
        self.proc = Proc(
            f"emulator-{name}",
            [exe, "emulator", "--provider", "openai", "--host", HOST, "--port", str(self.port)],
            child_env(),
            workdir / f"emulator-{name}.log",
        )

    def configure(self, **knobs: Any) -> None:
        httpx.post(self.origin + "/_emulator/config", json=knobs, timeout=5).raise_for_status()

    def requests(self) -> int:
        r = httpx.get(self.origin + "/_emulator/stats?requests=0", timeout=5)
        return int(r.json()["requests"])


class Gateway:
    """A ``relaygate serve`` process on a fresh data directory, with an admin client."""

    def __init__(self, exe: str, workdir: Path, workers: int) -> None:
        self.exe = exe
        data = Path(tempfile.mkdtemp(prefix="hedging-data-", dir=workdir))
        self.env = child_env(
            {
                "RELAYGATE_DATA_DIR": str(data),
                "RELAYGATE_LOG_LEVEL": "WARNING",
                "RELAYGATE_CHANNEL_TEST_INTERVAL": "0",
                "RELAYGATE_REFRESH_INTERVAL": "0.5",
            }
        )
        self.port = free_port()
        self.base_url = f"http://{HOST}:{self.port}/v1"
        self.workdir = workdir
        self.workers = workers
        self.token = ""
        self.proc: Proc | None = None

    async def start(self) -> None:
        out = await asyncio.to_thread(
            subprocess.run,
            [self.exe, "admin", "bootstrap"],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=120,
            check=True,
        )
        self.token = out.stdout.strip().splitlines()[-1]
        self.proc = Proc(
            "relaygate",
            [
                self.exe,
                "serve",
                "--host",
                HOST,
                "--port",
                str(self.port),
                "--workers",
                str(self.workers),
            ],
            self.env,
            self.workdir / "relaygate.log",
        )
        waited = await wait_http(f"http://{HOST}:{self.port}/readyz", self.proc, 120)
        log(f"relaygate ready in {waited:.1f}s on port {self.port}")

    def admin(self, method: str, path: str, body: Any = None) -> Any:
        r = httpx.request(
            method,
            f"http://{HOST}:{self.port}/admin/api{path}",
            json=body,
            headers={"Authorization": f"Bearer {self.token}"},
            timeout=10,
        )
        if r.status_code >= 400:
            raise RuntimeError(f"admin {method} {path} -> {r.status_code}: {r.text}")
        return r.json()["data"]

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.stop()


def setup(gw: Gateway, slow: Emulator, fast: Emulator, hedge_after_ms: int) -> str:
    """Channels, prices, the hedged route, a user with money and a key; returns the key."""
    for name, emu in (("slow", slow), ("fast", fast)):
        gw.admin(
            "POST",
            "/channels",
            {
                "name": name,
                "base_url": emu.base_url,
                "keys": [f"sk-{name}"],
                "models": list(MODELS),
            },
        )
    for model in MODELS:
        gw.admin(
            "POST",
            "/prices",
            {
                "model": model,
                "currency": "CNY",
                "per": "1m",
                "input": "2",
                "output": "8",
                "force": True,
            },
        )
    gw.admin(
        "POST",
        "/model-routes",
        {"name": "hedge-on", "fallbacks": [], "hedge_after_ms": hedge_after_ms},
    )
    uid = gw.admin("POST", "/users", {"username": "bench"})["id"]
    gw.admin("POST", f"/users/{uid}/balance", {"amount": "1000000", "reason": "bench"})
    return str(gw.admin("POST", "/keys", {"user_id": uid, "name": "bench"})["key"])


def pcts(values: list[float]) -> tuple[float, float, float]:
    return (percentile(values, 50), percentile(values, 90), percentile(values, 99))


async def one(
    session: aiohttp.ClientSession, url: str, body: bytes, headers: dict[str, str]
) -> tuple[bool, float, float]:
    """One streamed request: (complete, ms to the first content, total ms)."""
    t0 = time.perf_counter()
    first = math.nan
    seen = b""
    tail = b""
    try:
        async with session.post(url, data=body, headers=headers) as resp:
            if resp.status != 200:
                await resp.read()
                return False, math.nan, (time.perf_counter() - t0) * 1000
            async for data in resp.content.iter_any():
                if math.isnan(first):
                    seen += data
                    if CONTENT.search(seen):
                        first = (time.perf_counter() - t0) * 1000
                        seen = b""
                tail = (tail + data)[-64:]
    except (aiohttp.ClientError, TimeoutError):
        return False, math.nan, (time.perf_counter() - t0) * 1000
    total = (time.perf_counter() - t0) * 1000
    return b"[DONE]" in tail and not math.isnan(first), first, total


async def run_load(
    gw: Gateway, key: str, model: str, n: int, c: int
) -> list[tuple[bool, float, float]]:
    """``n`` streamed requests to ``model``, ``c`` at a time (closed loop)."""
    url = gw.base_url + "/chat/completions"
    body = chat_body(model, stream=True)
    headers = {"Content-Type": "application/json", "Authorization": f"Bearer {key}"}
    todo = iter(range(n))
    out: list[tuple[bool, float, float]] = []
    async with make_session(c, 60.0) as session:

        async def worker() -> None:
            for _ in todo:
                out.append(await one(session, url, body, headers))

        await asyncio.gather(*(worker() for _ in range(c)))
    return out


async def measure(
    gw: Gateway, key: str, model: str, n: int, c: int, slow: Emulator, fast: Emulator
) -> dict[str, Any]:
    before = (slow.requests(), fast.requests())
    t0 = time.perf_counter()
    samples = await run_load(gw, key, model, n, c)
    took = time.perf_counter() - t0
    after = (slow.requests(), fast.requests())
    good = [s for s in samples if s[0]]
    return {
        "model": model,
        "requests": len(samples),
        "errors": len(samples) - len(good),
        "seconds": round(took, 2),
        "ttft_ms": pcts([s[1] for s in good]),
        "total_ms": pcts([s[2] for s in good]),
        "upstream_slow": after[0] - before[0],
        "upstream_fast": after[1] - before[1],
    }


def table(rows: list[dict[str, Any]], first_token_ms: float, hedge_after_ms: int) -> str:
    def f(v: float) -> str:
        return "—" if math.isnan(v) else f"{v:.0f}"

    out = [
        "| hedging | requests | errors | TTFT p50 | TTFT p90 | TTFT p99 | total p50 | "
        "total p90 | total p99 | upstream calls slow / fast |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        label = f"on ({hedge_after_ms} ms)" if r["model"] == "hedge-on" else "off"
        t, tot = r["ttft_ms"], r["total_ms"]
        out.append(
            f"| {label} | {r['requests']} | {r['errors']} | {f(t[0])} | {f(t[1])} | {f(t[2])} "
            f"| {f(tot[0])} | {f(tot[1])} | {f(tot[2])} "
            f"| {r['upstream_slow']} / {r['upstream_fast']} |"
        )
    out.append("")
    out.append(
        "Times in ms (TTFT: to the first chunk with content); one channel's first content "
        f"token comes after {first_token_ms:.0f} ms, the other's at once."
    )
    return "\n".join(out)


async def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("-n", "--requests", type=int, default=1000, help="streamed requests per mode")
    ap.add_argument("-c", "--concurrency", type=int, default=20)
    ap.add_argument("--first-token-ms", type=float, default=800.0)
    ap.add_argument("--hedge-after-ms", type=int, default=100)
    ap.add_argument("--workers", type=int, default=1, help="gateway worker processes")
    ap.add_argument("--warmup", type=int, default=50, help="requests per mode before measuring")
    ap.add_argument("--json", type=Path, default=None, help="also write the results here")
    args = ap.parse_args()

    exe = relaygate_bin()
    if exe is None:
        print("relaygate CLI not found (pip install -e . in the repo venv)", file=sys.stderr)
        return 2
    workdir = Path(tempfile.mkdtemp(prefix="relaygate-hedging-"))
    slow = Emulator(exe, "slow", workdir)
    fast = Emulator(exe, "fast", workdir)
    gw = Gateway(exe, workdir, args.workers)
    try:
        for emu in (slow, fast):
            await wait_http(emu.origin + "/_emulator/config", emu.proc, 30)
        slow.configure(first_token_ms=args.first_token_ms)
        await gw.start()
        key = setup(gw, slow, fast, args.hedge_after_ms)
        await asyncio.sleep(1.2)  # the worker has read the new configuration
        rows = []
        for model in MODELS:
            if args.warmup:
                await run_load(gw, key, model, args.warmup, args.concurrency)
            log(f"{model}: {args.requests} streamed requests at concurrency {args.concurrency}")
            row = await measure(gw, key, model, args.requests, args.concurrency, slow, fast)
            log(json.dumps(row))
            rows.append(row)
        print(table(rows, args.first_token_ms, args.hedge_after_ms))
        if args.json is not None:
            args.json.write_text(json.dumps({"args": vars(args) | {"json": None}, "rows": rows}))
        return 0 if all(r["errors"] == 0 for r in rows) else 1
    finally:
        gw.stop()
        slow.proc.stop()
        fast.proc.stop()
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
