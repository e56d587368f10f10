"""Load generator for relaygate benchmarks.

* ``closed``: fixed concurrency (closed loop): each of N workers sends the next request as soon
  as the previous one finished.
* ``open``: fixed arrival rate (open loop): requests are sent on a schedule whatever the server
  does; latency is counted from the scheduled send time, so queueing is not hidden.
* Clients (bench/clients.py): ``raw`` (default), a minimal keep-alive HTTP/1.1 client on asyncio
  + httptools that costs far less CPU per request and per stream chunk, or ``aiohttp``. On a
  2-core machine the client shares the CPU with the servers it measures, so the leaner the better.
* ``wrk``: a wrapper around ``wrk`` (C, much faster than any Python client) for raw throughput,
  with a generated Lua script for the POST body and a JSON summary.

For streams it records time-to-first-token (first SSE ``data:`` bytes), the gaps between chunk
arrivals and whether each stream ended with ``data: [DONE]``.

Examples::

    python bench/loadgen.py closed --url http://127.0.0.1:9100/v1/chat/completions -c 8 -d 5
    python bench/loadgen.py open --url ... --rate 500 -d 5 --stream
    python bench/loadgen.py wrk --url ... -c 64 -d 5
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import math
import os
import re
import shutil
import subprocess
import tempfile
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import orjson

from clients import DEFAULT_MODEL, Client, Sample, Target, make_client

__all__ = [
    "DEFAULT_MODEL",
    "Client",
    "Result",
    "Sample",
    "Target",
    "WrkResult",
    "closed_loop",
    "make_client",
    "open_loop",
    "percentile",
    "probe_recovery",
    "run_wrk",
    "wrk_available",
]


# --------------------------------------------------------------------------------------------
# Results
# --------------------------------------------------------------------------------------------


def percentile(values: list[float], p: float) -> float:
    """Nearest-rank percentile; NaN on empty input."""
    if not values:
        return math.nan
    s = sorted(values)
    k = max(0, min(len(s) - 1, math.ceil(p / 100.0 * len(s)) - 1))
    return s[k]


@dataclass
class Result:
    mode: str
    duration_s: float
    samples: list[Sample] = field(default_factory=list)
    gaps_ms: list[float] = field(default_factory=list)
    client_dropped: int = 0  # open loop: sends skipped because the client hit max_inflight

    # -- aggregates -------------------------------------------------------------------
    @property
    def count(self) -> int:
        return len(self.samples)

    def ok_samples(self) -> list[Sample]:
        return [s for s in self.samples if 200 <= s.status < 300 and s.complete]

    @property
    def ok(self) -> int:
        return len(self.ok_samples())

    @property
    def errors(self) -> int:
        return self.count - self.ok

    @property
    def rps(self) -> float:
        return self.ok / self.duration_s if self.duration_s > 0 else 0.0

    def statuses(self) -> dict[str, int]:
        c: Counter[str] = Counter()
        for s in self.samples:
            if s.status == 0:
                c[f"error:{s.error or 'unknown'}"] += 1
            elif not s.complete:
                c[f"{s.status}:incomplete"] += 1
            else:
                c[str(s.status)] += 1
        return dict(sorted(c.items()))

    def latencies(self, ok_only: bool = True) -> list[float]:
        src = self.ok_samples() if ok_only else self.samples
        return [s.latency_ms for s in src]

    def ttfts(self) -> list[float]:
        return [s.ttft_ms for s in self.ok_samples() if not math.isnan(s.ttft_ms)]

    def summary(self) -> dict[str, Any]:
        lat = self.latencies()
        out: dict[str, Any] = {
            "mode": self.mode,
            "duration_s": round(self.duration_s, 3),
            "requests": self.count,
            "ok": self.ok,
            "errors": self.errors,
            "rps": round(self.rps, 1),
            "statuses": self.statuses(),
            "latency_ms": _pcts(lat),
        }
        if self.client_dropped:
            out["client_dropped"] = self.client_dropped
        ttft = self.ttfts()
        if ttft:
            out["ttft_ms"] = _pcts(ttft)
        if self.gaps_ms:
            out["gap_ms"] = _pcts(self.gaps_ms)
            out["max_gap_ms"] = round(max(self.gaps_ms), 3)
        return out


def _pcts(values: list[float]) -> dict[str, float]:
    if not values:
        return {}
    return {
        "p50": round(percentile(values, 50), 3),
        "p90": round(percentile(values, 90), 3),
        "p99": round(percentile(values, 99), 3),
        "max": round(max(values), 3),
        "mean": round(sum(values) / len(values), 3),
    }


# --------------------------------------------------------------------------------------------
# Closed and open loop
# --------------------------------------------------------------------------------------------


async def closed_loop(
    target: Target,
    concurrency: int,
    duration_s: float,
    warmup_s: float = 0.0,
    max_requests: int | None = None,
    client: Client | None = None,
    kind: str = "raw",
) -> Result:
    """Fixed concurrency for ``duration_s`` (after ``warmup_s`` whose samples are dropped)."""
    own = client is None
    cl = client or make_client(kind, concurrency, target.timeout_s)
    result = Result("closed", duration_s)
    try:
        if warmup_s > 0:
            await _closed_phase(cl, target, concurrency, warmup_s, None, None)
        t0 = time.perf_counter()
        await _closed_phase(cl, target, concurrency, duration_s, result, max_requests)
        result.duration_s = time.perf_counter() - t0
    finally:
        if own:
            await cl.close()
    return result


async def _closed_phase(
    cl: Client,
    target: Target,
    concurrency: int,
    duration_s: float,
    result: Result | None,
    max_requests: int | None,
) -> None:
    deadline = time.perf_counter() + duration_s
    sent = 0
    gaps = result.gaps_ms if result is not None else None

    async def worker() -> None:
        nonlocal sent
        while time.perf_counter() < deadline:
            if max_requests is not None:
                if sent >= max_requests:
                    return
                sent += 1
            s = await cl.request(target, None, gaps)
            if result is not None:
                result.samples.append(s)

    await asyncio.gather(*(worker() for _ in range(concurrency)))


async def open_loop(
    target: Target,
    rate: float,
    duration_s: float,
    max_inflight: int = 4096,
    client: Client | None = None,
    on_schedule_end: Callable[[], Awaitable[Any]] | None = None,
    kind: str = "raw",
) -> Result:
    """Send ``rate`` requests/s for ``duration_s`` regardless of responses, then wait for all.

    Latency is counted from the scheduled send time (no coordinated omission); each sample also
    records how late the client actually sent it. ``on_schedule_end`` (if given) is awaited
    concurrently with the drain once the last request has been scheduled; the overload scenario
    uses it to probe recovery.
    """
    own = client is None
    cl = client or make_client(kind, max_inflight, target.timeout_s)
    result = Result("open", duration_s)
    inflight: set[asyncio.Task[None]] = set()
    interval = 1.0 / rate
    extra: Any = None

    async def fire(start: float) -> None:
        result.samples.append(await cl.request(target, start, result.gaps_ms))

    try:
        t0 = time.perf_counter()
        total = int(rate * duration_s)
        for i in range(total):
            due = t0 + i * interval
            now = time.perf_counter()
            if due > now:
                await asyncio.sleep(due - now)
            if len(inflight) >= max_inflight:
                result.client_dropped += 1
                continue
            task = asyncio.create_task(fire(due))
            inflight.add(task)
            task.add_done_callback(inflight.discard)
        result.duration_s = time.perf_counter() - t0
        if on_schedule_end is not None:
            extra = asyncio.ensure_future(on_schedule_end())
        if inflight:
            await asyncio.wait(set(inflight))
        if extra is not None:
            await extra
    finally:
        for t in inflight:
            t.cancel()
        if own:
            await cl.close()
    return result


async def probe_recovery(
    target: Target,
    ok_ms: float,
    limit_s: float = 10.0,
    interval_s: float = 0.01,
    client: Client | None = None,
    kind: str = "raw",
) -> float:
    """Send requests one after another until one succeeds within ``ok_ms``.

    Returns milliseconds from the call until that request was *sent* (NaN if never within
    ``limit_s``).
    """
    own = client is None
    cl = client or make_client(kind, 4, target.timeout_s)
    t0 = time.perf_counter()
    try:
        while time.perf_counter() - t0 < limit_s:
            s = await cl.request(target)
            if 200 <= s.status < 300 and s.complete and s.latency_ms <= ok_ms:
                return (s.start - t0) * 1000.0
            await asyncio.sleep(interval_s)
        return math.nan
    finally:
        if own:
            await cl.close()


# --------------------------------------------------------------------------------------------
# wrk wrapper
# --------------------------------------------------------------------------------------------


_WRK_LUA = """
wrk.method = "POST"
wrk.body = {body}
{headers}
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    "WRKJSON {{\\"requests\\":%d,\\"duration_us\\":%d,\\"bytes\\":%d,"
    .. "\\"connect\\":%d,\\"read\\":%d,\\"write\\":%d,\\"status\\":%d,\\"timeout\\":%d,"
    .. "\\"p50_us\\":%d,\\"p90_us\\":%d,\\"p99_us\\":%d,\\"max_us\\":%d,\\"mean_us\\":%f}}\\n",
    summary.requests, summary.duration, summary.bytes,
    e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99),
    latency.max, latency.mean))
