"""Wire-level tests of the provider emulators (real HTTP on loopback)."""

from __future__ import annotations

import asyncio
import base64
import itertools
import json
import struct
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import aiohttp
import pytest
from multidict import CIMultiDict

from relaygate.emulator import (
    DEFAULT_REASONING,
    DEFAULT_REPLY,
    EmulatorServer,
    Knobs,
    embedding_vector,
    split_text,
)

WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "weather",
        "description": "Get weather information for a location",
        "parameters": {
            "type": "object",
            "properties": {"location": {"type": "string", "description": "the city"}},
            "required": ["location"],
        },
    },
}
ANTHROPIC_TOOL = {
    "name": "weather",
    "description": "Get weather information for a location",
    "input_schema": WEATHER_TOOL["function"]["parameters"],  # type: ignore[index]
}
OA_HEADERS = {"Authorization": "Bearer sk-test"}
AZ_HEADERS = {"api-key": "az-test"}
AN_HEADERS = {"x-api-key": "sk-ant-test", "anthropic-version": "2023-06-01"}
HELLO = [{"role": "user", "content": "Say hi"}]


# ---------------------------------------------------------------------------------------------
# fixtures / helpers
# ---------------------------------------------------------------------------------------------


def _server(provider: str) -> Iterator[EmulatorServer]:
    with EmulatorServer(provider) as emu:
        yield emu


@pytest.fixture(scope="module")
def openai_emu() -> Iterator[EmulatorServer]:
    yield from _server("openai")


@pytest.fixture(scope="module")
def deepseek_emu() -> Iterator[EmulatorServer]:
    yield from _server("deepseek")


@pytest.fixture(scope="module")
def azure_emu() -> Iterator[EmulatorServer]:
    yield from _server("azure")


@pytest.fixture(scope="module")
def anthropic_emu() -> Iterator[EmulatorServer]:
    yield from _server("anthropic")


@pytest.fixture(autouse=True)
def _reset_emulators(request: pytest.FixtureRequest) -> Iterator[None]:
    yield
    for name in ("openai_emu", "deepseek_emu", "azure_emu", "anthropic_emu"):
        if name in request.fixturenames:
            emu: EmulatorServer = request.getfixturevalue(name)
            emu.reset()


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


def sse_events(raw: bytes) -> list[tuple[str | None, str]]:
    """(event name, data) pairs; comment lines are dropped."""
    out: list[tuple[str | None, str]] = []
    for block in raw.decode().split("\n\n"):
        name: str | None = None
        data: list[str] = []
        for line in block.split("\n"):
            if line.startswith("event:"):
                name = line[6:].strip()
            elif line.startswith("data:"):
                data.append(line[5:].removeprefix(" "))
        if data:
            out.append((name, "\n".join(data)))
    return out


def sse_json(raw: bytes) -> list[dict[str, Any]]:
    return [json.loads(d) for _, d in sse_events(raw) if d != "[DONE]"]


async def post(
    http: aiohttp.ClientSession, url: str, body: Any, headers: dict[str, str]
) -> tuple[int, CIMultiDict[str], bytes]:
    async with http.post(url, json=body, headers=headers) as resp:
        return resp.status, CIMultiDict(resp.headers), await resp.read()


def content_of(chunks: list[dict[str, Any]]) -> str:
    return "".join(
        c["choices"][0]["delta"].get("content") or "" for c in chunks if c.get("choices")
    )


# ---------------------------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------------------------


def test_split_text_is_lossless() -> None:
    assert split_text("Hello from the relaygate emulator.", 3) == (
        "Hello",
        " from the",
        " relaygate emulator.",
    )
    assert "".join(split_text("abc", 10)) == "abc"
    assert len(split_text("abc", 10)) == 3
    assert split_text("", 4) == ()
    for n in range(1, 12):
        assert "".join(split_text(DEFAULT_REPLY, n)) == DEFAULT_REPLY


def test_knobs_validation() -> None:
    with pytest.raises(ValueError):
        Knobs(usage="bogus")  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        Knobs().with_changes(nope=1)
    assert Knobs().with_changes(chunks=2).chunks == 2


# ---------------------------------------------------------------------------------------------
# OpenAI
# ---------------------------------------------------------------------------------------------


async def test_openai_non_stream(openai_emu: EmulatorServer, http: aiohttp.ClientSession) -> None:
    assert openai_emu.base_url == f"http://127.0.0.1:{openai_emu.port}/v1"
    status, headers, raw = await post(
        http,
        openai_emu.base_url + "/chat/completions",
        {"model": "gpt-4o-mini", "messages": HELLO},
        OA_HEADERS,
    )
    assert status == 200
    assert headers["Content-Type"] == "application/json"
    body = json.loads(raw)
    assert body["object"] == "chat.completion"
    assert body["model"] == "gpt-4o-mini"
    assert body["id"].startswith("chatcmpl-")
    choice = body["choices"][0]
    assert choice["message"] == {
        "role": "assistant",
        "content": DEFAULT_REPLY,
        "refusal": None,
        "annotations": [],
    }
    assert choice["finish_reason"] == "stop"
    usage = body["usage"]
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]
    assert usage["completion_tokens_details"]["reasoning_tokens"] == 0
    last = openai_emu.stats.last_request
    assert last is not None and last.body["model"] == "gpt-4o-mini"
    assert last.headers["authorization"] == "Bearer sk-test"
    assert openai_emu.stats.requests == 1


