"""Every recorded Google/Vertex interaction (TestGoogleCommon) replayed through the real
gateway: the replay server (``test_replay_recordings.ReplayServer``) answers with the
recorded response, exactly as recorded; the official openai SDK is the client. What
it receives must carry the recording's text, tool calls, finish reason and usage, and
the gateway must have called the recorded URL."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import openai
import pytest
from conftest import Env
from test_replay_recordings import ROOT, ReplayServer, cassettes

from recordings import Interaction, load_cassette
from relaygate.relay.sse import SSEDecoder

pytestmark = pytest.mark.skipif(ROOT is None, reason="provider recordings not available")

GOOGLE = cassettes("TestGoogleCommon")
VERTEX_CONFIG = {
    "project": "fantasy-playground-472418",
    "location": "us-east5",
    "api_version": "v1beta1",
}


def _model_of(it: Interaction) -> str:
    return it.request_url.rsplit("/models/", 1)[1].split(":", 1)[0]


@pytest.fixture(scope="module")
def google_replay(env: Env) -> Iterator[ReplayServer]:
    srv = ReplayServer().start()
    base = f"http://127.0.0.1:{srv.port}"
    gemini = sorted(
        {_model_of(it) for p in GOOGLE if "vertex" not in str(p) for it in load_cassette(p)}
    )
    vertex = sorted(
        {_model_of(it) for p in GOOGLE if "vertex-gemini" in str(p) for it in load_cassette(p)}
    )
    env.gw.create_channel(
        name="replay-gemini",
        provider="gemini",
        base_url=base,
        keys=["AIza-replay"],
        models=[f"rg/{m}" for m in gemini],
        model_mapping={f"rg/{m}": m for m in gemini},
    )
    env.gw.create_channel(
        name="replay-vertex",
        provider="gemini",
        profile="vertex",
        base_url=base,
        keys=["ya29.replay-token"],
        models=[f"rv/{m}" for m in vertex],
        model_mapping={f"rv/{m}": m for m in vertex},
        config=VERTEX_CONFIG,
    )
    env.gw.create_channel(
        name="replay-vertex-claude",
        provider="anthropic",
        profile="vertex",
        base_url=base,
        keys=["ya29.replay-token"],
        models=["rv/claude"],
        model_mapping={"rv/claude": "claude-3-7-sonnet@20250219"},
        config={"project": "fantasy-playground-472418", "location": "us-east5"},
    )
    yield srv
    srv.stop()


def _events(it: Interaction) -> list[tuple[str | None, Any]]:
    dec = SSEDecoder()
    events = dec.feed(it.response_body) + dec.flush()
    return [(name, json.loads(data)) for name, data in events]


def _gemini_expect(it: Interaction) -> dict[str, Any]:
    objs = [o for _, o in _events(it)] if it.is_stream else [it.response_json()]
    text, args, finish, usage = "", [], None, {}
    for obj in objs:
        usage = obj.get("usageMetadata") or usage
        cand = obj["candidates"][0]
        for part in cand.get("content", {}).get("parts", []):
            if "functionCall" in part:
                args.append(part["functionCall"]["args"])
            elif "text" in part and not part.get("thought"):
                text += part["text"]
        finish = cand.get("finishReason") or finish
    return {
        "text": text,
        "args": args,
        "finish": "tool_calls" if args else {"STOP": "stop", "MAX_TOKENS": "length"}[finish],
        "prompt": usage["promptTokenCount"],
        "completion": usage.get("candidatesTokenCount", 0) + usage.get("thoughtsTokenCount", 0),
        "reasoning": usage.get("thoughtsTokenCount", 0),
    }


def _claude_expect(it: Interaction) -> dict[str, Any]:
    stops = {"end_turn": "stop", "tool_use": "tool_calls", "max_tokens": "length"}
    text, args, finish, out_tokens = "", [], None, 0
    if it.is_stream:
        partial: dict[int, str] = {}
        for _, obj in _events(it):
            t = obj.get("type")
            if t == "content_block_start" and obj["content_block"]["type"] == "tool_use":
                partial[obj["index"]] = ""
            elif t == "content_block_delta":
                d = obj["delta"]
                if d["type"] == "text_delta":
                    text += d["text"]
                elif d["type"] == "input_json_delta":
                    partial[obj["index"]] += d["partial_json"]
            elif t == "message_delta":
                finish, out_tokens = (
                    stops[obj["delta"]["stop_reason"]],
                    obj["usage"]["output_tokens"],
                )
        args = [json.loads(v or "{}") for _, v in sorted(partial.items())]
    else:
        obj = it.response_json()
        for block in obj["content"]:
            if block["type"] == "text":
                text += block["text"]
            elif block["type"] == "tool_use":
                args.append(block["input"])
        finish, out_tokens = stops[obj["stop_reason"]], obj["usage"]["output_tokens"]
    return {"text": text, "args": args, "finish": finish, "completion": out_tokens}


def _tools_of(req: dict[str, Any]) -> list[Any]:
    if "tools" not in req:
        return []
    if "functionDeclarations" in req["tools"][0]:
        decls = req["tools"][0]["functionDeclarations"]
        return [
            {
                "type": "function",
                "function": {
                    "name": d["name"],
                    "description": d.get("description", ""),
                    "parameters": _lower(d.get("parameters") or {"type": "object"}),
                },
            }
            for d in decls
        ]
    return [
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


def _lower(schema: Any) -> Any:
    if isinstance(schema, dict):
        return {k: v.lower() if k == "type" else _lower(v) for k, v in schema.items()}
    return schema


def _run(env: Env, model: str, it: Interaction) -> dict[str, Any]:
    c = openai.OpenAI(
        api_key=env.key, base_url=env.gw.base_url, max_retries=0, _strict_response_validation=True
    )
    kwargs: dict[str, Any] = {}
    tools = _tools_of(it.request_json())
    if tools:
        kwargs["tools"] = tools
    messages: Any = [{"role": "user", "content": "replay"}]
    text, reasoning, args, finish, usage, usage_chunks = "", "", {}, None, None, 0
    if it.is_stream:
        for chunk in c.chat.completions.create(
            model=model,
            messages=messages,
            stream=True,
            stream_options={"include_usage": True},
            **kwargs,
        ):
            if chunk.usage:
                usage, usage_chunks = chunk.usage, usage_chunks + 1
                assert chunk.choices == []
            for ch in chunk.choices:
                text += ch.delta.content or ""
                reasoning += (ch.delta.model_extra or {}).get("reasoning_content") or ""
                for tc in ch.delta.tool_calls or []:
                    args[tc.index] = args.get(tc.index, "") + (
                        (tc.function.arguments if tc.function else "") or ""
                    )
                finish = ch.finish_reason or finish
    else:
        r = c.chat.completions.create(model=model, messages=messages, **kwargs)
        msg = r.choices[0].message
        text = msg.content or ""
        for i, tc in enumerate(msg.tool_calls or []):
            args[i] = tc.function.arguments  # type: ignore[union-attr]
        finish, usage, usage_chunks = r.choices[0].finish_reason, r.usage, 1
    return {
        "text": text,
        "args": [json.loads(v) for _, v in sorted(args.items())],
        "finish": finish,
        "usage": usage,
        "usage_chunks": usage_chunks,
    }


@pytest.mark.parametrize("path", GOOGLE, ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_google_recordings(env: Env, google_replay: ReplayServer, path: Path) -> None:
    claude = "claude" in path.parent.name
    vertex = path.parent.name.startswith("vertex")
    for it in load_cassette(path):
        assert it.response_status == 200
        model = "rv/claude" if claude else ("rv/" if vertex else "rg/") + _model_of(it)
        google_replay.queue = [it]
        got = _run(env, model, it)
        want = _claude_expect(it) if claude else _gemini_expect(it)
        assert got["text"] == want["text"]
        assert got["args"] == want["args"]
        assert got["finish"] == want["finish"]
        u = got["usage"]
        assert u is not None and got["usage_chunks"] == 1
        assert u.completion_tokens == want["completion"]
        assert u.total_tokens == u.prompt_tokens + u.completion_tokens
        if not claude:
            assert u.prompt_tokens == want["prompt"]
            details = u.completion_tokens_details
            assert ((details.reasoning_tokens or 0) if details else 0) == want["reasoning"]
        # the gateway called the recorded URL with the channel's credential
        path_qs, headers, body = google_replay.seen[-1]
        recorded = urlsplit(it.request_url)
        assert path_qs == recorded.path + (f"?{recorded.query}" if recorded.query else "")
        if vertex:
            assert headers.get("Authorization") == "Bearer ya29.replay-token"
        else:
            assert headers.get("x-goog-api-key") == "AIza-replay"
        if claude:
            sent = json.loads(body)
            assert sent["anthropic_version"] == "vertex-2023-10-16" and "model" not in sent
