"""Anthropic adaptor: extended thinking over several turns, legacy functions,
cache_control on tool calls."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from relaygate.errors import InvalidRequest
from relaygate.providers.anthropic import AnthropicAdaptor
from relaygate.providers.base import Target

A = AnthropicAdaptor()
T = Target(7, "anthropic", "anthropic", "https://api.anthropic.com", "sk-ant-x", "claude-x")
USER = {"role": "user", "content": "weather in Rome?"}
TOOLS = [{"type": "function", "function": {"name": "weather", "parameters": {"type": "object"}}}]


def build(body: dict[str, Any], target: Target = T) -> Any:
    return orjson.loads(A.chat_request(target, {"model": "m", **body}, False).body)


# ---------------------------------------------------------------- turning thinking on


@pytest.mark.parametrize(
    ("effort", "budget"), [("minimal", 1024), ("low", 1024), ("medium", 4096), ("high", 16384)]
)
def test_reasoning_effort_turns_thinking_on(effort: str, budget: int) -> None:
    body = build({"messages": [USER], "reasoning_effort": effort, "temperature": 0.3})
    assert body["thinking"] == {"type": "enabled", "budget_tokens": budget}
    assert body["max_tokens"] == 4096 + budget  # default answer room on top of the budget
    assert "temperature" not in body  # Anthropic rejects it with thinking
    small = build({"messages": [USER], "reasoning_effort": effort, "max_tokens": 500})
    assert small["max_tokens"] == 500 + budget > budget
    big = build({"messages": [USER], "reasoning_effort": effort, "max_tokens": 50000})
    assert big["max_tokens"] == 50000
    off = build({"messages": [USER], "reasoning_effort": "none", "temperature": 0.3})
    assert "thinking" not in off and off["temperature"] == 0.3


def test_explicit_thinking_and_channel_budgets() -> None:
    body = build({"messages": [USER], "thinking": {"type": "enabled", "budget_tokens": 2000}})
    assert body["thinking"] == {"type": "enabled", "budget_tokens": 2000}
    assert body["max_tokens"] > 2000
    custom = Target(
        7, "anthropic", "anthropic", T.base_url, "k", "c", {"reasoning_budgets": {"low": 3000}}
    )
    assert build({"messages": [USER], "reasoning_effort": "low"}, custom)["thinking"] == {
        "type": "enabled",
        "budget_tokens": 3000,
    }


@pytest.mark.parametrize(
    "extra",
    [
        {"thinking": {"type": "enabled", "budget_tokens": 500}},
        {"thinking": {"type": "enabled"}},
        {"thinking": "on"},
        {"thinking": {"type": "enabled", "budget_tokens": 2000}, "max_tokens": 2000},
        {"reasoning_effort": "extreme"},
    ],
)
def test_bad_thinking_requests(extra: dict[str, Any]) -> None:
    with pytest.raises(InvalidRequest):
        build({"messages": [USER], **extra})


# ---------------------------------------------------------------- thinking blocks both ways

THINKING = {"type": "thinking", "thinking": "Let me check.", "signature": "c2ln"}
REDACTED = {"type": "redacted_thinking", "data": "ZW5j"}


def test_thinking_blocks_returned_non_stream() -> None:
    raw = orjson.dumps(
        {
            "id": "msg_1",
            "content": [
                THINKING,
                REDACTED,
                {"type": "tool_use", "id": "toolu_1", "name": "weather", "input": {}},
            ],
            "stop_reason": "tool_use",
        }
    )
    obj, _ = A.chat_response(T, raw)
    msg = obj["choices"][0]["message"]
    assert msg["reasoning_content"] == "Let me check."
    assert msg["thinking_blocks"] == [THINKING, REDACTED]


def test_thinking_blocks_sent_back_come_before_tool_use() -> None:
    assistant = {
        "role": "assistant",
        "content": "Checking.",
        "reasoning_content": "Let me check.",
        "thinking_blocks": [THINKING, REDACTED],
        "tool_calls": [
            {
                "id": "toolu_1",
                "type": "function",
                "function": {"name": "weather", "arguments": "{}"},
                "cache_control": {"type": "ephemeral"},
            }
        ],
    }
    tool = {"role": "tool", "tool_call_id": "toolu_1", "content": "sunny"}
    body = build({"messages": [USER, assistant, tool], "tools": TOOLS, "reasoning_effort": "low"})
    content = body["messages"][1]["content"]
    assert [b["type"] for b in content] == ["thinking", "redacted_thinking", "text", "tool_use"]
    assert content[0] == THINKING and content[1] == REDACTED
    assert content[3]["cache_control"] == {"type": "ephemeral"}  # kept on the tool call


@pytest.mark.parametrize(
    "blocks",
    [
        "x",
        [{"type": "thinking", "thinking": "t"}],
        [{"type": "redacted_thinking"}],
        [{"type": "other"}],
    ],
)
def test_bad_thinking_blocks(blocks: Any) -> None:
    assistant = {"role": "assistant", "content": "x", "thinking_blocks": blocks}
    with pytest.raises(InvalidRequest):
        build({"messages": [USER, assistant, USER]})


def _events(items: list[dict[str, Any]]) -> list[tuple[str, bytes]]:
    return [(e["type"], orjson.dumps(e)) for e in items]


def _stream(events: list[tuple[str, bytes]], legacy: bool = False) -> list[dict[str, Any]]:
    tr = A.chat_stream(T, include_usage=False, legacy_functions=legacy)
    out = []
    for name, data in events:
        out.extend(orjson.loads(p) for p in tr.feed(name, data))
    assert tr.done
    return out


START = {"type": "message_start", "message": {"id": "msg_1", "model": "c", "usage": {}}}
TOOL_EVENTS = [
    {
        "type": "content_block_start",
        "index": 2,
        "content_block": {"type": "tool_use", "id": "toolu_1", "name": "weather", "input": {}},
    },
    {
        "type": "content_block_delta",
        "index": 2,
        "delta": {"type": "input_json_delta", "partial_json": '{"city":'},
    },
    {
        "type": "content_block_delta",
        "index": 2,
        "delta": {"type": "input_json_delta", "partial_json": '"Rome"}'},
    },
    {"type": "content_block_stop", "index": 2},
    {"type": "message_delta", "delta": {"stop_reason": "tool_use"}, "usage": {"output_tokens": 5}},
    {"type": "message_stop"},
]


def test_stream_returns_complete_thinking_blocks() -> None:
    events = _events(
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
                "delta": {"type": "thinking_delta", "thinking": "Let me "},
            },
            {
                "type": "content_block_delta",
                "index": 0,
                "delta": {"type": "thinking_delta", "thinking": "check."},
            },
            {
                "type": "content_block_delta",
                "index": 0,
                "delta": {"type": "signature_delta", "signature": "c2ln"},
            },
            {"type": "content_block_stop", "index": 0},
            {"type": "content_block_start", "index": 1, "content_block": REDACTED},
            {"type": "content_block_stop", "index": 1},
            *TOOL_EVENTS,
        ]
    )
    chunks = _stream(events)
    deltas = [c["choices"][0]["delta"] for c in chunks]
    assert "".join(d.get("reasoning_content") or "" for d in deltas) == "Let me check."
    blocks = [b for d in deltas for b in d.get("thinking_blocks") or ()]
    assert blocks == [THINKING, REDACTED]
    assert chunks[-1]["choices"][0]["finish_reason"] == "tool_calls"


# ---------------------------------------------------------------- legacy functions

LEGACY = {
    "functions": [{"name": "weather", "parameters": {"type": "object"}}],
    "function_call": "auto",
}


def test_legacy_functions_reach_anthropic_as_tools() -> None:
    history = [
        USER,
        {
            "role": "assistant",
            "content": None,
            "function_call": {"name": "weather", "arguments": "{}"},
        },
        {"role": "function", "name": "weather", "content": "sunny"},
    ]
    req = A.chat_request(T, {"model": "m", "messages": history, **LEGACY}, False)
    assert req.legacy_functions
    body = orjson.loads(req.body)
    assert body["tools"] == [{"name": "weather", "input_schema": {"type": "object"}}]
    assert body["tool_choice"] == {"type": "auto", "disable_parallel_tool_use": True}
    use = body["messages"][1]["content"][0]
    assert use["type"] == "tool_use" and use["name"] == "weather"
    assert body["messages"][2]["content"][0] == {
        "type": "tool_result",
        "tool_use_id": use["id"],
        "content": "sunny",
    }
    forced = build({"messages": [USER], **LEGACY, "function_call": {"name": "weather"}})
    assert forced["tool_choice"] == {
        "type": "tool",
        "name": "weather",
        "disable_parallel_tool_use": True,
    }


def test_legacy_answer_shape() -> None:
    raw = orjson.dumps(
        {
            "id": "msg_1",
            "content": [
                {"type": "tool_use", "id": "toolu_1", "name": "weather", "input": {"a": 1}}
            ],
            "stop_reason": "tool_use",
        }
    )
    obj, _ = A.chat_response(T, raw, legacy_functions=True)
    choice = obj["choices"][0]
    assert choice["finish_reason"] == "function_call"
    assert choice["message"]["function_call"] == {"name": "weather", "arguments": '{"a":1}'}
    assert "tool_calls" not in choice["message"]
    chunks = _stream(_events([START, *TOOL_EVENTS]), legacy=True)
    deltas = [c["choices"][0]["delta"] for c in chunks]
    assert not any("tool_calls" in d for d in deltas)
    fc = [d["function_call"] for d in deltas if "function_call" in d]
    assert fc[0]["name"] == "weather"
    assert orjson.loads("".join(f["arguments"] for f in fc)) == {"city": "Rome"}
    assert chunks[-1]["choices"][0]["finish_reason"] == "function_call"