async def test_openai_stream_include_usage(
    openai_emu: EmulatorServer, http: aiohttp.ClientSession
) -> None:
    openai_emu.configure(chunks=4)
    status, headers, raw = await post(
        http,
        openai_emu.base_url + "/chat/completions",
        {
            "model": "gpt-4o-mini",
            "messages": HELLO,
            "stream": True,
            "stream_options": {"include_usage": True},
        },
        OA_HEADERS,
    )
    assert status == 200
    assert headers["Content-Type"] == "text/event-stream; charset=utf-8"
    assert raw.endswith(b"data: [DONE]\n\n")
    chunks = sse_json(raw)
    assert all("usage" in c for c in chunks)
    assert all(c["usage"] is None for c in chunks[:-1])
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": "", "refusal": None}
    content_chunks = [c for c in chunks if c["choices"] and c["choices"][0]["delta"].get("content")]
    assert len(content_chunks) == 4
    assert content_of(chunks) == DEFAULT_REPLY
    assert chunks[-2]["choices"][0]["finish_reason"] == "stop"
    assert chunks[-1]["choices"] == []
    assert chunks[-1]["usage"]["total_tokens"] > 0
    assert {c["id"] for c in chunks} == {chunks[0]["id"]}
    assert all(c["object"] == "chat.completion.chunk" for c in chunks)
    assert openai_emu.stats.streams_started == openai_emu.stats.streams_completed == 1


async def test_openai_stream_without_include_usage(
    openai_emu: EmulatorServer, http: aiohttp.ClientSession
) -> None:
    _, _, raw = await post(
        http,
        openai_emu.base_url + "/chat/completions",
        {"model": "gpt-4o-mini", "messages": HELLO, "stream": True},
        OA_HEADERS,
    )
    chunks = sse_json(raw)
    assert all("usage" not in c for c in chunks)
    assert all(c["choices"] for c in chunks)
    assert content_of(chunks) == DEFAULT_REPLY


@pytest.mark.parametrize("mode", ["never", "on_finish_chunk", "in_choice"])
async def test_openai_usage_placement(
    openai_emu: EmulatorServer, http: aiohttp.ClientSession, mode: str
) -> None:
    openai_emu.configure(usage=mode)
    _, _, raw = await post(
        http,
        openai_emu.base_url + "/chat/completions",
        {
            "model": "glm-4",
            "messages": HELLO,
            "stream": True,
            "stream_options": {"include_usage": True},
        },
        OA_HEADERS,
    )
    chunks = sse_json(raw)
    assert all(c["choices"] for c in chunks)  # never a choices:[] usage chunk
    finish = chunks[-1]
    assert finish["choices"][0]["finish_reason"] == "stop"
    if mode == "never":
        assert all("usage" not in c and "usage" not in c["choices"][0] for c in chunks)
    elif mode == "on_finish_chunk":
        assert finish["usage"]["prompt_tokens"] > 0
        assert all("usage" not in c for c in chunks[:-1])
    else:
        assert finish["choices"][0]["usage"]["total_tokens"] > 0
        assert "usage" not in finish


async def test_openai_tool_call(openai_emu: EmulatorServer, http: aiohttp.ClientSession) -> None:
    url = openai_emu.base_url + "/chat/completions"
    base = {"model": "gpt-4o", "messages": HELLO, "tools": [WEATHER_TOOL], "tool_choice": "auto"}
    _, _, raw = await post(http, url, base, OA_HEADERS)
    body = json.loads(raw)
    choice = body["choices"][0]
    assert choice["finish_reason"] == "tool_calls"
    msg = choice["message"]
    assert msg["content"] is None
    (call,) = msg["tool_calls"]
    assert call["type"] == "function" and call["id"].startswith("call_")
    assert call["function"]["name"] == "weather"
    assert json.loads(call["function"]["arguments"]) == {"location": "Florence"}

    _, _, raw = await post(http, url, {**base, "stream": True}, OA_HEADERS)
    chunks = sse_json(raw)
    first = chunks[0]["choices"][0]["delta"]
    assert first["tool_calls"][0]["id"].startswith("call_")
    assert first["tool_calls"][0]["function"] == {"name": "weather", "arguments": ""}
    fragments = [
        c["choices"][0]["delta"]["tool_calls"][0]["function"]["arguments"]
        for c in chunks[1:]
        if c["choices"][0]["delta"].get("tool_calls")
    ]
    assert len(fragments) > 1
    assert all("id" not in c["choices"][0]["delta"]["tool_calls"][0] for c in chunks[1:-1])
    assert json.loads("".join(fragments)) == {"location": "Florence"}
    assert chunks[-1]["choices"][0]["finish_reason"] == "tool_calls"

    # tool_choice none -> plain text
    _, _, raw = await post(http, url, {**base, "tool_choice": "none"}, OA_HEADERS)
    assert json.loads(raw)["choices"][0]["message"]["content"] == DEFAULT_REPLY


async def test_openai_tool_result_and_vision(
    openai_emu: EmulatorServer, http: aiohttp.ClientSession
) -> None:
    messages = [
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "What's the weather here?"},
                {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}},
            ],
        },
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "call_1",
                    "type": "function",
                    "function": {"name": "weather", "arguments": '{"location":"Florence"}'},
                }
            ],
        },
        {"role": "tool", "tool_call_id": "call_1", "content": "40 C"},
    ]
    _, _, raw = await post(
        http,
        openai_emu.base_url + "/chat/completions",
        {"model": "gpt-4o", "messages": messages, "tools": [WEATHER_TOOL]},
        OA_HEADERS,
    )
    body = json.loads(raw)
    assert "40 C" in body["choices"][0]["message"]["content"]
    assert body["choices"][0]["finish_reason"] == "stop"
    assert body["usage"]["prompt_tokens"] > 85  # the image counts


