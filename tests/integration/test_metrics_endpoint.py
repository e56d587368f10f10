"""``GET /metrics`` and ``/readyz`` of the real gateway (docs/metrics.md).

One worker: requests of every kind (unary, stream, an upstream failure, unknown models, no
key) are made with the openai SDK and httpx, then one scrape is parsed with
prometheus_client's own parser and every count, histogram count, token and cost sum must
equal what the clients got and the request log holds. Two workers (``serve --workers 2``):
requests spread over both are all in any one scrape. The bearer token. Readiness while
PostgreSQL refuses connections and while a private Redis is down."""

from __future__ import annotations

import contextlib
import json
import socket
import subprocess
import time
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from gateway import PG, Gateway, fresh_pg_database, pg_admin
from prometheus_client.parser import text_string_to_metric_families

from relaygate.emulator import EmulatorServer, Knobs

TOKEN = "scrape-secret-1"
CHAT = [{"role": "user", "content": "hello metrics"}]


def scrape(gw: Gateway, token: str | None = TOKEN) -> dict[str, list[Any]]:
    """The samples of one scrape, by sample name."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    r = httpx.get(gw.base + "/metrics", headers=headers, timeout=10)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("text/plain; version=0.0.4")
    return parse(r.text)


def parse(text: str) -> dict[str, list[Any]]:
    """The samples of an exposition (prometheus_client's own parser), by sample name."""
    out: dict[str, list[Any]] = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out.setdefault(s.name, []).append(s)
    return out


def value(samples: dict[str, list[Any]], name: str, **labels: str) -> float:
    """The sum of the samples of ``name`` whose labels include ``labels`` (0 when none)."""
    return sum(
        s.value
        for s in samples.get(name, [])
        if all(s.labels.get(k) == v for k, v in labels.items())
    )


def _until(check: Any, seconds: float = 10.0) -> Any:
    deadline = time.monotonic() + seconds
    while True:
        got = check()
        if got or time.monotonic() > deadline:
            return got
        time.sleep(0.2)


@pytest.fixture(scope="module")
def upstream() -> Iterator[EmulatorServer]:
    up = EmulatorServer("openai", knobs=Knobs(api_key="sk-up-metrics"))
    up.start()
    try:
        yield up
    finally:
        up.stop()


def _channel(gw: Gateway, up: EmulatorServer, name: str = "metrics-up") -> None:
    gw.create_channel(
        name=name,
        provider="openai_compat",
        profile="openai",
        base_url=up.base_url,
        keys=["sk-up-metrics"],
        models=["gpt-4o-mini", "error-500"],
    )


def test_one_worker_counts_exactly(tmp_path: Path, upstream: EmulatorServer) -> None:
    gw = Gateway(tmp_path, {"RELAYGATE_METRICS_TOKEN": TOKEN}).start()
    try:
        _channel(gw, upstream)
        key = gw.create_key(gw.create_user("metrics-user"))
        client = openai.OpenAI(api_key=key, base_url=gw.base_url, max_retries=0)
        before = scrape(gw)
        assert value(before, "relaygate_requests_total") == 0
        prompt = completion = 0
        for _ in range(3):
            r = client.chat.completions.create(model="gpt-4o-mini", messages=CHAT)  # type: ignore[arg-type]
            assert r.usage is not None
            prompt += r.usage.prompt_tokens
            completion += r.usage.completion_tokens
        for _ in range(2):
            stream = client.chat.completions.create(
                model="gpt-4o-mini",
                messages=CHAT,  # type: ignore[arg-type]
                stream=True,
                stream_options={"include_usage": True},
            )
            usage = [c.usage for c in stream if c.usage is not None]
            assert len(usage) == 1
            prompt += usage[0].prompt_tokens
            completion += usage[0].completion_tokens
        # failures, each with the status and code the client was told
        failures: list[tuple[str, str, int, str]] = []  # (model label, channel, status, code)
        auth = {"Authorization": f"Bearer {key}"}
        url = gw.base_url + "/chat/completions"
        for model, label, channel in (
            ("error-500", "error-500", "metrics-up"),
            ("no-such-model-a1", "unknown", ""),
            ("no-such-model-b2", "unknown", ""),
        ):
            r2 = httpx.post(url, json={"model": model, "messages": CHAT}, headers=auth)
            assert r2.status_code >= 400
            failures.append((label, channel, r2.status_code, r2.json()["error"]["code"]))
        r3 = httpx.post(url, json={"model": "gpt-4o-mini", "messages": CHAT})  # no key
        failures.append(("", "", r3.status_code, r3.json()["error"]["code"]))

        after = scrape(gw)
        ok = {"endpoint": "chat", "model": "gpt-4o-mini", "channel": "metrics-up"}
        assert value(after, "relaygate_requests_total", **ok, status="200", code="") == 5
        for label, channel, status, code in set(failures):
            n = failures.count((label, channel, status, code))
            got = value(
                after,
                "relaygate_requests_total",
                endpoint="chat",
                model=label,
                channel=channel,
                status=str(status),
                code=code,
            )
            assert got == n, (label, status, code, got)
        assert value(after, "relaygate_requests_total") == 5 + len(failures)
        # no series carries a model name the configuration does not know
        models = {s.labels["model"] for s in after["relaygate_requests_total"]}
        assert models == {"gpt-4o-mini", "error-500", "unknown", ""}
        hist = "relaygate_request_duration_seconds_count"
        assert value(after, hist, endpoint="chat", model="gpt-4o-mini", stream="false") == 3
        assert value(after, hist, endpoint="chat", model="gpt-4o-mini", stream="true") == 2
        assert value(after, hist) == 5 + len(failures)
        assert value(after, "relaygate_time_to_first_token_seconds_count", model="gpt-4o-mini") == 2
        inf = [
            s
            for s in after["relaygate_request_duration_seconds_bucket"]
            if s.labels["le"] == "+Inf" and s.labels["model"] == "gpt-4o-mini"
        ]
        assert sum(s.value for s in inf) == 5
        tokens = "relaygate_tokens_total"
        assert value(after, tokens, model="gpt-4o-mini", kind="prompt") == prompt
        assert value(after, tokens, model="gpt-4o-mini", kind="completion") == completion
        # money and attempts: exactly what the request log recorded
        rows = _until(lambda: _rows(gw, 5 + len(failures) - 1))  # the keyless one has no row
        assert rows, "request-log rows missing"
        # the admin API shows the currency; the metric counts its millionths, like the log
        cost = sum(
            int(Decimal(str(r["cost"])) * 1_000_000) for r in rows if r["model"] == "gpt-4o-mini"
        )
        assert cost > 0
        assert (
            value(after, "relaygate_cost_units_total", model="gpt-4o-mini", currency="CNY") == cost
        )
        failed = [
            a
            for r in rows
            for a in (r.get("attempts") or [])
            if a["error"] is not None and r["model"] == "error-500"
        ]
        assert failed
        assert value(
            after, "relaygate_upstream_failed_attempts_total", channel="metrics-up"
        ) == len(failed)
        # sampled gauges and the process
        assert value(after, "relaygate_channel_healthy", channel="metrics-up") == 1
        assert value(after, "relaygate_channel_circuit_state", channel="metrics-up") == 0
        assert value(after, "relaygate_inflight_requests") == 0
        assert value(after, "relaygate_workers") == 1
        assert value(after, "relaygate_build_info") == 1
        assert "process_resident_memory_bytes" in after
        # a scrape is not a request
        assert value(scrape(gw), "relaygate_requests_total") == 5 + len(failures)
    finally:
        gw.stop()


def _rows(gw: Gateway, n: int) -> list[dict[str, Any]] | None:
    rows: list[dict[str, Any]] = gw.admin("GET", "/logs?limit=100")["data"]
    return rows if len(rows) >= n else None


def test_token_is_required_when_set(tmp_path: Path) -> None:
    gw = Gateway(tmp_path, {"RELAYGATE_METRICS_TOKEN": TOKEN}).start()
    try:
        for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": TOKEN}):
            r = httpx.get(gw.base + "/metrics", headers=headers)
            assert r.status_code == 401, headers
            assert r.json()["error"]["code"] == "invalid_metrics_token"
        assert "relaygate_requests_total" not in httpx.get(gw.base + "/metrics").text
        scrape(gw, TOKEN)
        r = httpx.post(gw.base + "/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
        assert r.status_code == 405 and r.headers["allow"] == "GET"
    finally:
        gw.stop()


def test_two_workers_one_scrape(tmp_path: Path, upstream: EmulatorServer) -> None:
    # each worker moves its requests into the shared files every 0.3 s (docs/metrics.md)
    gw = Gateway(tmp_path, {"RELAYGATE_METRICS_INTERVAL": "0.3"}, workers=2).start()
    try:
        _channel(gw, upstream, "metrics-2w")
        key = gw.create_key(gw.create_user("metrics-2w"))
        time.sleep(1.2)  # > 2 × RELAYGATE_REFRESH_INTERVAL: both workers have the channel
        body = {"model": "gpt-4o-mini", "messages": CHAT}
        n = 40
        for i in range(n):  # a fresh connection each: the kernel spreads them
            with httpx.Client() as c:
                r = c.post(
                    gw.base_url + "/chat/completions",
                    json={**body, "stream": i % 2 == 1},
                    headers={"Authorization": f"Bearer {key}"},
                )
            assert r.status_code == 200, r.text
        pids = set()
        for _ in range(40):
            with httpx.Client() as c:
                pids.add(c.get(gw.base + "/readyz").json()["worker_pid"])
        assert len(pids) == 2, pids
        # each worker wrote its own counter file: both served some of the requests
        (node,) = (tmp_path / "metrics-multiproc").iterdir()
        writers = {p.name for p in node.glob("counter_*.db")}
        assert len(writers) == 2, writers
        time.sleep(0.6)  # two flush intervals: the other worker's last requests are out
        for _ in range(6):  # every scrape, whichever worker answers, sees all of them
            with httpx.Client() as c:
                samples = parse(c.get(gw.base + "/metrics").text)
            assert value(samples, "relaygate_requests_total", status="200") == n
            hist = "relaygate_request_duration_seconds_count"
            assert value(samples, hist, stream="true") == n // 2
            assert value(samples, hist, stream="false") == n // 2
            assert value(samples, "relaygate_time_to_first_token_seconds_count") == n // 2
            assert value(samples, "relaygate_workers") == 2
            assert value(samples, "relaygate_channel_healthy", channel="metrics-2w") == 1
    finally:
        gw.stop()
    assert not (tmp_path / "metrics-multiproc" / node.name).exists()  # removed at exit


# ---- readiness -------------------------------------------------------------------------
def _ready(gw: Gateway) -> tuple[int, dict[str, Any]]:
    r = httpx.get(gw.base + "/readyz", timeout=10)
    return r.status_code, r.json()


def test_readiness_while_postgres_refuses(tmp_path: Path) -> None:
    with fresh_pg_database("rg_ready_") as url:
        name = url.rsplit("/", 1)[1]
        gw = Gateway(
            tmp_path, {"RELAYGATE_DATABASE_URL": f"{PG}/{name}", "RELAYGATE_READY_CACHE": "0.2"}
        ).start()
        try:
            status, body = _ready(gw)
            assert status == 200 and body["status"] == "ready", body
            checks = body["checks"]
            assert checks["database"]["ok"] and checks["catalog"]["ok"]
            assert checks["redis"] == {"ok": True, "configured": False}
            pg_admin(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false')
            pg_admin(
                f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{name}'"
            )
            time.sleep(0.3)
            began = time.monotonic()
            status, body = _ready(gw)
            assert time.monotonic() - began < 5
            # the configuration is held: degraded, still taking traffic
            assert status == 200 and body["status"] == "degraded", body
            assert body["checks"]["database"]["ok"] is False
            assert body["checks"]["database"]["error"]
            assert body["checks"]["catalog"]["ok"] is True
            assert "configuration loaded before" in body["checks"]["catalog"]["effect"]
            assert httpx.get(gw.base + "/livez").status_code == 200
            pg_admin(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true')
            ok = _until(lambda: _ready(gw)[1]["status"] == "ready")
            assert ok, _ready(gw)
        finally:
            pg_admin(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true')
            gw.stop()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def private_redis() -> Iterator[tuple[subprocess.Popen[bytes], int]]:
    """A redis-server of this test alone on a free port (no persistence)."""
    port = _free_port()
    proc = subprocess.Popen(
        [
            "redis-server",
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
                break
            time.sleep(0.05)
        yield proc, port
    finally:
        proc.kill()
        proc.wait(5)


def test_readiness_while_redis_is_down(tmp_path: Path) -> None:
    with private_redis() as (proc, port):
        gw = Gateway(
            tmp_path,
            {
                "RELAYGATE_REDIS_URL": f"redis://127.0.0.1:{port}/0",
                "RELAYGATE_REDIS_PREFIX": "rg-metrics-test:",
                "RELAYGATE_READY_CACHE": "0.2",
            },
        ).start()
        try:
            status, body = _ready(gw)
            assert status == 200 and body["status"] == "ready", body
            assert body["checks"]["redis"]["ok"] is True
            assert body["checks"]["redis"]["configured"] is True
            proc.kill()
            proc.wait(5)
            time.sleep(0.3)
            status, body = _ready(gw)
            assert status == 200 and body["status"] == "degraded", json.dumps(body)
            redis = body["checks"]["redis"]
            assert redis["ok"] is False and redis["error"]
            assert "keeps serving" in redis["effect"] and "local" in redis["effect"]
            assert body["checks"]["database"]["ok"] is True
        finally:
            gw.stop()
