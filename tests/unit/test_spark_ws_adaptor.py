"""The iFlytek Spark WebSocket adaptor (providers/spark_ws.py) with literal frames: the
signed URL (a vector worked out by hand with openssl, not by this code), the request
frame, answer frames to chunks (fed one by one, and as the transport frames them, through
SSEDecoder in small pieces), the non-stream assembly and every error code."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs, urlsplit

import orjson
import pytest

from relaygate.errors import (
    InvalidRequest,
    NotImplementedByProvider,
    RateLimited,
    UpstreamError,
    UpstreamRejected,
)
from relaygate.providers.base import Target
from relaygate.providers.registry import ADAPTORS
from relaygate.providers.spark_ws import SparkWSAdaptor, sign_url
from relaygate.relay.sse import SSEDecoder

NOW = 1700000000.0  # Tue, 14 Nov 2023 22:13:20 GMT
KEY = "app123|test-secret|test-key"
A = SparkWSAdaptor(clock=lambda: NOW)


def target(
    model: str = "generalv3.5", base: str = "wss://spark-api.xf-yun.com", **config: Any
) -> Target:
    return Target(1, "spark_ws", "spark_ws", base, KEY, model, config)


def frame_of(body: dict[str, Any], model: str = "generalv3.5", **config: Any) -> dict[str, Any]:
    req = A.chat_request(target(model, **config), body, True)
    obj = orjson.loads(req.body)
    assert isinstance(obj, dict)
    return obj


# ---------------------------------------------------------------- signing

# Worked out by hand from the documented steps, with the shell's tools:
#   date -u -d @1700000000 "+%a, %d %b %Y %H:%M:%S GMT"  -> Tue, 14 Nov 2023 22:13:20 GMT
#   printf 'host: spark-api.xf-yun.com\ndate: Tue, 14 Nov 2023 22:13:20 GMT\nGET /v3.5/chat HTTP/1.1' \
#     | openssl dgst -sha256 -hmac 'test-secret' -binary | base64
#   printf 'api_key="test-key", algorithm="hmac-sha256", headers="host date request-line", signature="%s"' "$SIG" \
#     | base64 -w0
SIGNATURE = "3NCurhILz+q4KDf5elACzoXq/JTbINANNMChBtHKt4M="
AUTHORIZATION = (
    "YXBpX2tleT0idGVzdC1rZXkiLCBhbGdvcml0aG09ImhtYWMtc2hhMjU2IiwgaGVhZGVycz0iaG9zdCBkYXRlIHJl"
    "cXVlc3QtbGluZSIsIHNpZ25hdHVyZT0iM05DdXJoSUx6K3E0S0RmNWVsQUN6b1hxL0pUYklOQU5OTUNoQnRIS3Q0TT0i"
)


def test_signing_vector() -> None:
    url = sign_url("wss://spark-api.xf-yun.com", "/v3.5/chat", "test-key", "test-secret", NOW)
    assert url == (
        "wss://spark-api.xf-yun.com/v3.5/chat?authorization="
        + AUTHORIZATION
        + "&date=Tue%2C+14+Nov+2023+22%3A13%3A20+GMT&host=spark-api.xf-yun.com"
    )


def test_chat_request_url_uses_the_clock_and_the_model_table() -> None:
    req = A.chat_request(target(), {"messages": [{"role": "user", "content": "hi"}]}, False)
    assert req.url.startswith("wss://spark-api.xf-yun.com/v3.5/chat?authorization=" + AUTHORIZATION)
    assert req.headers == {}
    q = parse_qs(urlsplit(req.url).query)
    assert q["date"] == ["Tue, 14 Nov 2023 22:13:20 GMT"]
    assert q["host"] == ["spark-api.xf-yun.com"]


@pytest.mark.parametrize(
    ("model", "path", "domain"),
    [
        ("lite", "/v1.1/chat", "lite"),
        ("generalv3", "/v3.1/chat", "generalv3"),
        ("pro-128k", "/chat/pro-128k", "pro-128k"),
        ("generalv3.5", "/v3.5/chat", "generalv3.5"),
        ("max-32k", "/chat/max-32k", "max-32k"),
        ("4.0Ultra", "/v4.0/chat", "4.0Ultra"),
        ("my-model", "/v3.5/chat", "my-model"),  # unknown: config.path or /v3.5/chat
    ],
)
def test_model_table(model: str, path: str, domain: str) -> None:
    req = A.chat_request(target(model), {"messages": [{"role": "user", "content": "hi"}]}, True)
    assert urlsplit(req.url).path == path
    assert orjson.loads(req.body)["parameter"]["chat"]["domain"] == domain


def test_config_domains_path_and_http_base_urls() -> None:
    body = {"messages": [{"role": "user", "content": "hi"}]}
    t = target("mine", "https://proxy.example.com/spark", domains={"mine": ["/v9/chat", "d9"]})
    req = A.chat_request(t, body, True)
    parts = urlsplit(req.url)
    assert (parts.scheme, parts.netloc, parts.path) == (
        "wss",
        "proxy.example.com",
        "/spark/v9/chat",
    )
    assert orjson.loads(req.body)["parameter"]["chat"]["domain"] == "d9"
    t = target("other", "http://127.0.0.1:8080", path="/v2.1/chat")
    req = A.chat_request(t, body, True)
    parts = urlsplit(req.url)
    assert (parts.scheme, parts.netloc, parts.path) == ("ws", "127.0.0.1:8080", "/v2.1/chat")
    # the signature covers host with port and the full path
    assert parse_qs(parts.query)["host"] == ["127.0.0.1:8080"]


@pytest.mark.parametrize("key", ["app|secret", "a||c", "", "a|b|c|d"])
def test_bad_channel_key(key: str) -> None:
    t = Target(1, "spark_ws", "spark_ws", "wss://x", key, "lite")
    with pytest.raises(UpstreamError) as info:
        A.chat_request(t, {"messages": [{"role": "user", "content": "hi"}]}, True)
    assert info.value.code == "upstream_auth_failed"
    assert "secret" not in info.value.message or key == ""


# ---------------------------------------------------------------- request frame


def test_request_frame_plain() -> None:
    body = {
        "messages": [{"role": "user", "content": "hi"}],
        "temperature": 0.5,
        "max_tokens": 100,
        "top_k": 4,
        "user": "u-1",
    }
    assert frame_of(body) == {
        "header": {"app_id": "app123", "uid": "u-1"},
        "parameter": {
            "chat": {"domain": "generalv3.5", "temperature": 0.5, "max_tokens": 100, "top_k": 4}
        },
        "payload": {"message": {"text": [{"role": "user", "content": "hi"}]}},
    }


def test_request_frame_ranges_and_defaults() -> None:
    obj = frame_of(
        {
            "messages": [{"role": "user", "content": "hi"}],
            "temperature": 1.7,
            "max_completion_tokens": 9,
        }
    )
    assert obj["header"]["uid"] == "relaygate"
    assert obj["parameter"]["chat"] == {
        "domain": "generalv3.5",
        "temperature": 1.0,
        "max_tokens": 9,
    }
    obj = frame_of({"messages": [{"role": "user", "content": "hi"}], "temperature": 0})
    assert obj["parameter"]["chat"]["temperature"] == 0.01  # Spark's range is (0, 1]
    with pytest.raises(InvalidRequest) as info:
        frame_of({"messages": [{"role": "user", "content": "hi"}], "temperature": "hot"})
    assert info.value.param == "temperature"


def test_system_role_kept_for_max_and_ultra_folded_for_lite() -> None:
    msgs = [
        {"role": "system", "content": "Be brief."},
        {"role": "developer", "content": "Answer in English."},
        {
            "role": "user",
            "content": [{"type": "text", "text": "hi"}, {"type": "text", "text": "!"}],
        },
    ]
    for model in ("generalv3.5", "max-32k", "4.0Ultra"):
        assert frame_of({"messages": msgs}, model)["payload"]["message"]["text"] == [
            {"role": "system", "content": "Be brief.\n\nAnswer in English."},
            {"role": "user", "content": "hi!"},
        ]
    for model in ("lite", "generalv3", "pro-128k"):
        assert frame_of({"messages": msgs}, model)["payload"]["message"]["text"] == [
            {"role": "user", "content": "Be brief.\n\nAnswer in English.\n\nhi!"}
        ]
    # the channel may say otherwise
    text = frame_of({"messages": msgs}, "lite", system_role=True)["payload"]["message"]["text"]
    assert text[0]["role"] == "system"


def test_tools_become_functions_and_history_is_folded() -> None:
    params = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}
    body = {
        "messages": [
            {"role": "user", "content": "weather in Florence?"},
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "id": "call_1",
                        "type": "function",
                        "function": {"name": "weather", "arguments": '{"city":"Florence"}'},
                    }
                ],
            },
            {"role": "tool", "tool_call_id": "call_1", "content": "sunny, 25C"},
            {"role": "user", "content": "and tomorrow?"},
        ],
        "tools": [
            {
                "type": "function",
                "function": {"name": "weather", "description": "Weather.", "parameters": params},
            }
        ],
    }
    obj = frame_of(body)
    assert obj["payload"]["functions"] == {
        "text": [{"name": "weather", "description": "Weather.", "parameters": params}]
    }
    assert obj["payload"]["message"]["text"] == [
        {"role": "user", "content": "weather in Florence?"},
        {"role": "assistant", "content": '[function call] weather({"city":"Florence"})'},
        {"role": "user", "content": "[function result] weather: sunny, 25C\n\nand tomorrow?"},
    ]
    body["tool_choice"] = "none"
    assert "functions" not in frame_of(body)["payload"]


def test_legacy_functions_request() -> None:
    req = A.chat_request(
        target(),
        {
            "messages": [{"role": "user", "content": "hi"}],
            "functions": [{"name": "f", "parameters": {"type": "object"}}],
        },
        False,
    )
    assert req.legacy_functions
    assert orjson.loads(req.body)["payload"]["functions"]["text"][0]["name"] == "f"


@pytest.mark.parametrize(
    ("message", "param"),
    [
        (
            {"role": "user", "content": [{"type": "image_url", "image_url": {"url": "data:x"}}]},
            "messages[0].content",
        ),
        ({"role": "user", "content": 5}, "messages[0].content"),
        ({"role": "critic", "content": "x"}, "messages[0].role"),
    ],
)
def test_invalid_messages(message: dict[str, Any], param: str) -> None:
    with pytest.raises(InvalidRequest) as info:
        A.chat_request(target(), {"messages": [message]}, True)
    assert info.value.param == param


def test_no_embeddings() -> None:
    with pytest.raises(NotImplementedByProvider):
        A.embeddings_request(target(), {"input": "x"})


def test_registered() -> None:
    assert SparkWSAdaptor in ADAPTORS


# ---------------------------------------------------------------- answer frames

F1 = b'{"header":{"code":0,"message":"Success","sid":"cht000b41d5@dx18b","status":0},"payload":{"choices":{"status":0,"seq":0,"text":[{"content":"Hello","role":"assistant","index":0}]}}}'
F2 = b'{"header":{"code":0,"message":"Success","sid":"cht000b41d5@dx18b","status":1},"payload":{"choices":{"status":1,"seq":1,"text":[{"content":" there","role":"assistant","index":0}]}}}'
F3 = b'{"header":{"code":0,"message":"Success","sid":"cht000b41d5@dx18b","status":2},"payload":{"choices":{"status":2,"seq":2,"text":[{"content":"!","role":"assistant","index":0}]},"usage":{"text":{"question_tokens":3,"prompt_tokens":3,"completion_tokens":4,"total_tokens":7}}}}'
FN = b'{"header":{"code":0,"message":"Success","sid":"cht000c@dx1","status":2},"payload":{"choices":{"status":2,"seq":0,"text":[{"content":"","role":"assistant","content_type":"function_call","function_call":{"arguments":"{\\"city\\":\\"Florence\\"}","name":"weather"},"index":0}]},"usage":{"text":{"question_tokens":9,"prompt_tokens":60,"completion_tokens":12,"total_tokens":72}}}}'


def chunks(payloads: list[bytes]) -> list[dict[str, Any]]:
    return [orjson.loads(p) for p in payloads]


def test_stream_frames_one_by_one() -> None:
    tr = A.chat_stream(target(), include_usage=True)
    out = chunks(tr.feed(None, F1))
    assert out[0]["id"] == "chatcmpl-cht000b41d5@dx18b"
    assert out[0]["object"] == "chat.completion.chunk" and out[0]["model"] == "generalv3.5"
    assert out[0]["choices"] == [
        {"index": 0, "delta": {"role": "assistant", "content": "Hello"}, "finish_reason": None}
    ]
    assert chunks(tr.feed(None, F2))[0]["choices"][0]["delta"] == {"content": " there"}
    assert not tr.done and tr.usage is None
    last = chunks(tr.feed(None, F3))
    assert [c["choices"][0]["delta"] for c in last] == [{"content": "!"}, {}]
    assert last[-1]["choices"][0]["finish_reason"] == "stop"
    assert all("usage" not in c for c in out + last)
    assert tr.done and tr.error is None
    assert tr.usage is not None and (tr.usage.prompt_tokens, tr.usage.completion_tokens) == (3, 4)
    (usage,) = chunks(tr.finish())
    assert usage["choices"] == [] and usage["usage"] == {
        "prompt_tokens": 3,
        "completion_tokens": 4,
        "total_tokens": 7,
    }
    assert usage["id"] == out[0]["id"]


def test_stream_without_include_usage_sends_no_usage_chunk() -> None:
    tr = A.chat_stream(target(), include_usage=False)
    for f in (F1, F2, F3):
        tr.feed(None, f)
    assert tr.done and tr.usage is not None and tr.finish() == []


def test_stream_as_the_transport_frames_it_in_small_pieces() -> None:
    wire = b"".join(b"data: " + f + b"\n\n" for f in (F1, F2, F3))
    dec = SSEDecoder()
    tr = A.chat_stream(target(), include_usage=False)
    out: list[bytes] = []
    for i in range(0, len(wire), 7):
        for ev, data in dec.feed(wire[i : i + 7]):
            out += tr.feed(ev, data)
    text = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks(out))
    assert text == "Hello there!" and tr.done


def test_stream_function_call() -> None:
    tr = A.chat_stream(target(), include_usage=True)
    out = chunks(tr.feed(None, FN))
    assert out[0]["choices"][0]["delta"] == {
        "role": "assistant",
        "content": "",
        "tool_calls": [
            {
                "index": 0,
                "id": "call_cht000c@dx1",
                "type": "function",
                "function": {"name": "weather", "arguments": '{"city":"Florence"}'},
            }
        ],
    }
    assert out[-1]["choices"][0]["finish_reason"] == "tool_calls"
    assert tr.done and tr.usage is not None and tr.usage.total_tokens == 72


def test_stream_function_call_legacy_shape() -> None:
    tr = A.chat_stream(target(), include_usage=False, legacy_functions=True)
    out = chunks(tr.feed(None, FN))
    delta = out[0]["choices"][0]["delta"]
    assert "tool_calls" not in delta
    assert delta["function_call"] == {"name": "weather", "arguments": '{"city":"Florence"}'}
    assert out[-1]["choices"][0]["finish_reason"] == "function_call"


def test_non_stream_assembly() -> None:
    obj, usage = A.chat_response(target(), b"\n".join((F1, F2, F3)))
    assert obj["id"] == "chatcmpl-cht000b41d5@dx18b" and obj["object"] == "chat.completion"
    assert obj["choices"] == [
        {
            "index": 0,
            "message": {"role": "assistant", "content": "Hello there!"},
            "finish_reason": "stop",
        }
    ]
    assert obj["usage"] == {"prompt_tokens": 3, "completion_tokens": 4, "total_tokens": 7}
    assert usage is not None and usage.total_tokens == 7


def test_non_stream_function_call_and_legacy() -> None:
    obj, _ = A.chat_response(target(), FN)
    msg = obj["choices"][0]["message"]
    assert msg["content"] is None and msg["tool_calls"][0]["function"]["name"] == "weather"
    assert obj["choices"][0]["finish_reason"] == "tool_calls"
    obj, _ = A.chat_response(target(), FN, legacy_functions=True)
    assert obj["choices"][0]["message"]["function_call"]["name"] == "weather"
    assert obj["choices"][0]["finish_reason"] == "function_call"


def test_non_stream_incomplete_or_malformed() -> None:
    with pytest.raises(UpstreamError, match="ended before"):
        A.chat_response(target(), b"\n".join((F1, F2)))
    with pytest.raises(UpstreamError, match="malformed"):
        A.chat_response(target(), b"{not json")


# ---------------------------------------------------------------- errors


def err_frame(code: int, message: str = "boom") -> bytes:
    return orjson.dumps({"header": {"code": code, "message": message, "sid": "cht9", "status": 2}})


@pytest.mark.parametrize(
    ("code", "cls", "status", "error_code"),
    [
        (11200, UpstreamError, 502, "upstream_auth_failed"),
        (10313, UpstreamError, 502, "upstream_auth_failed"),
        (11201, RateLimited, 429, "rate_limit_exceeded"),
        (11202, RateLimited, 429, "rate_limit_exceeded"),
        (11203, RateLimited, 429, "rate_limit_exceeded"),
        (10163, UpstreamRejected, 400, "10163"),
        (10907, UpstreamRejected, 400, "10907"),
        (10012, UpstreamError, 502, "upstream_error"),
        (10000, UpstreamError, 502, "upstream_error"),
    ],
)
def test_error_codes(code: int, cls: type[Exception], status: int, error_code: str) -> None:
    raw = err_frame(code, "failed for test-secret")
    tr = A.chat_stream(target(), include_usage=True)
    assert tr.feed(None, raw) == []
    err = tr.error
    assert isinstance(err, cls) and err.code == error_code
    assert err.http_status(False) == status
    assert err.upstream_status == {502: 500 if error_code == "upstream_error" else 401}.get(
        status, status
    )
    assert "test-secret" not in err.message
    with pytest.raises(cls) as info:
        A.chat_response(target(), raw)
    assert info.value.code == error_code
    # a failure after some text, in a stream
    tr = A.chat_stream(target(), include_usage=False)
    assert len(tr.feed(None, F1)) == 1
    tr.feed(None, raw)
    assert isinstance(tr.error, cls)


@pytest.mark.parametrize("code", [10013, 10014, 10019])
def test_content_moderation_ends_with_content_filter(code: int) -> None:
    raw = err_frame(code, "审核不通过")
    obj, usage = A.chat_response(target(), raw)
    assert obj["choices"][0]["finish_reason"] == "content_filter"
    assert obj["choices"][0]["message"]["content"] == "" and usage is None
    obj, _ = A.chat_response(target(), b"\n".join((F1, raw)))
    assert obj["choices"][0]["message"]["content"] == "Hello"
    assert obj["choices"][0]["finish_reason"] == "content_filter"
    tr = A.chat_stream(target(), include_usage=True)
    tr.feed(None, F1)
    out = chunks(tr.feed(None, raw))
    assert out[-1]["choices"][0]["finish_reason"] == "content_filter"
    assert tr.done and tr.error is None and tr.finish() == []


@pytest.mark.parametrize(
    ("status", "raw", "cls", "code"),
    [
        (
            401,
            b'{"message":"HMAC signature does not match"}',
            UpstreamError,
            "upstream_auth_failed",
        ),
        (403, b"", UpstreamError, "upstream_auth_failed"),
        (429, b"", RateLimited, "rate_limit_exceeded"),
        (400, b'{"message":"bad"}', UpstreamRejected, "invalid_request_error"),
        (500, b"<html>oops</html>", UpstreamError, "upstream_error"),
    ],
)
def test_http_errors_of_the_upgrade(
    status: int, raw: bytes, cls: type[Exception], code: str
) -> None:
    err = A.error(target(), status, raw)
    assert isinstance(err, cls) and err.code == code
    assert "<html>" not in err.message


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("max_tokens", 10**30),  # was "cannot be sent on" from the encoder, naming nothing
        ("max_tokens", -5),  # was sent on
        ("max_tokens", 0),
        ("max_tokens", 1.5),  # was truncated to 1
        ("max_tokens", "100"),
        ("max_completion_tokens", {}),
        ("max_completion_tokens", True),
    ],
)
def test_max_tokens_must_be_a_positive_integer(field: str, value: Any) -> None:
    body = {"messages": [{"role": "user", "content": "hi"}], field: value}
    with pytest.raises(InvalidRequest) as exc:
        A.chat_request(target(), body, False)
    assert exc.value.param == "max_tokens" and "max_tokens" in exc.value.message


def test_max_tokens_wins_over_max_completion_tokens() -> None:
    body = {"messages": [{"role": "user", "content": "hi"}], "max_completion_tokens": 7}
    assert frame_of(body)["parameter"]["chat"]["max_tokens"] == 7
    body["max_tokens"] = 9
    assert frame_of(body)["parameter"]["chat"]["max_tokens"] == 9
