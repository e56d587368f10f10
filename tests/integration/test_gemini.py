"""Gemini through the real gateway, with the Gemini emulator as the upstream and the
official openai SDK as the client: the Generative Language API (API key), Vertex AI
with a generated service-account key (token fetched once, cached), and Claude on
Vertex."""

from __future__ import annotations

import base64
import json
import struct
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from gateway import Gateway

from relaygate.billing.tokens import count_input
from relaygate.emulator.gemini import GeminiEmulator
from relaygate.emulator.knobs import Knobs
from relaygate.emulator.server import EmulatorServer

UP_KEY = "AIza-upstream-key-0123456789"
ERROR_MODELS = ["error-400", "error-401", "error-403", "error-429", "error-500"]
TOOLS: list[Any] = [
    {
        "type": "function",
        "function": {
            "name": "add",
            "description": "Add two numbers",
            "parameters": {
                "type": "object",
                "properties": {"a": {"type": "integer"}, "b": {"type": "integer"}},
                "required": ["a", "b"],
                "additionalProperties": False,
            },
        },
    },
    {
        "type": "function",
        "function": {
            "name": "multiply",
            "description": "Multiply two numbers",
            "parameters": {
                "type": "object",
                "properties": {"a": {"type": "integer"}, "b": {"type": "integer"}},
                "required": ["a", "b"],
            },
        },
    },
]


@dataclass
class GEnv:
    gw: Gateway
    emu: EmulatorServer
    key: str
    user_id: int

    @property
    def impl(self) -> GeminiEmulator:
        assert isinstance(self.emu.impl, GeminiEmulator)
        return self.emu.impl

    def client(self) -> openai.OpenAI:
        return openai.OpenAI(
            api_key=self.key,
            base_url=self.gw.base_url,
            max_retries=0,
            _strict_response_validation=True,
        )


@pytest.fixture(scope="module")
def genv(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GEnv]:
    emu = EmulatorServer("gemini", knobs=Knobs(api_key=UP_KEY, chunks=4)).start()
    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    email = "relaygate-test@proj-g.iam.gserviceaccount.com"
    impl = emu.impl
    assert isinstance(impl, GeminiEmulator)
    impl.trust(
        email,
        private.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        ),
    )
    sa_key = json.dumps(
        {
            "type": "service_account",
            "project_id": "proj-g",
            "private_key_id": "k1",
            "private_key": private.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            ).decode(),
            "client_email": email,
            "token_uri": emu.origin + "/token",
        },
        indent=2,
    )
    gw = Gateway(Path(tmp_path_factory.mktemp("gw-gemini"))).start()
    try:
        uid = gw.create_user("gemini-user")
        gw.create_channel(
            name="gemini",
            provider="gemini",
            base_url=emu.origin,
            keys=[UP_KEY],
            models=[
                "gemini-2.5-flash",
                "gemini-3-pro-preview",
                "text-embedding-004",
            ],
        )
        for model in ERROR_MODELS:  # failures must not touch the channels other tests use
            gw.create_channel(
                name=f"gemini-{model}",
                provider="gemini",
                base_url=emu.origin,
                keys=[UP_KEY],
                models=[model],
            )
        gw.create_channel(
            name="gemini-bad-key",
            provider="gemini",
            profile="gemini",
            base_url=emu.origin,
            keys=["AIza-wrong"],
            models=["bad-key"],
            model_mapping={"bad-key": "gemini-2.5-flash"},
        )
        gw.create_channel(
            name="vertex",
            provider="gemini",
            profile="vertex",
            base_url=emu.origin,
            keys=[sa_key],
            models=["vertex-flash", "vertex-embed"],
            model_mapping={
                "vertex-flash": "gemini-2.5-flash",
                "vertex-embed": "text-embedding-004",
            },
            config={"location": "us-east5", "api_version": "v1beta1"},
        )
        gw.create_channel(
            name="vertex-claude",
            provider="anthropic",
            profile="vertex",
            base_url=emu.origin,
            keys=[sa_key],
            models=["vertex-claude"],
            model_mapping={"vertex-claude": "claude-3-7-sonnet@20250219"},
            config={"project": "proj-g", "location": "us-east5"},
        )
        yield GEnv(gw, emu, gw.create_key(uid), uid)
    finally:
        gw.stop()
        emu.stop()


