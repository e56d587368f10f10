"""What the request-log crash spool costs per row on the hot path.

Times ``UsageLogWriter.record()`` (row built, plus for the spool: JSON-encoded and
appended with one ``os.write``) with and without a spool directory, in interleaved
rounds, and the bare ``os.write`` of one line on an ``O_APPEND`` descriptor. Also times
``os.fdatasync`` of the spool file (what a per-row or per-batch fsync would add).

    .venv/bin/python bench/spool_cost.py [--rows 50000] [--rounds 5] [--dir PATH]

The spool directory defaults to a temporary directory on the file system of the
current directory (put it where the gateway's data directory lives).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import tempfile
import time
from pathlib import Path

from relaygate.context import RelayContext
from relaygate.providers.base import Usage
from relaygate.requestlog.writer import UsageLogWriter
from relaygate.storage.crypto import Secrets
from relaygate.storage.db import create_engine
from relaygate.storage.repo import Repository


def contexts(n: int) -> list[RelayContext]:
    out = []
    for i in range(n):
        c = RelayContext(f"{i:024x}", "chat", model="gpt-4o-mini", stream=bool(i % 2))
        c.usage = Usage(prompt_tokens=12, completion_tokens=120, cached_tokens=4)
        c.first_byte_at = c.started + 0.01
        out.append(c)
    return out


def time_record(repo: Repository, ctxs: list[RelayContext], spool: Path | None) -> float:
    """µs per record() call."""
    w = UsageLogWriter(repo, spool_dir=spool, max_queue=len(ctxs) + 1)
    t0 = time.perf_counter_ns()
    for c in ctxs:
        w.record(c)
    dt = time.perf_counter_ns() - t0
    assert w.dropped == 0
    if spool is not None:
        assert w.spooled_rows == len(ctxs)
        for p in spool.glob("requestlog-*.jsonl"):
            p.unlink()
    return dt / len(ctxs) / 1000


def time_write(d: Path, n: int) -> float:
    line = b'["0123456789abcdef01234567","2026-01-01T00:00:00.000000+00:00",1,1,"chat"]\n' * 3
    fd = os.open(d / "raw.jsonl", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    t0 = time.perf_counter_ns()
    for _ in range(n):
        os.write(fd, line)
    dt = time.perf_counter_ns() - t0
    os.close(fd)
    os.unlink(d / "raw.jsonl")
    return dt / n / 1000


def time_fdatasync(d: Path, n: int) -> float:
    """µs per write + fdatasync of one line."""
    fd = os.open(d / "sync.jsonl", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    t0 = time.perf_counter_ns()
    for _ in range(n):
        os.write(fd, b"x" * 250 + b"\n")
        os.fdatasync(fd)
    dt = time.perf_counter_ns() - t0
    os.close(fd)
    os.unlink(d / "sync.jsonl")
    return dt / n / 1000


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=50_000)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--dir", type=Path, default=Path.cwd())
    a = ap.parse_args()
    with tempfile.TemporaryDirectory(dir=a.dir) as tmp:
        d = Path(tmp)
        engine = create_engine(f"sqlite+aiosqlite:///{d / 'unused.db'}")  # never written
        repo = Repository(engine, Secrets("bench"))
        ctxs = contexts(a.rows)
        plain, spooled, raw = [], [], []
        for _ in range(a.rounds):  # interleaved: drift hits both alike
            plain.append(time_record(repo, ctxs, None))
            spooled.append(time_record(repo, ctxs, d / "spool"))
            raw.append(time_write(d, a.rows))
        sync = time_fdatasync(d, 200)
        asyncio.run(engine.dispose())
    med = statistics.median
    print(f"rows per round {a.rows}, rounds {a.rounds}, spool on {a.dir}")
    print(f"record() without spool   {med(plain):6.2f} µs/row  (rounds: {_fmt(plain)})")
    print(f"record() with spool      {med(spooled):6.2f} µs/row  (rounds: {_fmt(spooled)})")
    print(f"spool cost per row       {med(spooled) - med(plain):6.2f} µs")
    print(f"bare os.write, one line  {med(raw):6.2f} µs")
    print(f"write + fdatasync        {sync:8.1f} µs (per row if every row were synced)")


def _fmt(xs: list[float]) -> str:
    return " ".join(f"{x:.2f}" for x in xs)


if __name__ == "__main__":
    main()
