"""kill -9 of a real gateway under load: every request whose answer a client received
has its request-log row once the gateway is started again on the same data directory."""

from __future__ import annotations

import os
import signal
import sqlite3
import threading
import time
from collections import Counter
from pathlib import Path

import httpx
import orjson
import pytest
from conftest import Upstreams
from gateway import Gateway

CLIENTS = 6
KILL_AFTER = 1.5  # seconds of load before the kill


def client_loop(gw: Gateway, key: str, n: int, answered: list[str], stop: threading.Event) -> None:
    """Send requests until the gateway dies (or ``stop``); keep the request id of
    every complete answer (non-streaming: the JSON body; streaming: ``data: [DONE]``)."""
    headers = {"Authorization": f"Bearer {key}"}
    with httpx.Client(base_url=gw.base_url, headers=headers, timeout=5) as client:
        for i in range(100_000):
            if stop.is_set():
                return
            rid = f"kill-{n}-{i}"
            body = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}
            try:
                if i % 2:
                    body["stream"] = True
                    with client.stream(
                        "POST", "/chat/completions", json=body, headers={"x-request-id": rid}
                    ) as r:
                        lines = [line for line in r.iter_lines() if line]
                    if r.status_code == 200 and lines and lines[-1] == "data: [DONE]":
                        answered.append(r.headers["x-request-id"])
                else:
                    r = client.post("/chat/completions", json=body, headers={"x-request-id": rid})
                    if r.status_code == 200 and orjson.loads(r.content)["choices"]:
                        answered.append(r.headers["x-request-id"])
            except httpx.HTTPError:
                return  # the gateway is gone


def logged_ids(db: Path) -> Counter[str]:
    with sqlite3.connect(db) as conn:
        return Counter(r[0] for r in conn.execute("SELECT request_id FROM request_logs"))


def test_kill_9_under_load_loses_no_answered_request(tmp_path: Path, upstreams: Upstreams) -> None:
    data = tmp_path / "gw"
    gw = Gateway(data).start()
    try:
        uid = gw.create_user("kill")
        gw.create_channel(
            name="openai",
            provider="openai_compat",
            profile="openai",
            base_url=upstreams.openai.base_url,
            keys=["sk-up-openai"],
            models=["gpt-4o-mini"],
        )
        key = gw.create_key(uid, name="kill")
        if not (data / "spool").is_dir():
            pytest.skip("app.py does not pass a spool directory to the request-log writer yet")
        assert gw.proc is not None
        # with --workers 1 uvicorn serves in its own process: that is the one to kill
        ready = httpx.get(gw.base + "/readyz", timeout=5).json()
        assert ready.get("data", ready)["worker_pid"] == gw.proc.pid
        answered: list[str] = []
        stop = threading.Event()
        threads = [
            threading.Thread(target=client_loop, args=(gw, key, n, answered, stop))
            for n in range(CLIENTS)
        ]
        for t in threads:
            t.start()
        time.sleep(KILL_AFTER)
        os.kill(gw.proc.pid, signal.SIGKILL)
        assert gw.proc.wait(10) == -signal.SIGKILL
        stop.set()
        for t in threads:
            t.join(10)
    finally:
        gw.stop()
    assert len(answered) > 50, "too little load to mean anything"
    assert len(set(answered)) == len(answered)
    before = sum(logged_ids(data / "relaygate.db").values())  # written before the kill

    gw2 = Gateway(data).start()  # the same data directory: the spool is replayed
    try:
        deadline = time.monotonic() + 15
        while True:
            ids = logged_ids(data / "relaygate.db")
            missing = [r for r in answered if r not in ids]
            if not missing or time.monotonic() > deadline:
                break
            time.sleep(0.1)
    finally:
        gw2.stop()
    assert not missing, (
        f"{len(missing)} of {len(answered)} answered requests have no row "
        f"({before} rows were in the database at the kill): {missing[:5]}"
    )
    doubled = [r for r, n in ids.items() if n > 1]
    assert not doubled, f"rows written twice: {doubled[:5]}"
    assert not [p for p in (data / "spool").glob("requestlog-*.jsonl") if p.stat().st_size]
