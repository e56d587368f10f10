"""The official openai SDK (strict response validation) against the running gateway."""

from __future__ import annotations

import base64
import json
import struct

import openai
import pytest
from conftest import Env

CHAT_MODELS = ["gpt-4o-mini", "azure-gpt-4o", "deepseek-chat", "claude-sonnet-4"]
WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "weather",
        "description": "Get the weather for a location",
        "parameters": {
            "type": "object",
            "properties": {"location": {"type": "string"}},
            "required": ["location"],
        },
    },
}


def client(env: Env, **kw: object) -> openai.OpenAI:
    return openai.OpenAI(
        api_key=env.key,
        base_url=env.gw.base_url,
        max_retries=0,
        _strict_response_validation=True,
        **kw,  # type: ignore[arg-type]
    )


@pytest.mark.parametrize("model", CHAT_MODELS)
def test_chat_non_stream(env: Env, model: str) -> None:
    r = client(env).chat.completions.create(
        model=model, messages=[{"role": "user", "content": "Say hi"}]
    )
    assert r.choices[0].message.content
    assert r.choices[0].finish_reason == "stop"
    assert r.usage is not None and r.usage.prompt_tokens > 0 and r.usage.completion_tokens > 0
    raw = r.model_extra or {}
    assert raw.get("code") == 0 and raw.get("msg") == "ok"  # envelope, ignored by the SDK


@pytest.mark.parametrize("model", CHAT_MODELS)
def test_chat_stream_without_usage(env: Env, model: str) -> None:
    chunks = list(
        client(env).chat.completions.create(
            model=model, stream=True, messages=[{"role": "user", "content": "Say hi"}]
        )
    )
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text
    assert all(c.usage is None for c in chunks), "no usage chunk when the client did not ask"
    assert any(c.choices and c.choices[0].finish_reason == "stop" for c in chunks)


@pytest.mark.parametrize("model", CHAT_MODELS)
def test_chat_stream_with_usage(env: Env, model: str) -> None:
    chunks = list(
        client(env).chat.completions.create(
            model=model,
            stream=True,
            stream_options={"include_usage": True},
            messages=[{"role": "user", "content": "Say hi"}],
        )
    )
    usage_chunks = [c for c in chunks if c.usage is not None and not c.choices]
    assert len(usage_chunks) == 1 and chunks[-1] is usage_chunks[0]
    u = usage_chunks[0].usage
    assert u is not None and u.prompt_tokens > 0 and u.completion_tokens > 0
    assert u.total_tokens == u.prompt_tokens + u.completion_tokens


@pytest.mark.parametrize("model", CHAT_MODELS)
@pytest.mark.parametrize("stream", [False, True])
def test_tool_call_round_trip(env: Env, model: str, stream: bool) -> None:
    c = client(env)
    messages: list[dict[str, object]] = [{"role": "user", "content": "Weather in Florence?"}]
    if stream:
        calls: dict[int, dict[str, str]] = {}
        finish = None
        for chunk in c.chat.completions.create(
            model=model,
            messages=messages,
            tools=[WEATHER_TOOL],
            stream=True,  # type: ignore[list-item]
        ):
            if not chunk.choices:
                continue
            ch = chunk.choices[0]
            finish = ch.finish_reason or finish
            for tc in ch.delta.tool_calls or []:
                slot = calls.setdefault(tc.index, {"id": "", "name": "", "arguments": ""})
                if tc.id:
                    slot["id"] = tc.id
                if tc.function and tc.function.name:
                    slot["name"] = tc.function.name
                if tc.function and tc.function.arguments:
                    slot["arguments"] += tc.function.arguments
        assert finish == "tool_calls"
        call = calls[0]
    else:
        r = c.chat.completions.create(model=model, messages=messages, tools=[WEATHER_TOOL])  # type: ignore[list-item,arg-type]
        assert r.choices[0].finish_reason == "tool_calls"
        tc = r.choices[0].message.tool_calls[0]  # type: ignore[index]
        call = {"id": tc.id, "name": tc.function.name, "arguments": tc.function.arguments}  # type: ignore[union-attr]
    assert call["name"] == "weather" and call["id"]
    args = json.loads(call["arguments"])
    assert "location" in args
    messages += [
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": call["id"],
                    "type": "function",
                    "function": {"name": "weather", "arguments": call["arguments"]},
                }
            ],
        },
        {"role": "tool", "tool_call_id": call["id"], "content": "sunny, 24C"},
    ]
    final = c.chat.completions.create(model=model, messages=messages, tools=[WEATHER_TOOL])  # type: ignore[arg-type,list-item]
    assert final.choices[0].finish_reason == "stop"
    assert "sunny" in (final.choices[0].message.content or "")


