"""Every OpenAI-compatible vendor end to end: one real gateway, one channel per vendor, each
on its own emulator (``emulator/vendors.py``), the official openai SDK as the client.

Checked per vendor: chat, stream with include_usage (text once, one usage chunk, the
emulator's usage in OpenAI accounting), tool calls, reasoning_content, embeddings (or 501),
the vendor's errors mapped to the gateway's table (HTTP-200 errors too), the parameter rules,
and the cost in the request log = usage × price.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openai
import pytest
from gateway import Gateway

from relaygate.emulator import EmulatorServer
from relaygate.emulator.knobs import DEFAULT_REASONING, DEFAULT_REPLY
from relaygate.providers.base import normalize_usage

IN_PRICE, OUT_PRICE = 2, 8  # CNY per 1M tokens: 2 and 8 units per token

#: vendor -> (emulator, profile, chat model, reasoning model, embeddings model)
VENDORS: dict[str, tuple[str, str, str, str | None, str | None]] = {
    "qwen": ("qwen", "qwen", "qwen-plus", "qwen3-32b", "text-embedding-v3"),
    "glm": ("glm", "glm", "glm-4-flash", "glm-4.7-flash", "embedding-3"),
    "glm_jwt": ("glm", "glm_jwt", "glm-4-flash", None, "embedding-3"),
    "qianfan": ("qianfan", "qianfan", "ernie-4.0-8k", "deepseek-r1", "embedding-v1"),
    "spark": ("spark", "spark", "generalv3.5", None, None),
    "moonshot": ("moonshot", "moonshot", "moonshot-v1-8k", "kimi-k2-thinking", None),
    "deepseek": ("deepseek", "deepseek", "deepseek-chat", "deepseek-reasoner", None),
    "hunyuan": (
        "hunyuan",
        "hunyuan",
        "hunyuan-turbos-latest",
        "hunyuan-t1-latest",
        "hunyuan-embedding",
    ),
    "doubao": (
        "doubao",
        "doubao",
        "doubao-1-5-pro-32k-250115",
        "doubao-seed-1-6-250615",
        "doubao-embedding",
    ),
    "minimax": ("minimax", "minimax", "MiniMax-Text-01", "MiniMax-M2", None),
    "xai": ("xai", "xai", "grok-4-fast", None, None),
    "groq": ("groq", "groq", "moonshotai/kimi-k2-instruct-0905", "openai/gpt-oss-20b", None),
    "openrouter": (
        "openrouter",
        "openrouter",
        "openai/gpt-4o-mini",
        "z-ai/glm-5-turbo",
        "openai/text-embedding-3-small",
    ),
    "ollama": ("ollama", "ollama", "llama3.2", "qwen3:8b", "nomic-embed-text"),
    "llamacpp": ("llamacpp", "llamacpp", "openai/gpt-oss-20b", "openai/gpt-oss-20b", "nomic"),
    "generic": ("openai", "generic", "gpt-4o-mini", None, "text-embedding-3-small"),
}
NAMES = list(VENDORS)
GLM_KEY = "4f2a9c.s3cr3t-part"
APPID = "app-7"
#: (public suffix, upstream trigger model, HTTP status, error code) for every vendor
ERRORS = [
    ("e401", "error-401", 502, "upstream_auth_failed"),
    ("e429", "error-429", 429, "rate_limit_exceeded"),
    ("e400", "error-400", 400, None),
    ("e500", "error-500", 502, "upstream_error"),
]
#: errors inside HTTP 200 bodies
IN_BODY = {
    "minimax": [
        ("b1004", "error-200-1004", 502, "upstream_auth_failed"),
        ("b2049", "error-200-2049", 502, "upstream_auth_failed"),
        ("b1002", "error-200-1002", 429, "rate_limit_exceeded"),
        ("b1008", "error-200-1008", 502, "upstream_error"),
        ("b1026", "error-200-1026", 400, "content_policy_violation"),
    ],
    "spark": [
        ("b11200", "error-200-11200", 502, "upstream_auth_failed"),
        ("b11202", "error-200-11202", 429, "rate_limit_exceeded"),
        ("b10013", "error-200-10013", 400, "content_policy_violation"),
        ("b10012", "error-200-10012", 502, "upstream_error"),
    ],
}
TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "weather",
            "description": "Weather of a place",
            "parameters": {
                "type": "object",
                "properties": {"location": {"type": "string"}},
                "required": ["location"],
            },
        },
    }
]


class World:
    def __init__(self, gw: Gateway, emus: dict[str, EmulatorServer], key: str) -> None:
        self.gw = gw
        self.emus = emus
        self.client = openai.OpenAI(api_key=key, base_url=gw.base_url, max_retries=0)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    emus: dict[str, EmulatorServer] = {}
    gw = Gateway(Path(tmp_path_factory.mktemp("vendors")))
    try:
        for name, (emu, *_rest) in VENDORS.items():
            srv = EmulatorServer(emu)
            if name == "glm_jwt":
                srv.impl.jwt_secret = GLM_KEY  # type: ignore[attr-defined]
            if name == "qianfan":
                srv.impl.appid = APPID  # type: ignore[attr-defined]
            if name == "spark":
                srv.impl.sse_eol = b"\r\n\r\n"  # type: ignore[attr-defined]
            emus[name] = srv.start()
        gw.start()
        for name, (_emu, profile, chat, think, embed) in VENDORS.items():
            key = GLM_KEY if name == "glm_jwt" else f"sk-{name}-upstream"
            config = {"appid": APPID} if name == "qianfan" else {}
            mapping = {f"{name}-chat": chat}
            if think:
                mapping[f"{name}-think"] = think
            if embed:
                mapping[f"{name}-embed"] = embed
            if name == "moonshot":
                mapping["moonshot-k25"] = "kimi-k2.5"
            common = {
                "provider": "openai_compat",
                "profile": profile,
                "keys": [key],
                "config": config,
            }
            gw.create_channel(
                name=name,
                base_url=emus[name].base_url,
                models=list(mapping),
                model_mapping=mapping,
                **common,
            )
            # errors on channels of their own: a channel that fails is not the one tested above
            # (and one per mode: an auth failure disables its channel)
            for suffix, upstream, *_ in ERRORS + IN_BODY.get(name, []):
                for public in (f"{name}-{suffix}", f"{name}-{suffix}-s"):
                    gw.create_channel(
                        name=public,
                        base_url=emus[name].base_url,
                        models=[public],
                        model_mapping={public: upstream},
                        **common,
                    )
            gw.admin(
                "POST",
                "/prices",
                {
                    "model": f"{name}-chat",
                    "currency": "CNY",
                    "per": "1m",
                    "input": str(IN_PRICE),
                    "output": str(OUT_PRICE),
                    "force": True,
                },
            )
        uid = gw.create_user("vendors", balance="100")
        yield World(gw, emus, gw.create_key(uid, name="vendors"))
    finally:
        gw.stop()
        for srv in emus.values():
            srv.stop()


def _expected(world: World, name: str) -> dict[str, Any] | None:
    """The usage the emulator last sent, in OpenAI accounting (None: emulator keeps none)."""
    raw = getattr(world.emus[name].impl, "last_usage", None)
    return normalize_usage(raw) if raw else None


def _same_usage(got: Any, want: dict[str, Any] | None) -> None:
    assert got is not None
    assert got.total_tokens == got.prompt_tokens + got.completion_tokens
    if want is not None:
        assert (got.prompt_tokens, got.completion_tokens) == (
            want["prompt_tokens"],
            want["completion_tokens"],
        )


def _log_row(gw: Gateway, request_id: str) -> dict[str, Any]:
    deadline = time.monotonic() + 5
    while True:
        rows = gw.admin("GET", f"/logs?request_id={request_id}")["data"]
        if rows or time.monotonic() > deadline:
            assert rows, f"no request log row for {request_id}"
            return rows[0]  # type: ignore[no-any-return]
        time.sleep(0.1)


@pytest.mark.parametrize("name", NAMES)
def test_chat_non_stream_usage_and_billed_cost(world: World, name: str) -> None:
    r = world.client.chat.completions.create(
        model=f"{name}-chat", messages=[{"role": "user", "content": "Say hi"}], max_tokens=200
    )
    assert r.object == "chat.completion" and r.id and r.model
    assert r.choices[0].message.content is not None
    assert r.choices[0].message.content.endswith(DEFAULT_REPLY)
    assert r.choices[0].finish_reason == "stop"
    _same_usage(r.usage, _expected(world, name))
    assert r.usage is not None
    row = _log_row(world.gw, r._request_id or "")
    assert (row["prompt_tokens"], row["completion_tokens"]) == (
        r.usage.prompt_tokens,
        r.usage.completion_tokens,
    )
    assert (
        row["cost_units"]
        == r.usage.prompt_tokens * IN_PRICE + r.usage.completion_tokens * OUT_PRICE
    )
    assert row["cost_units"] > 0


@pytest.mark.parametrize("name", NAMES)
def test_stream_text_once_and_one_usage_chunk(world: World, name: str) -> None:
    stream = world.client.chat.completions.create(
        model=f"{name}-chat",
        messages=[{"role": "user", "content": "Say hi"}],
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    assert all(c.object == "chat.completion.chunk" and c.id and c.model for c in chunks)
    text = "".join(ch.delta.content or "" for c in chunks for ch in c.choices)
    assert text.endswith(DEFAULT_REPLY) and text.count(DEFAULT_REPLY) == 1
    finishes = [ch.finish_reason for c in chunks for ch in c.choices if ch.finish_reason]
    assert finishes == ["stop"]
    carrying = [c for c in chunks if c.usage is not None]
    assert len(carrying) == 1 and carrying[0] is chunks[-1] and chunks[-1].choices == []
    _same_usage(carrying[0].usage, _expected(world, name))
    quiet = list(
        world.client.chat.completions.create(
            model=f"{name}-chat", messages=[{"role": "user", "content": "Say hi"}], stream=True
        )
    )
    assert not any(c.usage for c in quiet)


@pytest.mark.parametrize("name", NAMES)
def test_tool_calls(world: World, name: str) -> None:
    msgs: Any = [{"role": "user", "content": "Weather in Florence?"}]
    r = world.client.chat.completions.create(model=f"{name}-chat", messages=msgs, tools=TOOLS)
    [call] = r.choices[0].message.tool_calls or []
    assert call.id and call.type == "function" and call.function.name == "weather"
    assert json.loads(call.function.arguments) == {"location": "Florence"}
    assert r.choices[0].finish_reason == "tool_calls"
    calls: dict[int, dict[str, str]] = {}
    finish = None
    for c in world.client.chat.completions.create(
        model=f"{name}-chat", messages=msgs, tools=TOOLS, stream=True
    ):
        for ch in c.choices:
            finish = ch.finish_reason or finish
            for tc in ch.delta.tool_calls or ():
                slot = calls.setdefault(tc.index, {"id": "", "name": "", "args": ""})
                slot["id"] += tc.id or ""
                if tc.function is not None:
                    slot["name"] += tc.function.name or ""
                    slot["args"] += tc.function.arguments or ""
    assert list(calls) == [0] and calls[0]["id"] and calls[0]["name"] == "weather"
    assert json.loads(calls[0]["args"]) == {"location": "Florence"}
    assert finish == "tool_calls"


THINKERS = [n for n, v in VENDORS.items() if v[3]]


@pytest.mark.parametrize("name", THINKERS)
def test_reasoning_content(world: World, name: str) -> None:
    msgs: Any = [{"role": "user", "content": "Say hi"}]
    r = world.client.chat.completions.create(model=f"{name}-think", messages=msgs)
    msg = r.choices[0].message
    assert (msg.model_extra or {}).get("reasoning_content") == DEFAULT_REASONING
    assert "<think>" not in (msg.content or "") and msg.content == DEFAULT_REPLY
    assert "reasoning" not in (msg.model_extra or {})
    reasoning = text = ""
    for c in world.client.chat.completions.create(
        model=f"{name}-think", messages=msgs, stream=True
    ):
        for ch in c.choices:
            reasoning += (ch.delta.model_extra or {}).get("reasoning_content") or ""
            text += ch.delta.content or ""
    assert reasoning == DEFAULT_REASONING and text == DEFAULT_REPLY


@pytest.mark.parametrize("name", NAMES)
def test_embeddings_or_501(world: World, name: str) -> None:
    embed = VENDORS[name][4]
    if embed is None:
        with pytest.raises(openai.APIStatusError) as exc:
            world.client.embeddings.create(model=f"{name}-chat", input="hello")
        assert exc.value.status_code == 501
        return
    r = world.client.embeddings.create(model=f"{name}-embed", input=["hello", "world"])
    assert [d.index for d in r.data] == [0, 1] and len(r.data[0].embedding) == 8
    assert r.usage.prompt_tokens > 0


@pytest.mark.parametrize(
    ("name", "suffix", "status", "code"),
    [(n, s, st, c) for n in NAMES for s, _u, st, c in ERRORS]
    + [(n, s, st, c) for n, errs in IN_BODY.items() for s, _u, st, c in errs],
)
def test_errors_mapped_to_the_table(
    world: World, name: str, suffix: str, status: int, code: str | None
) -> None:
    for stream in (False, True):
        with pytest.raises(openai.APIStatusError) as exc:
            r = world.client.chat.completions.create(
                model=f"{name}-{suffix}" + ("-s" if stream else ""),
                messages=[{"role": "user", "content": "hi"}],
                stream=stream,
            )
            if stream:
                list(r)  # type: ignore[call-overload]
        err = exc.value
        assert err.status_code == status, (stream, err.body)
        body = err.body if isinstance(err.body, dict) else {}
        if code is not None:
            assert body.get("code") == code, (stream, body)
        assert f"sk-{name}-upstream" not in str(err.body)


def test_parameter_rules_reach_the_vendor_in_its_terms(world: World) -> None:
    c = world.client
    msgs: Any = [{"role": "user", "content": "hi"}]
    # Kimi k2.5 takes temperature 1 only; Moonshot and GLM [0, 1]: the emulators refuse others
    assert c.chat.completions.create(model="moonshot-k25", messages=msgs, temperature=0.2).choices
    assert world.emus["moonshot"].stats.last_body["temperature"] == 1.0
    c.chat.completions.create(
        model="moonshot-chat", messages=msgs, temperature=1.6, max_completion_tokens=50
    )
    body = world.emus["moonshot"].stats.last_body
    assert (
        body["temperature"] == 1.0
        and body["max_tokens"] == 50
        and "max_completion_tokens" not in body
    )
    c.chat.completions.create(model="glm-chat", messages=msgs, temperature=1.9)
    # tool_choice "required": the emulators of Moonshot and GLM refuse it; it becomes a nudge
    for name in ("moonshot", "glm"):
        r = c.chat.completions.create(
            model=f"{name}-chat", messages=msgs, tools=TOOLS, tool_choice="required"
        )
        assert r.choices[0].finish_reason == "tool_calls"
        assert world.emus[name].stats.last_body["tool_choice"] == "auto"
    # n: Groq answers one choice; the gateway says so instead of a silent single answer
    with pytest.raises(openai.APIStatusError) as exc:
        c.chat.completions.create(model="groq-chat", messages=msgs, n=2)
    assert exc.value.status_code in (400, 403) and "`n` must be 1" in str(exc.value.body)
    c.chat.completions.create(model="groq-chat", messages=msgs, n=1)
    assert "n" not in world.emus["groq"].stats.last_body
    # MiniMax: max_completion_tokens and reasoning_split; Qianfan: the appid header; GLM: a JWT
    c.chat.completions.create(model="minimax-chat", messages=msgs, max_tokens=30)
    body = world.emus["minimax"].stats.last_body
    assert body["max_completion_tokens"] == 30 and body["reasoning_split"] is True
    assert world.emus["qianfan"].stats.last_headers["appid"] == APPID  # type: ignore[index]
    auth = world.emus["glm_jwt"].stats.last_headers["Authorization"]  # type: ignore[index]
    assert auth.startswith("Bearer ") and auth.count(".") == 2 and GLM_KEY not in auth
