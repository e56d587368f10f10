"""What the Redis fallback wrapper (``sharedstate/fallback.py``) costs on the hot path while
Redis is healthy: the same reserve/release/window calls through ``RedisState`` directly and
through ``FallbackState``, in alternating rounds against the Redis at ``RELAYGATE_REDIS_URL``
(default ``redis://127.0.0.1:6379/0``), under a throwaway key prefix (docs/benchmarks.md).

    .venv/bin/python bench/fallback_overhead.py [--rounds 6] [--calls 5000]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import time
import uuid

import redis.asyncio as aioredis

from relaygate.sharedstate.base import SharedState
from relaygate.sharedstate.fallback import FallbackState
from relaygate.sharedstate.memory import InProcessState
from relaygate.sharedstate.redis import RedisState


async def _round(st: SharedState, calls: int) -> float:
    """Microseconds per request-shaped sequence: a TPM read, an RPM hit, a slot
    reserved and released, tokens added."""
    start = time.perf_counter()
    for i in range(calls):
        await st.window_over("tpm:k", 10**9, 60)
        await st.hit_window(f"rpm:k{i % 50}", 10**9, 60)
        await st.reserve("conc:k", 1, 10**6, 60)
        await st.release("conc:k", 1)
        await st.add_window("tpm:k", 10, 60)
    return (time.perf_counter() - start) / calls * 1e6


async def main(rounds: int, calls: int) -> None:
    url = os.environ.get("RELAYGATE_REDIS_URL", "redis://127.0.0.1:6379/0")
    prefix = f"rgbench:{uuid.uuid4().hex[:8]}:"
    direct = await RedisState.connect(url, prefix=prefix + "d:")
    wrapped = FallbackState(await RedisState.connect(url, prefix=prefix + "w:"))
    times: dict[str, list[float]] = {"direct": [], "fallback": []}
    try:
        await _round(direct, 200)  # warm up both (scripts loaded, connections made)
        await _round(wrapped, 200)
        for r in range(rounds):
            order = [("direct", direct), ("fallback", wrapped)]
            for name, st in order if r % 2 == 0 else order[::-1]:
                us = await _round(st, calls)
                times[name].append(us)
                print(f"round {r + 1} {name}: {us:.1f} µs per request (5 calls)", flush=True)
    finally:
        await direct.close()
        await wrapped.close()
        client = aioredis.Redis.from_url(url)
        keys = [k async for k in client.scan_iter(match=prefix + "*")]
        if keys:
            await client.delete(*keys)
        await client.aclose()
    d, f = statistics.median(times["direct"]), statistics.median(times["fallback"])
    print(f"median: direct {d:.1f} µs, fallback {f:.1f} µs, fallback/direct {f / d:.3f}")
    # the wrapper's own CPU cost, without the network's noise: around the in-process state
    bare = InProcessState()
    around = FallbackState(InProcessState())  # type: ignore[arg-type]  # same calls, no I/O
    cpu: dict[str, list[float]] = {"bare": [], "wrapped": []}
    for r in range(rounds):
        order = [("bare", bare), ("wrapped", around)]
        for name, st in order if r % 2 == 0 else order[::-1]:
            cpu[name].append(await _round(st, calls * 10))
    b, w = statistics.median(cpu["bare"]), statistics.median(cpu["wrapped"])
    print(f"in-process: bare {b:.2f} µs, wrapped {w:.2f} µs: {(w - b) / 5:.2f} µs per call")


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--rounds", type=int, default=6)
    ap.add_argument("--calls", type=int, default=5000)
    args = ap.parse_args()
    asyncio.run(main(args.rounds, args.calls))
