"""The Baidu ERNIE v1 (wenxinworkshop) adaptor with literal bytes: the OAuth token
exchange, chat requests (system, alternation, functions, parameter renames), answers,
streams fed in small pieces, every error code, embeddings; and the token cache's
``invalidate`` that the relay uses on error 110/111."""

from __future__ import annotations

import asyncio
import dataclasses
from typing import Any

import orjson
import pytest

from relaygate.errors import (
    InvalidRequest,
    RateLimited,
    RelayError,
    UpstreamError,
    UpstreamRejected,
)
from relaygate.providers.baidu import BaiduAdaptor
from relaygate.providers.base import Target
from relaygate.relay.sse import SSEDecoder
from relaygate.routing.tokens import TOKEN_EXPIRED, TokenCache

A = BaiduAdaptor()
KEY = "ak-123456|sk-abcdef"


def target(model: str = "ERNIE-4.0-8K", token: str | None = "24.tok", **config: Any) -> Target:
    return Target(7, "baidu", "baidu", "https://aip.baidubce.com", KEY, model, config, token)


def sent(body: dict[str, Any], stream: bool = False, t: Target | None = None) -> dict[str, Any]:
    out: dict[str, Any] = orjson.loads(A.chat_request(t or target(), body, stream).body)
    return out


# ---------------------------------------------------------------- token exchange


def test_token_request_and_response() -> None:
    req = A.token_request(target(token=None))
    assert req is not None and req.method == "POST" and req.body == b""
    assert req.url == (
        "https://aip.baidubce.com/oauth/2.0/token?grant_type=client_credentials"
        "&client_id=ak-123456&client_secret=sk-abcdef"
    )
    other = A.token_request(target(token=None, auth_url="http://127.0.0.1:9/"))
    assert other is not None and other.url.startswith("http://127.0.0.1:9/oauth/2.0/token?")
    raw = (
        b'{"refresh_token":"25.r","expires_in":2592000,"session_key":"s",'
        b'"access_token":"24.6c5e1ff1","scope":"public","session_secret":"x"}'
    )
    assert A.token_response(target(), 200, raw) == ("24.6c5e1ff1", 2592000.0)
    assert A.token_response(target(), 200, b'{"access_token":"24.a"}') == ("24.a", 2592000.0)


@pytest.mark.parametrize("status", [200, 401])
def test_token_failure_is_upstream_auth_failed(status: int) -> None:
    raw = b'{"error":"invalid_client","error_description":"unknown client id"}'
    with pytest.raises(UpstreamError) as exc:
        A.token_response(target(), status, raw)
    assert exc.value.code == "upstream_auth_failed"
    assert "sk-abcdef" not in exc.value.message


def test_token_endpoint_5xx_is_retryable_upstream_error() -> None:
    with pytest.raises(UpstreamError) as exc:
        A.token_response(target(), 503, b"<html>busy</html>")
    assert exc.value.code == "upstream_error"


def test_key_without_secret_is_refused() -> None:
    with pytest.raises(UpstreamError) as exc:
        A.token_request(dataclasses.replace(target(), api_key="only-one-part"))
    assert exc.value.code == "upstream_auth_failed"


# ---------------------------------------------------------------- requests


def test_chat_request_url_and_body() -> None:
    req = A.chat_request(
        target(),
        {
            "model": "x",
            "messages": [
                {"role": "system", "content": "Be brief."},
                {"role": "user", "content": "你好"},
            ],
            "max_tokens": 100,
            "frequency_penalty": 1.0,
            "temperature": 1.7,
            "top_p": 0.5,
            "stop": "END",
            "user": "u1",
        },
        False,
    )
    assert req.url == (
        "https://aip.baidubce.com/rpc/2.0/ai_custom/v1/wenxinworkshop/chat/completions_pro"
        "?access_token=24.tok"
    )
    assert orjson.loads(req.body) == {
        "messages": [{"role": "user", "content": "你好"}],
        "system": "Be brief.",
        "temperature": 1.0,
        "top_p": 0.5,
        "penalty_score": 1.5,
        "max_output_tokens": 100,
        "stop": ["END"],
        "user_id": "u1",
    }
    assert sent({"messages": [{"role": "user", "content": "x"}]}, True)["stream"] is True


