"""Gemini-format inbound translations (``inbound/gemini_*.py``) on literal fixtures: the
requests are the ones the Google Gen AI SDK sent in the recorded traffic
(``tests/fixtures/provider-recordings/TestGoogleCommon``), the expected answers have the
shapes Gemini answered there."""

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
    RelayError,
    UpstreamError,
    UpstreamTimeout,
)
from relaygate.inbound.gemini_request import chat_body, count_request, openai_schema
from relaygate.inbound.gemini_response import error_body, google_status, response_body
from relaygate.inbound.gemini_stream import GeminiStream

SIG = "CuwBAb4+9vtZI+lrRvvljZUdJ6DU"

WEATHER_DECL = {
    "description": "Get weather information for a location",
    "name": "weather",
    "parameters": {
        "properties": {"location": {"description": "the city", "type": "STRING"}},
        "required": ["location"],
        "type": "OBJECT",
    },
}
WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "weather",
        "description": "Get weather information for a location",
        "parameters": {
            "properties": {"location": {"description": "the city", "type": "string"}},
            "required": ["location"],
            "type": "object",
        },
    },
}

# the second request of gemini-2.5-flash/tool_streaming.yaml (thought signature shortened)
TOOL_TURN = {
    "contents": [
        {"parts": [{"text": "What's the weather in Florence,Italy?"}], "role": "user"},
        {
            "parts": [
                {
                    "functionCall": {
                        "args": {"location": "Florence,Italy"},
                        "id": "1",
                        "name": "weather",
                    },
                    "thoughtSignature": SIG,
                }
            ],
            "role": "model",
        },
        {
            "parts": [
                {"functionResponse": {"id": "1", "name": "weather", "response": {"result": "40 C"}}}
            ],
            "role": "user",
        },
    ],
    "generationConfig": {"maxOutputTokens": 4000},
    "systemInstruction": {"parts": [{"text": "You are a helpful assistant"}], "role": "user"},
    "toolConfig": {"functionCallingConfig": {"mode": "AUTO"}},
    "tools": [{"functionDeclarations": [WEATHER_DECL]}],
}


def test_recorded_tool_turn() -> None:
    assert chat_body("gemini-2.5-flash", TOOL_TURN, stream=False) == {
        "model": "gemini-2.5-flash",
        "messages": [
            {"role": "system", "content": "You are a helpful assistant"},
            {"role": "user", "content": "What's the weather in Florence,Italy?"},
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "id": "1",
                        "type": "function",
                        "function": {
                            "name": "weather",
                            "arguments": '{"location":"Florence,Italy"}',
                        },
                        "extra_content": {"google": {"thought_signature": SIG}},
                    }
                ],
            },
            {"role": "tool", "tool_call_id": "1", "content": "40 C"},
        ],
        "tools": [WEATHER_TOOL],
        "tool_choice": "auto",
        "max_tokens": 4000,
    }


def test_stream_flag_asks_for_usage() -> None:
    body = chat_body("m", {"contents": [{"parts": [{"text": "hi"}]}]}, stream=True)
    assert body["stream"] is True and body["stream_options"] == {"include_usage": True}
    assert body["messages"] == [{"role": "user", "content": "hi"}]  # no role: user


def test_calls_without_ids_pair_by_name() -> None:
    body = {
        "contents": [
            {"role": "user", "parts": [{"text": "Add and multiply 2 and 3"}]},
            {
                "role": "model",
                "parts": [
                    {"functionCall": {"name": "add", "args": {"a": 2, "b": 3}}},
                    {"functionCall": {"name": "multiply", "args": {"a": 2, "b": 3}}},
                ],
            },
            {
                "role": "user",
                "parts": [
                    {"functionResponse": {"name": "multiply", "response": {"result": 6}}},
                    {"functionResponse": {"name": "add", "response": {"result": 5}}},
                    {"text": "and now?"},
                ],
            },
        ]
    }
    msgs = chat_body("m", body, stream=False)["messages"]
    ids = {c["function"]["name"]: c["id"] for c in msgs[1]["tool_calls"]}
    assert ids["add"] != ids["multiply"]
    assert msgs[2] == {"role": "tool", "tool_call_id": ids["multiply"], "content": '{"result":6}'}
    assert msgs[3] == {"role": "tool", "tool_call_id": ids["add"], "content": '{"result":5}'}
    assert msgs[4] == {"role": "user", "content": "and now?"}  # after the tool results


