"""Streaming behaviour against the running gateway: no buffering, prompt cancellation."""

from __future__ import annotations

import itertools
import socket
import time

import httpx
import openai
from conftest import Env


def test_paced_stream_arrives_as_produced(env: Env) -> None:
    """The first chunk reaches the client while the emulator is still producing the rest."""
    env.up.openai.stats.reset()
    env.up.openai.configure(chunks=6, chunk_interval_ms=300)
    c = openai.OpenAI(
        api_key=env.key, base_url=env.gw.base_url, max_retries=0, _strict_response_validation=True
    )
    t0 = time.monotonic()
    stream = c.chat.completions.create(
        model="gpt-4o-mini", stream=True, messages=[{"role": "user", "content": "hi"}]
    )
    arrivals: list[float] = []
    for chunk in stream:
        if chunk.choices and chunk.choices[0].delta.content:
            arrivals.append(time.monotonic() - t0)
            if len(arrivals) == 1:
                # the upstream has not finished: later chunks are still being produced
                first_completed = env.up.openai.stats.streams_completed
    total = arrivals[-1]
    assert len(arrivals) == 6
    # not held back until the end: the first chunk came ≥ 1 s before the last (6 × 300 ms)
    assert arrivals[0] < total - 1.0, arrivals
    gaps = sorted(b - a for a, b in itertools.pairwise(arrivals))
    assert gaps[len(gaps) // 2] > 0.15, gaps  # the upstream's pacing shows through
    assert first_completed == 0


def test_anthropic_paced_stream(env: Env) -> None:
    env.up.anthropic.configure(chunks=4, chunk_interval_ms=300)
    with httpx.stream(
        "POST",
        env.gw.base_url + "/chat/completions",
        headers={"Authorization": f"Bearer {env.key}"},
        json={
            "model": "claude-sonnet-4",
            "stream": True,
            "messages": [{"role": "user", "content": "hi"}],
        },
        timeout=10,
    ) as r:
        t0 = time.monotonic()
        first = None
        for line in r.iter_lines():
            if '"content":"' in line and first is None:
                first = time.monotonic() - t0
        total = time.monotonic() - t0
    assert first is not None and first < total - 0.5


def test_client_disconnect_cancels_upstream(env: Env) -> None:
    """Dropping the client connection mid-stream closes the upstream connection promptly."""
    up = env.up.openai
    up.stats.reset()
    up.configure(chunks=50, chunk_interval_ms=100)
    body = b'{"model":"gpt-4o-mini","stream":true,"messages":[{"role":"user","content":"hi"}]}'
    req = (
        f"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        f"Authorization: Bearer {env.key}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode() + body
    sock = socket.create_connection(("127.0.0.1", env.gw.port))
    sock.sendall(req)
    got = b""
    while got.count(b"data: ") < 2:
        got += sock.recv(65536)
    assert b"200 OK" in got
    sock.close()
    t0 = time.monotonic()
    assert up.stats.wait_for(lambda s: s.disconnected >= 1, timeout=3), up.stats
    elapsed = time.monotonic() - t0
    assert elapsed < 1.0, elapsed  # well before the 5 s the stream would take
    assert up.stats.streams_completed == 0
    # the request log records the disconnect (status 499)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        logs = env.gw.admin("GET", "/logs?limit=5")["data"]
        if any(row["status"] == 499 for row in logs):
            break
        time.sleep(0.2)
    else:
        raise AssertionError("no 499 row in the request log")


def test_client_disconnect_non_stream_cancels_upstream(env: Env) -> None:
    up = env.up.openai
    up.stats.reset()
    up.configure(latency_ms=2000)
    body = b'{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}]}'
    req = (
        f"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        f"Authorization: Bearer {env.key}\r\nContent-Length: {len(body)}\r\n\r\n"
    ).encode() + body
    sock = socket.create_connection(("127.0.0.1", env.gw.port))
    sock.sendall(req)
    assert up.stats.wait_for(lambda s: s.in_flight >= 1, timeout=3)
    sock.close()
    assert up.stats.wait_for(lambda s: s.aborted >= 1, timeout=1.5), up.stats


def test_include_usage_asked_upstream_even_if_client_did_not(env: Env) -> None:
    r = httpx.post(
        env.gw.base_url + "/chat/completions",
        headers={"Authorization": f"Bearer {env.key}"},
        json={
            "model": "gpt-4o-mini",
            "stream": True,
            "messages": [{"role": "user", "content": "hi"}],
        },
    )
    assert env.up.openai.stats.last_body["stream_options"] == {"include_usage": True}
    assert '"choices":[]' not in r.text  # the extra usage chunk is not forwarded
    assert r.text.endswith("data: [DONE]\n\n")
    assert r.headers["content-type"].startswith("text/event-stream")
    # usage still reached the request log (written in the background)
    rid = r.headers["x-request-id"]
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        rows = [x for x in env.gw.admin("GET", "/logs?limit=20")["data"] if x["request_id"] == rid]
        if rows:
            break
        time.sleep(0.1)
    assert rows and rows[0]["completion_tokens"] > 0 and rows[0]["stream"] is True