@pytest.mark.parametrize(
    ("model", "endpoint"),
    [
        ("ERNIE-3.5-8K", "completions"),
        ("ERNIE-Speed-128K", "ernie-speed-128k"),
        ("ERNIE-Lite-8K", "ernie-lite-8k"),
        ("ERNIE-Tiny-8K", "ernie-tiny-8k"),
        ("Qianfan-Custom", "qianfan-custom"),
    ],
)
def test_endpoints(model: str, endpoint: str) -> None:
    url = A.chat_request(target(model), {"messages": [{"role": "user", "content": "x"}]}, False).url
    assert url.split("?")[0].endswith(f"/chat/{endpoint}")


def test_config_endpoints_override() -> None:
    t = target("my-ft", endpoints={"my-ft": "abc123xyz"})
    url = A.chat_request(t, {"messages": [{"role": "user", "content": "x"}]}, False).url
    assert "/chat/abc123xyz?access_token=" in url


def test_consecutive_turns_merged_and_alternation_enforced() -> None:
    body = sent(
        {
            "messages": [
                {"role": "user", "content": "a"},
                {"role": "user", "content": [{"type": "text", "text": "b"}]},
                {"role": "assistant", "content": "c"},
                {"role": "developer", "content": "rules"},
                {"role": "user", "content": "d"},
            ]
        }
    )
    assert body["messages"] == [
        {"role": "user", "content": "a\n\nb"},
        {"role": "assistant", "content": "c"},
        {"role": "user", "content": "d"},
    ]
    assert body["system"] == "rules"
    for bad in (
        [{"role": "assistant", "content": "x"}, {"role": "user", "content": "y"}],
        [{"role": "user", "content": "x"}, {"role": "assistant", "content": "y"}],
        [{"role": "system", "content": "only"}],
    ):
        with pytest.raises(InvalidRequest) as exc:
            sent({"messages": bad})
        assert exc.value.param == "messages"
    with pytest.raises(InvalidRequest) as exc:
        sent({"messages": [{"role": "user", "content": [{"type": "image_url"}]}]})
    assert exc.value.param == "messages[0]"


@pytest.mark.parametrize(
    ("fmt", "expected"),
    [
        ({"type": "json_object"}, "json_object"),
        ({"type": "text"}, "text"),
        ({"type": "json_schema", "json_schema": {"name": "x", "schema": {}}}, "json_object"),
    ],
)
def test_response_format_becomes_ernies_string(fmt: dict[str, Any], expected: str) -> None:
    body = sent({"messages": [{"role": "user", "content": "x"}], "response_format": fmt})
    assert body["response_format"] == expected
    assert "json_schema" not in orjson.dumps(body).decode()  # no schema field is invented


@pytest.mark.parametrize(
    "fmt", ["json_object", {"type": "yaml"}, {}, {"type": None}, ["json_object"], 1]
)
def test_malformed_response_format_is_400(fmt: Any) -> None:
    with pytest.raises(InvalidRequest) as exc:
        sent({"messages": [{"role": "user", "content": "x"}], "response_format": fmt})
    assert exc.value.param == "response_format" and exc.value.openai_status == 400


def test_no_response_format_sends_none() -> None:
    body = sent({"messages": [{"role": "user", "content": "x"}], "response_format": None})
    assert "response_format" not in body


def test_tools_become_functions_and_calls_round_trip() -> None:
    tools = [
        {
            "type": "function",
            "function": {
                "name": "get_weather",
                "description": "d",
                "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
            },
        }
    ]
    body = sent(
        {
            "messages": [
                {"role": "user", "content": "weather?"},
                {
                    "role": "assistant",
                    "content": None,
                    "tool_calls": [
                        {
                            "id": "call_1",
                            "type": "function",
                            "function": {"name": "get_weather", "arguments": '{"city":"Rome"}'},
                        }
                    ],
                },
                {"role": "tool", "tool_call_id": "call_1", "content": "sunny"},
            ],
            "tools": tools,
            "tool_choice": {"type": "function", "function": {"name": "get_weather"}},
        }
    )
    assert body["functions"] == [
        {
            "name": "get_weather",
            "description": "d",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
        }
    ]
    assert body["tool_choice"] == {"type": "function", "function": {"name": "get_weather"}}
    assert body["messages"][1] == {
        "role": "assistant",
        "content": "",
        "function_call": {"name": "get_weather", "arguments": '{"city":"Rome"}'},
    }
    assert body["messages"][2] == {"role": "function", "name": "get_weather", "content": "sunny"}
    assert "functions" not in sent(
        {"messages": [{"role": "user", "content": "x"}], "tools": tools, "tool_choice": "none"}
    )


