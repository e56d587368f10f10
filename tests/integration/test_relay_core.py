"""The relay core against a real gateway: routing candidates and key rotation, the
attempt loop (failover before the first byte), typed stages (prepare, chunk filters
that stop or hold back), the edge (405, CORS, unexpected errors as JSON) and
per-key limits through the shared-state interface."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import openai
import orjson
import pytest
from gateway import Gateway, free_port

from relaygate.emulator import EmulatorServer

PLUGINS = str(Path(__file__).parent / "plugins")
MSG = [{"role": "user", "content": "hi"}]


@dataclass
class Core:
    gw: Gateway
    a: EmulatorServer  # any key accepted
    b: EmulatorServer
    key: str
    uid: int


@pytest.fixture(scope="module")
def core(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Core]:
    a = EmulatorServer("openai").start()
    b = EmulatorServer("openai").start()
    gw = Gateway(
        Path(tmp_path_factory.mktemp("gw-core")),
        {
            "PYTHONPATH": os.pathsep.join([PLUGINS, os.environ.get("PYTHONPATH", "")]),
            "RELAYGATE_FILTERS": "rg_test_filters:TestFilter",
            "RELAYGATE_SSE_KEEPALIVE": "0.2",
            "RELAYGATE_CORS_ORIGINS": "https://chat.example, https://other.example",
        },
    ).start()
    try:
        uid = gw.create_user("core")
        gw.create_channel(
            name="rot", base_url=a.base_url, keys=["k1", "k2", "k3"], models=["rot-model"]
        )
        gw.create_channel(name="a", base_url=a.base_url, keys=["ka"], models=["fo"], priority=10)
        gw.create_channel(name="b", base_url=b.base_url, keys=["kb"], models=["fo"], priority=0)
        dead = f"http://127.0.0.1:{free_port()}"
        gw.create_channel(
            name="dead", base_url=dead, keys=["kd"], models=["dead-first"], priority=5
        )
        gw.create_channel(name="b2", base_url=b.base_url, keys=["kb"], models=["dead-first"])
        gw.create_channel(name="a-only", base_url=a.base_url, keys=["ka"], models=["gpt-4o-mini"])
        key = gw.create_key(uid, name="core")
        yield Core(gw, a, b, key, uid)
    finally:
        gw.stop()
        a.stop()
        b.stop()


@pytest.fixture(autouse=True)
def _fresh(core: Core) -> Iterator[None]:
    for s in (core.a, core.b):
        s.reset(knobs=True, stats=True)
    yield


def client(core: Core) -> openai.OpenAI:
    return openai.OpenAI(
        api_key=core.key, base_url=core.gw.base_url, max_retries=0, _strict_response_validation=True
    )


def post(core: Core, body: dict[str, object], **headers: str) -> httpx.Response:
    return httpx.post(
        core.gw.base_url + "/chat/completions",
        content=orjson.dumps(body),
        headers={
            "Authorization": f"Bearer {core.key}",
            "Content-Type": "application/json",
            **headers,
        },
        timeout=10,
    )


# ---- routing ------------------------------------------------------------------------
def test_upstream_keys_rotate_in_turn(core: Core) -> None:
    for _ in range(6):
        client(core).chat.completions.create(model="rot-model", messages=MSG)  # type: ignore[arg-type]
    seen = [h["Authorization"] for h in core.a.stats.headers]
    assert seen == [f"Bearer k{i}" for i in (1, 2, 3, 1, 2, 3)]


def test_failover_to_the_next_channel_on_upstream_5xx(core: Core) -> None:
    core.a.configure(fail_status=500)
    r = client(core).chat.completions.create(model="fo", messages=MSG)  # type: ignore[arg-type]
    assert r.choices[0].message.content
    assert core.a.stats.requests == 1 and core.b.stats.requests == 1


def test_failover_when_a_channel_cannot_be_reached(core: Core) -> None:
    r = client(core).chat.completions.create(model="dead-first", stream=True, messages=MSG)  # type: ignore[call-overload]
    text = "".join(c.choices[0].delta.content or "" for c in r if c.choices)
    assert text
    assert core.b.stats.requests == 1


def test_a_request_the_upstream_refuses_is_not_retried(core: Core) -> None:
    core.a.configure(fail_status=400)
    r = post(core, {"model": "fo", "messages": MSG})
    assert r.status_code == 400, r.text
    assert core.a.stats.requests == 1 and core.b.stats.requests == 0


def test_upstream_retry_after_is_kept(core: Core) -> None:
    core.a.configure(fail_status=429, retry_after=7)
    r = post(core, {"model": "gpt-4o-mini", "messages": MSG})
    assert r.status_code == 429
    assert r.headers["retry-after"] == "7"


# ---- stages ---------------------------------------------------------------------------
def test_a_chunk_filter_stops_a_stream_cleanly(core: Core) -> None:
    core.a.configure(chunks=6)
    r = post(core, {"model": "gpt-4o-mini", "stream": True, "user": "stop-test", "messages": MSG})
    assert r.status_code == 200
    events = [line[6:] for line in r.text.split("\n") if line.startswith("data: ")]
    assert events[-1] == "[DONE]"
    chunks = [orjson.loads(e) for e in events[:-1]]
    assert not any("error" in c for c in chunks)
    assert chunks[-1]["choices"][0]["finish_reason"] == "content_filter"
    texts = [c["choices"][0]["delta"].get("content") for c in chunks if c["choices"]]
    assert len([t for t in texts if t]) == 2  # cut after the second piece
    # the SDK reads it as an ordinary stream that ended for content filtering
    s = client(core).chat.completions.create(
        model="gpt-4o-mini",
        stream=True,
        user="stop-test",
        messages=MSG,  # type: ignore[arg-type]
    )
    finishes = [c.choices[0].finish_reason for c in s if c.choices and c.choices[0].finish_reason]
    assert finishes == ["content_filter"]


def test_a_hold_back_filter_releases_held_chunks_at_the_end(core: Core) -> None:
    core.a.configure(chunks=5)
    s = client(core).chat.completions.create(
        model="gpt-4o-mini",
        stream=True,
        user="hold-test",
        messages=MSG,  # type: ignore[arg-type]
    )
    text = "".join(c.choices[0].delta.content or "" for c in s if c.choices)
    assert text == core.a.knobs.reply


def test_a_prepare_stage_can_rename_the_model(core: Core) -> None:
    r = post(core, {"model": "no-such-model", "user": "rename-test", "messages": MSG})
    assert r.status_code == 200, r.text
    assert core.a.stats.last_body["model"] == "gpt-4o-mini"


def test_an_unexpected_exception_is_a_json_500_and_logged(core: Core) -> None:
    r = post(core, {"model": "gpt-4o-mini", "user": "crash-test", "messages": MSG})
    assert r.status_code == 500
    body = r.json()
    assert body["code"] == 500 and body["error"]["code"] == "internal_error"
    assert r.headers["x-request-id"] in body["msg"]
    assert post(core, {"model": "gpt-4o-mini", "messages": MSG}).status_code == 200
    rid = r.headers["x-request-id"]
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        rows = core.gw.admin("GET", "/logs?limit=50")["data"]
        row = next((x for x in rows if x["request_id"] == rid), None)
        if row is not None:
            break
        time.sleep(0.2)
    assert row is not None and row["status"] == 500 and row["error_code"] == "internal_error"
    assert rid in core.gw.logs()


def test_sse_keepalive_while_the_upstream_is_silent(core: Core) -> None:
    core.a.configure(chunks=3, chunk_interval_ms=700)
    r = post(core, {"model": "gpt-4o-mini", "stream": True, "messages": MSG})
    assert ": keep-alive" in r.text
    assert r.text.rstrip().endswith("data: [DONE]")
    # the SDK skips the comments
    s = client(core).chat.completions.create(model="gpt-4o-mini", stream=True, messages=MSG)  # type: ignore[call-overload]
    assert "".join(c.choices[0].delta.content or "" for c in s if c.choices) == core.a.knobs.reply


# ---- edge -----------------------------------------------------------------------------
def test_wrong_method_is_405_with_allow(core: Core) -> None:
    r = httpx.get(core.gw.base_url + "/chat/completions")
    assert r.status_code == 405 and r.headers["allow"] == "POST"
    assert r.json()["error"]["code"] == "method_not_allowed"
    r = httpx.delete(core.gw.base_url + "/models", headers={"Authorization": f"Bearer {core.key}"})
    assert r.status_code == 405 and r.headers["allow"] == "GET"
    r = httpx.post(core.gw.base + "/readyz")
    assert r.status_code == 405 and r.headers["allow"] == "GET"
    assert httpx.get(core.gw.base_url + "/nope").status_code == 404


def test_cors_preflight_and_response_headers(core: Core) -> None:
    r = httpx.options(
        core.gw.base_url + "/chat/completions",
        headers={
            "Origin": "https://chat.example",
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization, content-type",
        },
    )
    assert r.status_code == 204
    assert r.headers["access-control-allow-origin"] == "https://chat.example"
    assert "POST" in r.headers["access-control-allow-methods"]
    assert "authorization" in r.headers["access-control-allow-headers"]
    assert "access-control-allow-credentials" not in r.headers
    r = post(core, {"model": "gpt-4o-mini", "messages": MSG}, Origin="https://chat.example")
    assert r.status_code == 200
    assert r.headers["access-control-allow-origin"] == "https://chat.example"
    assert "x-request-id" in r.headers["access-control-expose-headers"]
    # an origin not in the list gets no CORS headers
    r = post(core, {"model": "gpt-4o-mini", "messages": MSG}, Origin="https://evil.example")
    assert "access-control-allow-origin" not in r.headers
    # object endpoints take GET, POST and DELETE (a browser deleting a file)
    for path in ("/files/file-abc", "/threads/thread_1/messages"):
        r = httpx.options(
            core.gw.base_url + path,
            headers={"Origin": "https://chat.example", "Access-Control-Request-Method": "DELETE"},
        )
        assert r.status_code == 204
        assert "DELETE" in r.headers["access-control-allow-methods"]


def test_bad_stream_options_and_deep_nesting_are_clear_errors(core: Core) -> None:
    for opts in ("yes", 3, {"include_usage": "yes"}):
        r = post(
            core, {"model": "gpt-4o-mini", "stream": True, "stream_options": opts, "messages": MSG}
        )
        assert r.status_code == 403, r.text  # the seed table's invalid-request status
        assert r.json()["error"]["param"].startswith("stream_options")
    deep: object = "x"
    for _ in range(300):
        deep = [deep]
    for path, body in (
        ("/chat/completions", {"model": "gpt-4o-mini", "messages": MSG, "metadata": deep}),
        ("/embeddings", {"model": "gpt-4o-mini", "input": "hi", "extra": deep}),
    ):
        r = httpx.post(
            core.gw.base_url + path,
            content=_dumps_deep(body),
            headers={"Authorization": f"Bearer {core.key}", "Content-Type": "application/json"},
        )
        assert r.status_code == 403, r.text
        assert "nested too deeply" in r.json()["error"]["message"]


def _dumps_deep(body: dict[str, object]) -> bytes:
    """orjson refuses to encode 300 levels itself: build the JSON text by hand."""

    def enc(v: object) -> str:
        if isinstance(v, list):
            return "[" + ",".join(enc(x) for x in v) + "]"
        if isinstance(v, dict):
            return "{" + ",".join(f'"{k}":{enc(x)}' for k, x in v.items()) + "}"
        return orjson.dumps(v).decode()

    return enc(body).encode()


def test_rpm_limit_is_a_sliding_window_with_retry_after(core: Core) -> None:
    key = core.gw.create_key(core.uid, name="rpm3", rpm_limit=3)
    codes = []
    for _ in range(4):
        r = httpx.post(
            core.gw.base_url + "/chat/completions",
            json={"model": "gpt-4o-mini", "messages": MSG},
            headers={"Authorization": f"Bearer {key}"},
        )
        codes.append(r.status_code)
    assert codes == [200, 200, 200, 429]
    assert 55 <= int(r.headers["retry-after"]) <= 60