async def test_openai_max_tokens_length(
    openai_emu: EmulatorServer, http: aiohttp.ClientSession
) -> None:
    _, _, raw = await post(
        http,
        openai_emu.base_url + "/chat/completions",
        {"model": "gpt-4o", "messages": HELLO, "max_tokens": 2},
        OA_HEADERS,
    )
    choice = json.loads(raw)["choices"][0]
    assert choice["finish_reason"] == "length"
    assert DEFAULT_REPLY.startswith(choice["message"]["content"])


async def test_openai_embeddings(openai_emu: EmulatorServer, http: aiohttp.ClientSession) -> None:
    url = openai_emu.base_url + "/embeddings"
    req = {"model": "text-embedding-3-small", "input": ["hello", "world"]}
    _, _, raw = await post(http, url, {**req, "encoding_format": "base64"}, OA_HEADERS)
    body = json.loads(raw)
    assert body["object"] == "list" and body["model"] == "text-embedding-3-small"
    assert [d["index"] for d in body["data"]] == [0, 1]
    vec = body["data"][0]["embedding"]
    assert isinstance(vec, list) and len(vec) == 8  # floats although base64 was requested
    assert vec == embedding_vector("hello", 8)
    assert abs(sum(v * v for v in vec) - 1.0) < 1e-5
    assert body["data"][1]["embedding"] != vec
    assert body["usage"]["prompt_tokens"] == body["usage"]["total_tokens"] > 0

    openai_emu.configure(embeddings_base64=True)
    _, _, raw = await post(
        http, url, {**req, "encoding_format": "base64", "dimensions": 4}, OA_HEADERS
    )
    b64 = json.loads(raw)["data"][0]["embedding"]
    decoded = list(struct.unpack("<4f", base64.b64decode(b64)))
    assert decoded == embedding_vector("hello", 4)

    _, _, raw = await post(http, url, {"model": "e", "input": "hello"}, OA_HEADERS)
    assert json.loads(raw)["data"][0]["embedding"] == embedding_vector("hello", 8)
    status, _, raw = await post(http, url, {"model": "e", "input": []}, OA_HEADERS)
    assert status == 400 and json.loads(raw)["error"]["param"] == "input"


async def test_openai_models_and_404(
    openai_emu: EmulatorServer, http: aiohttp.ClientSession
) -> None:
    async with http.get(openai_emu.base_url + "/models", headers=OA_HEADERS) as resp:
        body = await resp.json()
    assert body["object"] == "list" and body["data"][0]["object"] == "model"
    status, _, raw = await post(http, openai_emu.url("/v1/nope"), {}, OA_HEADERS)
    assert status == 404
    assert json.loads(raw)["error"]["message"] == "Invalid URL (POST /v1/nope)"


async def test_openai_auth(openai_emu: EmulatorServer, http: aiohttp.ClientSession) -> None:
    url = openai_emu.base_url + "/chat/completions"
    req = {"model": "gpt-4o", "messages": HELLO}
    status, _, raw = await post(http, url, req, {})
    assert status == 401
    err = json.loads(raw)["error"]
    assert err["type"] == "invalid_request_error" and "API key" in err["message"]

    openai_emu.configure(api_key="sk-right")
    status, _, raw = await post(http, url, req, {"Authorization": "Bearer sk-wrong"})
    assert status == 401
    assert json.loads(raw)["error"]["code"] == "invalid_api_key"
    status, _, _ = await post(http, url, req, {"Authorization": "Bearer sk-right"})
    assert status == 200
    assert openai_emu.stats.errors == 2

    status, _, raw = await post(
        http, url, {"messages": HELLO}, {"Authorization": "Bearer sk-right"}
    )
    assert status == 400
    assert json.loads(raw)["error"]["param"] == "model"


@pytest.mark.parametrize(
    ("model", "status", "etype"),
    [
        ("error-400", 400, "invalid_request_error"),
        ("error-429", 429, "requests"),
        ("error-500", 500, "server_error"),
    ],
)
async def test_openai_model_triggers(
    openai_emu: EmulatorServer, http: aiohttp.ClientSession, model: str, status: int, etype: str
) -> None:
    got, _, raw = await post(
        http,
        openai_emu.base_url + "/chat/completions",
        {"model": model, "messages": HELLO, "stream": True},
        OA_HEADERS,
    )
    assert got == status
    err = json.loads(raw)["error"]
    assert err["type"] == etype
    assert set(err) == {"message", "type", "param", "code"}


async def test_fail_times_and_retry_after(
    openai_emu: EmulatorServer, http: aiohttp.ClientSession
) -> None:
    openai_emu.configure(fail_status=503, fail_times=2, retry_after=3)
    url = openai_emu.base_url + "/chat/completions"
    req = {"model": "gpt-4o", "messages": HELLO}
    results = [await post(http, url, req, OA_HEADERS) for _ in range(3)]
    assert [r[0] for r in results] == [503, 503, 200]
    assert results[0][1]["retry-after"] == "3"
    openai_emu.configure(fail_status=500)  # fail_times -1: always
    assert [(await post(http, url, req, OA_HEADERS))[0] for _ in range(2)] == [500, 500]


