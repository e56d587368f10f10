"""Limits through a real gateway (emulated upstream): key RPM and TPM, user RPM, a personal
key's concurrency, the IP allow-list, Retry-After; the new user and key fields through the
admin API (and their bad input); and limits holding across two worker processes with Redis
(with in-process state each worker counts alone: twice the limit gets through).

Billing is switched off in these gateways: limits do not depend on it (billing's own tests
cover money)."""

from __future__ import annotations

import concurrent.futures
import os
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis
from conftest import Upstreams
from gateway import Gateway

REDIS_URL = os.environ.get("RELAYGATE_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
CHAT = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}
NO_BILLING = {"RELAYGATE_BILLING": "0"}


def add_channel(gw: Gateway, up: Upstreams) -> None:
    gw.create_channel(
        name="openai",
        provider="openai_compat",
        base_url=up.openai.base_url,
        keys=["sk-up-openai"],
        models=["gpt-4o-mini"],
    )


def user(gw: Gateway, name: str, **fields: Any) -> dict[str, Any]:
    return dict(gw.admin("POST", "/users", {"username": name, **fields})["data"])


def key(gw: Gateway, uid: int, **fields: Any) -> tuple[str, dict[str, Any]]:
    data = gw.admin("POST", "/keys", {"user_id": uid, **fields})["data"]
    return str(data.pop("key")), dict(data)


def chat(gw: Gateway, k: str, client: httpx.Client | None = None, **kw: Any) -> httpx.Response:
    headers = {"Authorization": f"Bearer {k}", **kw.pop("headers", {})}
    body = {**CHAT, **kw}
    if client is not None:
        return client.post(gw.base_url + "/chat/completions", json=body, headers=headers)
    return httpx.post(gw.base_url + "/chat/completions", json=body, headers=headers, timeout=30)


def refused(r: httpx.Response, *words: str) -> str:
    """A 429 rate_limit_exceeded with a Retry-After; the message contains ``words``."""
    assert r.status_code == 429, r.text
    err = r.json()["error"]
    assert err["code"] == "rate_limit_exceeded" and err["type"] == "rate_limit_error"
    assert int(r.headers["retry-after"]) >= 1
    for w in words:
        assert w in err["message"], err["message"]
    return str(err["message"])


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory, upstreams: Upstreams) -> Iterator[Gateway]:
    g = Gateway(Path(tmp_path_factory.mktemp("gw-limits")), NO_BILLING).start()
    try:
        add_channel(g, upstreams)
        yield g
    finally:
        g.stop()


@pytest.fixture(scope="module")
def uid(gw: Gateway) -> int:
    return int(user(gw, "limited")["id"])


def test_key_rpm_refuses_with_retry_after(gw: Gateway, uid: int) -> None:
    k, _ = key(gw, uid, rpm_limit=3)
    assert [chat(gw, k).status_code for _ in range(3)] == [200, 200, 200]
    r = chat(gw, k)
    refused(r, "this key allows 3 requests per minute")
    assert 55 <= int(r.headers["retry-after"]) <= 60


def test_key_tpm_counts_the_real_tokens_of_each_answer(gw: Gateway, uid: int) -> None:
    probe, _ = key(gw, uid)
    tokens = chat(gw, probe).json()["usage"]["total_tokens"]
    assert tokens > 0
    k, pub = key(gw, uid, tpm_limit=2 * tokens + 1)
    assert pub["tpm_limit"] == 2 * tokens + 1
    # 0, t, 2t tokens used before each of three requests: all under the limit
    assert [chat(gw, k).status_code for _ in range(3)] == [200, 200, 200]
    r = chat(gw, k)  # 3t >= 2t + 1
    refused(r, f"this key allows {2 * tokens + 1} tokens per minute")
    assert 50 <= int(r.headers["retry-after"]) <= 62
    # a streamed answer's tokens count too
    s, _ = key(gw, uid, tpm_limit=tokens + 1)
    for _ in range(2):
        with httpx.stream(
            "POST",
            gw.base_url + "/chat/completions",
            json={**CHAT, "stream": True, "stream_options": {"include_usage": True}},
            headers={"Authorization": f"Bearer {s}"},
            timeout=30,
        ) as resp:
            assert resp.status_code == 200
            assert "[DONE]" in resp.read().decode()
    refused(chat(gw, s), "tokens per minute")


