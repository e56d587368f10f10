"""Every row of the error table (docs/decisions/0003-errors-and-envelope.md): status, error.code, envelope —
with the seed's statuses and with the operator switch to OpenAI's statuses."""

from __future__ import annotations

import concurrent.futures
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from conftest import Env

CHAT = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}


def post(
    env: Env,
    path: str = "/chat/completions",
    *,
    key: str | None = None,
    headers: dict[str, str] | None = None,
    **kw: Any,
) -> httpx.Response:
    h = {"Authorization": f"Bearer {key or env.key}"} if headers is None else headers
    return httpx.post(env.gw.base_url + path, headers=h, timeout=30, **kw)


def check(r: httpx.Response, status: int, code: str, env: Env, *, envelope: bool = True) -> None:
    assert r.status_code == status, r.text
    body = r.json()
    err = body["error"]
    assert err["code"] == code, body
    assert set(err) == {"message", "type", "param", "code"}
    assert err["message"]
    if envelope:
        assert body["code"] == status and body["msg"] == err["message"]
    else:
        assert "code" not in body and "msg" not in body
    assert r.headers["x-request-id"]
    # never an upstream credential or URL
    for up in (env.up.openai, env.up.azure, env.up.deepseek, env.up.anthropic):
        assert str(up.port) not in r.text
    assert "sk-up-" not in r.text and "az-up-key" not in r.text and "sk-ant-up" not in r.text


def test_401_no_api_key(env: Env) -> None:
    check(post(env, json=CHAT, headers={}), 401, "no_api_key", env)


@pytest.mark.parametrize("state", ["unknown", "revoked", "disabled", "expired"])
def test_401_invalid_api_key(env: Env, state: str) -> None:
    if state == "unknown":
        key = "sk-this-key-does-not-exist"
    else:
        key = env.gw.create_key(env.user_id, name=state)
        kid = env.gw.admin("GET", "/keys")["data"][-1]["id"]
        change: dict[str, Any] = (
            {"expires_at": (datetime.now(UTC) - timedelta(seconds=1)).isoformat()}
            if state == "expired"
            else {"status": state}
        )
        env.gw.admin("PATCH", f"/keys/{kid}", change)
    check(post(env, json=CHAT, key=key), 401, "invalid_api_key", env)


@pytest.mark.parametrize(
    "header",
    [{"Authorization": "Basic abc"}, {"Authorization": "Bearer"}, {"Authorization": "Bearer a b"}],
)
def test_401_malformed_auth_header(env: Env, header: dict[str, str]) -> None:
    check(post(env, json=CHAT, headers=header), 401, "invalid_request_error", env)


@pytest.mark.parametrize("name", ["api-key", "x-api-key"])
def test_alternative_key_headers(env: Env, name: str) -> None:
    r = post(env, json=CHAT, headers={name: env.key})
    assert r.status_code == 200 and r.json()["code"] == 0


def test_402_account_disabled(env: Env) -> None:
    uid = env.gw.create_user("mallory")
    key = env.gw.create_key(uid)
    env.gw.admin("PATCH", f"/users/{uid}", {"status": "disabled"})
    check(post(env, json=CHAT, key=key), 402, "account_disabled", env)


@pytest.mark.parametrize("model", ["no-such-model", "claude-sonnet-4"])
def test_403_model_not_found(env: Env, model: str) -> None:
    key = env.gw.create_key(env.user_id, models=["gpt-4o-mini"])  # claude not allowed
    check(post(env, json={**CHAT, "model": model}, key=key), 403, "model_not_found", env)


@pytest.mark.parametrize(
    "content",
    [
        b"{not json",
        b"[1,2]",
        b'{"messages":[{"role":"user","content":"x"}]}',
        b'{"model":"gpt-4o-mini","messages":"hi"}',
        b'{"model":"gpt-4o-mini","messages":[]}',
        b'{"model":"gpt-4o-mini","messages":[1]}',
        b"",
    ],
    ids=[
        "bad-json",
        "not-object",
        "no-model",
        "messages-not-array",
        "messages-empty",
        "message-not-object",
        "empty",
    ],
)
def test_403_invalid_request(env: Env, content: bytes) -> None:
    check(
        post(
            env,
            content=content,
            headers={"Authorization": f"Bearer {env.key}", "Content-Type": "application/json"},
        ),
        403,
        "invalid_request_error",
        env,
    )