# ---------------------------------------------------------------- answers

ANSWER = (
    b'{"id":"as-bcmt5ct4ie","object":"chat.completion","created":1680167075,'
    b'"result":"\xe4\xbd\xa0\xe5\xa5\xbd","is_truncated":false,"need_clear_history":false,'
    b'"finish_reason":"normal","usage":{"prompt_tokens":10,"completion_tokens":72,"total_tokens":82}}'
)


def test_chat_response() -> None:
    obj, usage = A.chat_response(target(), ANSWER)
    assert obj["id"] == "chatcmpl-as-bcmt5ct4ie" and obj["created"] == 1680167075
    assert obj["model"] == "ERNIE-4.0-8K"
    assert obj["choices"][0]["message"] == {"role": "assistant", "content": "你好"}
    assert obj["choices"][0]["finish_reason"] == "stop"
    assert obj["usage"] == {"prompt_tokens": 10, "completion_tokens": 72, "total_tokens": 82}
    assert usage is not None and usage.completion_tokens == 72


@pytest.mark.parametrize(
    ("reason", "expected"),
    [("length", "length"), ("content_filter", "content_filter"), ("stop", "stop")],
)
def test_finish_reasons(reason: str, expected: str) -> None:
    raw = b'{"id":"a","result":"x","finish_reason":"%s","usage":{}}' % reason.encode()
    assert A.chat_response(target(), raw)[0]["choices"][0]["finish_reason"] == expected


def test_function_call_answer() -> None:
    raw = (
        b'{"id":"as-1","object":"chat.completion","created":1,"result":"",'
        b'"finish_reason":"function_call","function_call":{"name":"get_weather",'
        b'"arguments":"{\\"city\\":\\"Rome\\"}","thoughts":"call it"},'
        b'"usage":{"prompt_tokens":5,"completion_tokens":9,"total_tokens":14}}'
    )
    obj, _ = A.chat_response(target(), raw)
    choice = obj["choices"][0]
    assert choice["finish_reason"] == "tool_calls"
    assert choice["message"]["tool_calls"] == [
        {
            "id": "call_as-1",
            "type": "function",
            "function": {"name": "get_weather", "arguments": '{"city":"Rome"}'},
        }
    ]
    legacy, _ = A.chat_response(target(), raw, legacy_functions=True)
    assert legacy["choices"][0]["finish_reason"] == "function_call"
    assert legacy["choices"][0]["message"]["function_call"]["name"] == "get_weather"


# ---------------------------------------------------------------- streams

STREAM = (
    b'data: {"id":"as-vb0m37ti8y","object":"chat.completion","created":1709089502,'
    b'"sentence_id":0,"is_end":false,"is_truncated":false,"result":"\xe4\xbd\xa0\xe5\xa5\xbd",'
    b'"need_clear_history":false,"finish_reason":"normal",'
    b'"usage":{"prompt_tokens":5,"completion_tokens":2,"total_tokens":7}}\n\n'
    b'data: {"id":"as-vb0m37ti8y","object":"chat.completion","created":1709089502,'
    b'"sentence_id":1,"is_end":false,"is_truncated":false,"result":"!",'
    b'"need_clear_history":false,"finish_reason":"normal",'
    b'"usage":{"prompt_tokens":5,"completion_tokens":1,"total_tokens":8}}\n\n'
    b'data: {"id":"as-vb0m37ti8y","object":"chat.completion","created":1709089502,'
    b'"sentence_id":2,"is_end":true,"is_truncated":false,"result":"",'
    b'"need_clear_history":false,"finish_reason":"normal",'
    b'"usage":{"prompt_tokens":5,"completion_tokens":0,"total_tokens":8}}\n\n'
)


