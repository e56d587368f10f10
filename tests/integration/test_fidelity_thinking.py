"""Through the real gateway with the official openai SDK: Anthropic extended thinking
with tools over two turns, and legacy ``functions`` on channels without them.

The Anthropic emulator enforces Anthropic's rule: with thinking on, the assistant
turn holding ``tool_use`` must start with a thinking block carrying a signature the
server issued; otherwise 400 ``invalid_request_error``.
"""

from __future__ import annotations

from typing import Any

import openai
import pytest
from conftest import Env

TOOLS: list[Any] = [
    {
        "type": "function",
        "function": {
            "name": "weather",
            "description": "Weather of a city",
            "parameters": {
                "type": "object",
                "properties": {"city": {"type": "string"}},
                "required": ["city"],
            },
        },
    }
]
FUNCTIONS: list[Any] = [TOOLS[0]["function"]]
MODEL = "claude-sonnet-4"


def client(env: Env) -> openai.OpenAI:
    return openai.OpenAI(
        api_key=env.key, base_url=env.gw.base_url, max_retries=0, _strict_response_validation=True
    )


THINKING_OPTIONS: list[dict[str, Any]] = [
    {"reasoning_effort": "low"},
    {"extra_body": {"thinking": {"type": "enabled", "budget_tokens": 2048}}},
]


@pytest.mark.parametrize("options", THINKING_OPTIONS, ids=["reasoning_effort", "thinking"])
def test_thinking_with_tools_two_turns(env: Env, options: dict[str, Any]) -> None:
    c = client(env)
    messages: list[Any] = [{"role": "user", "content": "What's the weather in Rome?"}]
    r1 = c.chat.completions.create(model=MODEL, messages=messages, tools=TOOLS, **options)
    choice = r1.choices[0]
    assert choice.finish_reason == "tool_calls" and choice.message.tool_calls
    extra = choice.message.model_extra or {}
    assert extra["reasoning_content"]
    [block] = extra["thinking_blocks"]
    assert block["type"] == "thinking" and block["signature"]
    # the SDK user sends the assistant message back as received, plus the tool result
    messages.append(choice.message.model_dump(exclude_none=True))
    messages.append(
        {"role": "tool", "tool_call_id": choice.message.tool_calls[0].id, "content": "sunny"}
    )
    r2 = c.chat.completions.create(model=MODEL, messages=messages, tools=TOOLS, **options)
    assert r2.choices[0].finish_reason == "stop"
    assert "sunny" in (r2.choices[0].message.content or "")

    # without the thinking block, Anthropic's rule applies (and reaches the client as 400)
    bare = {k: v for k, v in messages[1].items() if k != "thinking_blocks"}
    with pytest.raises(openai.BadRequestError) as info:
        c.chat.completions.create(
            model=MODEL, messages=[messages[0], bare, messages[2]], tools=TOOLS, **options
        )
    assert "Expected `thinking` or `redacted_thinking`" in str(info.value)


def test_thinking_with_tools_two_turns_streaming(env: Env) -> None:
    c = client(env)
    messages: list[Any] = [{"role": "user", "content": "What's the weather in Rome?"}]
    text, reasoning, finish = "", "", None
    blocks: list[dict[str, Any]] = []
    calls: dict[int, dict[str, str]] = {}
    for chunk in c.chat.completions.create(
        model=MODEL, messages=messages, tools=TOOLS, reasoning_effort="medium", stream=True
    ):
        for ch in chunk.choices:
            d = ch.delta
            extra = d.model_extra or {}
            text += d.content or ""
            reasoning += extra.get("reasoning_content") or ""
            blocks.extend(extra.get("thinking_blocks") or ())
            for tc in d.tool_calls or ():
                slot = calls.setdefault(tc.index, {"id": "", "name": "", "arguments": ""})
                slot["id"] = tc.id or slot["id"]
                if tc.function:
                    slot["name"] = tc.function.name or slot["name"]
                    slot["arguments"] += tc.function.arguments or ""
            finish = ch.finish_reason or finish
    assert finish == "tool_calls" and reasoning
    assert [b["type"] for b in blocks] == ["thinking"] and blocks[0]["thinking"] == reasoning
    call = calls[0]
    messages.append(
        {
            "role": "assistant",
            "content": text,
            "reasoning_content": reasoning,
            "thinking_blocks": blocks,
            "tool_calls": [
                {
                    "id": call["id"],
                    "type": "function",
                    "function": {"name": call["name"], "arguments": call["arguments"]},
                }
            ],
        }
    )
    messages.append({"role": "tool", "tool_call_id": call["id"], "content": "sunny"})
    out = ""
    for chunk in c.chat.completions.create(
        model=MODEL, messages=messages, tools=TOOLS, reasoning_effort="medium", stream=True
    ):
        for ch in chunk.choices:
            out += ch.delta.content or ""
    assert "sunny" in out


@pytest.mark.parametrize("model", [MODEL, "deepseek-chat"])
def test_legacy_functions(env: Env, model: str) -> None:
    """openai < 1.0 style: ``functions`` in, ``message.function_call`` out, on channels
    whose upstream has no ``functions`` (Anthropic; DeepSeek-profile vendor)."""
    c = client(env)
    messages: list[Any] = [{"role": "user", "content": "What's the weather in Rome?"}]
    r = c.chat.completions.create(
        model=model, messages=messages, functions=FUNCTIONS, function_call="auto"
    )
    choice = r.choices[0]
    assert choice.finish_reason == "function_call"
    assert choice.message.tool_calls is None
    fc = choice.message.function_call
    assert fc is not None and fc.name == "weather" and "city" in fc.arguments

    name, args, finish = "", "", None
    for chunk in c.chat.completions.create(
        model=model, messages=messages, functions=FUNCTIONS, stream=True
    ):
        for ch in chunk.choices:
            assert ch.delta.tool_calls is None
            if ch.delta.function_call:
                name += ch.delta.function_call.name or ""
                args += ch.delta.function_call.arguments or ""
            finish = ch.finish_reason or finish
    assert (name, finish) == ("weather", "function_call") and "city" in args

    # history in the legacy shape: the function's result goes back as role "function"
    messages.append({"role": "assistant", "content": None, "function_call": fc.model_dump()})
    messages.append({"role": "function", "name": "weather", "content": "sunny"})
    r2 = c.chat.completions.create(model=model, messages=messages, functions=FUNCTIONS)
    assert r2.choices[0].finish_reason == "stop"
    if model == MODEL:
        assert "sunny" in (r2.choices[0].message.content or "")