def test_media_parts() -> None:
    body = {
        "contents": [
            {
                "role": "user",
                "parts": [
                    {"text": "What is this?"},
                    {"inlineData": {"mimeType": "image/png", "data": "iVBORw0KGgo="}},
                    {"inline_data": {"mime_type": "audio/wav", "data": "UklGRg=="}},
                    {"inlineData": {"mimeType": "application/pdf", "data": "JVBERi0="}},
                    {"fileData": {"mimeType": "image/jpeg", "fileUri": "https://x.test/a.jpg"}},
                ],
            }
        ]
    }
    assert chat_body("m", body, stream=False)["messages"][0]["content"] == [
        {"type": "text", "text": "What is this?"},
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}},
        {"type": "input_audio", "input_audio": {"data": "UklGRg==", "format": "wav"}},
        {
            "type": "file",
            "file": {"file_data": "data:application/pdf;base64,JVBERi0=", "filename": "file"},
        },
        {"type": "image_url", "image_url": {"url": "https://x.test/a.jpg"}},
    ]


def test_model_thought_parts_are_dropped() -> None:
    body = {
        "contents": [
            {"role": "user", "parts": [{"text": "hi"}]},
            {"role": "model", "parts": [{"text": "pondering", "thought": True}, {"text": "Hello"}]},
            {"role": "user", "parts": [{"text": "again"}]},
        ]
    }
    assert chat_body("m", body, stream=False)["messages"][1] == {
        "role": "assistant",
        "content": "Hello",
    }


def test_generation_config() -> None:
    body = {
        "contents": [{"parts": [{"text": "x"}]}],
        "generationConfig": {
            "temperature": 0.3,
            "topP": 0.9,
            "topK": 40,
            "maxOutputTokens": 100,
            "stopSequences": ["END"],
            "candidateCount": 2,
            "seed": 7,
            "presencePenalty": 0.1,
            "frequencyPenalty": 0.2,
            "responseMimeType": "application/json",
            "thinkingConfig": {"thinkingBudget": 2048, "includeThoughts": True},
        },
    }
    out = chat_body("m", body, stream=False)
    assert {k: v for k, v in out.items() if k not in ("model", "messages")} == {
        "temperature": 0.3,
        "top_p": 0.9,
        "top_k": 40,  # kept by the relay only for channels that take it
        "max_tokens": 100,
        "stop": ["END"],
        "n": 2,
        "seed": 7,
        "presence_penalty": 0.1,
        "frequency_penalty": 0.2,
        "response_format": {"type": "json_object"},
        "reasoning_effort": "medium",
    }


@pytest.mark.parametrize(
    ("thinking", "effort"),
    [
        ({"thinkingBudget": 0}, "none"),
        ({"thinkingBudget": 512}, "low"),
        ({"thinkingBudget": 24576}, "high"),
        ({"thinkingBudget": -1}, None),
        ({"thinkingLevel": "HIGH"}, "high"),
        ({"thinking_level": "low"}, "low"),
    ],
)
def test_thinking(thinking: dict[str, Any], effort: str | None) -> None:
    body = {
        "contents": [{"parts": [{"text": "x"}]}],
        "generationConfig": {"thinkingConfig": thinking},
    }
    assert chat_body("m", body, stream=False).get("reasoning_effort") == effort


def test_response_schema() -> None:
    schema = {
        "type": "OBJECT",
        "properties": {
            "name": {"type": "STRING", "nullable": True},
            "tags": {"type": "ARRAY", "items": {"type": "STRING", "enum": ["a", "b"]}},
        },
        "required": ["name"],
        "propertyOrdering": ["name", "tags"],
    }
    body = {
        "contents": [{"parts": [{"text": "x"}]}],
        "generationConfig": {"responseMimeType": "application/json", "responseSchema": schema},
    }
    assert chat_body("m", body, stream=False)["response_format"] == {
        "type": "json_schema",
        "json_schema": {
            "name": "response",
            "schema": {
                "type": "object",
                "properties": {
                    "name": {"type": ["string", "null"]},
                    "tags": {"type": "array", "items": {"type": "string", "enum": ["a", "b"]}},
                },
                "required": ["name"],
            },
        },
    }
    raw = {"type": "object", "additionalProperties": False}
    body["generationConfig"] = {"responseJsonSchema": raw}
    assert chat_body("m", body, stream=False)["response_format"]["json_schema"]["schema"] == raw


