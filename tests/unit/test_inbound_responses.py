"""The Responses API translations (inbound/responses_*.py) with literal fixtures: a
Responses request as a chat body, a chat completion as a response object, and a chat
stream as the Responses events."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from relaygate.errors import InvalidRequest
from relaygate.inbound.responses_answer import ResponsesStream, to_response
from relaygate.inbound.responses_request import input_items, to_chat

# the second request of the recorded tool conversation (TestOpenAIResponsesCommon/tool.yaml)
TOOL_TURN = {
    "max_output_tokens": 4000,
    "store": False,
    "input": [
        {"content": "You are a helpful assistant", "role": "system"},
        {"content": [{"text": "What's the weather in Florence,Italy?", "type": "input_text"}],
         "role": "user"},
        {"arguments": "{\"location\":\"Florence, Italy\"}", "call_id": "call_XX4z",
         "name": "weather", "type": "function_call"},
        {"call_id": "call_XX4z", "output": "40 C", "type": "function_call_output"},
    ],
    "model": "gpt-4o-mini",
    "tool_choice": "auto",
    "tools": [{"strict": False, "parameters": {"type": "object", "properties": {}},
               "name": "weather", "description": "Get weather", "type": "function"}],
}  # fmt: skip


def test_recorded_tool_turn_becomes_chat_messages() -> None:
    chat = to_chat(TOOL_TURN, input_items(TOOL_TURN["input"]))
    assert chat["messages"] == [
        {"role": "system", "content": "You are a helpful assistant"},
        {"role": "user", "content": "What's the weather in Florence,Italy?"},
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "call_XX4z", "type": "function",
             "function": {"name": "weather", "arguments": "{\"location\":\"Florence, Italy\"}"}},
        ]},
        {"role": "tool", "tool_call_id": "call_XX4z", "content": "40 C"},
    ]  # fmt: skip
    assert chat["tools"] == [{"type": "function", "function": {
        "name": "weather", "description": "Get weather", "strict": False,
        "parameters": {"type": "object", "properties": {}}}}]  # fmt: skip
    assert chat["tool_choice"] == "auto" and chat["max_tokens"] == 4000
    assert "stream" not in chat


def test_fields_map_to_chat() -> None:
    body = {
        "model": "m", "input": "hi", "instructions": "Be terse.", "stream": True,
        "temperature": 0.2, "top_p": 0.9, "reasoning": {"effort": "low"},
        "tool_choice": {"type": "function", "name": "f"},
        "text": {"format": {"type": "json_schema", "name": "out", "schema": {"type": "object"},
                            "strict": True}},
    }  # fmt: skip
    chat = to_chat(body, input_items(body["input"]))
    assert chat["messages"] == [
        {"role": "system", "content": "Be terse."},
        {"role": "user", "content": "hi"},
    ]
    assert chat["stream"] is True and chat["stream_options"] == {"include_usage": True}
    assert chat["temperature"] == 0.2 and chat["top_p"] == 0.9
    assert chat["reasoning_effort"] == "low"
    assert chat["tool_choice"] == {"type": "function", "function": {"name": "f"}}
    assert chat["response_format"] == {
        "type": "json_schema",
        "json_schema": {"name": "out", "schema": {"type": "object"}, "strict": True},
    }


def test_images_reasoning_and_developer() -> None:
    items = [
        {"type": "reasoning", "id": "rs_1", "summary": []},
        {"role": "developer", "content": "rules"},
        {"role": "user", "content": [
            {"type": "input_text", "text": "what is this?"},
            {"type": "input_image", "image_url": "data:image/png;base64,AAAA", "detail": "low"},
        ]},
        {"type": "message", "role": "assistant",
         "content": [{"type": "output_text", "text": "a dot"}]},
    ]  # fmt: skip
    chat = to_chat({"model": "m"}, items)
    assert chat["messages"] == [
        {"role": "system", "content": "rules"},
        {"role": "user", "content": [
            {"type": "text", "text": "what is this?"},
            {"type": "image_url",
             "image_url": {"url": "data:image/png;base64,AAAA", "detail": "low"}},
        ]},
        {"role": "assistant", "content": "a dot"},
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"model": "m", "input": 5}, "input"),
        ({"model": "m", "input": "x", "tools": [{"type": "web_search"}]}, "tools"),
        ({"model": "m", "input": "x", "max_output_tokens": 0}, "max_output_tokens"),
        ({"model": "m", "input": [{"role": "robot", "content": "x"}]}, "input"),
        ({"model": "m", "input": [{"type": "function_call", "name": "f"}]}, "input"),
        ({"model": "m", "input": []}, "input"),
    ],
)
def test_bad_requests_are_refused(body: dict[str, Any], param: str) -> None:
    with pytest.raises(InvalidRequest) as err:
        to_chat(body, input_items(body["input"]))
    assert err.value.param == param


COMPLETION = {
    "id": "chatcmpl-1", "object": "chat.completion", "created": 1700000000, "model": "up",
    "choices": [{"index": 0, "finish_reason": "tool_calls", "message": {
        "role": "assistant", "content": "Let me check.", "reasoning_content": "think",
        "tool_calls": [{"id": "call_1", "type": "function",
                        "function": {"name": "weather", "arguments": "{\"location\":\"Rome\"}"}}],
    }}],
    "usage": {"prompt_tokens": 12, "completion_tokens": 7, "total_tokens": 19,
              "prompt_tokens_details": {"cached_tokens": 4},
              "completion_tokens_details": {"reasoning_tokens": 2}},
}  # fmt: skip


def test_completion_becomes_a_response() -> None:
    resp = to_response(COMPLETION, "resp_1", {"model": "pub", "input": "x"}, "pub")
    assert resp["id"] == "resp_1" and resp["object"] == "response" and resp["model"] == "pub"
    assert resp["status"] == "completed" and resp["created_at"] == 1700000000
    assert [o["type"] for o in resp["output"]] == ["reasoning", "message", "function_call"]
    assert resp["output"][0]["summary"] == [{"type": "summary_text", "text": "think"}]
    assert resp["output"][1]["content"][0]["text"] == "Let me check."
    call = resp["output"][2]
    assert (call["call_id"], call["name"], call["arguments"]) == (
        "call_1", "weather", "{\"location\":\"Rome\"}",
    )  # fmt: skip
    assert resp["usage"] == {
        "input_tokens": 12, "input_tokens_details": {"cached_tokens": 4},
        "output_tokens": 7, "output_tokens_details": {"reasoning_tokens": 2},
        "total_tokens": 19,
    }  # fmt: skip


def test_length_stop_is_incomplete() -> None:
    done = {"choices": [{"finish_reason": "length", "message": {"content": "abc"}}]}
    resp = to_response(done, "resp_2", {"max_output_tokens": 1}, "pub")
    assert resp["status"] == "incomplete"
    assert resp["incomplete_details"] == {"reason": "max_output_tokens"}
    assert resp["max_output_tokens"] == 1


def _chunk(delta: dict[str, Any], finish: str | None = None, **more: Any) -> bytes:
    return orjson.dumps({"choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
                         **more})  # fmt: skip


def _parse(frames: bytes) -> list[dict[str, Any]]:
    out = []
    for block in frames.decode().split("\n\n"):
        if block:
            event, data = block.split("\n")
            obj = orjson.loads(data[len("data: ") :])
            assert event == "event: " + obj["type"]
            out.append(obj)
    return out


def test_text_stream_events() -> None:
    s = ResponsesStream("resp_3", {"model": "pub"}, "pub")
    frames = s.feed([_chunk({"role": "assistant", "content": ""}), _chunk({"content": "Ol"})])
    frames += s.feed([_chunk({"content": "á"}, "stop"),
                      orjson.dumps({"choices": [], "usage": {"prompt_tokens": 3,
                                                             "completion_tokens": 2}})])  # fmt: skip
    frames += s.finish()
    events = _parse(frames)
    assert [e["type"] for e in events] == [
        "response.created", "response.in_progress", "response.output_item.added",
        "response.content_part.added", "response.output_text.delta",
        "response.output_text.delta", "response.output_text.done",
        "response.content_part.done", "response.output_item.done", "response.completed",
    ]  # fmt: skip
    assert [e["sequence_number"] for e in events] == list(range(10))
    assert events[6]["text"] == "Olá"
    done = events[-1]["response"]
    assert done["status"] == "completed" and done["output"][0]["content"][0]["text"] == "Olá"
    assert done["usage"]["input_tokens"] == 3 and done["usage"]["total_tokens"] == 5
    assert s.response == done


def test_tool_stream_events() -> None:
    s = ResponsesStream("resp_4", {}, "pub")
    head = {"index": 0, "id": "call_9", "type": "function",
            "function": {"name": "weather", "arguments": ""}}  # fmt: skip
    frames = s.feed([
        _chunk({"tool_calls": [head]}),
        _chunk({"tool_calls": [{"index": 0, "function": {"arguments": "{\"a\":"}}]}),
        _chunk({"tool_calls": [{"index": 0, "function": {"arguments": "1}"}}]}, "tool_calls"),
    ]) + s.finish()  # fmt: skip
    events = _parse(frames)
    kinds = [e["type"] for e in events]
    assert kinds[2:] == [
        "response.output_item.added", "response.function_call_arguments.delta",
        "response.function_call_arguments.delta", "response.function_call_arguments.done",
        "response.output_item.done", "response.completed",
    ]  # fmt: skip
    assert events[2]["item"]["call_id"] == "call_9" and events[2]["item"]["arguments"] == ""
    assert events[5]["arguments"] == '{"a":1}'
    assert events[-1]["response"]["output"][0]["arguments"] == '{"a":1}'


def test_error_mid_stream_fails_the_response() -> None:
    s = ResponsesStream("resp_5", {}, "pub")
    frames = s.feed([_chunk({"content": "x"}), orjson.dumps({"error": {
        "message": "upstream broke", "code": "upstream_error"}})])  # fmt: skip
    frames += s.finish()
    events = _parse(frames)
    assert [e["type"] for e in events][-2:] == ["error", "response.failed"]
    assert events[-1]["response"]["error"]["code"] == "upstream_error"
    assert s.response["status"] == "failed"