async def test_latency(openai_emu: EmulatorServer, http: aiohttp.ClientSession) -> None:
    openai_emu.configure(latency_ms=150)
    t0 = time.monotonic()
    status, _, _ = await post(
        http,
        openai_emu.base_url + "/chat/completions",
        {"model": "gpt-4o", "messages": HELLO},
        OA_HEADERS,
    )
    assert status == 200
    assert time.monotonic() - t0 >= 0.14


async def test_stream_pacing(openai_emu: EmulatorServer, http: aiohttp.ClientSession) -> None:
    openai_emu.configure(chunks=4, chunk_interval_ms=60)
    arrivals: list[float] = []
    async with http.post(
        openai_emu.base_url + "/chat/completions",
        json={"model": "gpt-4o", "messages": HELLO, "stream": True},
        headers=OA_HEADERS,
    ) as resp:
        async for line in resp.content:
            if line.startswith(b"data: {") and b'"content":"' in line and b'"role"' not in line:
                arrivals.append(time.monotonic())
    assert len(arrivals) == 4
    gaps = [b - a for a, b in itertools.pairwise(arrivals)]
    assert all(g >= 0.045 for g in gaps), gaps


async def test_stream_cut_after(openai_emu: EmulatorServer, http: aiohttp.ClientSession) -> None:
    openai_emu.configure(cut_after=2)
    received = b""
    with pytest.raises(aiohttp.ClientPayloadError):
        async with http.post(
            openai_emu.base_url + "/chat/completions",
            json={"model": "gpt-4o", "messages": HELLO, "stream": True},
            headers=OA_HEADERS,
        ) as resp:
            async for line in resp.content:
                received += line
    chunks = sse_json(received)
    assert b"[DONE]" not in received
    assert content_of(chunks) == "".join(split_text(DEFAULT_REPLY, 5)[:2])
    assert all(c["choices"][0]["finish_reason"] is None for c in chunks)
    assert openai_emu.stats.streams_cut == 1
    assert openai_emu.stats.streams_completed == 0


async def test_stream_midstream_error(
    openai_emu: EmulatorServer, http: aiohttp.ClientSession
) -> None:
    openai_emu.configure(midstream_error=True)
    status, _, raw = await post(
        http,
        openai_emu.base_url + "/chat/completions",
        {"model": "gpt-4o", "messages": HELLO, "stream": True},
        OA_HEADERS,
    )
    assert status == 200
    events = sse_json(raw)
    assert b"[DONE]" not in raw
    assert events[-1]["error"]["type"] == "server_error"
    assert content_of(events[:-1]) == split_text(DEFAULT_REPLY, 5)[0]
    # the model trigger does the same without knobs
    openai_emu.reset()
    _, _, raw = await post(
        http,
        openai_emu.base_url + "/chat/completions",
        {"model": "error-midstream", "messages": HELLO, "stream": True},
        OA_HEADERS,
    )
    assert "error" in sse_json(raw)[-1]


async def test_stream_client_disconnect_is_counted(
    openai_emu: EmulatorServer, http: aiohttp.ClientSession
) -> None:
    openai_emu.configure(chunks=50, chunk_interval_ms=40)
    async with http.post(
        openai_emu.base_url + "/chat/completions",
        json={"model": "gpt-4o", "messages": HELLO, "stream": True},
        headers=OA_HEADERS,
    ) as resp:
        await resp.content.readline()
        resp.close()  # drop the connection mid-stream
    stats = openai_emu.stats
    assert await asyncio.to_thread(stats.wait_for, lambda s: s.disconnected >= 1, 3.0)
    assert stats.streams_completed == 0
    assert stats.wait_for(lambda s: s.in_flight == 0, 3.0)


async def test_hang_and_abort(openai_emu: EmulatorServer, http: aiohttp.ClientSession) -> None:
    with pytest.raises(asyncio.TimeoutError):
        async with http.post(
            openai_emu.base_url + "/chat/completions",
            json={"model": "hang", "messages": HELLO},
            headers=OA_HEADERS,
            timeout=aiohttp.ClientTimeout(total=0.2),
        ):
            pass
    assert await asyncio.to_thread(openai_emu.stats.wait_for, lambda s: s.aborted >= 1, 3.0)

    openai_emu.configure(hang=True)
    with pytest.raises(asyncio.TimeoutError):
        async with http.post(
            openai_emu.base_url + "/chat/completions",
            json={"model": "gpt-4o", "messages": HELLO, "stream": True},
            headers=OA_HEADERS,
            timeout=aiohttp.ClientTimeout(total=0.2),
        ):
            pass


async def test_control_endpoints(openai_emu: EmulatorServer, http: aiohttp.ClientSession) -> None:
    async with http.post(openai_emu.url("/_emulator/config"), json={"chunks": 2}) as resp:
        assert resp.status == 200
        assert (await resp.json())["chunks"] == 2
    assert openai_emu.knobs.chunks == 2
    async with http.post(openai_emu.url("/_emulator/config"), json={"bogus": 1}) as resp:
        assert resp.status == 400
    _, _, raw = await post(
        http,
        openai_emu.base_url + "/chat/completions",
        {"model": "gpt-4o", "messages": HELLO, "stream": True},
        OA_HEADERS,
    )
    assert len([c for c in sse_json(raw) if c["choices"][0]["delta"].get("content")]) == 2
    async with http.get(openai_emu.url("/_emulator/stats")) as resp:
        stats = await resp.json()
    assert stats["requests"] == 1 and stats["streams_completed"] == 1
    assert stats["recorded"][0]["body"]["model"] == "gpt-4o"
    async with http.post(openai_emu.url("/_emulator/reset")) as resp:
        assert (await resp.json())["knobs"]["chunks"] == 5
    assert openai_emu.stats.requests == 0