def test_schema_any_of() -> None:
    assert openai_schema({"anyOf": [{"type": "INTEGER"}, {"type": "STRING"}]}) == {
        "anyOf": [{"type": "integer"}, {"type": "string"}]
    }


@pytest.mark.parametrize(
    ("config", "choice", "names"),
    [
        ({"mode": "ANY"}, "required", ["weather", "time"]),
        ({"mode": "NONE"}, "none", ["weather", "time"]),
        (
            {"mode": "ANY", "allowedFunctionNames": ["time"]},
            {"type": "function", "function": {"name": "time"}},
            ["time"],
        ),
        (
            {"mode": "ANY", "allowedFunctionNames": ["time", "weather"]},
            "required",
            ["weather", "time"],
        ),
    ],
)
def test_tool_config(config: dict[str, Any], choice: Any, names: list[str]) -> None:
    body = {
        "contents": [{"parts": [{"text": "x"}]}],
        "tools": [
            {"functionDeclarations": [WEATHER_DECL, {"name": "time"}]},
        ],
        "toolConfig": {"functionCallingConfig": config},
    }
    out = chat_body("m", body, stream=False)
    assert out["tool_choice"] == choice
    assert [t["function"]["name"] for t in out["tools"]] == names
    assert out["tools"][-1]["function"]["parameters"] == {"type": "object"} or names == ["weather"]


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({}, "contents"),
        ({"contents": []}, "at least one turn"),
        ({"contents": [{"role": "robot", "parts": []}]}, "role"),
        ({"contents": [{"parts": "hi"}]}, "parts"),
        ({"contents": [{"parts": [{"inlineData": {"data": "x"}}]}]}, "mimeType"),
        (
            {"contents": [{"parts": [{"text": "x"}]}], "generationConfig": {"temperature": "hot"}},
            "temperature",
        ),
        (
            {
                "contents": [{"parts": [{"text": "x"}]}],
                "toolConfig": {"functionCallingConfig": {"mode": "SOMETIMES"}},
            },
            "mode",
        ),
    ],
)
def test_bad_requests(body: dict[str, Any], message: str) -> None:
    with pytest.raises(InvalidRequest) as info:
        chat_body("m", body, stream=False)
    assert message in info.value.message


def test_count_request_takes_a_whole_generate_request() -> None:
    inner = {"contents": [{"parts": [{"text": "hi"}]}], "systemInstruction": "be brief"}
    body = count_request("m", {"generateContentRequest": {"model": "models/m", **inner}})
    assert body["messages"] == [
        {"role": "system", "content": "be brief"},
        {"role": "user", "content": "hi"},
    ]


# ---- answers ---------------------------------------------------------------------------

COMPLETION = {
    "id": "chatcmpl-1",
    "object": "chat.completion",
    "model": "gemini-2.5-flash",
    "choices": [
        {
            "index": 0,
            "message": {
                "role": "assistant",
                "content": None,
                "reasoning_content": "Both at once.",
                "tool_calls": [
                    {
                        "id": "call_a",
                        "type": "function",
                        "function": {"name": "add", "arguments": '{"a":2,"b":3}'},
                        "extra_content": {"google": {"thought_signature": SIG}},
                    },
                    {
                        "id": "call_m",
                        "type": "function",
                        "function": {"name": "multiply", "arguments": '{"a":2,"b":3}'},
                    },
                ],
            },
            "finish_reason": "tool_calls",
        }
    ],
    # the usage of gemini-2.5-flash/multi_tool.yaml as the Gemini adaptor reports it
    "usage": {
        "prompt_tokens": 125,
        "completion_tokens": 109,
        "total_tokens": 234,
        "completion_tokens_details": {"reasoning_tokens": 73},
    },
}


