"""The Anthropic Messages inbound translations (``inbound/anthropic_*.py``) on literal
fixtures: request → chat body, chat answer → message, chat chunks → Anthropic events,
errors, and the native request to an Anthropic channel."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from relaygate.errors import (
    AuthError,
    InvalidRequest,
    ModelNotFound,
    QuotaExceeded,
    RateLimited,
    UpstreamError,
)
from relaygate.inbound.anthropic_native import count_tokens_request, native_request
from relaygate.inbound.anthropic_request import effort_for_budget, to_chat
from relaygate.inbound.anthropic_response import error_frame, error_type, to_message
from relaygate.inbound.anthropic_stream import MessagesStream
from relaygate.providers.base import Target
from relaygate.relay.messages import render_error

# ---------------------------------------------------------------- request


def test_full_request_translates() -> None:
    body = {
        "model": "claude-x",
        "max_tokens": 300,
        "system": [{"type": "text", "text": "Be brief.", "cache_control": {"type": "ephemeral"}}],
        "messages": [
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "What is here?"},
                    {
                        "type": "image",
                        "source": {"type": "base64", "media_type": "image/png", "data": "iVBO"},
                    },
                    {"type": "image", "source": {"type": "url", "url": "https://x.test/a.jpg"}},
                ],
            },
            {
                "role": "assistant",
                "content": [
                    {"type": "thinking", "thinking": "hm", "signature": "sig"},
                    {"type": "text", "text": "Let me look."},
                    {"type": "tool_use", "id": "toolu_1", "name": "look", "input": {"q": 1}},
                ],
            },
            {
                "role": "user",
                "content": [
                    {"type": "tool_result", "tool_use_id": "toolu_1", "content": "a cat"},
                    {"type": "text", "text": "And?"},
                ],
            },
        ],
        "tools": [
            {
                "name": "look",
                "description": "Look at it",
                "input_schema": {"type": "object", "properties": {"q": {"type": "integer"}}},
            }
        ],
        "tool_choice": {"type": "any", "disable_parallel_tool_use": True},
        "temperature": 0.5,
        "top_p": 0.9,
        "top_k": 5,
        "stop_sequences": ["END"],
        "stream": True,
        "thinking": {"type": "enabled", "budget_tokens": 2048},
        "metadata": {"user_id": "u-1"},
    }
    assert to_chat(body) == {
        "model": "claude-x",
        "messages": [
            {
                "role": "system",
                "content": [
                    {"type": "text", "text": "Be brief.", "cache_control": {"type": "ephemeral"}}
                ],
            },
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "What is here?"},
                    {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBO"}},
                    {"type": "image_url", "image_url": {"url": "https://x.test/a.jpg"}},
                ],
            },
            {
                "role": "assistant",
                "content": "Let me look.",
                "tool_calls": [
                    {
                        "id": "toolu_1",
                        "type": "function",
                        "function": {"name": "look", "arguments": '{"q":1}'},
                    }
                ],
            },
            {"role": "tool", "tool_call_id": "toolu_1", "content": "a cat"},
            {"role": "user", "content": "And?"},
        ],
        "max_tokens": 300,
        "temperature": 0.5,
        "top_p": 0.9,
        "stop": ["END"],
        "stream": True,
        "stream_options": {"include_usage": True},
        "tools": [
            {
                "type": "function",
                "function": {
                    "name": "look",
                    "parameters": {"type": "object", "properties": {"q": {"type": "integer"}}},
                    "description": "Look at it",
                },
            }
        ],
        "tool_choice": "required",
        "parallel_tool_calls": False,
        "reasoning_effort": "low",
        "user": "u-1",
    }


@pytest.mark.parametrize(
    ("choice", "expected"),
    [
        ({"type": "auto"}, "auto"),
        ({"type": "none"}, "none"),
        ({"type": "tool", "name": "f"}, {"type": "function", "function": {"name": "f"}}),
    ],
)
def test_tool_choice(choice: dict[str, Any], expected: Any) -> None:
    body = {
        "model": "m",
        "max_tokens": 5,
        "messages": [{"role": "user", "content": "hi"}],
        "tools": [{"name": "f", "input_schema": {"type": "object"}}],
        "tool_choice": choice,
    }
    assert to_chat(body)["tool_choice"] == expected


def test_budgets_map_to_efforts() -> None:
    assert [effort_for_budget(b) for b in (1024, 4095, 4096, 16383, 16384)] == [
        "low",
        "low",
        "medium",
        "medium",
        "high",
    ]


def test_tool_result_blocks_and_errors() -> None:
    body = {
        "model": "m",
        "max_tokens": 5,
        "messages": [
            {
                "role": "user",
                "content": [
                    {
                        "type": "tool_result",
                        "tool_use_id": "t1",
                        "content": [{"type": "text", "text": "boom"}],
                        "is_error": True,
                    }
                ],
            }
        ],
    }
    assert to_chat(body)["messages"] == [
        {"role": "tool", "tool_call_id": "t1", "content": "Error: boom"}
    ]


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"max_tokens": 5, "messages": [{"role": "user", "content": "x"}]}, "model"),
        ({"model": "m", "messages": [{"role": "user", "content": "x"}]}, "max_tokens"),
        ({"model": "m", "max_tokens": 5, "messages": []}, "messages"),
        ({"model": "m", "max_tokens": 5, "messages": [{"role": "system", "content": "x"}]}, None),
        (
            {
                "model": "m",
                "max_tokens": 5,
                "messages": [{"role": "user", "content": "x"}],
                "thinking": {"type": "enabled", "budget_tokens": 10},
            },
            "thinking",
        ),
        (
            {
                "model": "m",
                "max_tokens": 5,
                "messages": [{"role": "user", "content": "x"}],
                "tool_choice": {"type": "sometimes"},
            },
            "tool_choice",
        ),
    ],
)
def test_bad_requests(body: dict[str, Any], param: str | None) -> None:
    with pytest.raises(InvalidRequest) as info:
        to_chat(body)
    if param is not None:
        assert info.value.param == param


def test_count_only_needs_no_max_tokens() -> None:
    chat = to_chat(
        {"model": "m", "messages": [{"role": "user", "content": "x"}], "stream": True},
        count_only=True,
    )
    assert chat == {"model": "m", "messages": [{"role": "user", "content": "x"}]}


# ---------------------------------------------------------------- response


def test_answer_with_reasoning_and_tools() -> None:
    obj = {
        "id": "chatcmpl-abc",
        "object": "chat.completion",
        "model": "gpt-4o",
        "choices": [
            {
                "index": 0,
                "message": {
                    "role": "assistant",
                    "content": "Calling.",
                    "reasoning_content": "Need weather.",
                    "tool_calls": [
                        {
                            "id": "call_1",
                            "type": "function",
                            "function": {"name": "weather", "arguments": '{"city":"Paris"}'},
                        },
                        {
                            "id": "call_2",
                            "type": "function",
                            "function": {"name": "weather", "arguments": "not json"},
                        },
                    ],
                },
                "finish_reason": "tool_calls",
            }
        ],
        "usage": {
            "prompt_tokens": 50,
            "completion_tokens": 20,
            "total_tokens": 70,
            "prompt_tokens_details": {"cached_tokens": 10},
        },
    }
    assert to_message(obj, "claude-alias") == {
        "id": "msg_abc",
        "type": "message",
        "role": "assistant",
        "model": "claude-alias",
        "content": [
            {"type": "thinking", "thinking": "Need weather.", "signature": ""},
            {"type": "text", "text": "Calling."},
            {"type": "tool_use", "id": "call_1", "name": "weather", "input": {"city": "Paris"}},
            {"type": "tool_use", "id": "call_2", "name": "weather", "input": {}},
        ],
        "stop_reason": "tool_use",
        "stop_sequence": None,
        "usage": {"input_tokens": 40, "output_tokens": 20, "cache_read_input_tokens": 10},
    }


@pytest.mark.parametrize(
    ("finish", "reason"),
    [
        ("stop", "end_turn"),
        ("length", "max_tokens"),
        ("content_filter", "refusal"),
        (None, "end_turn"),
    ],
)
def test_stop_reasons(finish: str | None, reason: str) -> None:
    obj = {"choices": [{"message": {"content": "x"}, "finish_reason": finish}]}
    message = to_message(obj, "m")
    assert message["stop_reason"] == reason
    assert message["id"].startswith("msg_")
    assert message["usage"] == {"input_tokens": 0, "output_tokens": 0}


# ---------------------------------------------------------------- stream


def _events(raw: bytes) -> list[tuple[str, dict[str, Any]]]:
    out = []
    for block in raw.split(b"\n\n"):
        if not block:
            continue
        name, data = block.split(b"\n")
        assert name.startswith(b"event: ") and data.startswith(b"data: ")
        obj = orjson.loads(data[6:])
        assert obj["type"] == name[7:].decode()
        out.append((name[7:].decode(), obj))
    return out


def _chunk(delta: dict[str, Any], finish: str | None = None, **extra: Any) -> bytes:
    return orjson.dumps(
        {
            "id": "chatcmpl-s1",
            "object": "chat.completion.chunk",
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
            **extra,
        }
    )


def test_stream_thinking_text_tool() -> None:
    s = MessagesStream("claude-alias", input_tokens=12)
    raw = s.feed([_chunk({"role": "assistant", "content": ""})])
    raw += s.feed([_chunk({"reasoning_content": "Think"}), _chunk({"reasoning_content": "ing"})])
    raw += s.feed([_chunk({"content": "Hi"})])
    raw += s.feed(
        [
            _chunk(
                {
                    "tool_calls": [
                        {
                            "index": 0,
                            "id": "call_9",
                            "type": "function",
                            "function": {"name": "f", "arguments": ""},
                        }
                    ]
                }
            ),
            _chunk({"tool_calls": [{"index": 0, "function": {"arguments": '{"a":'}}]}),
            _chunk({"tool_calls": [{"index": 0, "function": {"arguments": "1}"}}]}),
            _chunk({}, "tool_calls"),
        ]
    )
    usage = {"prompt_tokens": 30, "completion_tokens": 7, "total_tokens": 37}
    raw += s.feed(
        [
            orjson.dumps(
                {
                    "id": "chatcmpl-s1",
                    "object": "chat.completion.chunk",
                    "choices": [],
                    "usage": usage,
                }
            )
        ]
    )
    raw += s.finish()
    ev = _events(raw)
    assert [name for name, _ in ev] == [
        "message_start",
        "content_block_start",
        "content_block_delta",
        "content_block_delta",
        "content_block_stop",
        "content_block_start",
        "content_block_delta",
        "content_block_stop",
        "content_block_start",
        "content_block_delta",
        "content_block_delta",
        "content_block_stop",
        "message_delta",
        "message_stop",
    ]
    start = ev[0][1]["message"]
    assert start["id"] == "msg_s1" and start["model"] == "claude-alias"
    assert start["usage"] == {"input_tokens": 12, "output_tokens": 0}
    assert ev[1][1] == {
        "type": "content_block_start",
        "index": 0,
        "content_block": {"type": "thinking", "thinking": "", "signature": ""},
    }
    assert ev[3][1]["delta"] == {"type": "thinking_delta", "thinking": "ing"}
    assert ev[6][1] == {
        "type": "content_block_delta",
        "index": 1,
        "delta": {"type": "text_delta", "text": "Hi"},
    }
    assert ev[8][1]["content_block"] == {
        "type": "tool_use",
        "id": "call_9",
        "name": "f",
        "input": {},
    }
    assert [e[1]["delta"]["partial_json"] for e in ev[9:11]] == ['{"a":', "1}"]
    assert ev[11][1] == {"type": "content_block_stop", "index": 2}
    assert ev[12][1] == {
        "type": "message_delta",
        "delta": {"stop_reason": "tool_use", "stop_sequence": None},
        "usage": {"input_tokens": 30, "output_tokens": 7},
    }


def test_stream_error_mid_way_ends_with_error_event() -> None:
    s = MessagesStream("m")
    raw = s.feed([_chunk({"content": "par"})])
    err = orjson.dumps(
        {"error": {"message": "upstream broke", "type": "upstream_error", "code": "upstream_error"}}
    )
    raw += s.feed([err, _chunk({"content": "never"})])
    raw += s.finish()
    ev = _events(raw)
    assert [name for name, _ in ev] == [
        "message_start",
        "content_block_start",
        "content_block_delta",
        "error",
    ]
    assert ev[-1][1] == {
        "type": "error",
        "error": {"type": "api_error", "message": "upstream broke"},
    }


def test_stream_with_nothing_still_closes() -> None:
    s = MessagesStream("m", 3)
    ev = _events(s.finish())
    assert [name for name, _ in ev] == ["message_start", "message_delta", "message_stop"]
    assert ev[1][1]["delta"]["stop_reason"] == "end_turn"
    assert ev[1][1]["usage"] == {"input_tokens": 3, "output_tokens": 0}


def test_stream_cut_is_overloaded() -> None:
    frame = error_frame(
        orjson.dumps(
            {"error": {"message": "shutting down", "type": "server_error", "code": "stream_cut"}}
        )
    )
    assert _events(frame)[0][1]["error"]["type"] == "overloaded_error"


# ---------------------------------------------------------------- errors


@pytest.mark.parametrize(
    ("err", "kind"),
    [
        (InvalidRequest("bad"), "invalid_request_error"),
        (ModelNotFound("no model"), "not_found_error"),
        (AuthError("who"), "authentication_error"),
        (QuotaExceeded("poor"), "permission_error"),
        (RateLimited("slow"), "rate_limit_error"),
        (UpstreamError("down"), "api_error"),
    ],
)
def test_errors_render_in_anthropic_shape(err: Any, kind: str) -> None:
    body = orjson.loads(render_error(err, err.http_status(False)))
    assert body == {"type": "error", "error": {"type": kind, "message": err.message}}


def test_error_type_by_status() -> None:
    assert error_type(None, "server_error", 503) == "overloaded_error"
    assert error_type("whatever", "server_error", 500) == "api_error"
    assert error_type(None, None, 404) == "not_found_error"


# ---------------------------------------------------------------- native


def _target(**kw: Any) -> Target:
    base: dict[str, Any] = {
        "channel_id": 1,
        "provider": "anthropic",
        "profile": "anthropic",
        "base_url": "https://api.anthropic.test",
        "api_key": "sk-ant-up",
        "upstream_model": "claude-up",
        "config": {"anthropic_beta": "beta-a"},
    }
    base.update(kw)
    return Target(**base)


def test_native_request_keeps_body_but_model() -> None:
    body = {
        "model": "claude-alias",
        "max_tokens": 10,
        "messages": [{"role": "user", "content": [{"type": "text", "text": "hi"}]}],
        "top_k": 3,
        "stream": True,
    }
    ureq = native_request(_target(), body, True, version="2023-06-01", beta="beta-b, beta-a")
    assert ureq.url == "https://api.anthropic.test/v1/messages"
    assert ureq.headers == {
        "content-type": "application/json",
        "x-api-key": "sk-ant-up",
        "anthropic-version": "2023-06-01",
        "anthropic-beta": "beta-a,beta-b",
        "accept": "text/event-stream",
    }
    assert orjson.loads(ureq.body) == {**body, "model": "claude-up"}
    assert body["model"] == "claude-alias"  # the client's dict is not changed


def test_native_request_on_vertex() -> None:
    target = _target(
        profile="vertex",
        base_url="https://europe-west1-aiplatform.googleapis.test",
        config={"project": "p", "location": "europe-west1"},
        token="ya29.t",
    )
    ureq = native_request(target, {"model": "a", "max_tokens": 1, "messages": []}, False)
    assert ureq.url.endswith("/publishers/anthropic/models/claude-up:rawPredict")
    assert ureq.headers["authorization"] == "Bearer ya29.t"
    assert orjson.loads(ureq.body) == {
        "max_tokens": 1,
        "messages": [],
        "anthropic_version": "vertex-2023-10-16",
    }
    assert count_tokens_request(target, {"model": "a"}) is None


def test_count_tokens_request() -> None:
    ureq = count_tokens_request(
        _target(config={}), {"model": "a", "messages": [{"role": "user", "content": "x"}]}
    )
    assert ureq is not None
    assert ureq.url == "https://api.anthropic.test/v1/messages/count_tokens"
    assert ureq.headers["anthropic-version"] == "2023-06-01"
    assert "anthropic-beta" not in ureq.headers
    assert orjson.loads(ureq.body)["model"] == "claude-up"


def test_untranslatable_blocks_refused_or_named() -> None:
    body = {
        "model": "m",
        "max_tokens": 5,
        "messages": [
            {"role": "user", "content": "Search it"},
            {
                "role": "assistant",
                "content": [
                    {"type": "server_tool_use", "id": "s1", "name": "web_search", "input": {}},
                    {"type": "text", "text": "Found."},
                ],
            },
            {
                "role": "user",
                "content": [
                    {"type": "document", "source": {"type": "url", "url": "https://x.test/a.pdf"}},
                    {"type": "text", "text": "And this?"},
                ],
            },
        ],
    }
    with pytest.raises(InvalidRequest) as info:
        to_chat(body)
    assert "server_tool_use" in info.value.message and info.value.param == "messages.1.content.0"
    dropped: list[str] = []
    chat = to_chat(body, dropped=dropped)
    assert dropped == [
        "messages.1.content.0: 'server_tool_use' blocks",
        "messages.2.content.0: a document by 'url'",
    ]
    assert chat["messages"][1:] == [
        {"role": "assistant", "content": "Found."},
        {"role": "user", "content": "And this?"},
    ]
