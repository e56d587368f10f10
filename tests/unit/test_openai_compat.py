"""The OpenAI-compatible adaptor and its profiles, with literal upstream bytes."""

from __future__ import annotations

import orjson
import pytest

from relaygate.errors import (
    NotImplementedByProvider,
    RateLimited,
    UpstreamError,
    UpstreamRejected,
)
from relaygate.providers.base import Target
from relaygate.providers.openai_compat import OpenAICompatAdaptor

A = OpenAICompatAdaptor()


def target(profile: str = "openai", **config: object) -> Target:
    return Target(
        1,
        "openai_compat",
        profile,
        "https://up.example/v1",
        "sk-secret-up",
        "up-model",
        dict(config),
    )


BODY = {"model": "public", "messages": [{"role": "user", "content": "hi"}], "x_unknown": {"k": 1}}


def test_openai_request_passthrough_and_stream_usage() -> None:
    r = A.chat_request(target(), BODY, stream=True)
    assert r.url == "https://up.example/v1/chat/completions"
    assert r.headers["Authorization"] == "Bearer sk-secret-up"
    body = orjson.loads(r.body)
    assert body["model"] == "up-model" and body["x_unknown"] == {"k": 1}
    assert body["stream"] is True and body["stream_options"] == {"include_usage": True}
    plain = orjson.loads(A.chat_request(target(), {**BODY, "stream": False}, stream=False).body)
    assert "stream" not in plain and "stream_options" not in plain


def test_azure_deployment_url_and_header() -> None:
    t = target("azure", api_version="2024-10-21", deployments={"up-model": "dep1"})
    r = A.chat_request(t, BODY, stream=False)
    assert r.url == (
        "https://up.example/v1/openai/deployments/dep1/chat/completions?api-version=2024-10-21"
    )
    assert r.headers["api-key"] == "sk-secret-up" and "Authorization" not in r.headers
    assert A.chat_request(target("azure_v1"), BODY, False).url == (
        "https://up.example/v1/openai/v1/chat/completions"
    )


def test_moonshot_param_rename() -> None:
    body = orjson.loads(
        A.chat_request(target("moonshot"), {**BODY, "max_completion_tokens": 5}, False).body
    )
    assert body["max_tokens"] == 5 and "max_completion_tokens" not in body


def test_embeddings_always_float_upstream() -> None:
    r = A.embeddings_request(target(), {"model": "e", "input": "x", "encoding_format": "base64"})
    assert orjson.loads(r.body)["encoding_format"] == "float"
    with pytest.raises(NotImplementedByProvider):
        A.embeddings_request(target("deepseek"), {"model": "e", "input": "x"})


def test_non_stream_keeps_unknown_fields_and_usage() -> None:
    raw = b'\n\n{"id":"c","object":"chat.completion","created":1,"model":"m","choices":[{"index":0,"message":{"role":"assistant","content":"x","reasoning_content":"r"},"finish_reason":"stop"}],"usage":{"prompt_tokens":3,"completion_tokens":4,"total_tokens":7,"prompt_cache_hit_tokens":2}}'
    obj, usage = A.chat_response(target("deepseek"), raw)
    assert obj["choices"][0]["message"]["reasoning_content"] == "r"
    assert usage is not None and (usage.prompt_tokens, usage.completion_tokens) == (3, 4)
    assert usage.cached_tokens == 2


def test_ollama_reasoning_renamed() -> None:
    raw = b'{"id":"c","choices":[{"index":0,"message":{"role":"assistant","content":"x","reasoning":"r"},"finish_reason":"stop"}]}'
    obj, _ = A.chat_response(target("ollama"), raw)
    assert obj["choices"][0]["message"] == {
        "role": "assistant",
        "content": "x",
        "reasoning_content": "r",
    }
    tr = A.chat_stream(target("ollama"), include_usage=False)
    out = tr.feed(None, b'{"id":"c","choices":[{"index":0,"delta":{"reasoning":"hm"}}]}')
    assert orjson.loads(out[0])["choices"][0]["delta"] == {"reasoning_content": "hm"}


def chunk(content: str, **extra: object) -> bytes:
    return orjson.dumps(
        {
            "id": "c1",
            "object": "chat.completion.chunk",
            "created": 1,
            "model": "m",
            "choices": [{"index": 0, "delta": {"content": content}, "finish_reason": None}],
            **extra,
        }
    )


USAGE = {"prompt_tokens": 5, "completion_tokens": 7, "total_tokens": 12}


