"""Real recorded provider traffic as the upstream; the official openai SDK as the client.

A replay server answers each request with the next recorded response (status,
content type and body exactly as recorded). What the SDK receives must carry the
same text, tool calls, finish reason and usage as the recording.
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openai
import pytest
from aiohttp import web
from conftest import Env

from recordings import Interaction, load_cassette, recordings_dir

ROOT = recordings_dir()
pytestmark = pytest.mark.skipif(ROOT is None, reason="provider recordings not available")


class ReplayServer:
    def __init__(self) -> None:
        self.queue: list[Interaction] = []
        self.seen: list[tuple[str, dict[str, str], bytes]] = []
        self.loop = asyncio.new_event_loop()
        self.port = 0
        self._started = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        runner = self._runner = web.AppRunner(app)
        self.loop.run_until_complete(runner.setup())
        site = web.TCPSite(runner, "127.0.0.1", 0)
        self.loop.run_until_complete(site.start())
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self._started.set()
        self.loop.run_forever()

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        self.seen.append((request.path_qs, dict(request.headers), await request.read()))
        it = self.queue.pop(0)
        ctype = it.response_headers.get("content-type", "application/json")
        resp = web.StreamResponse(status=it.response_status, headers={"Content-Type": ctype})
        await resp.prepare(request)
        body = it.response_body
        for i in range(0, len(body), 97):  # arrive in network-sized pieces
            await resp.write(body[i : i + 97])
        await resp.write_eof()
        return resp

    def start(self) -> ReplayServer:
        self._thread.start()
        self._started.wait(10)
        return self

    def stop(self) -> None:
        asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)


@pytest.fixture(scope="module")
def replay(env: Env) -> Iterator[ReplayServer]:
    srv = ReplayServer().start()
    base = f"http://127.0.0.1:{srv.port}"
    env.gw.create_channel(
        name="replay-openai",
        provider="openai_compat",
        profile="openai",
        base_url=base + "/v1",
        keys=["k"],
        models=["replay-openai"],
    )
    env.gw.create_channel(
        name="replay-azure",
        provider="openai_compat",
        profile="azure_v1",
        base_url=base,
        keys=["k"],
        models=["replay-azure"],
    )
    env.gw.create_channel(
        name="replay-anthropic",
        provider="anthropic",
        base_url=base,
        keys=["k"],
        models=["replay-anthropic"],
    )
    yield srv
    srv.stop()


def cassettes(*folders: str) -> list[Path]:
    if ROOT is None:
        return []
    out: list[Path] = []
    for f in folders:
        out.extend(sorted((ROOT / f).glob("*/*.yaml")))
    return out


def _reasoning_of(d: dict[str, Any]) -> str:
    """Reasoning text under whatever name the upstream uses."""
    for key in ("reasoning_content", "reasoning"):
        if isinstance(d.get(key), str) and d[key]:
            return str(d[key])
    return "".join(
        x.get("text") or x.get("summary") or ""
        for x in d.get("reasoning_details") or []
        if isinstance(x, dict)
    )


def _billed(usage: dict[str, Any]) -> dict[str, Any]:
    """OpenAI accounting: reasoning counted outside completion_tokens (xAI) is added."""
    reasoning = (usage.get("completion_tokens_details") or {}).get("reasoning_tokens") or 0
    completion = usage["completion_tokens"]
    if reasoning and usage["total_tokens"] == usage["prompt_tokens"] + completion + reasoning:
        completion += reasoning
    return {**usage, "completion_tokens": completion}


def _openai_expect(it: Interaction) -> dict[str, Any]:
    """What the recording says a client should see (parsed here independently)."""
    text, reasoning, args, finish, usage = "", "", {}, None, None
    if it.is_stream:
        for line in it.response_body.decode().splitlines():
            if not line.startswith("data:") or line.strip() == "data: [DONE]":
                continue
            obj = json.loads(line[5:])
            if obj.get("usage"):
                usage = obj["usage"]
            for ch in obj.get("choices") or []:
                d = ch.get("delta") or {}
                text += d.get("content") or ""
                reasoning += _reasoning_of(d)
                for tc in d.get("tool_calls") or []:
                    args.setdefault(tc["index"], "")
                    args[tc["index"]] += (tc.get("function") or {}).get("arguments") or ""
                finish = ch.get("finish_reason") or finish
    else:
        obj = it.response_json()
        msg = obj["choices"][0]["message"]
        text = msg.get("content") or ""
        reasoning = _reasoning_of(msg)
        for i, tc in enumerate(msg.get("tool_calls") or []):
            args[i] = tc["function"]["arguments"]
        finish, usage = obj["choices"][0]["finish_reason"], obj.get("usage")
    return {
        "text": text,
        "reasoning": reasoning,
        "args": args,
        "finish": finish,
        "usage": _billed(usage) if usage else None,
    }


def _anthropic_expect(it: Interaction) -> dict[str, Any]:
    text, args, finish, out_tokens = "", {}, None, None
    stops = {"end_turn": "stop", "tool_use": "tool_calls", "max_tokens": "length"}
    if it.is_stream:
        tool_idx: dict[int, int] = {}
        for line in it.response_body.decode().splitlines():
            if not line.startswith("data:"):
                continue
            obj = json.loads(line[5:])
            t = obj.get("type")
            if t == "content_block_start" and obj["content_block"]["type"] == "tool_use":
                tool_idx[obj["index"]] = len(tool_idx)
                args[tool_idx[obj["index"]]] = ""
            elif t == "content_block_delta":
                d = obj["delta"]
                if d["type"] == "text_delta":
                    text += d["text"]
                elif d["type"] == "input_json_delta":
                    args[tool_idx[obj["index"]]] += d["partial_json"]
            elif t == "message_delta":
                finish = stops.get(obj["delta"]["stop_reason"])
                out_tokens = obj["usage"]["output_tokens"]
    else:
        obj = it.response_json()
        for block in obj["content"]:
            if block["type"] == "text":
                text += block["text"]
            elif block["type"] == "tool_use":
                args[len(args)] = json.dumps(block["input"])
        finish, out_tokens = stops.get(obj["stop_reason"]), obj["usage"]["output_tokens"]
    return {"text": text, "args": args, "finish": finish, "out_tokens": out_tokens}


def _run_sdk(env: Env, model: str, it: Interaction) -> dict[str, Any]:
    req = it.request_json()
    c = openai.OpenAI(
        api_key=env.key, base_url=env.gw.base_url, max_retries=0, _strict_response_validation=True
    )
    messages = [{"role": "user", "content": "replay"}]
    tools = req.get("tools")
    kwargs: dict[str, Any] = {}
    if tools:
        kwargs["tools"] = [
            t
            if "function" in t
            else {
                "type": "function",
                "function": {
                    "name": t["name"],
                    "description": t.get("description", ""),
                    "parameters": t.get("input_schema") or {"type": "object"},
                },
            }
            for t in tools
        ]
    text, reasoning, args, finish, usage = "", "", {}, None, None
    usage_chunks, summed = 0, 0  # as clients that add usage over chunks do
    if it.is_stream:
        for chunk in c.chat.completions.create(
            model=model,
            messages=messages,
            stream=True,  # type: ignore[arg-type]
            stream_options={"include_usage": True},
            **kwargs,
        ):
            if chunk.usage:
                usage = chunk.usage
                usage_chunks += 1
                summed += chunk.usage.completion_tokens
                assert chunk.choices == []  # usage only in the final choices: [] chunk
            for ch in chunk.choices:
                text += ch.delta.content or ""
                reasoning += (ch.delta.model_extra or {}).get("reasoning_content") or ""
                for tc in ch.delta.tool_calls or []:
                    args.setdefault(tc.index, "")
                    args[tc.index] += (tc.function.arguments if tc.function else None) or ""
                finish = ch.finish_reason or finish
    else:
        r = c.chat.completions.create(model=model, messages=messages, **kwargs)  # type: ignore[arg-type]
        msg = r.choices[0].message
        text = msg.content or ""
        reasoning = (msg.model_extra or {}).get("reasoning_content") or ""
        for i, tc in enumerate(msg.tool_calls or []):
            args[i] = tc.function.arguments  # type: ignore[union-attr]
        finish, usage = r.choices[0].finish_reason, r.usage
        usage_chunks, summed = 1, usage.completion_tokens if usage else 0
    return {
        "text": text,
        "reasoning": reasoning,
        "args": args,
        "finish": finish,
        "usage": usage,
        "usage_chunks": usage_chunks,
        "summed_completion": summed,
    }


OPENAI_FAMILY = cassettes(
    "TestOpenAICommon", "TestOpenAICompatibleCommon", "TestAzureCommon", "TestOpenRouterCommon"
)


@pytest.mark.parametrize(
    "path", OPENAI_FAMILY, ids=lambda p: f"{p.parent.parent.name}/{p.parent.name}/{p.stem}"
)
def test_openai_family_recordings(env: Env, replay: ReplayServer, path: Path) -> None:
    model = "replay-azure" if "Azure" in str(path) else "replay-openai"
    for it in load_cassette(path):
        if it.response_status != 200 or not it.request_url.endswith("/chat/completions"):
            continue
        replay.queue = [it]
        got = _run_sdk(env, model, it)
        want = _openai_expect(it)
        assert got["text"] == want["text"]
        assert got["finish"] == want["finish"]
        assert {k: json.loads(v) for k, v in got["args"].items()} == {
            k: json.loads(v or "{}") for k, v in want["args"].items()
        }
        assert got["reasoning"] == want["reasoning"]  # whatever the upstream called it
        if want["usage"]:
            assert got["usage"] is not None
            assert got["usage"].completion_tokens == want["usage"]["completion_tokens"]
            assert got["usage"].prompt_tokens == want["usage"]["prompt_tokens"]
            u = got["usage"]
            assert u.total_tokens == u.prompt_tokens + u.completion_tokens
            # usage exactly once: summed over every chunk it equals the usage
            assert got["usage_chunks"] == 1
            assert got["summed_completion"] == want["usage"]["completion_tokens"]


ANTHROPIC = cassettes("TestAnthropicCommon", "TestAnthropicCommonWithCacheControl")


@pytest.mark.parametrize("path", ANTHROPIC, ids=lambda p: f"{p.parent.parent.name}/{p.stem}")
def test_anthropic_recordings(env: Env, replay: ReplayServer, path: Path) -> None:
    for it in load_cassette(path):
        if it.response_status != 200:
            continue
        replay.queue = [it]
        got = _run_sdk(env, "replay-anthropic", it)
        want = _anthropic_expect(it)
        assert got["text"] == want["text"]
        assert got["finish"] == want["finish"]
        assert {k: json.loads(v) for k, v in got["args"].items()} == {
            k: json.loads(v or "{}") for k, v in want["args"].items()
        }
        assert got["usage"] is not None and got["usage"].completion_tokens == want["out_tokens"]
        path_qs, headers, _ = replay.seen[-1]
        assert path_qs == "/v1/messages" and headers.get("x-api-key") == "k"