@pytest.fixture(autouse=True)
def _reset(genv: GEnv) -> Iterator[None]:
    yield
    genv.emu.reset()


def last_request(genv: GEnv) -> Any:
    rec = genv.emu.stats.last_request
    assert rec is not None
    return rec


def test_chat_and_stream_with_usage(genv: GEnv) -> None:
    c = genv.client()
    r = c.chat.completions.create(
        model="gemini-2.5-flash",
        messages=[{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}],
        max_tokens=200,
        temperature=0.3,
    )
    assert r.choices[0].message.content and r.choices[0].finish_reason == "stop"
    assert (
        r.usage is not None
        and r.usage.total_tokens == r.usage.prompt_tokens + r.usage.completion_tokens
    )
    rec = last_request(genv)
    assert rec.path == "/v1beta/models/gemini-2.5-flash:generateContent"
    assert rec.headers["x-goog-api-key"] == UP_KEY
    assert rec.body["systemInstruction"]["parts"] == [{"text": "Be brief."}]
    assert rec.body["generationConfig"] == {"maxOutputTokens": 200, "temperature": 0.3}

    text, usage, finishes, usage_chunks = "", None, [], 0
    for chunk in c.chat.completions.create(
        model="gemini-2.5-flash",
        messages=[{"role": "user", "content": "Hi"}],
        stream=True,
        stream_options={"include_usage": True},
    ):
        if chunk.usage:
            usage_chunks += 1
            usage = chunk.usage
            assert chunk.choices == []
        for ch in chunk.choices:
            text += ch.delta.content or ""
            if ch.finish_reason:
                finishes.append(ch.finish_reason)
    assert text == r.choices[0].message.content
    assert finishes == ["stop"] and usage_chunks == 1 and usage is not None
    assert last_request(genv).query.get("alt") == "sse"


def test_parallel_tool_calls_and_thought_signature_round_trip(genv: GEnv) -> None:
    c = genv.client()
    messages: list[Any] = [{"role": "user", "content": "Add and multiply 2 and 3"}]
    r1 = c.chat.completions.create(model="gemini-3-pro-preview", messages=messages, tools=TOOLS)
    choice = r1.choices[0]
    assert choice.finish_reason == "tool_calls"
    calls = choice.message.tool_calls or []
    assert [tc.function.name for tc in calls] == ["add", "multiply"]  # type: ignore[union-attr]
    assert json.loads(calls[0].function.arguments) == {"a": 1, "b": 1}  # type: ignore[union-attr]
    sig = (calls[0].model_extra or {})["extra_content"]["google"]["thought_signature"]
    assert sig
    assert last_request(genv).body["tools"][0]["functionDeclarations"][0]["parameters"] == {
        "type": "OBJECT",
        "properties": {"a": {"type": "INTEGER"}, "b": {"type": "INTEGER"}},
        "required": ["a", "b"],
    }
    # second turn: the message sent back as received (with the signature), plus results
    messages.append(choice.message.model_dump(exclude_none=True))
    for tc, result in zip(calls, ("5", "6"), strict=True):
        messages.append({"role": "tool", "tool_call_id": tc.id, "content": result})
    r2 = c.chat.completions.create(model="gemini-3-pro-preview", messages=messages, tools=TOOLS)
    assert r2.choices[0].finish_reason == "stop"
    assert "5" in (r2.choices[0].message.content or "")
    sent = last_request(genv).body["contents"]
    assert sent[1]["parts"][0]["thoughtSignature"] == sig
    assert [p["functionResponse"]["name"] for p in sent[2]["parts"]] == ["add", "multiply"]
    # without the signature Gemini 3 refuses the turn: passed on as the client's 400
    stripped = json.loads(json.dumps(messages))
    for tc in stripped[1]["tool_calls"]:
        tc.pop("extra_content", None)
    with pytest.raises(openai.BadRequestError) as exc:
        c.chat.completions.create(model="gemini-3-pro-preview", messages=stripped, tools=TOOLS)
    assert "thought_signature" in str(exc.value)