def test_user_rpm_spans_every_key_of_the_user(gw: Gateway) -> None:
    u = user(gw, "busy", rpm_limit=2, group_name="vip")
    assert u["rpm_limit"] == 2 and u["group_name"] == "vip" and u["tpm_limit"] is None
    k1, _ = key(gw, u["id"])
    k2, _ = key(gw, u["id"])
    assert chat(gw, k1).status_code == 200
    assert chat(gw, k2).status_code == 200
    refused(chat(gw, k1), "your account allows 2 requests per minute")
    refused(chat(gw, k2), "your account")
    # raised through PATCH: the next request goes through (within the refresh interval)
    patched = gw.admin("PATCH", f"/users/{u['id']}", {"rpm_limit": 10})["data"]
    assert patched["rpm_limit"] == 10 and patched["group_name"] == "vip"
    assert chat(gw, k1).status_code == 200


def test_personal_key_allows_two_at_once(gw: Gateway, uid: int, upstreams: Upstreams) -> None:
    k, pub = key(gw, uid, kind="personal")
    assert k.startswith("zp-") and pub["kind"] == "personal"
    assert pub["concurrency_limit"] == 2  # RELAYGATE_PERSONAL_CONCURRENCY
    api, api_pub = key(gw, uid)
    assert api.startswith("zk-") and api_pub["concurrency_limit"] is None
    upstreams.openai.configure(latency_ms=1000)

    def slow(delay: float) -> httpx.Response:
        time.sleep(delay)  # the first two are upstream when the third arrives
        return chat(gw, k)

    with concurrent.futures.ThreadPoolExecutor(3) as pool:
        results = list(pool.map(slow, [0, 0, 0.4]))
    assert [r.status_code for r in results] == [200, 200, 429], [r.text for r in results]
    refused(results[2], "this key allows 2 concurrent requests")
    upstreams.openai.configure(latency_ms=0)
    assert chat(gw, k).status_code == 200  # the slots were given back
    # an explicit limit wins over the kind's default
    _, own = key(gw, uid, kind="personal", concurrency_limit=5)
    assert own["concurrency_limit"] == 5


def test_ip_allow_list(gw: Gateway, uid: int) -> None:
    here, pub = key(gw, uid, ip_allow=["127.0.0.1", "10.0.0.0/8"])
    assert pub["ip_allow"] == ["127.0.0.1", "10.0.0.0/8"]
    assert chat(gw, here).status_code == 200  # the test client is 127.0.0.1
    elsewhere, _ = key(gw, uid, ip_allow=["10.0.0.0/8", "2001:db8::/32"])
    r = chat(gw, elsewhere)
    assert r.status_code == 402, r.text
    err = r.json()["error"]
    assert err["code"] == "ip_not_allowed" and "127.0.0.1" in err["message"]
    # behind a proxy on this host (trusted: uvicorn's FORWARDED_ALLOW_IPS) the forwarded
    # client address is the one checked
    r = chat(gw, here, headers={"X-Forwarded-For": "203.0.113.9"})
    assert r.status_code == 402 and "203.0.113.9" in r.json()["error"]["message"]
    assert chat(gw, elsewhere, headers={"X-Forwarded-For": "10.9.8.7"}).status_code == 200
    # lifted through PATCH
    kid = gw.admin("GET", f"/keys?user_id={uid}")["data"][-1]["id"]
    assert gw.admin("PATCH", f"/keys/{kid}", {"ip_allow": None})["data"]["ip_allow"] is None
    assert chat(gw, elsewhere).status_code == 200


def test_key_fields_in_the_admin_api(gw: Gateway, uid: int) -> None:
    _, pub = key(gw, uid, spend_limit="12.5", tpm_limit=1000, rpm_limit=60)
    assert pub["spend_limit"] == "12.5000" and pub["spend_limit_units"] == 12_500_000
    kid = pub["id"]
    out = gw.admin("PATCH", f"/keys/{kid}", {"spend_limit": 0.000001, "tpm_limit": None})["data"]
    assert out["spend_limit"] == "0.000001" and out["spend_limit_units"] == 1
    assert out["tpm_limit"] is None and out["rpm_limit"] == 60
    listed = {k["id"]: k for k in gw.admin("GET", f"/keys?user_id={uid}")["data"]}
    assert listed[kid]["spend_limit_units"] == 1
    assert "balance" not in gw.admin("GET", "/users")["data"][0]  # billing shows money