def run_stream(raw: bytes, include_usage: bool, piece: int = 7, **kw: Any) -> tuple[Any, list[Any]]:
    tr = A.chat_stream(target(), include_usage, **kw)
    dec = SSEDecoder()
    out: list[bytes] = []
    for i in range(0, len(raw), piece):
        for ev, data in dec.feed(raw[i : i + piece]):
            out.extend(tr.feed(ev, data))
    for ev, data in dec.flush():
        out.extend(tr.feed(ev, data))
    out.extend(tr.finish())
    return tr, [orjson.loads(p) for p in out]


@pytest.mark.parametrize("include_usage", [True, False])
def test_stream(include_usage: bool) -> None:
    tr, chunks = run_stream(STREAM, include_usage)
    assert tr.done and tr.error is None
    assert chunks[0]["id"] == "chatcmpl-as-vb0m37ti8y"
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": "你好"}
    assert chunks[1]["choices"][0]["delta"] == {"content": "!"}
    assert chunks[2]["choices"][0] == {"index": 0, "delta": {}, "finish_reason": "stop"}
    # completion = total - prompt (per-chunk completion_tokens are not cumulative)
    assert tr.usage.prompt_tokens == 5 and tr.usage.completion_tokens == 3
    if include_usage:
        assert chunks[3]["choices"] == []
        assert chunks[3]["usage"] == {"prompt_tokens": 5, "completion_tokens": 3, "total_tokens": 8}
        assert len(chunks) == 4
    else:
        assert len(chunks) == 3 and all("usage" not in c for c in chunks)


def test_stream_function_call() -> None:
    raw = (
        b'data: {"id":"as-2","object":"chat.completion","created":1,"sentence_id":0,'
        b'"is_end":true,"result":"","finish_reason":"function_call",'
        b'"function_call":{"name":"f","arguments":"{}"},'
        b'"usage":{"prompt_tokens":3,"completion_tokens":4,"total_tokens":7}}\n\n'
    )
    tr, chunks = run_stream(raw, False, piece=5)
    assert tr.done
    delta = chunks[0]["choices"][0]["delta"]
    assert delta["tool_calls"] == [
        {
            "index": 0,
            "id": "call_as-2",
            "type": "function",
            "function": {"name": "f", "arguments": "{}"},
        }
    ]
    assert chunks[0]["choices"][0]["finish_reason"] == "tool_calls"
    _, legacy = run_stream(raw, False, legacy_functions=True)
    assert legacy[0]["choices"][0]["delta"]["function_call"] == {"name": "f", "arguments": "{}"}
    assert legacy[0]["choices"][0]["finish_reason"] == "function_call"


def test_stream_error_event() -> None:
    raw = (
        STREAM.split(b"\n\n")[0]
        + b'\n\ndata: {"error_code":336100,"error_msg":"Server high load"}\n\n'
    )
    tr, chunks = run_stream(raw, False)
    assert len(chunks) == 1 and not tr.done
    assert isinstance(tr.error, UpstreamError) and tr.error.code == "upstream_error"


def test_stream_without_end_is_not_done() -> None:
    tr, _ = run_stream(STREAM.split(b"\n\n")[0] + b"\n\n", False)
    assert not tr.done and tr.error is None


# ---------------------------------------------------------------- errors