def test_streamed_tool_calls(genv: GEnv) -> None:
    c = genv.client()
    calls: dict[int, Any] = {}
    finish = None
    for chunk in c.chat.completions.create(
        model="gemini-2.5-flash",
        messages=[{"role": "user", "content": "Add and multiply"}],
        tools=TOOLS,
        stream=True,
    ):
        for ch in chunk.choices:
            for tc in ch.delta.tool_calls or []:
                calls[tc.index] = tc
            finish = ch.finish_reason or finish
    assert finish == "tool_calls"
    assert [calls[i].function.name for i in sorted(calls)] == ["add", "multiply"]
    assert calls[0].id and calls[0].id != calls[1].id


def test_image_json_mode_and_thinking_usage(genv: GEnv) -> None:
    c = genv.client()
    png = base64.b64encode(b"\x89PNG\r\n\x1a\n fake").decode()
    c.chat.completions.create(
        model="gemini-2.5-flash",
        messages=[
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "What is this?"},
                    {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{png}"}},
                ],
            }
        ],
    )
    parts = last_request(genv).body["contents"][0]["parts"]
    assert parts[1] == {"inlineData": {"mimeType": "image/png", "data": png}}

    r = c.chat.completions.create(
        model="gemini-2.5-flash",
        messages=[{"role": "user", "content": "Give me a number"}],
        response_format={
            "type": "json_schema",
            "json_schema": {
                "name": "n",
                "schema": {
                    "type": "object",
                    "properties": {"n": {"type": "integer"}},
                    "required": ["n"],
                    "additionalProperties": False,
                },
            },
        },
    )
    assert json.loads(r.choices[0].message.content or "") == {"n": 1}
    cfg = last_request(genv).body["generationConfig"]
    assert cfg["responseMimeType"] == "application/json"
    assert "additionalProperties" not in cfg["responseSchema"]

    raw = c.chat.completions.with_raw_response.create(
        model="gemini-2.5-flash",
        messages=[{"role": "user", "content": "Think"}],
        reasoning_effort="medium",
    )
    r = raw.parse()
    rid = raw.headers["x-request-id"]
    assert (r.choices[0].message.model_extra or {}).get("reasoning_content")
    assert r.usage is not None and r.usage.completion_tokens_details is not None
    reasoning = r.usage.completion_tokens_details.reasoning_tokens
    assert reasoning and r.usage.completion_tokens > reasoning
    assert last_request(genv).body["generationConfig"]["thinkingConfig"] == {
        "thinkingBudget": 8192,
        "includeThoughts": True,
    }
    # the request log (what billing charges) counts the thinking tokens
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        rows = genv.gw.admin("GET", f"/logs?request_id={rid}")["data"]
        row = rows[0] if rows else None  # this request's row, not any with as many tokens
        if row is not None:
            assert row["reasoning_tokens"] == reasoning
            assert row["completion_tokens"] == r.usage.completion_tokens
            break
        time.sleep(0.2)
    else:
        raise AssertionError("the request log never showed the reasoning tokens")


def test_safety_blocks_are_content_filter(genv: GEnv) -> None:
    c = genv.client()
    for text in ("BLOCK_PROMPT please", "BLOCK_OUTPUT please"):
        r = c.chat.completions.create(
            model="gemini-2.5-flash", messages=[{"role": "user", "content": text}]
        )
        assert r.choices[0].finish_reason == "content_filter"
        finishes = [
            ch.finish_reason
            for chunk in c.chat.completions.create(
                model="gemini-2.5-flash",
                messages=[{"role": "user", "content": text}],
                stream=True,
            )
            for ch in chunk.choices
            if ch.finish_reason
        ]
        assert finishes == ["content_filter"]


def test_embeddings_float_and_base64(genv: GEnv) -> None:
    c = genv.client()
    r = c.embeddings.create(
        model="text-embedding-004", input=["hello", "world"], dimensions=6, encoding_format="float"
    )
    assert [len(d.embedding) for d in r.data] == [6, 6]
    # Gemini reports no usage: the gateway counts the input with its tokenizer
    assert r.usage.prompt_tokens == count_input({"input": ["hello", "world"]}) > 0
    assert r.usage.total_tokens == r.usage.prompt_tokens
    body = last_request(genv).body
    assert body["requests"][0] == {
        "model": "models/text-embedding-004",
        "content": {"parts": [{"text": "hello"}]},
        "outputDimensionality": 6,
    }
    raw = httpx.post(
        genv.gw.base_url + "/embeddings",
        json={
            "model": "text-embedding-004",
            "input": "hello",
            "dimensions": 6,
            "encoding_format": "base64",
        },
        headers={"Authorization": f"Bearer {genv.key}"},
        timeout=10,
    )
    b64 = raw.json()["data"][0]["embedding"]
    vec = struct.unpack("<6f", base64.b64decode(b64))
    assert vec == pytest.approx(r.data[0].embedding, rel=1e-6)
    # the SDK's default (base64, decoded by the SDK)
    lenient = openai.OpenAI(api_key=genv.key, base_url=genv.gw.base_url, max_retries=0)
    sdk = lenient.embeddings.create(model="text-embedding-004", input="hello", dimensions=6)
    assert sdk.data[0].embedding == pytest.approx(r.data[0].embedding, rel=1e-6)