def test_openai_sdk_compat(openai_emu: EmulatorServer) -> None:
    openai = pytest.importorskip("openai")
    client = openai.OpenAI(base_url=openai_emu.base_url, api_key="sk-test", max_retries=0)
    with client:
        out = client.chat.completions.create(model="gpt-4o-mini", messages=HELLO)
        assert out.choices[0].message.content == DEFAULT_REPLY
        stream = client.chat.completions.create(
            model="gpt-4o-mini",
            messages=HELLO,
            stream=True,
            stream_options={"include_usage": True},
        )
        parts = list(stream)
        assert "".join(p.choices[0].delta.content or "" for p in parts if p.choices) == (
            DEFAULT_REPLY
        )
        assert parts[-1].usage is not None and parts[-1].usage.total_tokens > 0
        emb = client.embeddings.create(model="text-embedding-3-small", input="hello")
        assert list(emb.data[0].embedding) == embedding_vector("hello", 8)
        assert openai_emu.stats.last_body["encoding_format"] == "base64"


# ---------------------------------------------------------------------------------------------
# DeepSeek
# ---------------------------------------------------------------------------------------------


async def test_deepseek_reasoner(deepseek_emu: EmulatorServer, http: aiohttp.ClientSession) -> None:
    assert deepseek_emu.base_url.endswith("/v1")
    req = {"model": "deepseek-reasoner", "messages": HELLO}
    # also accepted without /v1
    _, _, raw = await post(http, deepseek_emu.url("/chat/completions"), req, OA_HEADERS)
    assert raw.startswith(b"\n")  # keep-alive blank line(s) before the JSON body
    body = json.loads(raw)
    msg = body["choices"][0]["message"]
    assert msg["reasoning_content"] == DEFAULT_REASONING
    assert msg["content"] == DEFAULT_REPLY
    usage = body["usage"]
    assert usage["prompt_cache_hit_tokens"] == 0
    assert usage["prompt_cache_miss_tokens"] == usage["prompt_tokens"]
    assert usage["completion_tokens_details"]["reasoning_tokens"] > 0

    _, _, raw = await post(
        http,
        deepseek_emu.base_url + "/chat/completions",
        {**req, "stream": True, "stream_options": {"include_usage": True}},
        OA_HEADERS,
    )
    assert b": keep-alive\n\n" in raw
    chunks = sse_json(raw)
    deltas = [c["choices"][0]["delta"] for c in chunks if c["choices"]]
    reasoning = "".join(d.get("reasoning_content") or "" for d in deltas)
    assert reasoning == DEFAULT_REASONING
    first_content = next(i for i, d in enumerate(deltas) if d.get("content"))
    last_reasoning = max(i for i, d in enumerate(deltas) if d.get("reasoning_content"))
    assert last_reasoning < first_content
    assert content_of(chunks) == DEFAULT_REPLY
    assert chunks[-1]["choices"] == [] and "prompt_cache_miss_tokens" in chunks[-1]["usage"]


async def test_deepseek_chat_no_keepalive_no_embeddings(
    deepseek_emu: EmulatorServer, http: aiohttp.ClientSession
) -> None:
    deepseek_emu.configure(keepalive=False)
    _, _, raw = await post(
        http,
        deepseek_emu.base_url + "/chat/completions",
        {"model": "deepseek-chat", "messages": HELLO, "stream": True},
        OA_HEADERS,
    )
    assert b"keep-alive" not in raw
    assert all("reasoning_content" not in c["choices"][0]["delta"] for c in sse_json(raw))
    status, _, _ = await post(
        http, deepseek_emu.base_url + "/embeddings", {"model": "x", "input": "hi"}, OA_HEADERS
    )
    assert status == 404
    status, _, raw = await post(
        http, deepseek_emu.base_url + "/chat/completions", {"model": "x", "messages": HELLO}, {}
    )
    assert status == 401
    assert json.loads(raw)["error"]["type"] == "authentication_error"


async def test_deepseek_reasoner_tool_call_order(
    deepseek_emu: EmulatorServer, http: aiohttp.ClientSession
) -> None:
    _, _, raw = await post(
        http,
        deepseek_emu.base_url + "/chat/completions",
        {"model": "deepseek-reasoner", "messages": HELLO, "tools": [WEATHER_TOOL], "stream": True},
        OA_HEADERS,
    )
    deltas = [c["choices"][0]["delta"] for c in sse_json(raw)]
    header = next(i for i, d in enumerate(deltas) if d.get("tool_calls"))
    assert deltas[header]["tool_calls"][0]["function"]["name"] == "weather"
    assert all(not d.get("reasoning_content") for d in deltas[header:])
    assert any(d.get("reasoning_content") for d in deltas[:header])


# ---------------------------------------------------------------------------------------------
# Azure
# ---------------------------------------------------------------------------------------------