end
"""


def _lua_string(s: str) -> str:
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


@dataclass
class WrkResult:
    rps: float
    requests: int
    duration_s: float
    non2xx: int
    socket_errors: int
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float
    mean_ms: float
    connections: int
    threads: int

    @property
    def errors(self) -> int:
        return self.non2xx + self.socket_errors

    def summary(self) -> dict[str, Any]:
        return {k: (round(v, 3) if isinstance(v, float) else v) for k, v in vars(self).items()}


def wrk_available() -> bool:
    return shutil.which("wrk") is not None


def run_wrk(
    target: Target,
    connections: int,
    duration_s: float,
    threads: int = 1,
    timeout_s: float = 10.0,
) -> WrkResult:
    """Run wrk against ``target`` (POST). Raises RuntimeError when wrk is missing or fails."""
    exe = shutil.which("wrk")
    if exe is None:
        raise RuntimeError("wrk not found (apt-get install -y wrk)")
    headers = "\n".join(
        f"wrk.headers[{_lua_string(k)}] = {_lua_string(v)}" for k, v in target.headers().items()
    )
    script = _WRK_LUA.format(body=_lua_string(target.body.decode()), headers=headers)
    fd, path = tempfile.mkstemp(prefix="relaygate-wrk-", suffix=".lua")
    try:
        with os.fdopen(fd, "w") as f:
            f.write(script)
        threads = max(1, min(threads, connections))
        cmd = [
            exe,
            f"-t{threads}",
            f"-c{connections}",
            f"-d{max(1, round(duration_s))}s",
            f"--timeout={max(1, round(timeout_s))}s",
            "-s",
            path,
            target.url,
        ]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=duration_s + 60)
    finally:
        with contextlib.suppress(OSError):
            os.unlink(path)
    m = re.search(r"^WRKJSON (\{.*\})$", proc.stdout, re.M)
    if proc.returncode != 0 or m is None:
        raise RuntimeError(f"wrk failed ({proc.returncode}): {proc.stdout}\n{proc.stderr}")
    d = orjson.loads(m.group(1))
    dur = d["duration_us"] / 1e6
    ok = d["requests"] - d["status"]
    return WrkResult(
        rps=ok / dur if dur > 0 else 0.0,
        requests=d["requests"],
        duration_s=dur,
        non2xx=d["status"],
        socket_errors=d["connect"] + d["read"] + d["write"] + d["timeout"],
        p50_ms=d["p50_us"] / 1000.0,
        p90_ms=d["p90_us"] / 1000.0,
        p99_ms=d["p99_us"] / 1000.0,
        max_ms=d["max_us"] / 1000.0,
        mean_ms=d["mean_us"] / 1000.0,
        connections=connections,
        threads=threads,
    )


# --------------------------------------------------------------------------------------------
# CLI
# --------------------------------------------------------------------------------------------


def _install_uvloop() -> None:
    try:
        import uvloop

        uvloop.install()
    except ImportError:  # pragma: no cover
        pass


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description="relaygate benchmark load generator")
    sub = p.add_subparsers(dest="cmd", required=True)
    for name in ("closed", "open", "wrk"):
        sp = sub.add_parser(name)
        sp.add_argument(
            "--url", required=True, help="base URL (…/v1) or full …/v1/chat/completions URL"
        )
        sp.add_argument("--model", default=DEFAULT_MODEL)
        sp.add_argument("--key", default=os.environ.get("BENCH_API_KEY"))
        sp.add_argument("--stream", action="store_true")
        sp.add_argument(
            "--no-usage", action="store_true", help="do not ask for stream_options.include_usage"
        )
        sp.add_argument("-d", "--duration", type=float, default=5.0)
        sp.add_argument("--timeout", type=float, default=60.0)
        if name != "wrk":
            sp.add_argument("--client", choices=("raw", "aiohttp"), default="raw")
        if name in ("closed", "wrk"):
            sp.add_argument("-c", "--concurrency", type=int, default=1)
        if name == "closed":
            sp.add_argument("--warmup", type=float, default=1.0)
        if name == "open":
            sp.add_argument("--rate", type=float, required=True)
            sp.add_argument("--max-inflight", type=int, default=4096)
        if name == "wrk":
            sp.add_argument("-t", "--threads", type=int, default=1)
    a = p.parse_args(argv)
    target = Target.chat(a.url, a.model, a.stream, a.key, not a.no_usage, a.timeout)
    if a.cmd == "wrk":
        res = run_wrk(target, a.concurrency, a.duration, a.threads, a.timeout)
        print(orjson.dumps(res.summary(), option=orjson.OPT_INDENT_2).decode())
        return
    _install_uvloop()
    if a.cmd == "closed":
        r = asyncio.run(closed_loop(target, a.concurrency, a.duration, a.warmup, kind=a.client))
    else:
        r = asyncio.run(open_loop(target, a.rate, a.duration, a.max_inflight, kind=a.client))
    print(orjson.dumps(r.summary(), option=orjson.OPT_INDENT_2).decode())


if __name__ == "__main__":
    main()
