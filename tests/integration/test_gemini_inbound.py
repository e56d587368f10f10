"""Gemini-format inbound through the running gateway (issue 14): the official Google Gen AI
SDK (``google-genai``) pointed at relaygate's ``/v1beta`` endpoints, on an OpenAI channel
(the openai emulator). generate_content, the SSE stream, function calling, system
instruction, JSON mode, count_tokens, the key as ``x-goog-api-key`` or ``?key=``, errors in
Google's shape, and billing: the log row's tokens and cost.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from gateway import Gateway
from google import genai
from google.genai import errors, types

from relaygate.emulator import EmulatorServer, Knobs

MODEL = "house-chat"
PRICE = {"model": MODEL, "input": "2", "output": "8"}  # CNY per 1M tokens
REPLY = "Hello from the relaygate emulator."


class World:
    def __init__(self, gw: Gateway, emu: EmulatorServer, key: str) -> None:
        self.gw, self.emu, self.key = gw, emu, key
        self.client = genai.Client(
            api_key=key,
            http_options=types.HttpOptions(
                base_url=gw.base,
                api_version="v1beta",
                retry_options=types.HttpRetryOptions(attempts=1),
            ),
        )

    def upstream_body(self) -> Any:
        rec = self.emu.stats.last_request
        assert rec is not None
        return rec.body


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    emu = EmulatorServer("openai", knobs=Knobs(api_key="sk-up")).start()
    gw = Gateway(Path(tmp_path_factory.mktemp("gemini-in")), {"RELAYGATE_SSE_KEEPALIVE": "0.1"})
    try:
        gw.start()
        gw.create_channel(
            name="openai",
            provider="openai_compat",
            profile="openai",
            base_url=emu.base_url,
            keys=["sk-up"],
            models=[MODEL],
            model_mapping={MODEL: "gpt-4o-mini"},
        )
        gw.admin("POST", "/prices", {"currency": "CNY", "per": "1m", **PRICE})
        uid = gw.create_user("gemini", balance="100")
        key = gw.create_key(uid, name="gemini")
        time.sleep(1.2)  # the workers load the configuration
        yield World(gw, emu, key)
    finally:
        gw.stop()
        emu.stop()


@pytest.fixture(autouse=True)
def _reset(world: World) -> None:
    world.emu.reset(knobs=True, stats=True)


def log_row(gw: Gateway, request_id: str) -> dict[str, Any]:
    deadline = time.monotonic() + 5
    while True:
        rows = gw.admin("GET", f"/logs?request_id={request_id}")["data"]
        if rows or time.monotonic() > deadline:
            assert rows, f"no request log row for {request_id}"
            return rows[0]  # type: ignore[no-any-return]
        time.sleep(0.1)


def request_id(resp: types.GenerateContentResponse) -> str:
    assert resp.sdk_http_response is not None and resp.sdk_http_response.headers is not None
    return resp.sdk_http_response.headers["x-request-id"]


def test_generate_content_is_billed(world: World) -> None:
    resp = world.client.models.generate_content(model=MODEL, contents="Say hello")
    assert resp.text == REPLY
    cand = resp.candidates[0]  # type: ignore[index]
    assert cand.finish_reason == types.FinishReason.STOP
    assert cand.content is not None and cand.content.role == "model"
    usage = resp.usage_metadata
    assert usage is not None
    assert usage.prompt_token_count and usage.candidates_token_count
    assert usage.total_token_count == usage.prompt_token_count + usage.candidates_token_count
    assert resp.model_version == "gpt-4o-mini"
    sent = world.upstream_body()
    assert sent["model"] == "gpt-4o-mini"
    assert sent["messages"] == [{"role": "user", "content": "Say hello"}]

    row = log_row(world.gw, request_id(resp))
    assert row["model"] == MODEL
    assert row["prompt_tokens"] == usage.prompt_token_count
    assert row["completion_tokens"] == usage.candidates_token_count
    want = (Decimal(2) * row["prompt_tokens"] + Decimal(8) * row["completion_tokens"]) / 10**6
    assert Decimal(row["cost"]) == want


def test_stream_sse(world: World) -> None:
    chunks = list(world.client.models.generate_content_stream(model=MODEL, contents="Say hello"))
    assert len(chunks) >= 2
    assert "".join(c.text or "" for c in chunks) == REPLY
    last = chunks[-1]
    assert last.candidates and last.candidates[0].finish_reason == types.FinishReason.STOP
    assert last.usage_metadata is not None and last.usage_metadata.candidates_token_count
    sent = world.upstream_body()
    assert sent["stream"] is True and sent["stream_options"] == {"include_usage": True}
    row = log_row(world.gw, request_id(chunks[0]))
    assert row["stream"] is True
    assert row["completion_tokens"] == last.usage_metadata.candidates_token_count
    assert Decimal(row["cost"]) > 0


def test_stream_survives_keepalives(world: World) -> None:
    """A slow stream gets keep-alives; Google's SDK reads every line that is not ``data:``
    as JSON, so they must be blank lines, not SSE comments."""
    world.emu.configure(chunks=3, chunk_interval_ms=350)
    chunks = list(world.client.models.generate_content_stream(model=MODEL, contents="Say hello"))
    assert "".join(c.text or "" for c in chunks) == REPLY
    r = httpx.post(
        f"{world.gw.base}/v1beta/models/{MODEL}:streamGenerateContent",
        headers={"x-goog-api-key": world.key},
        json={"contents": [{"role": "user", "parts": [{"text": "hi"}]}]},
        timeout=10,
    )
    assert b"}\r\n\r\n" in r.content  # keep-alives between the array's items
    objs = orjson.loads(r.content)
    assert "".join(o["candidates"][0]["content"]["parts"][0]["text"] for o in objs) == REPLY


def test_stream_json_array_without_alt_sse(world: World) -> None:
    r = httpx.post(
        f"{world.gw.base}/v1beta/models/{MODEL}:streamGenerateContent",
        headers={"x-goog-api-key": world.key},
        json={"contents": [{"role": "user", "parts": [{"text": "hi"}]}]},
        timeout=10,
    )
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("application/json")
    chunks = orjson.loads(r.content)
    assert isinstance(chunks, list) and len(chunks) >= 2
    text = "".join(
        p.get("text", "") for c in chunks for p in c["candidates"][0]["content"]["parts"]
    )
    assert text == REPLY
    assert chunks[-1]["candidates"][0]["finishReason"] == "STOP"
    assert chunks[-1]["usageMetadata"]["totalTokenCount"] > 0


def test_function_calling_round_trip(world: World) -> None:
    weather = types.FunctionDeclaration(
        name="get_weather",
        description="Weather of a city",
        parameters=types.Schema(
            type=types.Type.OBJECT,
            properties={"city": types.Schema(type=types.Type.STRING)},
            required=["city"],
        ),
    )
    config = types.GenerateContentConfig(
        tools=[types.Tool(function_declarations=[weather])],
        tool_config=types.ToolConfig(
            function_calling_config=types.FunctionCallingConfig(
                mode=types.FunctionCallingConfigMode.ANY
            )
        ),
        automatic_function_calling=types.AutomaticFunctionCallingConfig(disable=True),
    )
    resp = world.client.models.generate_content(
        model=MODEL, contents="Weather in Paris?", config=config
    )
    calls = resp.function_calls
    assert calls and calls[0].name == "get_weather"
    assert isinstance(calls[0].args, dict) and "city" in calls[0].args
    sent = world.upstream_body()
    assert sent["tools"] == [
        {
            "type": "function",
            "function": {
                "name": "get_weather",
                "description": "Weather of a city",
                "parameters": {
                    "type": "object",
                    "properties": {"city": {"type": "string"}},
                    "required": ["city"],
                },
            },
        }
    ]
    assert sent["tool_choice"] == "required"

    # the second turn: the model's call and the function's answer
    history = [
        types.Content(role="user", parts=[types.Part(text="Weather in Paris?")]),
        resp.candidates[0].content,  # type: ignore[index]
        types.Content(
            role="user",
            parts=[
                types.Part.from_function_response(name="get_weather", response={"result": "sunny"})
            ],
        ),
    ]
    final = world.client.models.generate_content(
        model=MODEL,
        contents=history,  # type: ignore[arg-type]
        config=types.GenerateContentConfig(tools=[types.Tool(function_declarations=[weather])]),
    )
    assert final.text == "The tool returned: sunny"
    msgs = world.upstream_body()["messages"]
    assert msgs[1]["tool_calls"][0]["function"]["name"] == "get_weather"
    assert msgs[2] == {
        "role": "tool",
        "tool_call_id": msgs[1]["tool_calls"][0]["id"],
        "content": "sunny",
    }


def test_function_call_streamed(world: World) -> None:
    weather = types.FunctionDeclaration(
        name="get_weather",
        parameters_json_schema={"type": "object", "properties": {"city": {"type": "string"}}},
    )
    config = types.GenerateContentConfig(
        tools=[types.Tool(function_declarations=[weather])],
        automatic_function_calling=types.AutomaticFunctionCallingConfig(disable=True),
    )
    chunks = list(
        world.client.models.generate_content_stream(model=MODEL, contents="Paris?", config=config)
    )
    calls = [fc for c in chunks for fc in (c.function_calls or [])]
    assert len(calls) == 1 and calls[0].name == "get_weather" and calls[0].id
    assert chunks[-1].candidates[0].finish_reason == types.FinishReason.STOP  # type: ignore[index]


def test_system_instruction_and_json_mode(world: World) -> None:
    config = types.GenerateContentConfig(
        system_instruction="Answer in JSON.",
        response_mime_type="application/json",
        temperature=0.2,
        max_output_tokens=64,
        stop_sequences=["END"],
    )
    world.client.models.generate_content(model=MODEL, contents="A greeting", config=config)
    sent = world.upstream_body()
    assert sent["messages"][0] == {"role": "system", "content": "Answer in JSON."}
    assert sent["response_format"] == {"type": "json_object"}
    assert sent["temperature"] == 0.2 and sent["max_tokens"] == 64 and sent["stop"] == ["END"]

    schema = types.Schema(
        type=types.Type.OBJECT, properties={"a": types.Schema(type=types.Type.INTEGER)}
    )
    config = types.GenerateContentConfig(
        response_mime_type="application/json", response_schema=schema
    )
    world.client.models.generate_content(model=MODEL, contents="A number", config=config)
    fmt = world.upstream_body()["response_format"]
    assert fmt["type"] == "json_schema"
    assert fmt["json_schema"]["schema"]["properties"] == {"a": {"type": "integer"}}


def test_count_tokens(world: World) -> None:
    short = world.client.models.count_tokens(model=MODEL, contents="hi")
    long = world.client.models.count_tokens(model=MODEL, contents="hi " * 50)
    assert short.total_tokens and long.total_tokens
    assert long.total_tokens > short.total_tokens + 40
    assert world.emu.stats.requests == 0  # counted here, nothing went upstream


def test_key_in_query_and_unknown_key(world: World) -> None:
    url = f"{world.gw.base}/v1beta/models/{MODEL}:generateContent"
    body = {"contents": [{"parts": [{"text": "hi"}]}]}
    r = httpx.post(url, params={"key": world.key}, json=body, timeout=10)
    assert r.status_code == 200, r.text
    assert r.json()["candidates"][0]["content"]["parts"] == [{"text": REPLY}]
    r = httpx.post(url, params={"key": "sk-wrong"}, json=body, timeout=10)
    assert r.status_code == 401
    assert r.json()["error"]["status"] == "UNAUTHENTICATED"
    r = httpx.post(url, json=body, timeout=10)
    assert r.json()["error"]["status"] == "UNAUTHENTICATED"


def test_v1_path_too(world: World) -> None:
    r = httpx.post(
        f"{world.gw.base}/v1/models/{MODEL}:generateContent",
        headers={"x-goog-api-key": world.key},
        json={"contents": [{"parts": [{"text": "hi"}]}]},
        timeout=10,
    )
    assert r.status_code == 200, r.text
    assert r.json()["candidates"][0]["finishReason"] == "STOP"


def test_errors_in_google_shape(world: World) -> None:
    with pytest.raises(errors.ClientError) as info:
        world.client.models.generate_content(model="no-such-model", contents="hi")
    assert info.value.status == "NOT_FOUND"
    assert "no-such-model" in (info.value.message or "")

    r = httpx.post(
        f"{world.gw.base}/v1beta/models/{MODEL}:generateContent",
        headers={"x-goog-api-key": world.key},
        json={"contents": [{"role": "robot", "parts": [{"text": "hi"}]}]},
        timeout=10,
    )
    err = r.json()["error"]
    assert err["status"] == "INVALID_ARGUMENT" and err["code"] == r.status_code
    assert "role" in err["message"]

    world.emu.configure(fail_status=500)
    with pytest.raises(errors.ServerError) as server:
        world.client.models.generate_content(model=MODEL, contents="hi")
    assert server.value.status in ("INTERNAL", "UNAVAILABLE")


def test_count_tokens_needs_a_key_and_other_methods(world: World) -> None:
    base = f"{world.gw.base}/v1beta/models/{MODEL}"
    body = {"contents": [{"parts": [{"text": "hi"}]}]}
    r = httpx.post(f"{base}:countTokens", json=body, timeout=10)
    assert r.status_code == 401 and r.json()["error"]["status"] == "UNAUTHENTICATED"
    r = httpx.post(f"{base}:countTokens", params={"key": world.key}, json=body, timeout=10)
    assert r.status_code == 200 and r.json()["totalTokens"] > 0
    r = httpx.post(f"{base}:embedContent", params={"key": world.key}, json=body, timeout=10)
    assert r.status_code == 501 and r.json()["error"]["status"] == "UNIMPLEMENTED"
    r = httpx.post(f"{base}:fooBar", params={"key": world.key}, json=body, timeout=10)
    assert r.status_code == 404 and r.json()["error"]["status"] == "NOT_FOUND"
    assert world.emu.stats.requests == 0