async def test_azure_deployment_path(
    azure_emu: EmulatorServer, http: aiohttp.ClientSession
) -> None:
    assert azure_emu.base_url == f"http://127.0.0.1:{azure_emu.port}"
    path = azure_emu.base_url + "/openai/deployments/gpt-4o-mini/chat/completions"
    status, _, raw = await post(http, path, {"messages": HELLO}, AZ_HEADERS)
    assert status == 404
    assert json.loads(raw) == {"error": {"code": "404", "message": "Resource not found"}}

    url = path + "?api-version=2024-10-21"
    status, _, raw = await post(http, url, {"messages": HELLO}, {})
    assert status == 401 and json.loads(raw)["error"]["code"] == "401"

    status, _, raw = await post(http, url, {"messages": HELLO}, AZ_HEADERS)
    assert status == 200
    body = json.loads(raw)
    assert body["model"] == "gpt-4o-mini"  # the deployment when the body has no model
    assert body["prompt_filter_results"][0]["prompt_index"] == 0
    assert body["choices"][0]["content_filter_results"]["hate"]["filtered"] is False

    _, _, raw = await post(
        http,
        url,
        {"messages": HELLO, "stream": True, "stream_options": {"include_usage": True}},
        AZ_HEADERS,
    )
    chunks = sse_json(raw)
    first = chunks[0]
    assert first["choices"] == [] and first["id"] == "" and first["created"] == 0
    assert first["object"] == "" and first["model"] == ""
    assert "prompt_filter_results" in first
    assert all(c["choices"][0]["content_filter_results"] == {} for c in chunks[1:-1])
    assert content_of(chunks) == DEFAULT_REPLY
    assert chunks[-1]["usage"]["total_tokens"] > 0


async def test_azure_v1_path_and_embeddings(
    azure_emu: EmulatorServer, http: aiohttp.ClientSession
) -> None:
    status, _, raw = await post(
        http,
        azure_emu.url("/openai/v1/chat/completions"),
        {"model": "gpt-5-mini", "messages": HELLO},
        {"Authorization": "Bearer entra-token"},
    )
    assert status == 200 and json.loads(raw)["model"] == "gpt-5-mini"
    status, _, raw = await post(
        http,
        azure_emu.url("/openai/deployments/emb/embeddings?api-version=2024-10-21"),
        {"input": "hello"},
        AZ_HEADERS,
    )
    assert status == 200
    assert json.loads(raw)["data"][0]["embedding"] == embedding_vector("hello", 8)


def test_azure_sdk_compat(azure_emu: EmulatorServer) -> None:
    openai = pytest.importorskip("openai")
    client = openai.AzureOpenAI(
        azure_endpoint=azure_emu.base_url,
        api_key="az-test",
        api_version="2024-10-21",
        max_retries=0,
    )
    with client:
        out = client.chat.completions.create(model="my-deployment", messages=HELLO)
        assert out.choices[0].message.content == DEFAULT_REPLY
        last = azure_emu.stats.last_request
        assert last is not None
        assert last.path == "/openai/deployments/my-deployment/chat/completions"
        assert last.query["api-version"] == "2024-10-21"
        assert last.headers["api-key"] == "az-test"


# ---------------------------------------------------------------------------------------------
# Anthropic
# ---------------------------------------------------------------------------------------------


def _an_body(**extra: Any) -> dict[str, Any]:
    return {
        "model": "claude-sonnet-4-20250514",
        "max_tokens": 1000,
        "system": [{"type": "text", "text": "You are a helpful assistant"}],
        "messages": [{"role": "user", "content": [{"type": "text", "text": "Say hi"}]}],
        **extra,
    }


async def test_anthropic_non_stream(
    anthropic_emu: EmulatorServer, http: aiohttp.ClientSession
) -> None:
    url = anthropic_emu.base_url + "/v1/messages"
    status, headers, raw = await post(http, url, _an_body(), AN_HEADERS)
    assert status == 200
    assert headers["request-id"].startswith("req_")
    body = json.loads(raw)
    assert body["type"] == "message" and body["role"] == "assistant"
    assert body["id"].startswith("msg_")
    assert body["model"] == "claude-sonnet-4-20250514"
    assert body["content"] == [{"type": "text", "text": DEFAULT_REPLY}]
    assert body["stop_reason"] == "end_turn" and body["stop_sequence"] is None
    assert body["usage"]["input_tokens"] > 0 and body["usage"]["output_tokens"] > 0

    status, _, raw = await post(
        http, url, _an_body(stop_sequences=["relaygate"], max_tokens=100), AN_HEADERS
    )
    body = json.loads(raw)
    assert body["stop_reason"] == "stop_sequence" and body["stop_sequence"] == "relaygate"
    assert body["content"][0]["text"] == "Hello from the "


async def test_anthropic_stream(anthropic_emu: EmulatorServer, http: aiohttp.ClientSession) -> None:
    anthropic_emu.configure(chunks=3)
    status, headers, raw = await post(
        http, anthropic_emu.base_url + "/v1/messages", _an_body(stream=True), AN_HEADERS
    )
    assert status == 200
    assert headers["Content-Type"] == "text/event-stream; charset=utf-8"
    events = sse_events(raw)
    names = [n for n, _ in events]
    assert names == [
        "message_start",
        "content_block_start",
        "ping",
        "content_block_delta",
        "content_block_delta",
        "content_block_delta",
        "content_block_stop",
        "message_delta",
        "message_stop",
    ]
    assert b"[DONE]" not in raw
    assert b'data: {"type": "ping"}\n' in raw
    # trailing-space padding inside the JSON, like the real API
    padded = [d for n, d in events if n != "ping"]
    assert all(d.endswith(" }") for d in padded)
    payloads = [json.loads(d) for _, d in events]
    assert all(p["type"] == n for p, n in zip(payloads, names, strict=True))
    start = payloads[0]["message"]
    assert start["content"] == [] and start["stop_reason"] is None
    assert start["usage"]["input_tokens"] > 0
    text = "".join(p["delta"]["text"] for p in payloads if p["type"] == "content_block_delta")
    assert text == DEFAULT_REPLY
    delta = payloads[-2]
    assert delta["delta"] == {"stop_reason": "end_turn", "stop_sequence": None}
    assert delta["usage"]["output_tokens"] > 1


