"""SIGKILL in the middle of streams, then reconcile after the restart: the sum of the
debits equals the sum of what was delivered, priced.

A gateway with one worker (it serves in the ``relaygate serve`` process itself, so that
is the process killed, the one holding the spool and the budget leases) streams slow
answers (40 chunks, 100 ms apart) to five clients of two users, started one after the
other (each once the previous has two content chunks) so they are cut at different
points. Once the last has two content chunks the process is SIGKILLed: no shutdown code
runs. Each
client keeps reading until the connection ends, so it has everything the kernel
delivered, and counts its completion tokens the way the gateway does: the local o200k
count (``count_text``) of each chunk's ``delta.content``, summed over the chunks.

While a stream runs the gateway spools a provisional row with what it has delivered so
far, after each chunk it sends. The gateway started again on the same data directory
replays the dead worker's spool: the provisional rows of the cut streams are committed
(status 503, ``stream_cut``) with their charges, and the dead worker's leases are
released. The input price is 0 so the charge is exactly 1000 units per delivered token.

What can differ, and by how much: the provisional row is built before a chunk's bytes
are handed to the socket and spooled right after (one syscall later). A kill landing in
that window leaves that one chunk delivered but not charged: an undercharge of at most
one chunk of one stream in the whole process (the event loop writes one chunk at a
time), never an overcharge. It happened once in a full-suite run on a loaded 2-core
machine (a preempted worker), before the window was narrowed to one syscall. The test
asserts exactly that bound: every stream but at most one is charged exactly, and that
one is short by at most one chunk's tokens.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sqlite3
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import orjson
import pytest
from gateway import Gateway, fresh_pg_database

from relaygate.billing.tokens import count_text
from relaygate.emulator import EmulatorServer, Knobs

MODEL = "crash-chat"
OUT_UNITS_PER_TOKEN = 1000  # output "1000" CNY per 1M tokens; input "0"
CHUNKS = 40
REPLY = " ".join(f"word{i} and some more text," for i in range(CHUNKS * 2))
START_UNITS = 10_000_000  # each user's starting balance (10 CNY)
STREAMS = (0, 0, 0, 1, 1)  # the user (index) of each stream
MIN_CHUNKS = 2  # content chunks a stream has before the next one starts (and the kill)


@pytest.fixture(scope="module")
def up() -> Iterator[EmulatorServer]:
    srv = EmulatorServer(
        "openai",
        knobs=Knobs(
            api_key="sk-up", chunks=CHUNKS, chunk_interval_ms=100, reply=REPLY, usage="never"
        ),
    )
    srv.start()
    try:
        yield srv
    finally:
        srv.stop()


@pytest.fixture(params=["sqlite", "postgres"])
def backend(request: pytest.FixtureRequest) -> Iterator[dict[str, str]]:
    """Extra gateway environment: nothing (SQLite in the data directory), or a fresh
    PostgreSQL database dropped afterwards."""
    if request.param == "sqlite":
        yield {}
        return
    with fresh_pg_database("rg_crash_") as url:
        yield {"RELAYGATE_DATABASE_URL": url}


@dataclass
class Stream:
    """One client's stream: what it received, chunk by chunk."""

    request_id: str
    user: int  # index into the users
    key: str
    deltas: list[str] = field(default_factory=list)
    status: int = 0
    ended_by: str = ""
    done_marker: bool = False
    ready: threading.Event = field(default_factory=threading.Event)

    @property
    def tokens(self) -> int:
        return sum(count_text(d) for d in self.deltas)  # per chunk, as the gateway counts

    @property
    def max_chunk_tokens(self) -> int:
        return max((count_text(d) for d in self.deltas), default=0)


def _read(gw: Gateway, s: Stream) -> None:
    """Stream until the connection ends; signal ``ready`` after ``MIN_CHUNKS`` content
    chunks (or on any failure, so the test does not wait forever)."""
    body = {
        "model": MODEL,
        "messages": [{"role": "user", "content": "tell me a long story"}],
        "stream": True,
        "max_tokens": 500,
    }
    headers = {"Authorization": f"Bearer {s.key}", "x-request-id": s.request_id}
    try:
        with (
            httpx.Client(timeout=30) as c,
            c.stream("POST", gw.base_url + "/chat/completions", json=body, headers=headers) as r,
        ):
            s.status = r.status_code
            for line in r.iter_lines():
                if not line.startswith("data: "):
                    continue
                data = line[6:]
                if data == "[DONE]":
                    s.done_marker = True
                    continue
                obj = orjson.loads(data)
                for choice in obj.get("choices") or ():
                    text = (choice.get("delta") or {}).get("content")
                    if isinstance(text, str) and text:
                        s.deltas.append(text)
                if len(s.deltas) >= MIN_CHUNKS:
                    s.ready.set()
        s.ended_by = "eof"
    except httpx.HTTPError as exc:
        s.ended_by = type(exc).__name__
    finally:
        s.ready.set()


def _db_rows(data: Path, backend: dict[str, str], sql: str) -> list[tuple[Any, ...]]:
    """Rows read from the gateway's database itself (while no gateway runs)."""
    url = backend.get("RELAYGATE_DATABASE_URL")
    if url is None:
        with sqlite3.connect(data / "relaygate.db") as conn:
            return [tuple(r) for r in conn.execute(sql)]

    async def fetch() -> list[tuple[Any, ...]]:
        conn = await asyncpg.connect(url)
        try:
            return [tuple(r) for r in await conn.fetch(sql)]
        finally:
            await conn.close()

    return asyncio.run(fetch())


