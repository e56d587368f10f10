"""The Gemini adaptor (Generative Language API and Vertex AI) with literal bytes, and the
recorded Google/Vertex traffic (TestGoogleCommon) replayed through it, including Claude
on Vertex through the Anthropic adaptor's ``vertex`` profile."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import orjson
import pytest

from relaygate.errors import (
    InvalidRequest,
    RateLimited,
    UpstreamError,
    UpstreamRejected,
)
from relaygate.providers.anthropic import AnthropicAdaptor
from relaygate.providers.base import Target
from relaygate.providers.gemini import GeminiAdaptor
from relaygate.providers.gemini_request import gemini_schema
from relaygate.relay.sse import SSEDecoder

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from recordings import Interaction, load_cassette, recordings_dir

A = GeminiAdaptor()
KEY = "AIzaSy-test-key-0123456789"
GEM = Target(
    1, "gemini", "gemini", "https://generativelanguage.googleapis.com", KEY, "gemini-2.5-flash"
)
VTX = Target(
    2,
    "gemini",
    "vertex",
    "https://us-east5-aiplatform.googleapis.com",
    "ya29.plain-token",
    "gemini-2.5-flash",
    {"project": "fantasy-playground-472418", "location": "us-east5", "api_version": "v1beta1"},
)
SIG = "CiQBvj72+xCKZ6n2ewHIHg3nIWfu6zy4Znh"


def body_of(req: Any) -> Any:
    return orjson.loads(req.body)


def decode(raw: bytes, piece: int = 7) -> list[tuple[str | None, bytes]]:
    dec = SSEDecoder()
    events: list[tuple[str | None, bytes]] = []
    for i in range(0, len(raw), piece):
        events.extend(dec.feed(raw[i : i + piece]))
    events.extend(dec.flush())
    return events


def run(raw: bytes, target: Target = GEM, include_usage: bool = True) -> tuple[Any, list[Any]]:
    tr = A.chat_stream(target, include_usage)
    chunks: list[Any] = []
    for name, data in decode(raw):
        chunks.extend(orjson.loads(p) for p in tr.feed(name, data))
    chunks.extend(orjson.loads(p) for p in tr.finish())
    return tr, chunks


# ------------------------------------------------------------------ requests


def test_gemini_request_url_headers_and_body() -> None:
    req = A.chat_request(
        GEM,
        {
            "model": "x",
            "messages": [
                {"role": "system", "content": "Be brief."},
                {"role": "developer", "content": [{"type": "text", "text": "Use metric."}]},
                {"role": "user", "content": "Hi"},
                {"role": "assistant", "content": "Hello!"},
                {"role": "user", "content": "Weather?"},
            ],
            "max_completion_tokens": 50,
            "temperature": 0.2,
            "top_p": 0.9,
            "stop": "END",
            "n": 2,
            "seed": 7,
            "presence_penalty": 0.5,
            "frequency_penalty": 0.25,
        },
        False,
    )
    assert req.url == (
        "https://generativelanguage.googleapis.com/v1beta/models/gemini-2.5-flash:generateContent"
    )
    assert req.headers == {"content-type": "application/json", "x-goog-api-key": KEY}
    assert req.body == (
        b'{"contents":[{"parts":[{"text":"Hi"}],"role":"user"},'
        b'{"parts":[{"text":"Hello!"}],"role":"model"},{"parts":[{"text":"Weather?"}],"role":"user"}],'
        b'"systemInstruction":{"parts":[{"text":"Be brief."},{"text":"Use metric."}],"role":"user"},'
        b'"generationConfig":{"maxOutputTokens":50,"temperature":0.2,"topP":0.9,'
        b'"presencePenalty":0.5,"frequencyPenalty":0.25,"seed":7,"candidateCount":2,'
        b'"stopSequences":["END"]}}'
    )
    stream = A.chat_request(GEM, {"messages": [{"role": "user", "content": "Hi"}]}, True)
    assert stream.url.endswith("/models/gemini-2.5-flash:streamGenerateContent?alt=sse")


def test_vertex_request_url_bearer_and_no_call_ids() -> None:
    msgs = [
        {"role": "user", "content": "Add"},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "call_1",
                    "type": "function",
                    "function": {"name": "add", "arguments": '{"a":2}'},
                    "extra_content": {"google": {"thought_signature": SIG}},
                }
            ],
        },
        {"role": "tool", "tool_call_id": "call_1", "content": "5"},
    ]
    req = A.chat_request(VTX, {"messages": msgs}, True)
    assert req.url == (
        "https://us-east5-aiplatform.googleapis.com/v1beta1/projects/fantasy-playground-472418"
        "/locations/us-east5/publishers/google/models/gemini-2.5-flash:streamGenerateContent?alt=sse"
    )
    assert req.headers["authorization"] == "Bearer ya29.plain-token"
    assert "x-goog-api-key" not in req.headers
    assert body_of(req)["contents"][1:] == [
        {
            "parts": [{"functionCall": {"name": "add", "args": {"a": 2}}, "thoughtSignature": SIG}],
            "role": "model",
        },
        {
            "parts": [{"functionResponse": {"name": "add", "response": {"result": "5"}}}],
            "role": "user",
        },
    ]
    # the Generative Language API takes the ids
    gem = body_of(A.chat_request(GEM, {"messages": msgs}, False))["contents"]
    assert gem[1]["parts"][0]["functionCall"]["id"] == "call_1"
    assert gem[2]["parts"][0]["functionResponse"]["id"] == "call_1"


def test_vertex_token_resolved_and_default_project_location() -> None:
    t = Target(
        3,
        "gemini",
        "vertex",
        "https://europe-west4-aiplatform.googleapis.com",
        "tok",
        "gemini-2.5-pro",
        {"project": "p1"},
        token="ya29.x",
    )
    req = A.chat_request(t, {"messages": [{"role": "user", "content": "x"}]}, False)
    assert req.url == (
        "https://europe-west4-aiplatform.googleapis.com/v1/projects/p1/locations/us-central1"
        "/publishers/google/models/gemini-2.5-pro:generateContent"
    )
    assert req.headers["authorization"] == "Bearer ya29.x"
    assert A.token_request(t) is None  # a plain token needs no exchange
    assert A.token_request(GEM) is None
    with pytest.raises(UpstreamError):
        A.chat_request(
            Target(3, "gemini", "vertex", "https://x", "tok", "m"),
            {"messages": [{"role": "user", "content": "x"}]},
            False,
        )


def test_parallel_tool_calls_images_and_tool_choice() -> None:
    body = {
        "messages": [
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "What is in these?"},
                    {
                        "type": "image_url",
                        "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="},
                    },
                    {"type": "image_url", "image_url": {"url": "https://example.com/cat.webp?x=1"}},
                ],
            },
            {
                "role": "assistant",
                "content": "Let me check.",
                "tool_calls": [
                    {
                        "id": "a",
                        "type": "function",
                        "function": {"name": "add", "arguments": '{"a":1,"b":2}'},
                        "extra_content": {"google": {"thought_signature": SIG}},
                    },
                    {"id": "m", "type": "function", "function": {"name": "mul", "arguments": ""}},
                ],
            },
            {"role": "tool", "tool_call_id": "m", "content": '{"value": 2}'},
            {"role": "tool", "tool_call_id": "a", "content": [{"type": "text", "text": "3"}]},
        ],
        "tools": [
            {
                "type": "function",
                "function": {
                    "name": "add",
                    "description": "Add",
                    "parameters": {
                        "type": "object",
                        "$schema": "x",
                        "additionalProperties": False,
                        "properties": {"a": {"type": "integer"}, "b": {"type": ["number", "null"]}},
                        "required": ["a"],
                    },
                },
            },
            {
                "type": "function",
                "function": {"name": "mul", "parameters": {"type": "object", "properties": {}}},
            },
        ],
        "tool_choice": {"type": "function", "function": {"name": "add"}},
    }
    out = body_of(A.chat_request(GEM, body, False))
    assert out["contents"] == [
        {
            "parts": [
                {"text": "What is in these?"},
                {"inlineData": {"mimeType": "image/png", "data": "iVBORw0KGgo="}},
                {
                    "fileData": {
                        "mimeType": "image/webp",
                        "fileUri": "https://example.com/cat.webp?x=1",
                    }
                },
            ],
            "role": "user",
        },
        {
            "parts": [
                {"text": "Let me check."},
                {
                    "functionCall": {"name": "add", "args": {"a": 1, "b": 2}, "id": "a"},
                    "thoughtSignature": SIG,
                },
                {"functionCall": {"name": "mul", "args": {}, "id": "m"}},
            ],
            "role": "model",
        },
        {
            "parts": [
                {"functionResponse": {"name": "mul", "response": {"value": 2}, "id": "m"}},
                {"functionResponse": {"name": "add", "response": {"result": "3"}, "id": "a"}},
            ],
            "role": "user",
        },
    ]
    assert out["tools"] == [
        {
            "functionDeclarations": [
                {
                    "name": "add",
                    "description": "Add",
                    "parameters": {
                        "type": "OBJECT",
                        "properties": {
                            "a": {"type": "INTEGER"},
                            "b": {"nullable": True, "type": "NUMBER"},
                        },
                        "required": ["a"],
                    },
                },
                {"name": "mul"},
            ]
        }
    ]
    assert out["toolConfig"] == {
        "functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": ["add"]}
    }
    for choice, mode in (("auto", "AUTO"), ("required", "ANY"), ("none", "NONE")):
        got = body_of(A.chat_request(GEM, {**body, "tool_choice": choice}, False))
        assert got["toolConfig"] == {"functionCallingConfig": {"mode": mode}}


def test_json_mode_and_thinking() -> None:
    msgs = [{"role": "user", "content": "x"}]
    out = body_of(
        A.chat_request(GEM, {"messages": msgs, "response_format": {"type": "json_object"}}, False)
    )
    assert out["generationConfig"] == {"responseMimeType": "application/json"}
    schema = {
        "type": "object",
        "properties": {"n": {"type": "integer"}},
        "additionalProperties": False,
        "required": ["n"],
    }
    out = body_of(
        A.chat_request(
            GEM,
            {
                "messages": msgs,
                "response_format": {
                    "type": "json_schema",
                    "json_schema": {"name": "s", "strict": True, "schema": schema},
                },
            },
            False,
        )
    )
    assert out["generationConfig"] == {
        "responseMimeType": "application/json",
        "responseSchema": {
            "type": "OBJECT",
            "properties": {"n": {"type": "INTEGER"}},
            "required": ["n"],
        },
    }
    out = body_of(A.chat_request(GEM, {"messages": msgs, "reasoning_effort": "low"}, False))
    assert out["generationConfig"] == {
        "thinkingConfig": {"thinkingBudget": 1024, "includeThoughts": True}
    }
    out = body_of(A.chat_request(GEM, {"messages": msgs, "reasoning_effort": "none"}, False))
    assert out["generationConfig"] == {"thinkingConfig": {"thinkingBudget": 0}}
    g3 = Target(1, "gemini", "gemini", GEM.base_url, KEY, "gemini-3-pro-preview")
    out = body_of(A.chat_request(g3, {"messages": msgs, "reasoning_effort": "high"}, False))
    assert out["generationConfig"] == {
        "thinkingConfig": {"thinkingLevel": "high", "includeThoughts": True}
    }
    with pytest.raises(InvalidRequest) as exc:
        A.chat_request(GEM, {"messages": msgs, "reasoning_effort": "huge"}, False)
    assert exc.value.param == "reasoning_effort"


def test_invalid_requests_name_the_field() -> None:
    with pytest.raises(InvalidRequest) as exc:
        A.chat_request(
            GEM, {"messages": [{"role": "tool", "tool_call_id": "nope", "content": "1"}]}, False
        )
    assert exc.value.param == "messages[0].tool_call_id"
    with pytest.raises(InvalidRequest) as exc:
        A.chat_request(GEM, {"messages": [{"role": "robot", "content": "x"}]}, False)
    assert exc.value.param == "messages[0].role"
    with pytest.raises(InvalidRequest) as exc:
        A.chat_request(GEM, {"messages": [{"role": "system", "content": "x"}]}, False)
    assert exc.value.param == "messages"


def test_schema_rewrite_keeps_only_gemini_keys() -> None:
    assert gemini_schema(
        {"type": "array", "items": {"type": "string", "enum": ["a"], "$ref": "#/x"}, "maxItems": 3}
    ) == {"type": "ARRAY", "items": {"type": "STRING", "enum": ["a"]}, "maxItems": 3}


# ------------------------------------------------------------------ responses

RESPONSE = b"""{
  "candidates": [
    {
      "content": {
        "parts": [
          {"text": "**Thinking** about sums", "thought": true},
          {"text": "Calling tools."},
          {"functionCall": {"name": "add", "args": {"a": 2, "b": 3}}, "thoughtSignature": "c2ln"},
          {"functionCall": {"name": "multiply", "args": {"a": 2, "b": 3}, "id": "g1"}}
        ],
        "role": "model"
      },
      "finishReason": "STOP",
      "index": 0,
      "finishMessage": "Model generated function call(s)."
    }
  ],
  "usageMetadata": {"promptTokenCount": 299, "candidatesTokenCount": 32, "totalTokenCount": 826,
                    "cachedContentTokenCount": 100, "thoughtsTokenCount": 495},
  "modelVersion": "gemini-3.1-pro-preview",
  "responseId": "SgCzaaS4"
}"""


def test_response_text_thoughts_calls_and_usage() -> None:
    out, usage = A.chat_response(GEM, RESPONSE)
    assert out["id"] == "chatcmpl-SgCzaaS4" and out["model"] == "gemini-3.1-pro-preview"
    choice = out["choices"][0]
    assert choice["finish_reason"] == "tool_calls"
    msg = choice["message"]
    assert msg["content"] == "Calling tools."
    assert msg["reasoning_content"] == "**Thinking** about sums"
    calls = msg["tool_calls"]
    assert calls[0]["id"].startswith("call_") and len(calls[0]["id"]) == 29
    assert calls[0]["function"] == {"name": "add", "arguments": '{"a":2,"b":3}'}
    assert calls[0]["extra_content"] == {"google": {"thought_signature": "c2ln"}}
    assert calls[1]["id"] == "g1" and "extra_content" not in calls[1]
    assert usage is not None
    assert (usage.prompt_tokens, usage.completion_tokens, usage.total_tokens) == (299, 527, 826)
    assert (usage.reasoning_tokens, usage.cached_tokens) == (495, 100)
    assert out["usage"] == {
        "prompt_tokens": 299,
        "completion_tokens": 527,
        "total_tokens": 826,
        "prompt_tokens_details": {"cached_tokens": 100},
        "completion_tokens_details": {"reasoning_tokens": 495},
    }
    # a legacy-functions client gets function_call
    legacy, _ = A.chat_response(GEM, RESPONSE, legacy_functions=True)
    assert legacy["choices"][0]["finish_reason"] == "function_call"
    assert legacy["choices"][0]["message"]["function_call"]["name"] == "add"


@pytest.mark.parametrize(
    ("reason", "want"),
    [
        ("MAX_TOKENS", "length"),
        ("SAFETY", "content_filter"),
        ("RECITATION", "content_filter"),
        ("PROHIBITED_CONTENT", "content_filter"),
        ("SPII", "content_filter"),
        ("BLOCKLIST", "content_filter"),
        ("IMAGE_SAFETY", "content_filter"),
        ("OTHER", "stop"),
        ("STOP", "stop"),
    ],
)
def test_finish_reasons(reason: str, want: str) -> None:
    raw = (
        b'{"candidates":[{"content":{"parts":[{"text":"x"}],"role":"model"},"finishReason":"%s","index":0}]}'
        % reason.encode()
    )
    out, usage = A.chat_response(GEM, raw)
    assert out["choices"][0]["finish_reason"] == want and usage is None


def test_safety_block_without_content_and_blocked_prompt() -> None:
    raw = b'{"candidates":[{"finishReason":"SAFETY","index":0,"safetyRatings":[{"category":"HARM_CATEGORY_HARASSMENT","probability":"HIGH","blocked":true}]}],"usageMetadata":{"promptTokenCount":5,"totalTokenCount":5}}'
    out, _ = A.chat_response(GEM, raw)
    assert out["choices"][0] == {
        "index": 0,
        "message": {"role": "assistant", "content": ""},
        "finish_reason": "content_filter",
    }
    blocked = b'{"promptFeedback":{"blockReason":"SAFETY","safetyRatings":[]},"usageMetadata":{"promptTokenCount":8,"totalTokenCount":8},"modelVersion":"gemini-2.5-flash"}'
    out, usage = A.chat_response(GEM, blocked)
    assert out["choices"] == [
        {
            "index": 0,
            "message": {"role": "assistant", "content": ""},
            "finish_reason": "content_filter",
        }
    ]
    assert usage is not None and usage.prompt_tokens == 8 and usage.completion_tokens == 0
    with pytest.raises(UpstreamError):
        A.chat_response(GEM, b'{"usageMetadata":{}}')
    tr, chunks = run(b"data: " + blocked + b"\r\n\r\n")
    assert tr.done and chunks[0]["choices"][0]["finish_reason"] == "content_filter"


# ------------------------------------------------------------------ streams

STREAM = (
    b'data: {"candidates": [{"content": {"parts": [{"text": "Let me think","thought": true}],"role": "model"},"index": 0}],'
    b'"usageMetadata": {"promptTokenCount": 10,"totalTokenCount": 15,"thoughtsTokenCount": 5},"modelVersion": "gemini-2.5-flash","responseId": "R1"}\r\n\r\n'
    b'data: {"candidates": [{"content": {"parts": [{"text": "Ol\xc3\xa1"}],"role": "model"},"index": 0}],'
    b'"usageMetadata": {"promptTokenCount": 10,"candidatesTokenCount": 1,"totalTokenCount": 16,"thoughtsTokenCount": 5},"modelVersion": "gemini-2.5-flash","responseId": "R1"}\r\n\r\n'
    b'data: {"candidates": [{"content": {"parts": [{"text": "!"},{"functionCall": {"name": "add","args": {"a": 1}},"thoughtSignature": "c2ln"},{"functionCall": {"name": "mul","args": {}}}],"role": "model"},"finishReason": "STOP","index": 0}],'
    b'"usageMetadata": {"promptTokenCount": 10,"candidatesTokenCount": 20,"totalTokenCount": 35,"thoughtsTokenCount": 5},"modelVersion": "gemini-2.5-flash","responseId": "R1"}\r\n\r\n'
)


def test_stream_in_small_pieces() -> None:
    tr, chunks = run(STREAM)
    assert tr.done and tr.error is None
    assert {c["id"] for c in chunks} == {"chatcmpl-R1"}
    deltas = [c["choices"][0]["delta"] for c in chunks if c["choices"]]
    assert deltas[0] == {"role": "assistant", "reasoning_content": "Let me think"}
    assert deltas[1] == {"content": "Olá"}
    assert deltas[2]["content"] == "!"
    calls = deltas[2]["tool_calls"]
    assert [c["index"] for c in calls] == [0, 1]
    assert calls[0]["function"] == {"name": "add", "arguments": '{"a":1}'}
    assert calls[0]["extra_content"] == {"google": {"thought_signature": "c2ln"}}
    assert [c["choices"][0]["finish_reason"] for c in chunks if c["choices"]] == [
        None,
        None,
        "tool_calls",
    ]
    # usage exactly once, in the final choices: [] chunk, cumulative (the last one)
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"] == {
        "prompt_tokens": 10,
        "completion_tokens": 25,
        "total_tokens": 35,
        "completion_tokens_details": {"reasoning_tokens": 5},
    }
    assert all("usage" not in c for c in chunks[:-1])
    tr2, chunks2 = run(STREAM, include_usage=False)
    assert tr2.usage is not None and tr2.usage.completion_tokens == 25
    assert all(c["choices"] for c in chunks2)


def test_stream_without_finish_is_not_done_and_midstream_error() -> None:
    first = STREAM.split(b"\r\n\r\n")[0] + b"\r\n\r\n"
    tr, _ = run(first)
    assert not tr.done  # the relay reports an interrupted stream
    err = b'data: {"error": {"code": 503, "message": "The model is overloaded.", "status": "UNAVAILABLE"}}\r\n\r\n'
    tr, chunks = run(first + err)
    assert isinstance(tr.error, UpstreamError) and tr.error.http_status(False) == 502
    assert len([c for c in chunks if c["choices"]]) == 1


# ------------------------------------------------------------------ errors


def test_errors_map_to_the_table_and_hide_the_key() -> None:
    invalid_key = (
        b'{"error": {"code": 400, "message": "API key not valid. Please pass a valid API key. '
        + KEY.encode()
        + b'", "status": "INVALID_ARGUMENT", "details": [{"@type": "type.googleapis.com/google.rpc.ErrorInfo",'
        b' "reason": "API_KEY_INVALID", "domain": "googleapis.com"}]}}'
    )
    err = A.error(GEM, 400, invalid_key)
    assert (
        isinstance(err, UpstreamError)
        and err.http_status(False) == 502
        and err.code == "upstream_auth_failed"
    )
    assert KEY not in str(err)
    for status, gstatus in ((401, "UNAUTHENTICATED"), (403, "PERMISSION_DENIED")):
        raw = b'{"error":{"code":%d,"message":"denied","status":"%s"}}' % (status, gstatus.encode())
        e = A.error(GEM, status, raw)
        assert e.http_status(False) == 502 and e.code == "upstream_auth_failed"
    e = A.error(
        GEM,
        429,
        b'{"error":{"code":429,"message":"Resource has been exhausted","status":"RESOURCE_EXHAUSTED"}}',
    )
    assert isinstance(e, RateLimited) and e.http_status(False) == 429
    e = A.error(
        GEM,
        400,
        b'{"error":{"code":400,"message":"* GenerateContentRequest.contents: bad '
        + KEY.encode()
        + b'","status":"INVALID_ARGUMENT"}}',
    )
    assert (
        isinstance(e, UpstreamRejected)
        and e.http_status(False) == 400
        and e.code == "invalid_argument"
    )
    assert "GenerateContentRequest.contents" in str(e) and KEY not in str(e)
    e = A.error(
        GEM,
        404,
        b'{"error":{"code":404,"message":"models/nope is not found","status":"NOT_FOUND"}}',
    )
    assert e.http_status(False) == 404
    for status in (500, 503):
        e = A.error(
            GEM, status, b'{"error":{"code":%d,"message":"x","status":"INTERNAL"}}' % status
        )
        assert e.http_status(False) == 502 and e.code == "upstream_error"
    e = A.error(GEM, 502, b"<html><body>Bad gateway</body></html>")
    assert e.http_status(False) == 502 and "html" not in str(e)


# ------------------------------------------------------------------ embeddings, models


def test_embeddings_both_profiles() -> None:
    req = A.embeddings_request(
        Target(1, "gemini", "gemini", GEM.base_url, KEY, "text-embedding-004"),
        {"model": "e", "input": ["hello world", "x"], "dimensions": 4},
    )
    assert (
        req.url
        == "https://generativelanguage.googleapis.com/v1beta/models/text-embedding-004:batchEmbedContents"
    )
    assert req.body == (
        b'{"requests":[{"model":"models/text-embedding-004","content":{"parts":[{"text":"hello world"}]},'
        b'"outputDimensionality":4},{"model":"models/text-embedding-004","content":{"parts":[{"text":"x"}]},'
        b'"outputDimensionality":4}]}'
    )
    out, usage = A.embeddings_response(
        GEM, b'{"embeddings": [{"values": [0.1, 0.2]}, {"values": [0.3, 0.4]}]}'
    )
    assert [d["embedding"] for d in out["data"]] == [[0.1, 0.2], [0.3, 0.4]]
    assert [d["index"] for d in out["data"]] == [0, 1]
    # Gemini reports no usage: none is made up here (relay/embeddings.py counts the input)
    assert usage is None and "usage" not in out
    vreq = A.embeddings_request(VTX, {"model": "e", "input": "hi", "dimensions": 8})
    assert vreq.url.endswith("/publishers/google/models/gemini-2.5-flash:predict")
    assert body_of(vreq) == {
        "instances": [{"content": "hi"}],
        "parameters": {"outputDimensionality": 8},
    }
    out, usage = A.embeddings_response(
        VTX,
        b'{"predictions":[{"embeddings":{"values":[1.0],"statistics":{"token_count":3,"truncated":false}}}]}',
    )
    assert out["data"][0]["embedding"] == [1.0] and usage is not None and usage.prompt_tokens == 3
    with pytest.raises(InvalidRequest):
        A.embeddings_request(GEM, {"model": "e", "input": [[1, 2]]})
    with pytest.raises(UpstreamError):
        A.embeddings_response(GEM, b'{"embeddings": [{"nope": 1}]}')


def test_models_list() -> None:
    req = A.models_request(GEM)
    assert req is not None and req.method == "GET"
    assert req.url == "https://generativelanguage.googleapis.com/v1beta/models?pageSize=1000"
    assert req.headers == {"x-goog-api-key": KEY}
    raw = b'{"models":[{"name":"models/gemini-2.5-flash","version":"001"},{"name":"models/text-embedding-004"}]}'
    assert A.models_response(GEM, 200, raw) == ["gemini-2.5-flash", "text-embedding-004"]
    assert A.models_request(VTX) is None
    with pytest.raises(UpstreamError):
        A.models_response(
            GEM, 403, b'{"error":{"code":403,"message":"no","status":"PERMISSION_DENIED"}}'
        )


# ------------------------------------------------------------------ recordings

ROOT = recordings_dir()
CASSETTES = (
    sorted(p.relative_to(ROOT).as_posix() for p in ROOT.glob("TestGoogleCommon/*/*.yaml"))
    if ROOT
    else []
)
GEMINI_CASSETTES = [c for c in CASSETTES if "claude" not in c]
CLAUDE_CASSETTES = [c for c in CASSETTES if "claude" in c]
needs_recordings = pytest.mark.skipif(not CASSETTES, reason="provider recordings not available")


def cassette(name: str) -> list[Interaction]:
    assert ROOT is not None
    return load_cassette(ROOT / name)


def target_for(name: str, it: Interaction) -> Target:
    model = it.request_url.rsplit("/models/", 1)[1].split(":", 1)[0]
    if "vertex" in name:
        return Target(
            5,
            "gemini",
            "vertex",
            "https://us-east5-aiplatform.googleapis.com",
            "ya29.t",
            model,
            {
                "project": "fantasy-playground-472418",
                "location": "us-east5",
                "api_version": "v1beta1",
            },
        )
    return Target(5, "gemini", "gemini", "https://generativelanguage.googleapis.com", "k", model)


def recorded_answer(it: Interaction) -> dict[str, Any]:
    """Text, reasoning, calls, finish and usage read independently from the recording."""
    objs = (
        [orjson.loads(d) for _, d in decode(it.response_body, 4096)]
        if it.is_stream
        else [it.response_json()]
    )
    text, thoughts, calls, finish, usage = "", "", [], None, {}
    for obj in objs:
        usage = obj.get("usageMetadata") or usage
        cand = obj["candidates"][0]
        for part in cand.get("content", {}).get("parts", []):
            if "functionCall" in part:
                calls.append(
                    {
                        "name": part["functionCall"]["name"],
                        "args": part["functionCall"]["args"],
                        "sig": part.get("thoughtSignature"),
                        "id": part["functionCall"].get("id"),
                    }
                )
            elif part.get("thought"):
                thoughts += part["text"]
            elif "text" in part:
                text += part["text"]
        finish = cand.get("finishReason") or finish
    return {"text": text, "thoughts": thoughts, "calls": calls, "finish": finish, "usage": usage}


@needs_recordings
@pytest.mark.parametrize("name", GEMINI_CASSETTES)
def test_replay_responses(name: str) -> None:
    for it in cassette(name):
        assert it.response_status == 200
        target = target_for(name, it)
        want = recorded_answer(it)
        if it.is_stream:
            tr, chunks = run(it.response_body, target)
            assert tr.done and tr.error is None
            assert chunks[-1]["choices"] == []
            usage = chunks[-1]["usage"]
            text = "".join(
                c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"]
            )
            calls = [
                tc
                for c in chunks
                if c["choices"]
                for tc in c["choices"][0]["delta"].get("tool_calls", [])
            ]
            finish = [c["choices"][0]["finish_reason"] for c in chunks if c["choices"]][-1]
        else:
            out, _ = A.chat_response(target, it.response_body)
            msg = out["choices"][0]["message"]
            text, calls, usage = msg["content"] or "", msg.get("tool_calls", []), out["usage"]
            finish = out["choices"][0]["finish_reason"]
        assert text == want["text"]
        assert [
            {
                "name": c["function"]["name"],
                "args": orjson.loads(c["function"]["arguments"]),
                "sig": (c.get("extra_content") or {}).get("google", {}).get("thought_signature"),
            }
            for c in calls
        ] == [{k: c[k] for k in ("name", "args", "sig")} for c in want["calls"]]
        for c, w in zip(calls, want["calls"], strict=True):
            if w["id"]:
                assert c["id"] == w["id"]  # Gemini's own id is kept
        assert finish == (
            "tool_calls"
            if want["calls"]
            else {"STOP": "stop", "MAX_TOKENS": "length"}[want["finish"]]
        )
        u = want["usage"]
        thoughts = u.get("thoughtsTokenCount", 0)
        assert usage["prompt_tokens"] == u["promptTokenCount"]
        assert usage["completion_tokens"] == u.get("candidatesTokenCount", 0) + thoughts
        assert usage["total_tokens"] == u["totalTokenCount"]
        assert (usage.get("completion_tokens_details") or {}).get("reasoning_tokens", 0) == thoughts


def to_openai(req: dict[str, Any]) -> dict[str, Any]:
    """Rewrite a recorded generateContent request as the OpenAI request a client would send."""
    messages: list[dict[str, Any]] = []
    system = req.get("systemInstruction")
    if system:
        messages.append({"role": "system", "content": "".join(p["text"] for p in system["parts"])})
    n = 0
    ids: list[str] = []
    for content in req["contents"]:
        parts = content["parts"]
        if content["role"] == "model":
            msg: dict[str, Any] = {"role": "assistant", "content": None}
            texts = [p["text"] for p in parts if "text" in p]
            if texts:
                msg["content"] = "".join(texts)
            calls = []
            for p in parts:
                if "functionCall" in p:
                    fc = p["functionCall"]
                    n += 1
                    call_id = fc.get("id") or f"call_{n}"
                    ids.append(call_id)
                    call: dict[str, Any] = {
                        "id": call_id,
                        "type": "function",
                        "function": {
                            "name": fc["name"],
                            "arguments": orjson.dumps(fc["args"]).decode(),
                        },
                    }
                    if "thoughtSignature" in p:
                        call["extra_content"] = {
                            "google": {"thought_signature": p["thoughtSignature"]}
                        }
                    calls.append(call)
            if calls:
                msg["tool_calls"] = calls
            messages.append(msg)
            continue
        for p in parts:
            if "functionResponse" in p:
                fr = p["functionResponse"]
                messages.append(
                    {
                        "role": "tool",
                        "tool_call_id": fr.get("id") or ids.pop(0),
                        "content": fr["response"]["result"],
                    }
                )
            else:
                messages.append({"role": "user", "content": p["text"]})
    body: dict[str, Any] = {
        "model": "g",
        "messages": messages,
        "max_tokens": req["generationConfig"]["maxOutputTokens"],
    }
    if "tools" in req:
        body["tools"] = [
            {
                "type": "function",
                "function": {
                    "name": d["name"],
                    "description": d["description"],
                    "parameters": lower(d["parameters"]),
                },
            }
            for d in req["tools"][0]["functionDeclarations"]
        ]
        body["tool_choice"] = req["toolConfig"]["functionCallingConfig"]["mode"].lower()
    return body


def lower(schema: Any) -> Any:
    if isinstance(schema, dict):
        return {k: v.lower() if k == "type" else lower(v) for k, v in schema.items()}
    return schema


@needs_recordings
@pytest.mark.parametrize("name", GEMINI_CASSETTES)
def test_recorded_requests_match_ours(name: str) -> None:
    for it in cassette(name):
        recorded = it.request_json()
        target = target_for(name, it)
        req = A.chat_request(target, to_openai(recorded), it.is_stream)
        assert req.url == it.request_url
        assert body_of(req) == recorded


# ------------------------------------------------------------------ Claude on Vertex

CLAUDE = AnthropicAdaptor()
CLAUDE_TARGET = Target(
    6,
    "anthropic",
    "vertex",
    "https://us-east5-aiplatform.googleapis.com",
    "ya29.t",
    "claude-3-7-sonnet@20250219",
    {"project": "fantasy-playground-472418", "location": "us-east5"},
)


def claude_to_openai(req: dict[str, Any]) -> dict[str, Any]:
    messages: list[dict[str, Any]] = [
        {"role": "system", "content": "".join(b["text"] for b in req["system"])}
    ]
    for msg in req["messages"]:
        blocks = msg["content"]
        if msg["role"] == "assistant":
            out: dict[str, Any] = {
                "role": "assistant",
                "content": "".join(b["text"] for b in blocks if b["type"] == "text") or None,
            }
            uses = [b for b in blocks if b["type"] == "tool_use"]
            if uses:
                out["tool_calls"] = [
                    {
                        "id": b["id"],
                        "type": "function",
                        "function": {
                            "name": b["name"],
                            "arguments": orjson.dumps(b["input"]).decode(),
                        },
                    }
                    for b in uses
                ]
            messages.append(out)
            continue
        for b in blocks:
            if b["type"] == "tool_result":
                messages.append(
                    {
                        "role": "tool",
                        "tool_call_id": b["tool_use_id"],
                        "content": "".join(c["text"] for c in b["content"]),
                    }
                )
            else:
                messages.append({"role": "user", "content": b["text"]})
    body: dict[str, Any] = {"model": "c", "messages": messages, "max_tokens": req["max_tokens"]}
    if "tools" in req:
        body["tools"] = [
            {
                "type": "function",
                "function": {
                    "name": t["name"],
                    "description": t["description"],
                    "parameters": t["input_schema"],
                },
            }
            for t in req["tools"]
        ]
        body["tool_choice"] = "auto"
    return body


def claude_normalise(req: dict[str, Any]) -> dict[str, Any]:
    def blocks(content: Any) -> Any:
        if isinstance(content, str):
            return [{"type": "text", "text": content}]
        return [
            {**b, "content": blocks(b["content"])} if b["type"] == "tool_result" else b
            for b in content
        ]

    out = dict(req)
    out["system"] = blocks(out["system"])
    out["messages"] = [
        {"role": m["role"], "content": blocks(m["content"])} for m in req["messages"]
    ]
    if "tool_choice" in out:
        out["tool_choice"] = {"type": out["tool_choice"]["type"]}
    return out


@needs_recordings
@pytest.mark.parametrize("name", CLAUDE_CASSETTES)
def test_vertex_claude_recorded_requests_and_responses(name: str) -> None:
    for it in cassette(name):
        recorded = it.request_json()
        req = CLAUDE.chat_request(CLAUDE_TARGET, claude_to_openai(recorded), it.is_stream)
        assert req.url == it.request_url
        assert req.headers["authorization"] == "Bearer ya29.t" and "x-api-key" not in req.headers
        ours = body_of(req)
        assert "model" not in ours and ours["anthropic_version"] == "vertex-2023-10-16"
        assert claude_normalise(ours) == claude_normalise(recorded)
        if it.is_stream:
            tr = CLAUDE.chat_stream(CLAUDE_TARGET, True)
            chunks = [orjson.loads(p) for ev, d in decode(it.response_body) for p in tr.feed(ev, d)]
            chunks += [orjson.loads(p) for p in tr.finish()]
            assert tr.done and tr.error is None and tr.usage is not None
            text = "".join(
                c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"]
            )
            want = "".join(
                orjson.loads(d)["delta"]["text"]
                for ev, d in decode(it.response_body, 4096)
                if ev == "content_block_delta" and orjson.loads(d)["delta"]["type"] == "text_delta"
            )
        else:
            out, usage = CLAUDE.chat_response(CLAUDE_TARGET, it.response_body)
            text = out["choices"][0]["message"]["content"] or ""
            want = "".join(b["text"] for b in it.response_json()["content"] if b["type"] == "text")
            assert (
                usage is not None
                and usage.completion_tokens == it.response_json()["usage"]["output_tokens"]
            )
        assert text == want