@pytest.mark.parametrize(
    ("code", "cls", "status", "err_code"),
    [
        (110, UpstreamError, 502, TOKEN_EXPIRED),
        (111, UpstreamError, 502, TOKEN_EXPIRED),
        (4, RateLimited, 429, "rate_limit_exceeded"),
        (17, RateLimited, 429, "rate_limit_exceeded"),
        (18, RateLimited, 429, "rate_limit_exceeded"),
        (19, RateLimited, 429, "rate_limit_exceeded"),
        (336501, RateLimited, 429, "rate_limit_exceeded"),
        (336502, RateLimited, 429, "rate_limit_exceeded"),
        (336001, UpstreamRejected, 400, "invalid_request_error"),
        (336002, UpstreamRejected, 400, "invalid_request_error"),
        (336003, UpstreamRejected, 400, "invalid_request_error"),
        (336100, UpstreamError, 502, "upstream_error"),
        (336000, UpstreamError, 502, "upstream_error"),
        (3, UpstreamError, 502, "upstream_error"),
        (6, UpstreamError, 502, "upstream_error"),
    ],
)
def test_error_codes(code: int, cls: type[RelayError], status: int, err_code: str) -> None:
    raw = b'{"error_code":%d,"error_msg":"boom ak-123456 sk-abcdef 24.tok"}' % code
    for err in _all_paths(raw):
        assert type(err) is cls
        assert err.http_status(False) == status and err.code == err_code
        assert err.upstream_status is not None  # the upstream's answer: retry rules apply
        for secret in ("ak-123456", "sk-abcdef", "24.tok"):
            assert secret not in err.message


def _all_paths(raw: bytes) -> list[RelayError]:
    """The same body as a chat answer, an embeddings answer, a plain JSON answer to a
    stream request (``relay/chat.py`` calls ``error(target, 502, raw)``) and an event."""
    errs: list[RelayError] = []
    for call in (
        lambda: A.chat_response(target(), raw),
        lambda: A.embeddings_response(target(), raw),
    ):
        with pytest.raises(RelayError) as exc:
            call()
        errs.append(exc.value)
    errs.append(A.error(target(), 502, raw))
    tr = A.chat_stream(target(), False)
    assert tr.feed(None, raw) == [] and tr.error is not None
    errs.append(tr.error)
    return errs


def test_http_error_without_baidu_body() -> None:
    err = A.error(target(), 500, b"<html>oops</html>")
    assert type(err) is UpstreamError and err.http_status(False) == 502
    assert A.error(target(), 401, b"{}").code == "upstream_auth_failed"


# ---------------------------------------------------------------- embeddings


def test_embeddings() -> None:
    req = A.embeddings_request(target("Embedding-V1"), {"model": "x", "input": "hello"})
    assert req.url.startswith(
        "https://aip.baidubce.com/rpc/2.0/ai_custom/v1/wenxinworkshop/embeddings/embedding-v1?"
    )
    assert orjson.loads(req.body) == {"input": ["hello"]}
    assert (
        "/embeddings/bge_large_zh?"
        in A.embeddings_request(target("bge-large-zh"), {"input": ["a"]}).url
    )
    with pytest.raises(InvalidRequest):
        A.embeddings_request(target("tao-8k"), {"input": [[1, 2]]})
    raw = (
        b'{"id":"as-e","object":"embedding_list","created":1,"data":[{"object":"embedding",'
        b'"embedding":[0.1,-0.2],"index":0}],"usage":{"prompt_tokens":2,"total_tokens":2}}'
    )
    obj, usage = A.embeddings_response(target("Embedding-V1"), raw)
    assert obj == {
        "object": "list",
        "data": [{"object": "embedding", "index": 0, "embedding": [0.1, -0.2]}],
        "model": "Embedding-V1",
        "usage": {"prompt_tokens": 2, "total_tokens": 2},
    }
    assert usage is not None and usage.prompt_tokens == 2


# ---------------------------------------------------------------- token cache invalidate


class _Local:
    """A LocalTokenSource that counts the tokens it makes."""

    name = "local_test"

    def __init__(self) -> None:
        self.made = 0

    def local_token(self, target: Target, now: float) -> tuple[str, float]:
        self.made += 1
        return f"tok-{self.made}", 3600.0


def test_token_cache_invalidate_drops_only_the_stale_token() -> None:
    async def run() -> None:
        cache = TokenCache(transport=None)  # type: ignore[arg-type]  # local tokens only
        src = _Local()
        t = await cache.resolve(src, target(token=None))  # type: ignore[arg-type]
        assert t.token == "tok-1"
        assert (await cache.resolve(src, target(token=None))).token == "tok-1"  # type: ignore[arg-type]
        assert not cache.invalidate(dataclasses.replace(t, token="tok-0"))  # already renewed
        assert cache.invalidate(t)
        assert not cache.invalidate(t)
        assert (await cache.resolve(src, t)).token == "tok-2" and src.made == 2

    asyncio.run(run())