def _setup(gw: Gateway, up: EmulatorServer) -> list[tuple[int, str]]:
    gw.create_channel(
        name="up",
        provider="openai_compat",
        profile="openai",
        base_url=up.base_url,
        keys=["sk-up"],
        models=[MODEL],
    )
    gw.admin(
        "POST",
        "/prices",
        {
            "model": MODEL,
            "currency": "CNY",
            "per": "1m",
            "input": "0",
            "output": str(OUT_UNITS_PER_TOKEN),
            "force": True,
        },
    )
    users = []
    for name in ("crash-a", "crash-b"):
        uid = gw.create_user(name, balance="10")
        users.append((uid, gw.create_key(uid, name=name)))
    return users


def test_sigkill_mid_stream_charges_exactly_what_was_delivered(
    tmp_path: Path, up: EmulatorServer, backend: dict[str, str]
) -> None:
    env = {**backend, "RELAYGATE_READ_TIMEOUT": "10"}
    gw = Gateway(tmp_path, env, workers=1).start()
    streams: list[Stream] = []
    try:
        users = _setup(gw, up)
        for uid, _ in users:
            assert gw.balance(uid)["balance_units"] == START_UNITS
        assert gw.proc is not None
        # with one worker uvicorn serves in the serve process itself: the one to kill
        ready = httpx.get(gw.base + "/readyz", timeout=5).json()
        assert ready.get("data", ready)["worker_pid"] == gw.proc.pid
        assert (tmp_path / "spool").is_dir()

        streams = [
            Stream(f"crash-{i}-{uuid.uuid4().hex[:6]}", u, users[u][1])
            for i, u in enumerate(STREAMS)
        ]
        threads = [threading.Thread(target=_read, args=(gw, s), daemon=True) for s in streams]
        for s, t in zip(streams, threads, strict=True):  # staggered: cut at different points
            t.start()
            assert s.ready.wait(30), f"{s.request_id} never got {MIN_CHUNKS} chunks"
        for s in streams:  # every stream is running (none failed or finished early)
            assert s.status == 200 and not s.ended_by and len(s.deltas) >= MIN_CHUNKS, s

        os.kill(gw.proc.pid, signal.SIGKILL)
        assert gw.proc.wait(10) == -signal.SIGKILL
        for t in threads:
            t.join(10)
            assert not t.is_alive()
    finally:
        gw.stop()

    for s in streams:  # cut, not finished: the clients saw no [DONE]
        assert not s.done_marker and s.ended_by, s
        assert len(s.deltas) < CHUNKS, s
    # nothing of the cut streams was committed before the kill: only their spooled rows
    ids = ", ".join(f"'{s.request_id}'" for s in streams)
    cut = f"SELECT request_id FROM request_logs WHERE request_id IN ({ids})"
    assert _db_rows(tmp_path, backend, cut) == []
    leased = _db_rows(tmp_path, backend, "SELECT COALESCE(SUM(leased), 0) FROM users")[0][0]
    assert int(leased) > 0  # the dead worker still holds leases

    gw2 = Gateway(tmp_path, env, workers=1).start()  # same data directory: spool replayed
    try:
        report = []
        shortfalls: list[tuple[Stream, int]] = []
        for u, (uid, _) in enumerate(users):
            mine = [s for s in streams if s.user == u]
            delivered = sum(s.tokens for s in mine)
            expected = delivered * OUT_UNITS_PER_TOKEN
            deadline = time.monotonic() + 15
            while True:
                entries = gw2.admin("GET", f"/users/{uid}/ledger?limit=1000")["data"]
                charges = [e for e in entries if e["kind"] == "charge"]
                bal = gw2.balance(uid)
                if (len(charges) == len(mine) and bal["leased_units"] == 0) or (
                    time.monotonic() > deadline
                ):
                    break
                time.sleep(0.2)
            debited = -sum(e["amount_units"] for e in charges)
            report.append(
                f"user {uid}: streams {[(len(s.deltas), s.tokens, s.ended_by) for s in mine]} "
                f"(chunks, tokens) delivered {delivered} tokens = {expected} units; "
                f"debited {debited} units in {len(charges)} charges"
            )
            print("\n" + report[-1])
            assert len(charges) == len(mine), charges
            assert sorted(e["request_id"] for e in charges) == sorted(s.request_id for s in mine)
            assert debited <= expected  # never more than was delivered
            for s in mine:
                (entry,) = [e for e in charges if e["request_id"] == s.request_id]
                short = s.tokens * OUT_UNITS_PER_TOKEN + entry["amount_units"]
                if short:  # the one chunk in the kill window (see the module docstring)
                    shortfalls.append((s, short))
                    assert 0 < short <= s.max_chunk_tokens * OUT_UNITS_PER_TOKEN, (s, entry)
            assert bal["balance_units"] == START_UNITS - debited
            assert bal["leased_units"] == 0, bal  # the dead worker's leases are released
            assert entries[0]["balance_after_units"] == bal["balance_units"]

            for s in mine:  # one request-log row per cut stream
                rows = gw2.admin("GET", f"/logs?request_id={s.request_id}")["data"]
                assert len(rows) == 1, rows
                row = rows[0]
                assert (row["status"], row["error_code"]) == (503, "stream_cut"), row
                assert int(row["cost_units"]) == row["completion_tokens"] * OUT_UNITS_PER_TOKEN
                if not any(x is s for x, _ in shortfalls):
                    assert row["completion_tokens"] == s.tokens, (row, s)
                assert row["billing"] == "balance", row
        assert len(shortfalls) <= 1, shortfalls  # one chunk in flight at the kill, at most
    finally:
        gw2.stop()
    # the spool is empty: every replayed row is committed
    assert not [p for p in (tmp_path / "spool").glob("requestlog-*.jsonl") if p.stat().st_size]