def test_recorded_multi_tool_answer() -> None:
    assert response_body(COMPLETION) == {
        "candidates": [
            {
                "content": {
                    "parts": [
                        {"text": "Both at once.", "thought": True},
                        {
                            "functionCall": {
                                "name": "add",
                                "args": {"a": 2, "b": 3},
                                "id": "call_a",
                            },
                            "thoughtSignature": SIG,
                        },
                        {
                            "functionCall": {
                                "name": "multiply",
                                "args": {"a": 2, "b": 3},
                                "id": "call_m",
                            }
                        },
                    ],
                    "role": "model",
                },
                "index": 0,
                "finishReason": "STOP",
            }
        ],
        # as Gemini reported it in the recording
        "usageMetadata": {
            "promptTokenCount": 125,
            "candidatesTokenCount": 36,
            "totalTokenCount": 234,
            "thoughtsTokenCount": 73,
        },
        "modelVersion": "gemini-2.5-flash",
        "responseId": "chatcmpl-1",
    }


@pytest.mark.parametrize(
    ("reason", "gemini"),
    [("stop", "STOP"), ("length", "MAX_TOKENS"), ("content_filter", "SAFETY"), ("weird", "OTHER")],
)
def test_finish_reasons(reason: str, gemini: str) -> None:
    obj = {"choices": [{"message": {"content": "x"}, "finish_reason": reason}]}
    assert response_body(obj)["candidates"][0]["finishReason"] == gemini


def test_empty_answer_has_a_part_and_cached_tokens() -> None:
    obj = {
        "choices": [{"message": {"content": ""}, "finish_reason": "stop"}],
        "usage": {
            "prompt_tokens": 10,
            "completion_tokens": 0,
            "prompt_tokens_details": {"cached_tokens": 4},
        },
    }
    out = response_body(obj)
    assert out["candidates"][0]["content"]["parts"] == [{"text": ""}]
    assert out["usageMetadata"] == {
        "promptTokenCount": 10,
        "candidatesTokenCount": 0,
        "totalTokenCount": 10,
        "cachedContentTokenCount": 4,
    }


@pytest.mark.parametrize(
    ("err", "status", "name"),
    [
        (AuthError("bad key"), 401, "UNAUTHENTICATED"),
        (ModelNotFound("no model"), 403, "NOT_FOUND"),
        (InvalidRequest("bad"), 400, "INVALID_ARGUMENT"),
        (QuotaExceeded("broke"), 403, "RESOURCE_EXHAUSTED"),
        (RateLimited("slow down"), 429, "RESOURCE_EXHAUSTED"),
        (UpstreamTimeout("late"), 504, "DEADLINE_EXCEEDED"),
        (InvalidRequest("slow body", code="request_timeout", status=408), 408, "DEADLINE_EXCEEDED"),
        (UpstreamError("broken"), 502, "INTERNAL"),
        (RelayError("oops"), 500, "INTERNAL"),
    ],
)
def test_error_statuses(err: RelayError, status: int, name: str) -> None:
    assert google_status(err, status) == name
    assert orjson.loads(error_body(err, status)) == {
        "error": {"code": status, "message": err.message, "status": name}
    }


def test_upstream_status_picks_the_name() -> None:
    err = UpstreamError("upstream said no")
    err.upstream_status = 400
    assert google_status(err, 502) == "INVALID_ARGUMENT"
    err.upstream_status = 503
    assert google_status(err, 502) == "UNAVAILABLE"


# ---- streams ---------------------------------------------------------------------------


def chunk(delta: dict[str, Any], finish: str | None = None, **extra: Any) -> bytes:
    return orjson.dumps(
        {
            "id": "chatcmpl-9",
            "object": "chat.completion.chunk",
            "model": "gpt-4o-mini",
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
            **extra,
        }
    )


USAGE = orjson.dumps(
    {
        "id": "chatcmpl-9",
        "model": "gpt-4o-mini",
        "choices": [],
        "usage": {"prompt_tokens": 127, "completion_tokens": 12, "total_tokens": 139},
    }
)