# ---- bad input: a clear 4xx naming the field, nothing written ----------------------------
def raw(gw: Gateway, method: str, path: str, body: Any) -> httpx.Response:
    return httpx.request(
        method,
        gw.base + "/admin/api" + path,
        json=body,
        headers={"Authorization": f"Bearer {gw.admin_token}"},
        timeout=10,
    )


BAD_USER = [
    ({"rpm_limit": -1}, "rpm_limit"),
    ({"tpm_limit": 0}, "tpm_limit"),
    ({"concurrency_limit": "2"}, "concurrency_limit"),
    ({"concurrency_limit": 1.5}, "concurrency_limit"),
    ({"rpm_limit": 2**31}, "rpm_limit"),
    ({"group_name": "Gold Tier"}, "group_name"),
    ({"group_name": "x" * 33}, "group_name"),
    ({"group_name": None}, "group_name"),
    ({"rpm_limit": 5, "group_name": "ok", "tpm_limit": -3}, "tpm_limit"),  # one bad: none
]

BAD_KEY = [
    ({"rpm_limit": -5}, "rpm_limit"),
    ({"tpm_limit": "lots"}, "tpm_limit"),
    ({"concurrency_limit": 0}, "concurrency_limit"),
    ({"spend_limit": "-1"}, "spend_limit"),
    ({"spend_limit": "0.0000001"}, "spend_limit"),
    ({"spend_limit": "ten yuan"}, "spend_limit"),
    ({"spend_limit": "1e20"}, "spend_limit"),
    ({"spend_limit": True}, "spend_limit"),
    ({"ip_allow": ["10.0.0.1/8"]}, "ip_allow[0]"),
    ({"ip_allow": ["127.0.0.1", "999.1.1.1"]}, "ip_allow[1]"),
    ({"ip_allow": ["localhost"]}, "ip_allow[0]"),
    ({"ip_allow": []}, "ip_allow"),
    ({"ip_allow": "127.0.0.1"}, "ip_allow"),
    ({"ip_allow": [f"10.0.{i // 250}.{i % 250}" for i in range(101)]}, "ip_allow"),
    ({"ip_allow": ["127.0.0.1"] * 2}, "ip_allow"),
    ({"rpm_limit": 5, "ip_allow": ["bad"]}, "ip_allow[0]"),  # one bad field: nothing written
]


@pytest.mark.parametrize(("body", "field"), BAD_USER)
def test_bad_user_fields(gw: Gateway, body: dict[str, Any], field: str) -> None:
    before = gw.admin("GET", "/users")["data"]
    name = "bad-" + uuid.uuid4().hex[:8]
    r = raw(gw, "POST", "/users", {"username": name, **body})
    assert r.status_code == 403, r.text  # the seed's invalid_request_error status
    err = r.json()["error"]
    assert err["code"] == "invalid_request_error" and err["param"] == field
    assert f"`{field.split('[')[0]}`" in err["message"]
    assert gw.admin("GET", "/users")["data"] == before
    target = before[-1]
    r = raw(gw, "PATCH", f"/users/{target['id']}", body)
    assert r.status_code == 403 and r.json()["error"]["param"] == field, r.text
    assert gw.admin("GET", "/users")["data"] == before


@pytest.mark.parametrize(("body", "field"), BAD_KEY)
def test_bad_key_fields(gw: Gateway, uid: int, body: dict[str, Any], field: str) -> None:
    before = gw.admin("GET", "/keys")["data"]
    r = raw(gw, "POST", "/keys", {"user_id": uid, **body})
    assert r.status_code == 403, r.text
    err = r.json()["error"]
    assert err["code"] == "invalid_request_error" and err["param"] == field
    assert f"`{field}`" in err["message"]
    assert gw.admin("GET", "/keys")["data"] == before
    kid = next(k["id"] for k in before if k["kind"] != "admin")
    r = raw(gw, "PATCH", f"/keys/{kid}", body)
    assert r.status_code == 403 and r.json()["error"]["param"] == field, r.text
    assert gw.admin("GET", "/keys")["data"] == before