async def test_anthropic_tools(anthropic_emu: EmulatorServer, http: aiohttp.ClientSession) -> None:
    url = anthropic_emu.base_url + "/v1/messages"
    req = _an_body(tools=[ANTHROPIC_TOOL], tool_choice={"type": "auto"})
    _, _, raw = await post(http, url, req, AN_HEADERS)
    body = json.loads(raw)
    assert body["stop_reason"] == "tool_use"
    tool = body["content"][-1]
    assert tool["type"] == "tool_use" and tool["id"].startswith("toolu_")
    assert tool["name"] == "weather" and tool["input"] == {"location": "Florence"}

    _, _, raw = await post(http, url, {**req, "stream": True}, AN_HEADERS)
    payloads = [json.loads(d) for n, d in sse_events(raw)]
    starts = [p for p in payloads if p["type"] == "content_block_start"]
    assert [s["content_block"]["type"] for s in starts] == ["text", "tool_use"]
    assert starts[1]["content_block"]["input"] == {}
    frags = [
        p["delta"]["partial_json"]
        for p in payloads
        if p["type"] == "content_block_delta" and p["delta"]["type"] == "input_json_delta"
    ]
    assert frags[0] == ""
    assert json.loads("".join(frags)) == {"location": "Florence"}
    assert payloads[-2]["delta"]["stop_reason"] == "tool_use"

    # tool_result turn -> text mentioning the result
    messages = [
        *req["messages"],
        {"role": "assistant", "content": [tool]},
        {
            "role": "user",
            "content": [
                {
                    "type": "tool_result",
                    "tool_use_id": tool["id"],
                    "content": [{"type": "text", "text": "40 C"}],
                }
            ],
        },
    ]
    _, _, raw = await post(http, url, {**req, "messages": messages}, AN_HEADERS)
    body = json.loads(raw)
    assert body["stop_reason"] == "end_turn"
    assert "40 C" in body["content"][0]["text"]


async def test_anthropic_thinking_stream(
    anthropic_emu: EmulatorServer, http: aiohttp.ClientSession
) -> None:
    _, _, raw = await post(
        http,
        anthropic_emu.base_url + "/v1/messages",
        _an_body(stream=True, max_tokens=2000, thinking={"type": "enabled", "budget_tokens": 1024}),
        AN_HEADERS,
    )
    payloads = [json.loads(d) for _, d in sse_events(raw)]
    deltas = [p["delta"] for p in payloads if p["type"] == "content_block_delta"]
    assert "".join(d.get("thinking", "") for d in deltas) == DEFAULT_REASONING
    assert any(d["type"] == "signature_delta" for d in deltas)
    assert "".join(d.get("text", "") for d in deltas) == DEFAULT_REPLY


async def test_anthropic_thinking_rules(
    anthropic_emu: EmulatorServer, http: aiohttp.ClientSession
) -> None:
    """Anthropic's rules: budget >= 1024 below max_tokens; with thinking on, the last
    assistant turn with tool_use starts with a thinking block; signatures must be real."""
    url = anthropic_emu.base_url + "/v1/messages"
    thinking = {"type": "enabled", "budget_tokens": 1024}
    tools = [{"name": "weather", "input_schema": {"type": "object", "properties": {}}}]
    status, _, raw = await post(
        http, url, _an_body(max_tokens=3000, thinking=thinking, tools=tools), AN_HEADERS
    )
    first = json.loads(raw)
    assert status == 200 and [b["type"] for b in first["content"]] == [
        "thinking",
        "text",
        "tool_use",
    ]
    tool_use = first["content"][2]
    result = {
        "role": "user",
        "content": [{"type": "tool_result", "tool_use_id": tool_use["id"], "content": "sunny"}],
    }
    user = {"role": "user", "content": "weather?"}

    async def turn2(assistant_content: list[dict[str, Any]], **extra: Any) -> tuple[int, Any]:
        body = _an_body(
            max_tokens=3000,
            tools=tools,
            messages=[user, {"role": "assistant", "content": assistant_content}, result],
            **extra,
        )
        status, _, raw = await post(http, url, body, AN_HEADERS)
        return status, json.loads(raw)

    status, body = await turn2([tool_use], thinking=thinking)
    assert status == 400 and body["error"]["type"] == "invalid_request_error"
    assert body["error"]["message"].startswith(
        "messages.1.content.0.type: Expected `thinking` or `redacted_thinking`, but found "
        "`tool_use`. When `thinking` is enabled"
    )
    status, body = await turn2(first["content"], thinking=thinking)
    assert status == 200, body
    forged = [{**first["content"][0], "signature": "forged"}, tool_use]
    status, body = await turn2(forged, thinking=thinking)
    assert status == 400 and "signature" in body["error"]["message"]
    status, _ = await turn2([tool_use])  # thinking off: no rule
    assert status == 200
    for bad in ({"type": "enabled", "budget_tokens": 1000}, {"type": "enabled"}):
        status, body = await turn2(first["content"], thinking=bad)
        assert status == 400 and "budget_tokens" in body["error"]["message"]
    status, _, raw = await post(http, url, _an_body(thinking=thinking), AN_HEADERS)  # max 1000
    assert status == 400 and "max_tokens" in json.loads(raw)["error"]["message"]