def sse_objects(data: bytes) -> list[dict[str, Any]]:
    frames = [f for f in data.split(b"\r\n\r\n") if f]
    assert all(f.startswith(b"data: ") for f in frames)
    return [orjson.loads(f[6:]) for f in frames]


def test_text_stream_as_sse() -> None:
    # the recorded answer of tool_streaming.yaml's second turn, as OpenAI chunks
    s = GeminiStream(sse=True)
    first = s.feed(
        [chunk({"role": "assistant", "content": ""}), chunk({"content": "The weather in Florence"})]
    )
    second = s.feed([chunk({"content": ",Italy is 40 C."}), chunk({}, "stop")])
    last = s.feed([USAGE]) + s.finish()
    objs = sse_objects(first + second + last)
    assert [o["candidates"][0]["content"]["parts"] for o in objs] == [
        [{"text": "The weather in Florence"}],
        [{"text": ",Italy is 40 C."}],
        [{"text": ""}],
    ]
    assert objs[0]["modelVersion"] == "gpt-4o-mini" and objs[0]["responseId"] == "chatcmpl-9"
    assert objs[-1]["candidates"][0]["finishReason"] == "STOP"
    assert objs[-1]["usageMetadata"] == {
        "promptTokenCount": 127,
        "candidatesTokenCount": 12,
        "totalTokenCount": 139,
    }
    assert "finishReason" not in objs[0]["candidates"][0]


def test_tool_calls_gathered_into_the_last_chunk() -> None:
    s = GeminiStream(sse=True)
    out = s.feed(
        [
            chunk({"reasoning_content": "Let me check."}),
            chunk(
                {
                    "tool_calls": [
                        {
                            "index": 0,
                            "id": "call_w",
                            "type": "function",
                            "function": {"name": "weather", "arguments": '{"loca'},
                            "extra_content": {"google": {"thought_signature": SIG}},
                        }
                    ]
                }
            ),
            chunk(
                {"tool_calls": [{"index": 0, "function": {"arguments": 'tion":"Florence,Italy"}'}}]}
            ),
            chunk({}, "tool_calls"),
        ]
    )
    objs = sse_objects(out + s.finish())
    assert objs[0]["candidates"][0]["content"]["parts"] == [
        {"text": "Let me check.", "thought": True}
    ]
    assert objs[-1]["candidates"][0] == {
        "content": {
            "parts": [
                {
                    "functionCall": {
                        "name": "weather",
                        "args": {"location": "Florence,Italy"},
                        "id": "call_w",
                    },
                    "thoughtSignature": SIG,
                }
            ],
            "role": "model",
        },
        "index": 0,
        "finishReason": "STOP",
    }
    assert len(objs) == 2


def test_json_array_stream() -> None:
    s = GeminiStream(sse=False)
    body = (
        s.feed([chunk({"content": "Hel"})])
        + s.feed([chunk({"content": "lo"}, "length")])
        + s.finish()
    )
    objs = orjson.loads(body)
    assert [o["candidates"][0]["content"]["parts"][0]["text"] for o in objs] == ["Hel", "lo", ""]
    assert objs[-1]["candidates"][0]["finishReason"] == "MAX_TOKENS"


def test_json_array_stream_with_nothing_still_parses() -> None:
    s = GeminiStream(sse=False)
    objs = orjson.loads(s.feed([]) + s.finish())
    assert len(objs) == 1 and objs[0]["candidates"][0]["finishReason"] == "STOP"


@pytest.mark.parametrize("sse", [True, False])
def test_error_mid_stream_ends_it(sse: bool) -> None:
    s = GeminiStream(sse=sse)
    err = orjson.dumps(
        {"error": {"message": "cut", "type": "server_error", "param": None, "code": "stream_cut"}}
    )
    body = (
        s.feed([chunk({"content": "Hi"})]) + s.feed([err, chunk({"content": "more"})]) + s.finish()
    )
    objs = sse_objects(body) if sse else orjson.loads(body)
    assert len(objs) == 2
    assert objs[-1] == {"error": {"code": 503, "message": "cut", "status": "UNAVAILABLE"}}