# ---- two workers ------------------------------------------------------------------------
def clients_per_worker(gw: Gateway, each: int) -> dict[int, list[httpx.Client]]:
    """Keep-alive connections, ``each`` on each of the two workers (a connection stays with
    the worker that accepted it: ``/readyz`` says which one)."""
    by_pid: dict[int, list[httpx.Client]] = {}
    spare: list[httpx.Client] = []
    for _ in range(200):
        c = httpx.Client(timeout=30)
        pid = int(c.get(gw.base + "/readyz").json()["worker_pid"])
        group = by_pid.setdefault(pid, [])
        (group if len(group) < each else spare).append(c)
        if len(by_pid) == 2 and all(len(g) >= each for g in by_pid.values()):
            break
    for c in spare:
        c.close()
    assert len(by_pid) == 2 and all(len(g) == each for g in by_pid.values()), by_pid
    return by_pid


def fire(gw: Gateway, k: str, clients: list[httpx.Client], per_client: int) -> list[int]:
    """``per_client`` requests on each connection, every connection at once."""

    def run(c: httpx.Client) -> list[int]:
        return [chat(gw, k, c).status_code for _ in range(per_client)]

    with concurrent.futures.ThreadPoolExecutor(len(clients)) as pool:
        return [code for codes in pool.map(run, clients) for code in codes]


def two_workers(
    tmp: Path, up: Upstreams, env: dict[str, str]
) -> tuple[Gateway, tuple[str, int], tuple[str, int]]:
    """A two-worker gateway, a key allowing 5 requests per minute and a personal key
    (each as plaintext and id)."""
    gw = Gateway(tmp, {**NO_BILLING, **env}, workers=2).start()
    add_channel(gw, up)
    uid = int(user(gw, "shared")["id"])
    rpm_key, rpm_pub = key(gw, uid, rpm_limit=5)
    personal, personal_pub = key(gw, uid, kind="personal")
    time.sleep(1.2)  # > 2 x RELAYGATE_REFRESH_INTERVAL: both workers know the keys
    return gw, (rpm_key, rpm_pub["id"]), (personal, personal_pub["id"])


@pytest.fixture
def redis_prefix() -> Iterator[str]:
    prefix = f"rgtest:{uuid.uuid4().hex[:12]}:"
    yield prefix
    client = redis.Redis.from_url(REDIS_URL)
    try:
        keys = list(client.scan_iter(match=prefix + "*"))
        if keys:
            client.delete(*keys)
    finally:
        client.close()


def test_limits_hold_across_two_workers_with_redis(
    tmp_path: Path, upstreams: Upstreams, redis_prefix: str
) -> None:
    redis_env = {"RELAYGATE_REDIS_URL": REDIS_URL, "RELAYGATE_REDIS_PREFIX": redis_prefix}
    gw, (rpm_key, rpm_id), (personal, personal_id) = two_workers(tmp_path, upstreams, redis_env)
    try:
        assert "shared state in Redis" in gw.logs()
        by_pid = clients_per_worker(gw, 4)
        clients = [c for group in by_pid.values() for c in group]
        codes = fire(gw, rpm_key, clients, 3)  # 24 requests, 12 on each worker
        assert len(codes) == 24 and codes.count(200) == 5, codes  # exactly the limit
        assert codes.count(429) == 19
        # a personal key's two slots are shared too: one slow request on each of two
        # connections per worker, all four at once
        upstreams.openai.configure(latency_ms=1000)
        pair = [c for group in by_pid.values() for c in group[:2]]
        codes = fire(gw, personal, pair, 1)
        assert sorted(codes) == [200, 200, 429, 429], codes
        upstreams.openai.configure(latency_ms=0)
        for c in clients:
            c.close()
        client = redis.Redis.from_url(REDIS_URL)
        try:
            assert client.zcard(f"{redis_prefix}w:rpm:key:{rpm_id}") == 5  # its admissions
            assert not client.exists(f"{redis_prefix}c:conc:key:{personal_id}")  # all given back
        finally:
            client.close()
    finally:
        gw.stop()


def test_in_process_state_counts_per_worker(tmp_path: Path, upstreams: Upstreams) -> None:
    """The contrast: without Redis each worker has its own count, so twice the limit
    gets through two workers."""
    gw, (rpm_key, _), _ = two_workers(tmp_path, upstreams, {})
    try:
        assert "shared state in Redis" not in gw.logs()
        by_pid = clients_per_worker(gw, 4)
        clients = [c for group in by_pid.values() for c in group]
        codes = fire(gw, rpm_key, clients, 3)
        assert codes.count(200) == 10, codes  # 5 on each worker
        for c in clients:
            c.close()
    finally:
        gw.stop()