@pytest.mark.parametrize("include_usage", [True, False])
def test_openai_usage_chunk_forwarded_only_if_asked(include_usage: bool) -> None:
    tr = A.chat_stream(target(), include_usage)
    first = chunk("a", usage=None)
    assert tr.feed(None, first) == [first]  # passthrough, same bytes
    usage_chunk = orjson.dumps(
        {
            "id": "c1",
            "object": "chat.completion.chunk",
            "created": 1,
            "model": "m",
            "choices": [],
            "usage": USAGE,
        }
    )
    # passed on at once when asked (holding it until [DONE] delayed the stream's last event
    # by one upstream pause: the bench's chunk-gap p99 went from +0.1 to +20 ms), once
    assert tr.feed(None, usage_chunk) == ([usage_chunk] if include_usage else [])
    assert tr.feed(None, usage_chunk) == []
    assert tr.feed(None, b"[DONE]") == [] and tr.done
    assert tr.usage is not None and tr.usage.completion_tokens == 7
    assert tr.finish() == []


def test_glm_usage_on_finish_chunk_synthesised() -> None:
    tr = A.chat_stream(target("glm"), include_usage=True)
    fin = orjson.dumps(
        {
            "id": "c1",
            "object": "chat.completion.chunk",
            "created": 1,
            "model": "m",
            "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}],
            "usage": USAGE,
        }
    )
    [out] = tr.feed(None, fin)
    assert orjson.loads(out)["usage"] is None  # not on the finish chunk: only once, at the end
    [tail] = tr.finish()
    obj = orjson.loads(tail)
    assert obj["choices"] == [] and obj["usage"]["total_tokens"] == 12


def test_glm_usage_removed_when_not_asked() -> None:
    tr = A.chat_stream(target("glm"), include_usage=False)
    fin = orjson.dumps(
        {
            "id": "c1",
            "object": "chat.completion.chunk",
            "created": 1,
            "model": "m",
            "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}],
            "usage": USAGE,
        }
    )
    [out] = tr.feed(None, fin)
    assert orjson.loads(out)["usage"] is None and tr.usage is not None
    assert tr.finish() == []


def test_moonshot_usage_in_choice_hoisted() -> None:
    tr = A.chat_stream(target("moonshot"), include_usage=True)
    fin = orjson.dumps(
        {
            "id": "c1",
            "object": "chat.completion.chunk",
            "created": 1,
            "model": "m",
            "choices": [{"index": 0, "delta": {}, "finish_reason": "stop", "usage": USAGE}],
        }
    )
    tr.feed(None, fin)
    assert tr.usage is not None and tr.usage.prompt_tokens == 5
    assert orjson.loads(tr.finish()[0])["usage"]["completion_tokens"] == 7


def test_azure_filter_chunk_dropped() -> None:
    tr = A.chat_stream(target("azure"), include_usage=False)
    filt = b'{"choices":[],"created":0,"id":"","model":"","object":"","prompt_filter_results":[]}'
    assert tr.feed(None, filt) == []


def test_stream_error_event() -> None:
    tr = A.chat_stream(target(), include_usage=False)
    tr.feed(
        None, b'{"error":{"message":"boom at https://internal.example/x","type":"server_error"}}'
    )
    assert isinstance(tr.error, UpstreamError)
    assert "internal.example" not in tr.error.message


@pytest.mark.parametrize(
    ("status", "cls", "code"),
    [
        (400, UpstreamRejected, "context_length_exceeded"),
        (404, UpstreamRejected, "model_not_found"),
        (429, RateLimited, "rate_limit_exceeded"),
        (401, UpstreamError, "upstream_auth_failed"),
        (500, UpstreamError, "upstream_error"),
        (503, UpstreamError, "upstream_error"),
    ],
)
def test_error_mapping(status: int, cls: type, code: str) -> None:
    body = orjson.dumps(
        {
            "error": {
                "message": "bad key sk-secret-up at https://up.example/v1",
                "type": "x",
                "code": code,
            }
        }
    )
    err = A.error(target(), status, body)
    assert type(err) is cls and err.code == code
    assert "sk-secret-up" not in err.message and "up.example" not in err.message


def test_odd_service_tier_removed() -> None:
    tr = A.chat_stream(target("generic"), include_usage=False)
    [out] = tr.feed(None, chunk("a", service_tier="on_demand"))
    assert "service_tier" not in orjson.loads(out)
    ok = chunk("b", service_tier="default")
    assert tr.feed(None, ok) == [ok]