def test_vision_content_parts(env: Env) -> None:
    for model in ("gpt-4o-mini", "claude-sonnet-4"):
        r = client(env).chat.completions.create(
            model=model,
            messages=[
                {
                    "role": "user",
                    "content": [
                        {"type": "text", "text": "What is in this image?"},
                        {
                            "type": "image_url",
                            "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="},
                        },
                    ],
                }
            ],
        )
        assert r.choices[0].message.content
    body = env.up.anthropic.stats.last_body
    assert body["messages"][0]["content"][1]["type"] == "image"


def test_reasoning_content_passes_through(env: Env) -> None:
    r = client(env).chat.completions.create(
        model="deepseek-reasoner", messages=[{"role": "user", "content": "Think"}]
    )
    assert (r.choices[0].message.model_extra or {}).get("reasoning_content")
    chunks = list(
        client(env).chat.completions.create(
            model="deepseek-reasoner", stream=True, messages=[{"role": "user", "content": "Think"}]
        )
    )
    reasoning = "".join(
        (c.choices[0].delta.model_extra or {}).get("reasoning_content") or ""
        for c in chunks
        if c.choices
    )
    assert reasoning
    # unknown fields on input assistant messages reach the upstream untouched
    client(env).chat.completions.create(
        model="deepseek-reasoner",
        messages=[
            {"role": "user", "content": "a"},
            {"role": "assistant", "content": "b", "reasoning_content": "kept"},  # type: ignore[misc]
            {"role": "user", "content": "c"},
        ],
    )
    assert env.up.deepseek.stats.last_body["messages"][1]["reasoning_content"] == "kept"


def test_model_mapping_and_upstream_auth(env: Env) -> None:
    client(env).chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}]
    )
    st = env.up.openai.stats
    assert st.last_body["model"] == "gpt-4o-mini-2024-07-18"
    assert st.last_headers["Authorization"] == "Bearer sk-up-openai"
    client(env).chat.completions.create(
        model="azure-gpt-4o", messages=[{"role": "user", "content": "hi"}]
    )
    az = env.up.azure.stats
    assert (
        az.last_request is not None
        and az.last_request.path == "/openai/deployments/gpt4o-prod/chat/completions"
    )
    assert az.last_headers["api-key"] == "az-up-key"


@pytest.mark.parametrize("model", ["text-embedding-3-small", "azure-embed"])
def test_embeddings_float_and_base64(env: Env, model: str) -> None:
    # The SDK asks for base64 by default and decodes it *after* validation, so strict
    # validation rejects base64 bodies even from api.openai.com: use a lenient client there.
    lenient = openai.OpenAI(api_key=env.key, base_url=env.gw.base_url, max_retries=0)
    default = lenient.embeddings.create(model=model, input=["hello", "world"])
    floats = client(env).embeddings.create(
        model=model, input=["hello", "world"], encoding_format="float"
    )
    assert len(default.data) == 2 and len(floats.data) == 2
    for a, b in zip(default.data, floats.data, strict=True):
        assert a.embedding == pytest.approx(b.embedding, rel=1e-6)
    up = env.up.azure if model.startswith("azure") else env.up.openai
    assert up.stats.last_body["encoding_format"] == "float"  # gateway asks floats upstream
    # raw base64 from the gateway decodes to little-endian float32
    import httpx

    r = httpx.post(
        env.gw.base_url + "/embeddings",
        headers={"Authorization": f"Bearer {env.key}"},
        json={"model": model, "input": "hello", "encoding_format": "base64"},
    )
    b64 = r.json()["data"][0]["embedding"]
    raw = base64.b64decode(b64)
    vec = struct.unpack(f"<{len(raw) // 4}f", raw)
    assert list(vec) == pytest.approx(floats.data[0].embedding, rel=1e-6)


def test_models_list_and_get(env: Env) -> None:
    c = client(env)
    ids = {m.id for m in c.models.list()}
    assert {"gpt-4o-mini", "claude-sonnet-4", "azure-gpt-4o"} <= ids
    assert c.models.retrieve("claude-sonnet-4").id == "claude-sonnet-4"
    limited = env.gw.create_key(env.user_id, name="limited", models=["gpt-4o-mini"])
    lc = openai.OpenAI(
        api_key=limited, base_url=env.gw.base_url, max_retries=0, _strict_response_validation=True
    )
    assert [m.id for m in lc.models.list()] == ["gpt-4o-mini"]
    with pytest.raises(openai.PermissionDeniedError):
        lc.models.retrieve("claude-sonnet-4")