async def test_anthropic_errors(anthropic_emu: EmulatorServer, http: aiohttp.ClientSession) -> None:
    url = anthropic_emu.base_url + "/v1/messages"

    async def call(body: Any, headers: dict[str, str]) -> tuple[int, dict[str, Any]]:
        status, _, raw = await post(http, url, body, headers)
        return status, json.loads(raw)

    status, body = await call(_an_body(), {"anthropic-version": "2023-06-01"})
    assert status == 401
    assert body["type"] == "error" and body["error"]["type"] == "authentication_error"
    status, body = await call(_an_body(), {"x-api-key": "k"})
    assert status == 400 and "anthropic-version" in body["error"]["message"]
    no_max = _an_body()
    del no_max["max_tokens"]
    status, body = await call(no_max, AN_HEADERS)
    assert status == 400 and body["error"]["type"] == "invalid_request_error"
    assert "max_tokens" in body["error"]["message"]
    for code, etype in [
        (429, "rate_limit_error"),
        (500, "api_error"),
        (529, "overloaded_error"),
        (404, "not_found_error"),
    ]:
        status, body = await call(_an_body(model=f"error-{code}"), AN_HEADERS)
        assert (status, body["error"]["type"]) == (code, etype)
    anthropic_emu.configure(api_key="right")
    status, body = await call(_an_body(), {**AN_HEADERS, "x-api-key": "wrong"})
    assert status == 401


async def test_anthropic_midstream_and_cut(
    anthropic_emu: EmulatorServer, http: aiohttp.ClientSession
) -> None:
    url = anthropic_emu.base_url + "/v1/messages"
    anthropic_emu.configure(midstream_error=True)
    _, _, raw = await post(http, url, _an_body(stream=True), AN_HEADERS)
    events = sse_events(raw)
    assert events[-1][0] == "error"
    assert json.loads(events[-1][1])["error"]["type"] == "overloaded_error"
    assert [n for n, _ in events].count("content_block_delta") == 1

    anthropic_emu.configure(midstream_error=False, cut_after=1)
    received = b""
    with pytest.raises(aiohttp.ClientPayloadError):
        async with http.post(url, json=_an_body(stream=True), headers=AN_HEADERS) as resp:
            async for line in resp.content:
                received += line
    names = [n for n, _ in sse_events(received)]
    assert names[-1] == "content_block_delta" and "message_stop" not in names


# ---------------------------------------------------------------------------------------------
# lifecycle / CLI
# ---------------------------------------------------------------------------------------------


def test_stop_releases_hanging_requests() -> None:
    import threading
    import urllib.error
    import urllib.request

    emu = EmulatorServer("openai").start()
    errors: list[BaseException] = []

    def hang() -> None:
        req = urllib.request.Request(
            emu.base_url + "/chat/completions",
            data=json.dumps({"model": "hang", "messages": HELLO}).encode(),
            headers={**OA_HEADERS, "Content-Type": "application/json"},
        )
        try:
            urllib.request.urlopen(req, timeout=5).read()
        except Exception as exc:
            errors.append(exc)

    t = threading.Thread(target=hang)
    t.start()
    assert emu.stats.wait_for(lambda s: s.in_flight == 1, 3.0)
    t0 = time.monotonic()
    emu.stop()
    assert time.monotonic() - t0 < 3.0
    t.join(5)
    assert errors  # the client saw the connection go away
    emu.stop()  # idempotent


def test_unknown_provider() -> None:
    with pytest.raises(ValueError):
        EmulatorServer("nope")


def test_cli_runner_prints_the_key_a_signing_emulator_checks() -> None:
    from relaygate.emulator import spark_ws

    code = "from relaygate.emulator import run_emulator_cli;run_emulator_cli('spark_ws', '127.0.0.1', 0)"
    proc = subprocess.Popen(
        [sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True
    )
    try:
        assert proc.stdout is not None
        lines = [proc.stdout.readline() for _ in range(2)]
        assert "listening on http://127.0.0.1:" in lines[0]
        assert lines[1].split()[4] == spark_ws.DEFAULT_KEY
    finally:
        proc.terminate()
        proc.wait(5)
        if proc.stdout:
            proc.stdout.close()


def test_cli_runner_serves() -> None:
    code = (
        "from relaygate.emulator import run_emulator_cli;"
        "run_emulator_cli('anthropic', '127.0.0.1', 0, chunks=2, latency_ms=None)"
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert "listening on http://127.0.0.1:" in line
        origin = line.split("listening on ")[1].split()[0]
        import urllib.request

        with urllib.request.urlopen(origin + "/_emulator/config", timeout=5) as resp:
            assert json.loads(resp.read())["chunks"] == 2
    finally:
        proc.terminate()
        proc.wait(5)
        if proc.stdout:
            proc.stdout.close()
        if proc.stderr:
            proc.stderr.close()


async def test_async_context_manager(http: aiohttp.ClientSession) -> None:
    async with EmulatorServer("deepseek", knobs=Knobs(keepalive=False, reply="pong")) as emu:
        status, _, raw = await post(
            http,
            emu.base_url + "/chat/completions",
            {"model": "deepseek-chat", "messages": HELLO},
            OA_HEADERS,
        )
        assert status == 200
        assert json.loads(raw)["choices"][0]["message"]["content"] == "pong"
