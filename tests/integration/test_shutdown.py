"""Graceful shutdown: on SIGTERM open requests get RELAYGATE_DRAIN_SECONDS to finish;
then a stream ends with an error event and ``[DONE]`` (a waiting request with a 503
JSON error), and the request log records the cut."""

from __future__ import annotations

import signal
import sqlite3
import threading
import time
from pathlib import Path

import httpx
import orjson
from gateway import Gateway

from relaygate.emulator import EmulatorServer

MSG = [{"role": "user", "content": "hi"}]


def test_sigterm_drains_then_cuts_open_requests_cleanly(tmp_path: Path) -> None:
    up = EmulatorServer("openai").start()
    gw = Gateway(tmp_path, {"RELAYGATE_DRAIN_SECONDS": "1"}).start()
    try:
        uid = gw.create_user("s")
        gw.create_channel(name="slow", base_url=up.base_url, keys=["k"], models=["slow"])
        gw.create_channel(name="late", base_url=up.base_url, keys=["k"], models=["late"])
        key = gw.create_key(uid)
        up.configure(chunks=40, chunk_interval_ms=250)  # a 10 s stream
        headers = {"Authorization": f"Bearer {key}"}
        got: dict[str, object] = {}

        def waiting() -> None:  # a non-streamed request still waiting at shutdown
            r = httpx.post(
                gw.base_url + "/chat/completions",
                json={"model": "late", "messages": MSG},
                headers={**headers, "x-request-id": "late-1"},
                timeout=20,
            )
            got["late"] = (r.status_code, r.json())

        with httpx.stream(
            "POST",
            gw.base_url + "/chat/completions",
            json={"model": "slow", "stream": True, "messages": MSG},
            headers={**headers, "x-request-id": "stream-1"},
            timeout=20,
        ) as r:
            lines = r.iter_lines()
            first = next(line for line in lines if line.startswith("data: "))
            assert "chat.completion.chunk" in first
            up.configure(latency_ms=8000)  # the next request hangs before headers
            t = threading.Thread(target=waiting)
            t.start()
            time.sleep(0.3)
            assert gw.proc is not None
            t0 = time.monotonic()
            gw.proc.send_signal(signal.SIGTERM)
            rest = [line for line in lines if line.startswith("data: ")]
            cut_after = time.monotonic() - t0
        t.join(20)
        assert rest[-1] == "data: [DONE]"
        err = orjson.loads(rest[-2][6:])
        assert err["error"]["code"] == "stream_cut", rest[-3:]
        assert 0.9 <= cut_after < 5, cut_after  # the drain time, not the whole stream
        status, body = got["late"]  # type: ignore[misc]
        assert status == 503 and body["error"]["code"] == "stream_cut"
        assert gw.proc.wait(15) in (0, -signal.SIGTERM)  # uvicorn re-raises the signal at exit
        db = sqlite3.connect(tmp_path / "relaygate.db")
        rows = dict(
            (rid, (st, code))
            for rid, st, code in db.execute(
                "SELECT request_id, status, error_code FROM request_logs"
            )
        )
        assert rows["stream-1"] == (503, "stream_cut")
        assert rows["late-1"] == (503, "stream_cut")
    finally:
        gw.stop()
        up.stop()
