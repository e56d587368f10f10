"""Faithful relay through the OpenAI-compatible adaptor: usage exactly once, reasoning
under one field, usage in OpenAI's accounting, legacy ``functions``.

Recorded real provider streams (``tests/fixtures/provider-recordings``) are fed
through the stream translator; what comes out is checked as a client would add it up.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import orjson
import pytest

from relaygate.providers.base import Target, Usage, normalize_usage
from relaygate.providers.openai_compat import OpenAICompatAdaptor
from relaygate.relay.sse import SSEDecoder

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from recordings import Interaction, load_cassette, recordings_dir

A = OpenAICompatAdaptor()
ROOT = recordings_dir()


def target(profile: str = "generic", **config: Any) -> Target:
    return Target(1, "openai_compat", profile, "https://up.example/v1", "sk-up", "m", config)


def translate(
    it_body: bytes, profile: str, include_usage: bool, legacy: bool = False
) -> list[dict[str, Any]]:
    tr = A.chat_stream(target(profile), include_usage, legacy_functions=legacy)
    dec = SSEDecoder()
    out: list[bytes] = []
    for ev, data in [*dec.feed(it_body), *dec.flush()]:
        out.extend(tr.feed(ev, data))
    assert tr.done and tr.error is None
    out.extend(tr.finish())
    return [orjson.loads(p) for p in out]


def stream_cassettes() -> list[Path]:
    if ROOT is None:
        return []
    folders = ("TestOpenAICompatibleCommon", "TestOpenRouterCommon", "TestOpenAICommon")
    return sorted(p for f in folders for p in (ROOT / f).glob("*/*.yaml") if "streaming" in p.name)


def recorded_usages(it: Interaction) -> list[dict[str, Any]]:
    found = []
    for _, data in SSEDecoder().feed(it.response_body + b"\n\n"):
        if data == b"[DONE]":
            continue
        obj = orjson.loads(data)
        usage = obj.get("usage")
        if isinstance(usage, dict):
            found.append(usage)
    return found


# ---------------------------------------------------------------- 1. usage exactly once


@pytest.mark.parametrize("path", stream_cassettes(), ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_recorded_stream_usage_exactly_once_in_openai_shape(path: Path) -> None:
    for it in load_cassette(path):
        if it.response_status != 200 or not it.is_stream:
            continue
        usages = recorded_usages(it)
        chunks = translate(it.response_body, "generic", include_usage=True)
        carrying = [c for c in chunks if c.get("usage")]
        if not usages:
            assert carrying == []
            continue
        # a client adding usage over all chunks (langchain-openai) counts it once
        assert len(carrying) == 1
        assert carrying[0] is chunks[-1] and carrying[0]["choices"] == []
        want = normalize_usage(usages[-1])
        got = carrying[0]["usage"]
        assert got["prompt_tokens"] == want["prompt_tokens"]
        assert got["completion_tokens"] == want["completion_tokens"]
        assert got["total_tokens"] == got["prompt_tokens"] + got["completion_tokens"]
        # exactly one finish marker reaches the client
        finishes = [ch.get("finish_reason") for c in chunks for ch in c["choices"]]
        assert len([f for f in finishes if f]) == 1
        # and nothing about usage when the client did not ask
        quiet = translate(it.response_body, "generic", include_usage=False)
        assert not any(c.get("usage") for c in quiet)


def test_usage_on_every_chunk_is_sent_once_with_the_last_figures() -> None:
    tr = A.chat_stream(target(), include_usage=True)
    for i, text in enumerate(("a", "b", "c")):
        chunk = {
            "id": "x",
            "object": "chat.completion.chunk",
            "created": 5,
            "model": "m",
            "choices": [{"index": 0, "delta": {"content": text}, "finish_reason": None}],
            "usage": {"prompt_tokens": 3, "completion_tokens": i + 1, "total_tokens": i + 4},
        }
        [out] = tr.feed(None, orjson.dumps(chunk))
        assert orjson.loads(out)["usage"] is None
    tr.feed(None, b"[DONE]")
    [tail] = tr.finish()
    assert orjson.loads(tail)["usage"] == {
        "prompt_tokens": 3,
        "completion_tokens": 3,
        "total_tokens": 6,
    }


# ---------------------------------------------------------------- 2. reasoning


def _reasoning(chunks: list[dict[str, Any]]) -> str:
    return "".join(
        ch["delta"].get("reasoning_content") or "" for c in chunks for ch in c["choices"]
    )


@pytest.mark.parametrize("profile", ["generic", "openrouter"])
def test_openrouter_reasoning_becomes_reasoning_content(profile: str) -> None:
    if ROOT is None:
        pytest.skip("recordings not available")
    [it] = load_cassette(ROOT / "TestOpenRouterCommon/glm/simple_streaming.yaml")
    want = ""
    for _, data in SSEDecoder().feed(it.response_body + b"\n\n"):
        if data != b"[DONE]":
            for ch in orjson.loads(data)["choices"]:
                want += ch["delta"].get("reasoning") or ""
    assert len(want) > 50
    chunks = translate(it.response_body, profile, include_usage=False)
    assert _reasoning(chunks) == want
    assert not any("reasoning" in ch["delta"] for c in chunks for ch in c["choices"])


def test_reasoning_details_only() -> None:
    tr = A.chat_stream(target(), include_usage=False)
    delta = {"reasoning_details": [{"type": "reasoning.text", "text": "think", "index": 0}]}
    data = orjson.dumps({"id": "x", "choices": [{"index": 0, "delta": delta}]})
    [out] = tr.feed(None, data)
    got = orjson.loads(out)["choices"][0]["delta"]
    assert got["reasoning_content"] == "think"
    assert got["reasoning_details"] == delta["reasoning_details"]  # kept for the round trip


@pytest.mark.parametrize(
    ("message", "want"),
    [
        ({"reasoning": "r1"}, "r1"),
        ({"reasoning_details": [{"type": "reasoning.summary", "summary": "s"}]}, "s"),
        ({"reasoning_content": "rc", "reasoning": "rc"}, "rc"),
    ],
)
def test_non_stream_reasoning_fields(message: dict[str, Any], want: str) -> None:
    raw = orjson.dumps(
        {
            "id": "c",
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": "x", **message},
                    "finish_reason": "stop",
                }
            ],
        }
    )
    obj, _ = A.chat_response(target(), raw)
    msg = obj["choices"][0]["message"]
    assert msg["reasoning_content"] == want and "reasoning" not in msg


# ---------------------------------------------------------------- 3. usage complete


def test_xai_reasoning_outside_completion_is_normalised() -> None:
    raw = {
        "prompt_tokens": 288,
        "completion_tokens": 27,
        "total_tokens": 665,
        "prompt_tokens_details": {"cached_tokens": 6},
        "completion_tokens_details": {"reasoning_tokens": 350},
    }
    usage = Usage.from_openai(raw)
    assert (usage.prompt_tokens, usage.completion_tokens, usage.total_tokens) == (288, 377, 665)
    assert (usage.cached_tokens, usage.reasoning_tokens) == (6, 350)
    # already inclusive (OpenAI, GLM, OpenRouter): untouched
    incl = {
        "prompt_tokens": 15,
        "completion_tokens": 734,
        "total_tokens": 749,
        "completion_tokens_details": {"reasoning_tokens": 708},
    }
    assert normalize_usage(incl) == incl
    top = Usage.from_openai({"prompt_tokens": 1, "completion_tokens": 5, "reasoning_tokens": 4})
    assert (top.reasoning_tokens, top.completion_tokens, top.total_tokens) == (4, 5, 6)


def test_xai_recorded_usage_adds_up() -> None:
    if ROOT is None:
        pytest.skip("recordings not available")
    base = ROOT / "TestOpenAICompatibleCommon/xai-grok-4-fast"
    [it] = load_cassette(base / "simple.yaml")
    obj, usage = A.chat_response(target(), it.response_body)
    raw = it.response_json()["usage"]
    reasoning = raw["completion_tokens_details"]["reasoning_tokens"]
    assert raw["total_tokens"] == raw["prompt_tokens"] + raw["completion_tokens"] + reasoning
    assert usage is not None and usage.completion_tokens == raw["completion_tokens"] + reasoning
    assert usage.total_tokens == usage.prompt_tokens + usage.completion_tokens
    assert obj["usage"]["completion_tokens"] == usage.completion_tokens
    assert obj["usage"]["completion_tokens_details"]["reasoning_tokens"] == reasoning
    [st] = load_cassette(base / "simple_streaming.yaml")
    tail = translate(st.response_body, "generic", include_usage=True)[-1]["usage"]
    assert tail["total_tokens"] == tail["prompt_tokens"] + tail["completion_tokens"]


# ---------------------------------------------------------------- 5. legacy functions

FUNCS = [{"name": "weather", "parameters": {"type": "object", "properties": {}}}]
LEGACY_BODY = {
    "model": "m",
    "functions": FUNCS,
    "function_call": {"name": "weather"},
    "messages": [
        {"role": "user", "content": "weather?"},
        {
            "role": "assistant",
            "content": None,
            "function_call": {"name": "weather", "arguments": '{"c":1}'},
        },
        {"role": "function", "name": "weather", "content": "sunny"},
    ],
}


def test_legacy_functions_become_tools_for_vendors() -> None:
    req = A.chat_request(target("glm"), LEGACY_BODY, stream=False)
    assert req.legacy_functions
    body = orjson.loads(req.body)
    assert "functions" not in body and "function_call" not in body
    assert body["tools"] == [{"type": "function", "function": FUNCS[0]}]
    assert body["tool_choice"] == {"type": "function", "function": {"name": "weather"}}
    call = body["messages"][1]["tool_calls"][0]
    assert call["function"] == {"name": "weather", "arguments": '{"c":1}'}
    assert body["messages"][2] == {"role": "tool", "tool_call_id": call["id"], "content": "sunny"}
    # OpenAI itself still has them: passed through untouched
    native = A.chat_request(target("openai"), LEGACY_BODY, stream=False)
    assert not native.legacy_functions
    assert orjson.loads(native.body)["functions"] == FUNCS


def test_legacy_answer_shape_non_stream_and_stream() -> None:
    raw = orjson.dumps(
        {
            "id": "c",
            "choices": [
                {
                    "index": 0,
                    "message": {
                        "role": "assistant",
                        "content": None,
                        "tool_calls": [
                            {
                                "id": "call_1",
                                "type": "function",
                                "function": {"name": "weather", "arguments": "{}"},
                            }
                        ],
                    },
                    "finish_reason": "tool_calls",
                }
            ],
        }
    )
    obj, _ = A.chat_response(target("glm"), raw, legacy_functions=True)
    choice = obj["choices"][0]
    assert choice["finish_reason"] == "function_call"
    assert choice["message"]["function_call"] == {"name": "weather", "arguments": "{}"}
    assert "tool_calls" not in choice["message"]
    if ROOT is None:
        return
    path = ROOT / "TestOpenAICompatibleCommon/zai-glm-4-7-flash/tool_streaming.yaml"
    it = load_cassette(path)[0]
    chunks = translate(it.response_body, "glm", include_usage=False, legacy=True)
    name, args, finish = "", "", None
    for c in chunks:
        for ch in c["choices"]:
            assert "tool_calls" not in ch["delta"]
            fc = ch["delta"].get("function_call") or {}
            name += fc.get("name") or ""
            args += fc.get("arguments") or ""
            finish = ch.get("finish_reason") or finish
    assert name == "weather" and orjson.loads(args) == {"location": "Florence,Italy"}
    assert finish == "function_call"