def test_403_body_too_large(env: Env) -> None:
    big = {**CHAT, "messages": [{"role": "user", "content": "x" * (2 * 1024 * 1024)}]}
    r = post(env, json=big)
    check(r, 403, "invalid_request_error", env)
    assert "larger than" in r.json()["error"]["message"]


def test_429_upstream_rate_limit(env: Env) -> None:
    env.up.openai.configure(fail_status=429)
    check(post(env, json=CHAT), 429, "rate_limit_exceeded", env)


def test_429_key_requests_per_minute(env: Env) -> None:
    key = env.gw.create_key(env.user_id, rpm_limit=2)
    assert [post(env, json=CHAT, key=key).status_code for _ in range(2)] == [200, 200]
    r = post(env, json=CHAT, key=key)
    check(r, 429, "rate_limit_exceeded", env)
    assert "2 requests per minute" in r.json()["error"]["message"]
    assert r.headers["retry-after"]


def test_429_key_concurrency(env: Env) -> None:
    key = env.gw.create_key(env.user_id, concurrency_limit=1)
    env.up.openai.configure(latency_ms=600)
    with concurrent.futures.ThreadPoolExecutor(3) as pool:
        results = list(pool.map(lambda _: post(env, json=CHAT, key=key), range(3)))
    codes = sorted(r.status_code for r in results)
    assert codes == [200, 429, 429], codes
    for r in results:
        if r.status_code == 429:
            check(r, 429, "rate_limit_exceeded", env)
    env.up.openai.reset(knobs=True, stats=False)
    assert post(env, json=CHAT, key=key).status_code == 200  # the slot was released


def test_501_not_implemented(env: Env) -> None:
    check(
        post(env, "/embeddings", json={"model": "claude-sonnet-4", "input": "x"}),
        501,
        "not_implemented",
        env,
    )
    check(post(env, "/uploads", json={"purpose": "batch"}), 501, "not_implemented", env)


@pytest.mark.parametrize("status", [500, 503, 401])
def test_502_upstream_error(env: Env, status: int) -> None:
    env.up.openai.configure(fail_status=status)
    check(
        post(env, json=CHAT),
        502,
        "upstream_auth_failed" if status == 401 else "upstream_error",
        env,
    )
    if status == 401:  # its only key was rejected: the channel is auto-disabled (routing.md)
        _reenable_auto_disabled(env)


def _reenable_auto_disabled(env: Env) -> None:
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        channels = env.gw.admin("GET", "/channels")["data"]
        off = [c for c in channels if c["status"] == "auto_disabled"]
        if off:
            for c in off:
                assert "rejected" in c["status_reason"]
                env.gw.admin("PATCH", f"/channels/{c['id']}", {"status": "enabled"})
            return
        time.sleep(0.05)
    raise AssertionError("the channel whose only key was rejected was not auto-disabled")


def test_upstream_4xx_caused_by_request_passed_on(env: Env) -> None:
    env.up.openai.configure(fail_status=400)
    r = post(env, json=CHAT)
    assert r.status_code == 400 and r.json()["error"]["message"]


def test_502_upstream_unreachable(env: Env) -> None:
    cid = env.gw.create_channel(
        name="dead",
        provider="openai_compat",
        base_url="http://127.0.0.1:9/v1",
        keys=["sk-up-dead"],
        models=["dead-model"],
    )
    check(post(env, json={**CHAT, "model": "dead-model"}), 502, "upstream_error", env)
    env.gw.admin("DELETE", f"/channels/{cid}")


def test_503_no_enabled_channel(env: Env) -> None:
    cid = env.gw.create_channel(
        name="off",
        provider="openai_compat",
        base_url="http://127.0.0.1:9/v1",
        keys=["k"],
        models=["parked-model"],
        status="disabled",
    )
    check(post(env, json={**CHAT, "model": "parked-model"}), 503, "service_unavailable", env)
    env.gw.admin("DELETE", f"/channels/{cid}")


def test_504_upstream_timeout(env: Env) -> None:
    env.up.openai.configure(hang=True)
    t0 = time.monotonic()
    check(post(env, json=CHAT), 504, "upstream_timeout", env)
    assert time.monotonic() - t0 < 10


