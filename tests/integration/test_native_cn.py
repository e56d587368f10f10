"""Baidu ERNIE v1 (wenxinworkshop) and Tencent Hunyuan native (TC3-signed) through a
running gateway and their emulators, with the official openai SDK as the client: chat,
streams with usage, tool calls, embeddings, the providers' HTTP-200 errors mapped to
the gateway's error table, Baidu's access token fetched once and renewed on 111, and a
wrong Tencent secret refused by the emulator's signature check."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from gateway import Gateway

from relaygate.emulator import EmulatorServer
from relaygate.emulator.knobs import DEFAULT_REPLY

BAIDU_KEY = "bd-api-key|bd-secret-key"
TENCENT_KEY = "AKIDtestSecretId|test-secret-key"
TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "Weather of a city",
            "parameters": {
                "type": "object",
                "properties": {"city": {"type": "string"}},
                "required": ["city"],
            },
        },
    }
]
MSG = [{"role": "user", "content": "hi"}]


@dataclass
class Env:
    gw: Gateway
    baidu: EmulatorServer
    tencent: EmulatorServer
    key: str


@pytest.fixture(scope="module")
def cn(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    baidu = EmulatorServer("baidu").start()
    tencent = EmulatorServer("tencent").start()
    baidu.configure(api_key=BAIDU_KEY)
    tencent.configure(api_key=TENCENT_KEY)
    gw = Gateway(
        Path(tmp_path_factory.mktemp("gw-native-cn")), {"RELAYGATE_CHANNEL_TEST_INTERVAL": "0"}
    ).start()
    try:
        uid = gw.create_user("cn")
        gw.create_channel(
            name="baidu",
            provider="baidu",
            base_url=baidu.base_url,
            keys=[BAIDU_KEY],
            models=["ERNIE-4.0-8K", "ERNIE-Speed-128K", "Embedding-V1", "error-code-336501"],
            model_mapping={},
            config={"auth_url": baidu.origin},
        )
        gw.create_channel(
            name="baidu-errors",
            provider="baidu",
            base_url=baidu.base_url,
            keys=[BAIDU_KEY],
            models=["error-code-336003", "error-code-336100", "error-code-17", "error-midstream"],
            config={"auth_url": baidu.origin},
        )
        gw.create_channel(
            name="tencent",
            provider="tencent",
            base_url=tencent.base_url,
            keys=[TENCENT_KEY],
            models=["hunyuan-turbos-latest", "hunyuan-embedding", "error-429", "error-400"],
            config={"region": "ap-guangzhou"},
        )
        for model in ("hunyuan-badsig", "hunyuan-badsig-stream"):  # each is auto-disabled
            gw.create_channel(
                name=model,
                provider="tencent",
                base_url=tencent.base_url,
                keys=["1250000000|AKIDtestSecretId|wrong-secret"],  # AppId|SecretId|SecretKey
                models=[model],
            )
        gw.create_channel(
            name="baidu-badpair",
            provider="baidu",
            base_url=baidu.base_url,
            keys=["bd-api-key|wrong-secret"],
            models=["ERNIE-Lite-8K"],
            config={"auth_url": baidu.origin},
        )
        key = gw.create_key(uid, name="cn")
        yield Env(gw, baidu, tencent, key)
    finally:
        gw.stop()
        baidu.stop()
        tencent.stop()


@pytest.fixture(autouse=True)
def _fresh(cn: Env) -> Iterator[None]:
    for emu in (cn.baidu, cn.tencent):
        emu.reset(knobs=True, stats=True)
    cn.baidu.configure(api_key=BAIDU_KEY)
    cn.tencent.configure(api_key=TENCENT_KEY)
    yield


def client(cn: Env) -> openai.OpenAI:
    return openai.OpenAI(api_key=cn.key, base_url=cn.gw.base_url, max_retries=0)


def baidu_control(cn: Env, **changes: object) -> dict[str, object]:
    resp = httpx.post(cn.baidu.url("/_emulator/baidu"), json=changes, timeout=10)
    resp.raise_for_status()
    out: dict[str, object] = resp.json()
    return out


def recorded(emu: EmulatorServer, part: str = "") -> list[dict[str, Any]]:
    """Requests the emulator received (headers lower-cased), those whose path has ``part``."""
    out = []
    for r in emu.stats.snapshot()["recorded"]:
        if part in r["path"]:
            out.append({**r, "headers": {k.lower(): v for k, v in r["headers"].items()}})
    return out


def error_of(exc: pytest.ExceptionInfo[openai.APIStatusError]) -> tuple[int, str | None]:
    body = exc.value.body
    code = body.get("code") if isinstance(body, dict) else None
    return exc.value.status_code, code


# ---------------------------------------------------------------- Baidu


def test_baidu_chat_token_fetched_once_and_cached(cn: Env) -> None:
    before = int(baidu_control(cn)["issued"])  # type: ignore[arg-type]
    c = client(cn)
    for _ in range(3):
        r = c.chat.completions.create(
            model="ERNIE-4.0-8K",
            messages=[{"role": "system", "content": "Be brief."}, *MSG],
            max_tokens=50,
        )
        assert r.choices[0].message.content == DEFAULT_REPLY
        assert r.choices[0].finish_reason == "stop"
        assert r.usage is not None and r.usage.total_tokens == (
            r.usage.prompt_tokens + r.usage.completion_tokens
        )
    issued = int(baidu_control(cn)["issued"])  # type: ignore[arg-type]
    assert issued - before <= 1  # at most the first request of the module exchanged
    req = recorded(cn.baidu, "completions_pro")
    body = req[-1]["body"]
    assert body["system"] == "Be brief." and body["max_output_tokens"] == 50
    assert body["messages"] == [{"role": "user", "content": "hi"}]


def test_baidu_stream_with_usage(cn: Env) -> None:
    stream = client(cn).chat.completions.create(
        model="ERNIE-Speed-128K",
        messages=MSG,
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    text = "".join(
        ch.choices[0].delta.content or "" for ch in chunks if ch.choices and ch.choices[0].delta
    )
    assert text == DEFAULT_REPLY
    finishes = [ch.choices[0].finish_reason for ch in chunks if ch.choices]
    assert finishes[-1] == "stop"
    assert chunks[-1].choices == [] and chunks[-1].usage is not None
    usage = chunks[-1].usage
    assert usage.completion_tokens == usage.total_tokens - usage.prompt_tokens > 0
    assert sum(1 for ch in chunks if ch.usage is not None) == 1


def test_baidu_tool_calls(cn: Env) -> None:
    c = client(cn)
    r = c.chat.completions.create(model="ERNIE-4.0-8K", messages=MSG, tools=TOOLS)  # type: ignore[arg-type]
    choice = r.choices[0]
    assert choice.finish_reason == "tool_calls"
    call = choice.message.tool_calls[0]  # type: ignore[index]
    assert call.function.name == "get_weather"  # type: ignore[union-attr]
    assert json.loads(call.function.arguments) == {"city": "Florence"}  # type: ignore[union-attr]
    # the tool result goes back as a `function` turn
    r2 = c.chat.completions.create(
        model="ERNIE-4.0-8K",
        messages=[
            *MSG,
            {"role": "assistant", "content": None, "tool_calls": [call.model_dump()]},
            {"role": "tool", "tool_call_id": call.id, "content": "sunny"},
        ],  # type: ignore[list-item]
        tools=TOOLS,  # type: ignore[arg-type]
    )
    assert r2.choices[0].message.content == "The function returned: sunny"
    sent = recorded(cn.baidu)[-1]["body"]
    assert sent["messages"][2] == {"role": "function", "name": "get_weather", "content": "sunny"}
    assert sent["functions"][0]["name"] == "get_weather"
    # streamed
    chunks = list(
        c.chat.completions.create(model="ERNIE-4.0-8K", messages=MSG, tools=TOOLS, stream=True)  # type: ignore[arg-type]
    )
    calls = [tc for ch in chunks if ch.choices for tc in ch.choices[0].delta.tool_calls or ()]
    assert calls and calls[0].function.name == "get_weather"  # type: ignore[union-attr]
    assert chunks[-1].choices[0].finish_reason == "tool_calls"


def test_baidu_embeddings(cn: Env) -> None:
    r = client(cn).embeddings.create(model="Embedding-V1", input=["a", "b"])
    assert [d.index for d in r.data] == [0, 1]
    assert len(r.data[0].embedding) == 8 and r.data[0].embedding != r.data[1].embedding
    assert r.usage.prompt_tokens == 2
    assert "/embeddings/embedding-v1" in recorded(cn.baidu)[-1]["path"]


def test_baidu_expired_token_is_renewed_transparently(cn: Env) -> None:
    c = client(cn)
    c.chat.completions.create(model="ERNIE-4.0-8K", messages=MSG)  # a cached token
    before = int(baidu_control(cn, expire=True)["issued"])  # type: ignore[arg-type]
    r = c.chat.completions.create(model="ERNIE-4.0-8K", messages=MSG)
    assert r.choices[0].message.content == DEFAULT_REPLY
    assert int(baidu_control(cn)["issued"]) == before + 1  # type: ignore[arg-type]
    # revoked (110) while streaming: also renewed, once
    baidu_control(cn, revoke=True)
    chunks = list(c.chat.completions.create(model="ERNIE-4.0-8K", messages=MSG, stream=True))
    assert "".join(ch.choices[0].delta.content or "" for ch in chunks if ch.choices) == (
        DEFAULT_REPLY
    )
    assert int(baidu_control(cn)["issued"]) == before + 2  # type: ignore[arg-type]


def channel_test(cn: Env, name: str) -> dict[str, Any]:
    """``POST /admin/api/channels/{id}/test`` on the channel called ``name``."""
    cid = next(c["id"] for c in cn.gw.admin("GET", "/channels")["data"] if c["name"] == name)
    out: dict[str, Any] = cn.gw.admin("POST", f"/channels/{cid}/test")
    return out


def test_baidu_channel_test_renews_an_expired_token(cn: Env) -> None:
    """A channel test whose cached token the upstream calls expired (111) or invalid
    (110) drops it and tests once more with a fresh one, as a relayed request does."""
    client(cn).chat.completions.create(model="ERNIE-4.0-8K", messages=MSG)  # a cached token
    before = int(baidu_control(cn, expire=True)["issued"])  # type: ignore[arg-type]
    result = channel_test(cn, "baidu")
    assert result["ok"] is True and result["error"] is None, result
    assert int(baidu_control(cn)["issued"]) == before + 1  # type: ignore[arg-type]
    refused, retried = recorded(cn.baidu, "/chat/")[-2:]  # the refused call, the retry
    assert refused["query"]["access_token"] != retried["query"]["access_token"]
    baidu_control(cn, revoke=True)
    assert channel_test(cn, "baidu")["ok"] is True
    assert int(baidu_control(cn)["issued"]) == before + 2  # type: ignore[arg-type]
    # the renewed token is the cache's: the next relayed request exchanges none
    client(cn).chat.completions.create(model="ERNIE-4.0-8K", messages=MSG)
    assert int(baidu_control(cn)["issued"]) == before + 2  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("model", "status", "code"),
    [
        ("error-code-336501", 429, "rate_limit_exceeded"),
        ("error-code-17", 429, "rate_limit_exceeded"),
        ("error-code-336003", 400, "invalid_request_error"),
        ("error-code-336100", 502, "upstream_error"),
    ],
)
@pytest.mark.parametrize("stream", [False, True])
def test_baidu_http200_errors_mapped(
    cn: Env, model: str, status: int, code: str, stream: bool
) -> None:
    with pytest.raises(openai.APIStatusError) as exc:
        r = client(cn).chat.completions.create(model=model, messages=MSG, stream=stream)
        if stream:
            list(r)  # type: ignore[arg-type]
    assert error_of(exc) == (status, code)


def test_baidu_midstream_error(cn: Env) -> None:
    with pytest.raises(openai.APIError):
        for _ in client(cn).chat.completions.create(
            model="error-midstream", messages=MSG, stream=True
        ):
            pass


def test_baidu_bad_client_credentials(cn: Env) -> None:
    with pytest.raises(openai.APIStatusError) as exc:
        client(cn).chat.completions.create(model="ERNIE-Lite-8K", messages=MSG)
    assert error_of(exc) == (502, "upstream_auth_failed")
    token_calls = recorded(cn.baidu, "/oauth/2.0/token")
    assert token_calls and token_calls[-1]["query"]["client_secret"] == "wrong-secret"
    assert not recorded(cn.baidu, "/chat/")  # no chat call without a token


def test_baidu_non_alternating_conversation_is_400(cn: Env) -> None:
    with pytest.raises(openai.APIStatusError) as exc:
        client(cn).chat.completions.create(
            model="ERNIE-Speed-128K",
            messages=[{"role": "assistant", "content": "hello"}, *MSG],
        )
    assert exc.value.status_code in (400, 403)  # the client's error (seed table: 403)
    assert "alternate" in str(exc.value.message)


def test_baidu_json_mode(cn: Env) -> None:
    c = client(cn)
    r = c.chat.completions.create(
        model="ERNIE-4.0-8K", messages=MSG, response_format={"type": "json_object"}
    )
    assert json.loads(r.choices[0].message.content or "") == {"reply": DEFAULT_REPLY}
    assert recorded(cn.baidu, "/chat/")[-1]["body"]["response_format"] == "json_object"
    chunks = list(
        c.chat.completions.create(
            model="ERNIE-4.0-8K",
            messages=MSG,
            stream=True,
            response_format={
                "type": "json_schema",
                "json_schema": {"name": "r", "schema": {"type": "object"}},
            },
        )
    )
    text = "".join(ch.choices[0].delta.content or "" for ch in chunks if ch.choices)
    assert json.loads(text) == {"reply": DEFAULT_REPLY}
    assert recorded(cn.baidu, "/chat/")[-1]["body"]["response_format"] == "json_object"
    r = c.chat.completions.create(
        model="ERNIE-4.0-8K", messages=MSG, response_format={"type": "text"}
    )
    assert r.choices[0].message.content == DEFAULT_REPLY
    assert recorded(cn.baidu, "/chat/")[-1]["body"]["response_format"] == "text"


def test_baidu_malformed_response_format_is_400_before_upstream(cn: Env) -> None:
    with pytest.raises(openai.APIStatusError) as exc:
        client(cn).chat.completions.create(
            model="ERNIE-4.0-8K",
            messages=MSG,
            response_format={"type": "yaml"},  # type: ignore[typeddict-item]
        )
    assert exc.value.status_code in (400, 403)  # the client's error (seed table: 403)
    body = exc.value.body
    assert isinstance(body, dict) and body.get("param") == "response_format"
    assert not recorded(cn.baidu, "/chat/")


# ---------------------------------------------------------------- Tencent


def test_tencent_chat_signed(cn: Env) -> None:
    r = client(cn).chat.completions.create(
        model="hunyuan-turbos-latest",
        messages=[{"role": "system", "content": "Be brief."}, *MSG],
        temperature=0.5,
    )
    assert r.choices[0].message.content == DEFAULT_REPLY
    assert r.usage is not None and r.usage.prompt_tokens > 0
    req = recorded(cn.tencent)[-1]
    assert req["headers"]["x-tc-action"] == "ChatCompletions"
    assert req["headers"]["x-tc-region"] == "ap-guangzhou"
    assert req["headers"]["authorization"].startswith(
        "TC3-HMAC-SHA256 Credential=AKIDtestSecretId/"
    )
    assert req["body"]["Messages"][0] == {"Role": "system", "Content": "Be brief."}
    assert req["body"]["Temperature"] == 0.5 and req["body"]["EnableEnhancement"] is False


def test_tencent_stream_with_usage(cn: Env) -> None:
    chunks = list(
        client(cn).chat.completions.create(
            model="hunyuan-turbos-latest",
            messages=MSG,
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    text = "".join(ch.choices[0].delta.content or "" for ch in chunks if ch.choices)
    assert text == DEFAULT_REPLY
    assert [ch.choices[0].finish_reason for ch in chunks if ch.choices][-1] == "stop"
    assert chunks[-1].choices == [] and chunks[-1].usage is not None
    assert chunks[-1].usage.completion_tokens > 0


def test_tencent_tool_calls(cn: Env) -> None:
    c = client(cn)
    r = c.chat.completions.create(model="hunyuan-turbos-latest", messages=MSG, tools=TOOLS)  # type: ignore[arg-type]
    assert r.choices[0].finish_reason == "tool_calls"
    call = r.choices[0].message.tool_calls[0]  # type: ignore[index]
    assert call.function.name == "get_weather"  # type: ignore[union-attr]
    assert json.loads(call.function.arguments) == {"city": "Florence"}  # type: ignore[union-attr]
    sent = recorded(cn.tencent)[-1]["body"]
    assert isinstance(sent["Tools"][0]["Function"]["Parameters"], str)
    r2 = c.chat.completions.create(
        model="hunyuan-turbos-latest",
        messages=[
            *MSG,
            {"role": "assistant", "content": None, "tool_calls": [call.model_dump()]},
            {"role": "tool", "tool_call_id": call.id, "content": "sunny"},
        ],  # type: ignore[list-item]
        tools=TOOLS,  # type: ignore[arg-type]
    )
    assert r2.choices[0].message.content == "The tool returned: sunny"
    chunks = list(
        c.chat.completions.create(
            model="hunyuan-turbos-latest",
            messages=MSG,
            tools=TOOLS,
            stream=True,  # type: ignore[arg-type]
        )
    )
    calls = [tc for ch in chunks if ch.choices for tc in ch.choices[0].delta.tool_calls or ()]
    assert calls and calls[0].function.name == "get_weather"  # type: ignore[union-attr]
    assert chunks[-1].choices[0].finish_reason == "tool_calls"


def test_tencent_embeddings(cn: Env) -> None:
    r = client(cn).embeddings.create(model="hunyuan-embedding", input=["x", "y", "z"])
    assert [d.index for d in r.data] == [0, 1, 2] and len(r.data[2].embedding) == 8
    req = recorded(cn.tencent)[-1]
    assert req["headers"]["x-tc-action"] == "GetEmbedding"
    assert req["body"] == {"InputList": ["x", "y", "z"]}


@pytest.mark.parametrize(
    ("model", "status", "code", "stream"),
    [
        ("error-429", 429, "rate_limit_exceeded", False),
        ("error-429", 429, "rate_limit_exceeded", True),
        ("error-400", 400, "InvalidParameter", False),
        ("error-400", 400, "InvalidParameter", True),
        ("hunyuan-badsig", 502, "upstream_auth_failed", False),
        ("hunyuan-badsig-stream", 502, "upstream_auth_failed", True),
    ],
)
def test_tencent_errors_mapped(cn: Env, model: str, status: int, code: str, stream: bool) -> None:
    with pytest.raises(openai.APIStatusError) as exc:
        r = client(cn).chat.completions.create(model=model, messages=MSG, stream=stream)
        if stream:
            list(r)  # type: ignore[arg-type]
    assert error_of(exc) == (status, code)
    if model.startswith("hunyuan-badsig"):
        # the emulator recomputed the signature with its secret and refused it
        assert cn.tencent.stats.snapshot()["errors"] >= 1
        assert recorded(cn.tencent)[-1]["headers"]["authorization"].startswith(
            "TC3-HMAC-SHA256 Credential=AKIDtestSecretId/"
        )


def test_tencent_stale_timestamp_refused(cn: Env) -> None:
    """The emulator refuses a request signed more than 5 minutes ago."""
    from relaygate.providers.base import Target
    from relaygate.providers.tencent import TencentAdaptor

    target = Target(1, "tencent", "tencent", cn.tencent.base_url, TENCENT_KEY, "hunyuan-t1")
    ureq = TencentAdaptor(clock=lambda: 1_000_000_000).chat_request(
        target, {"model": "m", "messages": MSG}, False
    )
    resp = httpx.post(ureq.url, content=ureq.body, headers=ureq.headers, timeout=10)
    assert resp.status_code == 200
    assert resp.json()["Response"]["Error"]["Code"] == "AuthFailure.SignatureExpire"
    fresh = TencentAdaptor().chat_request(target, {"model": "m", "messages": MSG}, False)
    ok = httpx.post(fresh.url, content=fresh.body, headers=fresh.headers, timeout=10)
    assert ok.json()["Response"]["Choices"][0]["Message"]["Content"] == DEFAULT_REPLY


def test_tencent_consecutive_messages_merged_through_the_gateway(cn: Env) -> None:
    """The emulator refuses two user messages in a row as Hunyuan does; through the
    gateway they arrive as one turn and the answer comes back."""
    import time

    from relaygate.providers.base import Target
    from relaygate.providers.tencent_request import signed_request

    target = Target(1, "tencent", "tencent", cn.tencent.base_url, TENCENT_KEY, "hunyuan-t1")
    raw = {
        "Model": "hunyuan-t1",
        "Messages": [{"Role": "user", "Content": "a"}, {"Role": "user", "Content": "b"}],
    }
    ureq = signed_request(target, "ChatCompletions", raw, int(time.time()))
    resp = httpx.post(ureq.url, content=ureq.body, headers=ureq.headers, timeout=10)
    assert resp.json()["Response"]["Error"]["Code"] == "InvalidParameter"

    r = client(cn).chat.completions.create(
        model="hunyuan-turbos-latest",
        messages=[
            {"role": "user", "content": "a"},
            {"role": "user", "content": "b"},
            {"role": "assistant", "content": "c"},
            {"role": "assistant", "content": "d"},
            {"role": "user", "content": "e"},
        ],
    )
    assert r.choices[0].message.content == DEFAULT_REPLY
    assert recorded(cn.tencent)[-1]["body"]["Messages"] == [
        {"Role": "user", "Content": "a\n\nb"},
        {"Role": "assistant", "Content": "c\n\nd"},
        {"Role": "user", "Content": "e"},
    ]


def test_tencent_conversation_ending_with_assistant_is_400_before_upstream(cn: Env) -> None:
    with pytest.raises(openai.APIStatusError) as exc:
        client(cn).chat.completions.create(
            model="hunyuan-turbos-latest",
            messages=[*MSG, {"role": "assistant", "content": "prefill"}],
        )
    assert exc.value.status_code in (400, 403)  # the client's error (seed table: 403)
    assert "turn 2 (assistant, messages[1])" in str(exc.value.message)
    assert not recorded(cn.tencent)


def test_tencent_seed(cn: Env) -> None:
    c = client(cn)
    r = c.chat.completions.create(model="hunyuan-turbos-latest", messages=MSG, seed=42)
    assert r.choices[0].message.content == DEFAULT_REPLY
    assert recorded(cn.tencent)[-1]["body"]["Seed"] == 42
    with pytest.raises(openai.APIStatusError) as exc:
        c.chat.completions.create(model="hunyuan-turbos-latest", messages=MSG, seed=123456)
    assert exc.value.status_code in (400, 403)
    body = exc.value.body
    assert isinstance(body, dict) and body.get("param") == "seed"
    assert len(recorded(cn.tencent)) == 1  # the refused one never went upstream


# ---------------------------------------------------------------- emulator knobs


def _tencent_stream_request(cn: Env) -> Any:
    from relaygate.providers.base import Target
    from relaygate.providers.tencent import TencentAdaptor

    target = Target(1, "tencent", "tencent", cn.tencent.base_url, TENCENT_KEY, "hunyuan-t1")
    return TencentAdaptor().chat_request(target, {"model": "m", "messages": MSG}, True)


def _baidu_stream_request(cn: Env) -> tuple[str, bytes]:
    q = "grant_type=client_credentials&client_id=bd-api-key&client_secret=bd-secret-key"
    token = httpx.post(cn.baidu.url("/oauth/2.0/token?" + q), timeout=10).json()["access_token"]
    url = cn.baidu.url(
        f"/rpc/2.0/ai_custom/v1/wenxinworkshop/chat/completions?access_token={token}"
    )
    return url, b'{"messages":[{"role":"user","content":"hi"}],"stream":true}'


def _events(raw: bytes) -> list[dict[str, Any]]:
    return [json.loads(b[6:]) for b in raw.split(b"\n\n") if b.startswith(b"data: ")]


def test_emulator_knobs_chunks_cut_latency_hang(cn: Env) -> None:
    import time

    url, body = _baidu_stream_request(cn)
    cn.baidu.configure(chunks=3)
    events = _events(httpx.post(url, content=body, timeout=10).content)
    assert len(events) == 4 and [e["is_end"] for e in events] == [False, False, False, True]
    cn.baidu.configure(cut_after=1)
    with pytest.raises(httpx.HTTPError):
        httpx.post(url, content=body, timeout=10).read()  # closed without its end
    cn.baidu.configure(cut_after=None, latency_ms=250)
    began = time.perf_counter()
    httpx.post(url, content=body, timeout=10)
    assert time.perf_counter() - began >= 0.25
    cn.baidu.configure(latency_ms=0, hang=True)
    with pytest.raises(httpx.TimeoutException):
        httpx.post(url, content=body, timeout=0.3)
    cn.baidu.configure(hang=False)

    cn.tencent.configure(chunks=2, midstream_error=True)
    req = _tencent_stream_request(cn)
    events = _events(httpx.post(req.url, content=req.body, headers=req.headers, timeout=10).content)
    assert events[0]["Choices"][0]["FinishReason"] == ""
    assert events[-1]["Response"]["Error"]["Code"] == "InternalError"
    cn.tencent.configure(midstream_error=False)
    req = _tencent_stream_request(cn)
    events = _events(httpx.post(req.url, content=req.body, headers=req.headers, timeout=10).content)
    assert len(events) == 3 and events[-1]["Choices"][0]["FinishReason"] == "stop"