def test_vertex_service_account_token_cached(genv: GEnv) -> None:
    c = genv.client()
    before = genv.impl.token_exchanges
    for _ in range(3):
        r = c.chat.completions.create(
            model="vertex-flash", messages=[{"role": "user", "content": "Hi"}]
        )
        assert r.choices[0].message.content
    chunks = list(
        c.chat.completions.create(
            model="vertex-flash", messages=[{"role": "user", "content": "Hi"}], stream=True
        )
    )
    assert chunks
    emb = c.embeddings.create(model="vertex-embed", input="hi", encoding_format="float")
    assert len(emb.data[0].embedding) == 8
    rec = last_request(genv)
    assert rec.path == (
        "/v1beta1/projects/proj-g/locations/us-east5/publishers/google/models/"
        "text-embedding-004:predict"
    )
    assert rec.headers["authorization"].startswith("Bearer ya29.emu-")
    assert genv.impl.token_exchanges - before <= 1  # fetched once, then cached


def test_vertex_claude(genv: GEnv) -> None:
    c = genv.client()
    r = c.chat.completions.create(
        model="vertex-claude", messages=[{"role": "user", "content": "Hi"}], max_tokens=100
    )
    assert r.choices[0].message.content and r.usage is not None
    rec = last_request(genv)
    assert rec.path == (
        "/v1/projects/proj-g/locations/us-east5/publishers/anthropic/models/"
        "claude-3-7-sonnet@20250219:rawPredict"
    )
    assert rec.body["anthropic_version"] == "vertex-2023-10-16" and "model" not in rec.body
    text, finish = "", None
    for chunk in c.chat.completions.create(
        model="vertex-claude",
        messages=[{"role": "user", "content": "Weather?"}],
        tools=TOOLS[:1],
        stream=True,
    ):
        for ch in chunk.choices:
            text += ch.delta.content or ""
            finish = ch.finish_reason or finish
    assert finish == "tool_calls"
    assert last_request(genv).path.endswith(":streamRawPredict")


# last: failures open circuits and mark keys
def test_errors_map_to_the_table(genv: GEnv) -> None:
    c = genv.client()
    cases: list[tuple[str, type[openai.APIStatusError], int, str | None]] = [
        ("error-429", openai.RateLimitError, 429, None),
        ("error-400", openai.BadRequestError, 400, "invalid_argument"),
        ("error-500", openai.InternalServerError, 502, "upstream_error"),
        ("error-401", openai.InternalServerError, 502, "upstream_auth_failed"),
        ("error-403", openai.InternalServerError, 502, "upstream_auth_failed"),
        ("bad-key", openai.InternalServerError, 502, "upstream_auth_failed"),
    ]
    # an error inside the stream, after the start
    genv.emu.configure(midstream_error=True)
    with pytest.raises(openai.APIError):
        for _ in c.chat.completions.create(
            model="gemini-2.5-flash", messages=[{"role": "user", "content": "x"}], stream=True
        ):
            pass
    genv.emu.reset()
    for model, cls, status, code in cases:
        # a 429 opens the channel's circuit (its Retry-After): asked once
        # (an auth failure marks the channel's key: asked once too)
        for stream in (False, True) if model in ("error-400", "error-500") else (False,):
            with pytest.raises(cls) as exc:
                c.chat.completions.create(
                    model=model, messages=[{"role": "user", "content": "x"}], stream=stream
                )
            assert exc.value.status_code == status, model
            if code:
                assert exc.value.code == code, model
            assert UP_KEY not in str(exc.value)
