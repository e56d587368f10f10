"""AnthropicAdaptor: request conversion, responses, stream translation, errors.

Replay tests feed the recorded real Anthropic traffic (go-vcr cassettes, see
``tests/recordings.py``) through the adaptor.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import orjson
import pytest

from relaygate.errors import (
    InvalidRequest,
    NotImplementedByProvider,
    RateLimited,
    RelayError,
    UpstreamError,
    UpstreamRejected,
)
from relaygate.providers.anthropic import AnthropicAdaptor
from relaygate.providers.base import Target
from relaygate.relay.sse import SSEDecoder

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from recordings import Interaction, load_cassette, recordings_dir

KEY = "sk-ant-api03-test-secret-key"
TARGET = Target(
    channel_id=7,
    provider="anthropic",
    profile="anthropic",
    base_url="https://api.anthropic.com",
    api_key=KEY,
    upstream_model="claude-sonnet-4-20250514",
)
ADAPTOR = AnthropicAdaptor()
USER = {"role": "user", "content": "hi"}


def build(body: dict[str, Any], *, stream: bool = False, target: Target = TARGET) -> Any:
    return orjson.loads(ADAPTOR.chat_request(target, body, stream).body)


def with_config(**config: Any) -> Target:
    return Target(7, "anthropic", "anthropic", TARGET.base_url, KEY, TARGET.upstream_model, config)


# ------------------------------------------------------------------ request


@pytest.mark.parametrize(
    ("base_url", "url"),
    [
        ("https://api.anthropic.com", "https://api.anthropic.com/v1/messages"),
        ("https://proxy.example/v1", "https://proxy.example/v1/messages"),
        ("https://proxy.example/anthropic/", "https://proxy.example/anthropic/v1/messages"),
    ],
)
def test_url(base_url: str, url: str) -> None:
    target = Target(1, "anthropic", "anthropic", base_url, KEY, "claude-x")
    assert ADAPTOR.chat_request(target, {"messages": [USER]}, False).url == url


def test_headers_model_and_stream_flag() -> None:
    req = ADAPTOR.chat_request(TARGET, {"model": "alias", "messages": [USER]}, True)
    assert req.method == "POST"
    assert req.headers["x-api-key"] == KEY
    assert req.headers["anthropic-version"] == "2023-06-01"
    assert req.headers["content-type"] == "application/json"
    body = orjson.loads(req.body)
    assert body["model"] == "claude-sonnet-4-20250514"
    assert body["stream"] is True
    assert "stream" not in build({"messages": [USER]})

    custom = ADAPTOR.chat_request(
        with_config(anthropic_version="2024-01-01"), {"messages": [USER]}, False
    )
    assert custom.headers["anthropic-version"] == "2024-01-01"


def test_system_and_developer_messages_become_top_level_system() -> None:
    one = build({"messages": [{"role": "system", "content": "Be brief."}, USER]})
    assert one["system"] == "Be brief."
    assert one["messages"] == [{"role": "user", "content": "hi"}]

    many = build(
        {
            "messages": [
                {"role": "system", "content": "A"},
                USER,
                {"role": "developer", "content": [{"type": "text", "text": "B"}]},
            ]
        }
    )
    assert many["system"] == [{"type": "text", "text": "A"}, {"type": "text", "text": "B"}]
    assert many["messages"] == [{"role": "user", "content": "hi"}]


def test_max_tokens() -> None:
    assert build({"messages": [USER]})["max_tokens"] == 4096
    assert (
        build({"messages": [USER]}, target=with_config(default_max_tokens=1000))["max_tokens"]
        == 1000
    )
    assert build({"messages": [USER], "max_tokens": 12})["max_tokens"] == 12
    assert build({"messages": [USER], "max_completion_tokens": 34})["max_tokens"] == 34
    for bad in (0, -1, "10", True, 1.5):
        with pytest.raises(InvalidRequest):
            build({"messages": [USER], "max_tokens": bad})


def test_sampling_and_stop() -> None:
    body = build({"messages": [USER], "temperature": 1.7, "top_p": 0.9, "top_k": 40, "stop": "END"})
    assert (body["temperature"], body["top_p"], body["top_k"]) == (1, 0.9, 40)
    assert body["stop_sequences"] == ["END"]
    assert build({"messages": [USER], "temperature": -0.3})["temperature"] == 0
    assert build({"messages": [USER], "stop": ["a", " ", "b"]})["stop_sequences"] == ["a", "b"]
    assert "stop_sequences" not in build({"messages": [USER], "stop": None})
    with pytest.raises(InvalidRequest):
        build({"messages": [USER], "stop": [1]})
    with pytest.raises(InvalidRequest):
        build({"messages": [USER], "temperature": "hot"})


def test_images() -> None:
    body = build(
        {
            "messages": [
                {
                    "role": "user",
                    "content": [
                        {"type": "text", "text": "What is this?"},
                        {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBO"}},
                        {"type": "image_url", "image_url": {"url": "https://x.test/cat.jpg"}},
                    ],
                }
            ]
        }
    )
    assert body["messages"][0]["content"] == [
        {"type": "text", "text": "What is this?"},
        {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBO"}},
        {"type": "image", "source": {"type": "url", "url": "https://x.test/cat.jpg"}},
    ]
    for url in ("ftp://x/y.png", "data:image/png,raw", ""):
        with pytest.raises(InvalidRequest):
            build(
                {
                    "messages": [
                        {
                            "role": "user",
                            "content": [{"type": "image_url", "image_url": {"url": url}}],
                        }
                    ]
                }
            )


def test_tool_calls_and_results() -> None:
    body = build(
        {
            "messages": [
                {"role": "user", "content": "weather in Rome and Oslo?"},
                {
                    "role": "assistant",
                    "content": "Checking.",
                    "tool_calls": [
                        {
                            "id": "call_1",
                            "type": "function",
                            "function": {"name": "weather", "arguments": '{"city":"Rome"}'},
                        },
                        {
                            "id": "call_2",
                            "type": "function",
                            "function": {"name": "now", "arguments": ""},
                        },
                    ],
                },
                {"role": "tool", "tool_call_id": "call_1", "content": "20 C"},
                {
                    "role": "tool",
                    "tool_call_id": "call_2",
                    "content": [{"type": "text", "text": "noon"}],
                },
                {"role": "user", "content": "thanks"},
            ]
        }
    )
    assert body["messages"] == [
        {"role": "user", "content": "weather in Rome and Oslo?"},
        {
            "role": "assistant",
            "content": [
                {"type": "text", "text": "Checking."},
                {"type": "tool_use", "id": "call_1", "name": "weather", "input": {"city": "Rome"}},
                {"type": "tool_use", "id": "call_2", "name": "now", "input": {}},
            ],
        },
        {
            "role": "user",
            "content": [
                {"type": "tool_result", "tool_use_id": "call_1", "content": "20 C"},
                {
                    "type": "tool_result",
                    "tool_use_id": "call_2",
                    "content": [{"type": "text", "text": "noon"}],
                },
                {"type": "text", "text": "thanks"},
            ],
        },
    ]


@pytest.mark.parametrize("arguments", ["{not json", "[1, 2]", "42"])
def test_invalid_tool_arguments(arguments: str) -> None:
    call = {"id": "c", "type": "function", "function": {"name": "f", "arguments": arguments}}
    with pytest.raises(InvalidRequest):
        build({"messages": [USER, {"role": "assistant", "tool_calls": [call]}]})


def test_alternation_merge() -> None:
    body = build(
        {
            "messages": [
                {"role": "user", "content": "one"},
                {"role": "user", "content": [{"type": "text", "text": "two"}]},
                {"role": "assistant", "content": "a"},
                {"role": "assistant", "content": ""},
                {"role": "assistant", "content": "b"},
            ]
        }
    )
    assert body["messages"] == [
        {
            "role": "user",
            "content": [{"type": "text", "text": "one"}, {"type": "text", "text": "two"}],
        },
        {
            "role": "assistant",
            "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}],
        },
    ]


TOOL = {
    "type": "function",
    "function": {
        "name": "weather",
        "description": "Get the weather",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
    },
}


@pytest.mark.parametrize(
    ("choice", "expected"),
    [
        (None, None),
        ("auto", {"type": "auto"}),
        ("required", {"type": "any"}),
        ("none", {"type": "none"}),
        (
            {"type": "function", "function": {"name": "weather"}},
            {"type": "tool", "name": "weather"},
        ),
    ],
)
def test_tools_and_tool_choice(choice: Any, expected: Any) -> None:
    body = build({"messages": [USER], "tools": [TOOL], "tool_choice": choice})
    assert body["tools"] == [
        {
            "name": "weather",
            "description": "Get the weather",
            "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}},
        }
    ]
    assert body.get("tool_choice") == expected


def test_tool_options() -> None:
    body = build({"messages": [USER], "tools": [TOOL], "parallel_tool_calls": False})
    assert body["tool_choice"] == {"type": "auto", "disable_parallel_tool_use": True}
    body = build(
        {
            "messages": [USER],
            "tools": [TOOL],
            "tool_choice": "required",
            "parallel_tool_calls": False,
        }
    )
    assert body["tool_choice"] == {"type": "any", "disable_parallel_tool_use": True}
    assert "tool_choice" not in build({"messages": [USER], "tool_choice": "auto"})
    with pytest.raises(InvalidRequest):
        build({"messages": [USER], "tools": [TOOL], "tool_choice": "sometimes"})
    with pytest.raises(InvalidRequest):
        build({"messages": [USER], "tools": [{"type": "function", "function": {}}]})


def test_user_thinking_and_cache_control() -> None:
    thinking = {"type": "enabled", "budget_tokens": 2000}
    body = build(
        {
            "messages": [
                {
                    "role": "system",
                    "content": [
                        {"type": "text", "text": "S", "cache_control": {"type": "ephemeral"}}
                    ],
                },
                {"role": "user", "content": "long doc", "cache_control": {"type": "ephemeral"}},
            ],
            "user": "user-42",
            "thinking": thinking,
        }
    )
    assert body["metadata"] == {"user_id": "user-42"}
    assert body["thinking"] == thinking
    eph = {"type": "ephemeral"}
    assert body["system"] == [{"type": "text", "text": "S", "cache_control": eph}]
    assert body["messages"][0]["content"] == [
        {"type": "text", "text": "long doc", "cache_control": eph}
    ]


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"messages": []},
        {"messages": "hi"},
        {"messages": ["hi"]},
        {"messages": [{"role": "wizard", "content": "hi"}]},
        {"messages": [{"role": "system", "content": "only a system prompt"}]},
        {"messages": [{"role": "user", "content": 5}]},
        {"messages": [{"role": "user", "content": [{"type": "audio"}]}]},
        {"messages": [USER, {"role": "tool", "content": "no id"}]},
    ],
)
def test_invalid_requests(body: dict[str, Any]) -> None:
    with pytest.raises(InvalidRequest):
        build(body)


# ------------------------------------------------------------------ response


def test_chat_response_with_thinking_tools_and_cache_usage() -> None:
    raw = orjson.dumps(
        {
            "id": "msg_1",
            "type": "message",
            "role": "assistant",
            "model": "claude-sonnet-4-20250514",
            "content": [
                {"type": "thinking", "thinking": "Let me think.", "signature": "sig"},
                {"type": "tool_use", "id": "toolu_1", "name": "weather", "input": {"city": "Rome"}},
            ],
            "stop_reason": "tool_use",
            "usage": {
                "input_tokens": 10,
                "cache_read_input_tokens": 100,
                "cache_creation_input_tokens": 5,
                "output_tokens": 7,
            },
        }
    )
    out, usage = ADAPTOR.chat_response(TARGET, raw)
    assert out["id"] == "chatcmpl-msg_1"
    assert out["object"] == "chat.completion"
    assert out["model"] == "claude-sonnet-4-20250514"
    choice = out["choices"][0]
    assert choice["finish_reason"] == "tool_calls"
    assert choice["message"] == {
        "role": "assistant",
        "content": None,
        "reasoning_content": "Let me think.",
        "thinking_blocks": [{"type": "thinking", "thinking": "Let me think.", "signature": "sig"}],
        "tool_calls": [
            {
                "id": "toolu_1",
                "type": "function",
                "function": {"name": "weather", "arguments": '{"city":"Rome"}'},
            }
        ],
    }
    assert usage is not None
    assert (usage.prompt_tokens, usage.completion_tokens, usage.cached_tokens) == (115, 7, 100)
    assert out["usage"] == {
        "prompt_tokens": 115,
        "completion_tokens": 7,
        "total_tokens": 122,
        "prompt_tokens_details": {"cached_tokens": 100},
    }


@pytest.mark.parametrize(
    ("stop", "finish"),
    [
        ("end_turn", "stop"),
        ("stop_sequence", "stop"),
        ("pause_turn", "stop"),
        ("max_tokens", "length"),
        ("tool_use", "tool_calls"),
        ("refusal", "content_filter"),
        (None, "stop"),
    ],
)
def test_finish_reasons(stop: str | None, finish: str) -> None:
    raw = orjson.dumps({"id": "m", "content": [{"type": "text", "text": "x"}], "stop_reason": stop})
    out, _ = ADAPTOR.chat_response(TARGET, raw)
    assert out["choices"][0]["finish_reason"] == finish
    assert out["choices"][0]["message"]["content"] == "x"


def test_chat_response_errors() -> None:
    overloaded = b'{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}'
    with pytest.raises(UpstreamError):
        ADAPTOR.chat_response(TARGET, overloaded)
    with pytest.raises(UpstreamError):
        ADAPTOR.chat_response(TARGET, b"<html>oops</html>")


def test_no_embeddings() -> None:
    with pytest.raises(NotImplementedByProvider):
        ADAPTOR.embeddings_request(TARGET, {"input": "x"})
    with pytest.raises(NotImplementedByProvider):
        ADAPTOR.embeddings_response(TARGET, b"{}")


def _err_body(kind: str, message: str) -> bytes:
    return orjson.dumps({"type": "error", "error": {"type": kind, "message": message}})


@pytest.mark.parametrize(
    ("status", "raw", "cls", "http"),
    [
        (400, _err_body("invalid_request_error", "max_tokens: too big"), UpstreamRejected, 400),
        (413, _err_body("request_too_large", "too large"), UpstreamRejected, 413),
        (429, _err_body("rate_limit_error", "slow down"), RateLimited, 429),
        (401, _err_body("authentication_error", "invalid x-api-key"), UpstreamError, 502),
        (500, _err_body("api_error", "Internal"), UpstreamError, 502),
        (529, _err_body("overloaded_error", "Overloaded"), UpstreamError, 502),
        (502, b"<html><body>Bad Gateway</body></html>", UpstreamError, 502),
        (503, b"", UpstreamError, 502),
    ],
)
def test_error_mapping(status: int, raw: bytes, cls: type[RelayError], http: int) -> None:
    err = ADAPTOR.error(TARGET, status, raw)
    assert type(err) is cls
    assert err.http_status(False) == http
    assert "<html" not in err.message


def test_error_message_is_sanitised() -> None:
    raw = _err_body("invalid_request_error", f"bad key {KEY} see https://docs.anthropic.com/x")
    err = ADAPTOR.error(TARGET, 400, raw)
    assert err.code == "invalid_request_error"
    assert KEY not in err.message
    assert "https://" not in err.message


# ------------------------------------------------------------------ stream


def sse(events: list[dict[str, Any]]) -> list[tuple[str | None, bytes]]:
    return [(e["type"], orjson.dumps(e) + b"   ") for e in events]


def run(
    events: list[tuple[str | None, bytes]], include_usage: bool = True
) -> tuple[Any, list[dict[str, Any]]]:
    tr = ADAPTOR.chat_stream(TARGET, include_usage)
    chunks: list[dict[str, Any]] = []
    for name, data in events:
        chunks.extend(orjson.loads(p) for p in tr.feed(name, data))
    chunks.extend(orjson.loads(p) for p in tr.finish())
    return tr, chunks


def collect(chunks: list[dict[str, Any]]) -> dict[str, Any]:
    """Reassemble OpenAI chunks like a client SDK does."""
    text, reasoning, finish = "", "", None
    calls: dict[int, dict[str, str]] = {}
    usage = None
    for chunk in chunks:
        assert chunk["object"] == "chat.completion.chunk"
        if chunk.get("usage"):
            usage = chunk["usage"]
        for choice in chunk["choices"]:
            delta = choice["delta"]
            text += delta.get("content") or ""
            reasoning += delta.get("reasoning_content") or ""
            for call in delta.get("tool_calls") or []:
                slot = calls.setdefault(call["index"], {"id": "", "name": "", "arguments": ""})
                slot["id"] = call.get("id") or slot["id"]
                fn = call.get("function") or {}
                slot["name"] = fn.get("name") or slot["name"]
                slot["arguments"] += fn.get("arguments") or ""
            finish = choice["finish_reason"] or finish
    return {
        "text": text,
        "reasoning": reasoning,
        "calls": [calls[i] for i in sorted(calls)],
        "finish": finish,
        "usage": usage,
    }


START = {
    "type": "message_start",
    "message": {
        "id": "msg_s",
        "model": "claude-sonnet-4-20250514",
        "content": [],
        "usage": {"input_tokens": 20, "cache_read_input_tokens": 30, "output_tokens": 1},
    },
}


def test_stream_thinking_text_and_usage() -> None:
    events = sse(
        [
            START,
            {
                "type": "content_block_start",
                "index": 0,
                "content_block": {"type": "thinking", "thinking": ""},
            },
            {
                "type": "content_block_delta",
                "index": 0,
                "delta": {"type": "thinking_delta", "thinking": "Hmm"},
            },
            {
                "type": "content_block_delta",
                "index": 0,
                "delta": {"type": "signature_delta", "signature": "s"},
            },
            {"type": "content_block_stop", "index": 0},
            {"type": "ping"},
            {
                "type": "content_block_start",
                "index": 1,
                "content_block": {"type": "text", "text": ""},
            },
            {
                "type": "content_block_delta",
                "index": 1,
                "delta": {"type": "text_delta", "text": "Hi"},
            },
            {
                "type": "message_delta",
                "delta": {"stop_reason": "max_tokens"},
                "usage": {"output_tokens": 9},
            },
            {"type": "message_stop"},
        ]
    )
    tr, chunks = run(events)
    assert tr.done and tr.error is None
    first = chunks[0]
    assert first["id"] == "chatcmpl-msg_s"
    assert first["model"] == "claude-sonnet-4-20250514"
    assert first["choices"] == [
        {"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}
    ]
    got = collect(chunks)
    assert (got["text"], got["reasoning"], got["finish"]) == ("Hi", "Hmm", "length")
    assert chunks[-2]["choices"][0] == {"index": 0, "delta": {}, "finish_reason": "length"}
    assert chunks[-1]["choices"] == []
    assert got["usage"] == {
        "prompt_tokens": 50,
        "completion_tokens": 9,
        "total_tokens": 59,
        "prompt_tokens_details": {"cached_tokens": 30},
    }
    assert len({c["id"] for c in chunks}) == 1

    _, without = run(events, include_usage=False)
    assert all(c["choices"] for c in without)


@pytest.mark.parametrize(
    ("kind", "cls"),
    [
        ("overloaded_error", UpstreamError),
        ("api_error", UpstreamError),
        ("rate_limit_error", RateLimited),
        ("invalid_request_error", UpstreamRejected),
    ],
)
def test_stream_error_event(kind: str, cls: type[RelayError]) -> None:
    error = {"type": "error", "error": {"type": kind, "message": "boom"}}
    tr, chunks = run([*sse([START]), ("error", orjson.dumps(error))], include_usage=False)
    assert len(chunks) == 1
    assert type(tr.error) is cls
    assert not tr.done


def test_stream_malformed_event() -> None:
    tr, _ = run([("content_block_delta", b"{not json")])
    assert isinstance(tr.error, UpstreamError)


# ------------------------------------------------------------------ replay

ROOT = recordings_dir()
CASSETTES = (
    sorted(
        p.relative_to(ROOT).as_posix() for p in ROOT.glob("TestAnthropic*/**/*.yaml") if p.is_file()
    )
    if ROOT
    else []
)
needs_recordings = pytest.mark.skipif(not CASSETTES, reason="provider recordings not available")


def cassette(name: str) -> list[Interaction]:
    assert ROOT is not None
    return load_cassette(ROOT / name)


def decode(body: bytes, piece: int = 61) -> list[tuple[str | None, bytes]]:
    """Decode a recorded SSE body delivered in arbitrary network-sized pieces."""
    decoder = SSEDecoder()
    events: list[tuple[str | None, bytes]] = []
    for i in range(0, len(body), piece):
        events.extend(decoder.feed(body[i : i + piece]))
    events.extend(decoder.flush())
    return events


def expected_from_stream(events: list[tuple[str | None, bytes]]) -> dict[str, Any]:
    """What the recorded stream says, read directly off the Anthropic events."""
    text = ""
    tools: dict[int, dict[str, Any]] = {}
    usage: dict[str, int] = {}
    stop = None
    for _, data in events:
        obj = orjson.loads(data)
        if obj["type"] == "message_start":
            usage.update(obj["message"]["usage"])
        elif obj["type"] == "content_block_start" and obj["content_block"]["type"] == "tool_use":
            block = obj["content_block"]
            tools[obj["index"]] = {"id": block["id"], "name": block["name"], "json": ""}
        elif obj["type"] == "content_block_delta":
            delta = obj["delta"]
            if delta["type"] == "text_delta":
                text += delta["text"]
            elif delta["type"] == "input_json_delta" and obj["index"] in tools:
                tools[obj["index"]]["json"] += delta["partial_json"]
        elif obj["type"] == "message_delta":
            usage.update({k: v for k, v in obj["usage"].items() if isinstance(v, int)})
            stop = obj["delta"]["stop_reason"]
    calls = [
        {"id": t["id"], "name": t["name"], "input": orjson.loads(t["json"] or "{}")}
        for _, t in sorted(tools.items())
    ]
    return {"text": text, "calls": calls, "stop": stop, "usage": usage}


FINISH = {"end_turn": "stop", "tool_use": "tool_calls", "max_tokens": "length"}


def prompt_tokens(usage: dict[str, Any]) -> int:
    return int(
        usage["input_tokens"]
        + usage.get("cache_read_input_tokens", 0)
        + usage.get("cache_creation_input_tokens", 0)
    )


def next_assistant_turn(interactions: list[Interaction], i: int) -> dict[str, Any] | None:
    """The assistant message the client sent back in the following request, if any."""
    if i + 1 >= len(interactions):
        return None
    messages = interactions[i + 1].request_json()["messages"]
    assistants = [m for m in messages if m["role"] == "assistant"]
    return assistants[-1] if assistants else None


def calls_of(tool_calls: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """OpenAI tool calls (complete or reassembled) as id/name/parsed input."""
    out = []
    for call in tool_calls:
        fn = call.get("function", call)
        out.append({"id": call["id"], "name": fn["name"], "input": orjson.loads(fn["arguments"])})
    return out


@needs_recordings
@pytest.mark.parametrize("name", CASSETTES)
def test_replay_responses(name: str) -> None:
    interactions = cassette(name)
    assert interactions
    for i, it in enumerate(interactions):
        assert it.response_status == 200
        if it.is_stream:
            events = decode(it.response_body)
            want = expected_from_stream(events)
            tr, chunks = run(events)
            assert tr.done and tr.error is None
            assert len({c["id"] for c in chunks}) == 1
            got = collect(chunks)
            text, calls, finish = got["text"], calls_of(got["calls"]), got["finish"]
            prompt, completion = got["usage"]["prompt_tokens"], got["usage"]["completion_tokens"]
        else:
            recorded = it.response_json()
            texts = [b["text"] for b in recorded["content"] if b["type"] == "text"]
            want = {
                "text": "".join(texts),
                "calls": [
                    {"id": b["id"], "name": b["name"], "input": b["input"]}
                    for b in recorded["content"]
                    if b["type"] == "tool_use"
                ],
                "stop": recorded["stop_reason"],
                "usage": recorded["usage"],
            }
            out, usage = ADAPTOR.chat_response(TARGET, it.response_body)
            message = out["choices"][0]["message"]
            assert message["content"] == (want["text"] if texts else None)
            text = message["content"] or ""
            calls = calls_of(message.get("tool_calls", []))
            finish = out["choices"][0]["finish_reason"]
            assert usage is not None
            prompt, completion = usage.prompt_tokens, usage.completion_tokens

        assert text == want["text"]
        assert calls == want["calls"]
        assert finish == FINISH[want["stop"]]
        assert prompt == prompt_tokens(want["usage"])
        assert completion == want["usage"]["output_tokens"]

        # The client echoed this turn back in its next request: it must match ours.
        turn = next_assistant_turn(interactions, i)
        if turn is not None:
            blocks = turn["content"]
            assert "".join(b["text"] for b in blocks if b["type"] == "text") == text
            assert [
                {"id": b["id"], "name": b["name"], "input": b["input"]}
                for b in blocks
                if b["type"] == "tool_use"
            ] == calls


@needs_recordings
def test_replay_known_values() -> None:
    """Spot checks against numbers read by hand from the recordings."""
    first = cassette("TestAnthropicCommon/claude-sonnet-4/tool_streaming.yaml")[0]
    _, chunks = run(decode(first.response_body))
    got = collect(chunks)
    assert got["text"] == "I'll get the weather information for Florence, Italy for you."
    assert got["calls"] == [
        {
            "id": "toolu_01N2eM4V43kGCDkq2Lw7ChWQ",
            "name": "weather",
            "arguments": '{"location": "Florence,Italy"}',
        }
    ]
    assert got["finish"] == "tool_calls"
    assert (got["usage"]["prompt_tokens"], got["usage"]["completion_tokens"]) == (394, 67)
    assert chunks[0]["id"] == "chatcmpl-msg_01Kgk6kMJLdJJC26r3uFwpRU"

    web = cassette("TestAnthropicWebSearch/stream.yaml")[0]
    _, chunks = run(decode(web.response_body))
    got = collect(chunks)
    assert got["calls"] == []  # server-side web search is not a client tool call
    assert got["usage"]["prompt_tokens"] == 13520  # message_delta's cumulative input wins


# -------------------------------------------------- recorded request ↔ our request


def to_openai(req: dict[str, Any]) -> dict[str, Any]:
    """Rewrite a recorded Anthropic request as the OpenAI request a client would send."""
    messages: list[dict[str, Any]] = []
    system = req.get("system")
    if system:
        messages.append({"role": "system", "content": [openai_text(b) for b in system]})
    for msg in req["messages"]:
        blocks = msg["content"]
        if msg["role"] == "assistant":
            out: dict[str, Any] = {"role": "assistant", "content": None}
            texts = [b["text"] for b in blocks if b["type"] == "text"]
            if texts:
                out["content"] = "".join(texts)
            uses = [b for b in blocks if b["type"] == "tool_use"]
            if uses:
                out["tool_calls"] = [
                    {
                        "id": b["id"],
                        "type": "function",
                        "function": {
                            "name": b["name"],
                            "arguments": orjson.dumps(b["input"]).decode(),
                        },
                    }
                    for b in uses
                ]
            if "cache_control" in blocks[-1]:  # message-level: applies to the last block
                out["cache_control"] = blocks[-1]["cache_control"]
            messages.append(out)
            continue
        parts = []
        for b in blocks:
            if b["type"] == "tool_result":
                tool: dict[str, Any] = {
                    "role": "tool",
                    "tool_call_id": b["tool_use_id"],
                    "content": "".join(c["text"] for c in b["content"]),
                }
                if "cache_control" in b:
                    tool["cache_control"] = b["cache_control"]
                messages.append(tool)
            else:
                parts.append(openai_text(b))
        if parts:
            messages.append({"role": "user", "content": parts})
    body: dict[str, Any] = {
        "model": "claude",
        "messages": messages,
        "max_tokens": req["max_tokens"],
    }
    if "tools" in req:
        body["tools"] = [
            {
                "type": "function",
                "function": {
                    "name": t["name"],
                    "description": t["description"],
                    "parameters": t["input_schema"],
                },
            }
            if "input_schema" in t
            else t
            for t in req["tools"]
        ]
    choice = req.get("tool_choice")
    if choice:
        body["tool_choice"] = {"auto": "auto", "any": "required", "none": "none"}[choice["type"]]
        if choice.get("disable_parallel_tool_use"):
            body["parallel_tool_calls"] = False
    return body


def openai_text(block: dict[str, Any]) -> dict[str, Any]:
    assert block["type"] == "text"
    part = {"type": "text", "text": block["text"]}
    if "cache_control" in block:
        part["cache_control"] = block["cache_control"]
    return part


def normalise(req: dict[str, Any]) -> dict[str, Any]:
    """Equivalent Anthropic requests compare equal (string content = one text block, …)."""

    def blocks(content: Any) -> Any:
        if isinstance(content, str):
            return [{"type": "text", "text": content}]
        return [
            {**b, "content": blocks(b["content"])} if b["type"] == "tool_result" else b
            for b in content
        ]

    out = dict(req)
    out["model"] = "claude-sonnet-4-20250514"
    if "system" in out:
        out["system"] = blocks(out["system"])
    out["messages"] = [
        {"role": m["role"], "content": blocks(m["content"])} for m in req["messages"]
    ]
    choice = out.get("tool_choice")
    if choice is not None:
        if choice.get("disable_parallel_tool_use") is False:
            choice = {k: v for k, v in choice.items() if k != "disable_parallel_tool_use"}
        out["tool_choice"] = choice
    return out


@needs_recordings
@pytest.mark.parametrize("name", CASSETTES)
def test_recorded_requests_match_ours(name: str) -> None:
    checked = 0
    for it in cassette(name):
        recorded = it.request_json()
        if not representable(recorded):
            continue  # e.g. a web-search turn echoed back: no OpenAI equivalent
        checked += 1
        req = ADAPTOR.chat_request(TARGET, to_openai(recorded), bool(recorded.get("stream")))
        assert req.url == it.request_url
        assert normalise(orjson.loads(req.body)) == normalise(recorded)
    assert checked


def representable(req: dict[str, Any]) -> bool:
    known = {"text", "tool_use", "tool_result"}
    return all(
        isinstance(m["content"], str) or all(b["type"] in known for b in m["content"])
        for m in req["messages"]
    )