def test_error_after_stream_started(env: Env) -> None:
    for knobs in ({"midstream_error": True}, {"cut_after": 2}):
        env.up.openai.configure(**knobs)
        r = post(env, json={**CHAT, "stream": True})
        assert r.status_code == 200
        events = [e for e in r.text.split("\n\n") if e]
        assert events[-1] == "data: [DONE]"
        import json

        last = json.loads(events[-2][len("data: ") :])
        assert last["error"]["code"] == "upstream_error", last
        assert any('"content"' in e for e in events[:-2])  # real chunks came first
        env.up.openai.reset(knobs=True, stats=False)


def test_unknown_url_and_request_id(env: Env) -> None:
    r = httpx.get(env.gw.base + "/nope", headers={"X-Request-Id": "trace-123"})
    assert r.status_code == 404 and r.headers["x-request-id"] == "trace-123"
    r = post(env, json=CHAT)
    rid = r.headers["x-request-id"]
    assert len(rid) >= 16
    deadline = time.monotonic() + 3  # logs are written by a background thread
    while rid not in env.gw.logs() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert rid in env.gw.logs()
    marker = f"secret-prompt-{time.time_ns()}"
    post(env, json={**CHAT, "messages": [{"role": "user", "content": marker}]})
    time.sleep(0.3)
    assert env.key not in env.gw.logs() and marker not in env.gw.logs()


def test_content_logging_is_opt_in(strict_env: Env) -> None:
    env = strict_env
    marker = f"logged-prompt-{time.time_ns()}"
    for stream in (False, True):
        r = post(
            env, json={**CHAT, "stream": stream, "messages": [{"role": "user", "content": marker}]}
        )
        assert r.status_code == 200
    deadline = time.monotonic() + 3
    while env.gw.logs().count(marker) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    lines = [ln for ln in env.gw.logs().splitlines() if marker in ln]
    assert len(lines) == 2 and all("Hello from the relaygate emulator" in ln for ln in lines)
    assert env.key not in env.gw.logs()


def test_health_endpoints(env: Env) -> None:
    assert httpx.get(env.gw.base + "/healthz").status_code == 200
    r = httpx.get(env.gw.base + "/readyz")
    assert r.status_code == 200 and r.json()["status"] == "ready"


# ---- the operator switch: OpenAI's statuses, envelope off -----------------------------
@pytest.mark.parametrize(
    ("case", "status", "code"),
    [
        ("no_key", 401, "no_api_key"),
        ("bad_body", 400, "invalid_request_error"),
        ("unknown_model", 404, "model_not_found"),
        ("disabled_user", 403, "account_disabled"),
        ("upstream_429", 429, "rate_limit_exceeded"),
    ],
)
def test_openai_statuses_switch(strict_env: Env, case: str, status: int, code: str) -> None:
    env = strict_env
    if case == "no_key":
        r = post(env, json=CHAT, headers={})
    elif case == "bad_body":
        r = post(env, content=b"{", headers={"Authorization": f"Bearer {env.key}"})
    elif case == "unknown_model":
        r = post(env, json={**CHAT, "model": "nope"})
    elif case == "disabled_user":
        uid = env.gw.create_user(f"off-{time.time_ns()}")
        key = env.gw.create_key(uid)
        env.gw.admin("PATCH", f"/users/{uid}", {"status": "disabled"})
        r = post(env, json=CHAT, key=key)
    else:
        env.up.openai.configure(fail_status=429)
        r = post(env, json=CHAT)
    check(r, status, code, env, envelope=False)


def test_success_without_envelope(strict_env: Env) -> None:
    body = post(strict_env, json=CHAT).json()
    assert "code" not in body and body["object"] == "chat.completion"


def test_503_load_shedding(strict_env: Env) -> None:
    env = strict_env
    env.up.openai.configure(latency_ms=800)
    with concurrent.futures.ThreadPoolExecutor(6) as pool:
        futures = [pool.submit(post, env, json=CHAT) for _ in range(6)]
        results = [f.result() for f in futures]
    shed = [r for r in results if r.status_code == 503]
    ok = [r for r in results if r.status_code == 200]
    assert len(ok) >= 2 and shed, [r.status_code for r in results]
    for r in shed:
        check(r, 503, "service_unavailable", env, envelope=False)
        assert r.headers["retry-after"] == "1"
        # shed at once, not queued behind the 800 ms upstream calls
        assert r.elapsed.total_seconds() < 0.4, r.elapsed
    env.up.openai.reset(knobs=True, stats=False)
    assert post(env, json=CHAT).status_code == 200  # recovers at once
