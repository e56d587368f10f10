"""``POST /v1/messages`` and ``/v1/messages/count_tokens`` through the running gateway with
the official ``anthropic`` SDK: on an OpenAI channel (translated), on a DeepSeek channel
(reasoning → thinking) and on an Anthropic channel (the request as sent, the answer as
is) — plain, streamed, tools, thinking, images, token counts, errors in Anthropic's shape,
billing from the answer's usage, and failover from an Anthropic channel to an OpenAI one.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import anthropic
import httpx
import pytest
from gateway import Gateway

from relaygate.emulator import EmulatorServer, Knobs

PNG = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="
TOOLS: list[Any] = [
    {
        "name": "get_weather",
        "description": "Weather in a city",
        "input_schema": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
        },
    }
]
MODELS = {
    "oa-model": "gpt-4o-mini",  # OpenAI channel
    "ds-model": "deepseek-reasoner",  # DeepSeek channel (reasons)
    "claude-model": "claude-sonnet-4-20250514",  # Anthropic channel
    "both-model": "shared",  # Anthropic channel first, OpenAI channel second
}


class World:
    def __init__(self, gw: Gateway, emus: dict[str, EmulatorServer], key: str) -> None:
        self.gw, self.emus, self.key = gw, emus, key
        self.client = anthropic.Anthropic(api_key=key, base_url=gw.base, max_retries=0)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    emus = {
        "openai": EmulatorServer("openai", knobs=Knobs(api_key="sk-up-oa")).start(),
        "deepseek": EmulatorServer("deepseek", knobs=Knobs(api_key="sk-up-ds")).start(),
        "anthropic": EmulatorServer("anthropic", knobs=Knobs(api_key="sk-up-an")).start(),
    }
    gw = Gateway(Path(tmp_path_factory.mktemp("messages")))
    try:
        gw.start()
        gw.create_channel(
            name="oa",
            provider="openai_compat",
            profile="openai",
            base_url=emus["openai"].base_url,
            keys=["sk-up-oa"],
            models=["oa-model", "both-model"],
            model_mapping={"oa-model": "gpt-4o-mini", "both-model": "gpt-4o-mini"},
            priority=1,
        )
        gw.create_channel(
            name="ds",
            provider="openai_compat",
            profile="deepseek",
            base_url=emus["deepseek"].base_url,
            keys=["sk-up-ds"],
            models=["ds-model"],
            model_mapping={"ds-model": "deepseek-reasoner"},
        )
        gw.create_channel(
            name="an",
            provider="anthropic",
            profile="anthropic",
            base_url=emus["anthropic"].origin,
            keys=["sk-up-an"],
            models=["claude-model", "both-model"],
            model_mapping={"claude-model": MODELS["claude-model"], "both-model": "claude-shared"},
            priority=10,
        )
        gw.create_channel(
            name="an-shaped",
            provider="anthropic",
            profile="anthropic",
            base_url=emus["anthropic"].origin,
            keys=["sk-up-an"],
            models=["claude-shaped"],
            model_mapping={"claude-shaped": MODELS["claude-model"]},
            config={"shaping": {"defaults": {"temperature": 0}, "system_prefix": "Prefix."}},
        )
        gw.admin(
            "POST",
            "/model-routes",
            {"name": "oa-model", "shaping": {"defaults": {"top_p": 0.5}}},
        )
        for model in MODELS:
            gw.admin(
                "POST",
                "/prices",
                {"currency": "CNY", "per": "1m", "model": model, "input": "2", "output": "8"},
            )
        uid = gw.create_user("messages", balance="100")
        key = gw.create_key(uid, name="messages")
        time.sleep(1.2)  # the workers load the configuration
        yield World(gw, emus, key)
    finally:
        gw.stop()
        for emu in emus.values():
            emu.stop()


@pytest.fixture(autouse=True)
def _reset(world: World) -> None:
    for emu in world.emus.values():
        emu.reset(knobs=True, stats=True)


def log_row(gw: Gateway, request_id: str) -> dict[str, Any]:
    deadline = time.monotonic() + 5
    while True:
        rows = gw.admin("GET", f"/logs?request_id={request_id}")["data"]
        if rows or time.monotonic() > deadline:
            assert rows, f"no request log row for {request_id}"
            return rows[0]  # type: ignore[no-any-return]
        time.sleep(0.1)


def units(row: dict[str, Any]) -> int:
    return int(Decimal(row["cost"]) * 1_000_000)


def billed(world: World, request_id: str, input_tokens: int, output_tokens: int) -> None:
    row = log_row(world.gw, request_id)
    assert row["status"] == 200
    assert row["prompt_tokens"] == input_tokens and row["completion_tokens"] == output_tokens
    assert units(row) == 2 * input_tokens + 8 * output_tokens > 0


# ---------------------------------------------------------------- OpenAI channel


def test_openai_channel_plain(world: World) -> None:
    raw = world.client.messages.with_raw_response.create(
        model="oa-model",
        max_tokens=200,
        system="Be brief.",
        messages=[{"role": "user", "content": "Hello"}],
        extra_body={"temperature": 0.3},  # this SDK has no sampling parameters any more
        stop_sequences=["ZZZ"],
    )
    msg = raw.parse()
    assert msg.type == "message" and msg.role == "assistant" and msg.model == "oa-model"
    assert msg.content[0].type == "text" and msg.content[0].text
    assert msg.stop_reason == "end_turn"
    sent = world.emus["openai"].stats.last_body
    assert sent["model"] == "gpt-4o-mini" and sent["max_tokens"] == 200
    assert sent["messages"] == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Hello"},
    ]
    assert sent["temperature"] == 0.3 and sent["stop"] == ["ZZZ"]
    billed(world, raw.headers["x-request-id"], msg.usage.input_tokens, msg.usage.output_tokens)


def test_openai_channel_stream(world: World) -> None:
    with world.client.messages.stream(
        model="oa-model", max_tokens=200, messages=[{"role": "user", "content": "Hello"}]
    ) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
        rid = stream.response.headers["x-request-id"]
    assert text == final.content[0].text == "Hello from the relaygate emulator."  # type: ignore[union-attr]
    assert final.stop_reason == "end_turn"
    assert final.usage.output_tokens > 0 and final.usage.input_tokens > 0
    assert world.emus["openai"].stats.last_body["stream_options"] == {"include_usage": True}
    billed(world, rid, final.usage.input_tokens, final.usage.output_tokens)


def test_openai_channel_tools_round_trip(world: World) -> None:
    msg = world.client.messages.create(
        model="oa-model",
        max_tokens=200,
        tools=TOOLS,
        tool_choice={"type": "tool", "name": "get_weather"},
        messages=[{"role": "user", "content": "Weather in Paris?"}],
    )
    assert msg.stop_reason == "tool_use"
    use = next(b for b in msg.content if b.type == "tool_use")
    assert use.name == "get_weather" and isinstance(use.input, dict) and "city" in use.input
    sent = world.emus["openai"].stats.last_body
    assert sent["tool_choice"] == {"type": "function", "function": {"name": "get_weather"}}
    assert sent["tools"][0]["function"]["parameters"] == TOOLS[0]["input_schema"]
    # the result goes back as a tool message
    again = world.client.messages.create(
        model="oa-model",
        max_tokens=200,
        tools=TOOLS,
        messages=[
            {"role": "user", "content": "Weather in Paris?"},
            {"role": "assistant", "content": msg.content},  # type: ignore[typeddict-item]
            {
                "role": "user",
                "content": [{"type": "tool_result", "tool_use_id": use.id, "content": "sunny"}],
            },
        ],
    )
    assert again.content[0].text == "The tool returned: sunny"  # type: ignore[union-attr]
    sent = world.emus["openai"].stats.last_body
    assert sent["messages"][-1] == {"role": "tool", "tool_call_id": use.id, "content": "sunny"}
    assert sent["messages"][-2]["tool_calls"][0]["id"] == use.id


def test_openai_channel_stream_tools(world: World) -> None:
    with world.client.messages.stream(
        model="oa-model",
        max_tokens=200,
        tools=TOOLS,
        tool_choice={"type": "any"},
        messages=[{"role": "user", "content": "Weather?"}],
    ) as stream:
        final = stream.get_final_message()
    assert final.stop_reason == "tool_use"
    use = next(b for b in final.content if b.type == "tool_use")
    assert use.name == "get_weather" and "city" in use.input  # type: ignore[operator]
    assert world.emus["openai"].stats.last_body["tool_choice"] == "required"


def test_images(world: World) -> None:
    content: Any = [
        {"type": "text", "text": "What is this?"},
        {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PNG}},
        {"type": "image", "source": {"type": "url", "url": "https://example.test/cat.png"}},
    ]
    world.client.messages.create(
        model="oa-model", max_tokens=50, messages=[{"role": "user", "content": content}]
    )
    parts = world.emus["openai"].stats.last_body["messages"][0]["content"]
    assert parts[1] == {"type": "image_url", "image_url": {"url": "data:image/png;base64," + PNG}}
    assert parts[2] == {"type": "image_url", "image_url": {"url": "https://example.test/cat.png"}}
    world.client.messages.create(
        model="claude-model", max_tokens=50, messages=[{"role": "user", "content": content}]
    )
    assert world.emus["anthropic"].stats.last_body["messages"][0]["content"] == content


def test_thinking_from_reasoning(world: World) -> None:
    msg = world.client.messages.create(
        model="ds-model",
        max_tokens=2000,
        thinking={"type": "enabled", "budget_tokens": 1024},
        messages=[{"role": "user", "content": "Hi"}],
    )
    assert [b.type for b in msg.content] == ["thinking", "text"]
    assert msg.content[0].thinking  # type: ignore[union-attr]
    assert world.emus["deepseek"].stats.last_body["reasoning_effort"] == "low"
    with world.client.messages.stream(
        model="ds-model",
        max_tokens=2000,
        thinking={"type": "enabled", "budget_tokens": 1024},
        messages=[{"role": "user", "content": "Hi"}],
    ) as stream:
        kinds = [e.delta.type for e in stream if e.type == "content_block_delta"]
        final = stream.get_final_message()
    assert "thinking_delta" in kinds and "text_delta" in kinds
    assert kinds.index("thinking_delta") < kinds.index("text_delta")
    assert (
        final.content[0].type == "thinking" and final.content[0].thinking == msg.content[0].thinking
    )  # type: ignore[union-attr]


# ---------------------------------------------------------------- Anthropic channel


def test_anthropic_channel_as_sent(world: World) -> None:
    body: dict[str, Any] = {
        "model": "claude-model",
        "max_tokens": 3000,
        "system": [{"type": "text", "text": "Be brief.", "cache_control": {"type": "ephemeral"}}],
        "messages": [{"role": "user", "content": "Weather in Paris?"}],
        "tools": TOOLS,
        "tool_choice": {"type": "auto"},
        "thinking": {"type": "enabled", "budget_tokens": 1024},
        "top_k": 7,
        "metadata": {"user_id": "u-42"},
    }
    sdk_args = {k: v for k, v in body.items() if k != "top_k"}
    raw = world.client.messages.with_raw_response.create(
        **sdk_args,
        extra_body={"top_k": 7},
        extra_headers={"anthropic-version": "2023-06-01", "anthropic-beta": "beta-x"},
    )
    msg = raw.parse()
    assert [b.type for b in msg.content] == ["thinking", "text", "tool_use"]
    assert msg.content[0].signature  # type: ignore[union-attr]  # Anthropic's own, passed on
    assert msg.stop_reason == "tool_use" and msg.model == MODELS["claude-model"]
    rec = world.emus["anthropic"].stats.last_request
    assert rec is not None
    assert rec.body == {**body, "model": MODELS["claude-model"]}
    assert rec.headers["x-api-key"] == "sk-up-an"
    assert rec.headers["anthropic-version"] == "2023-06-01"  # the client's
    assert rec.headers["anthropic-beta"] == "beta-x"
    assert world.emus["openai"].stats.requests == 0
    billed(world, raw.headers["x-request-id"], msg.usage.input_tokens, msg.usage.output_tokens)


def test_anthropic_channel_stream(world: World) -> None:
    with world.client.messages.stream(
        model="claude-model",
        max_tokens=3000,
        thinking={"type": "enabled", "budget_tokens": 1024},
        messages=[{"role": "user", "content": "Hello"}],
    ) as stream:
        names = [e.type for e in stream]
        final = stream.get_final_message()
        rid = stream.response.headers["x-request-id"]
    assert names[0] == "message_start" and names[-1] == "message_stop"
    assert [b.type for b in final.content] == ["thinking", "text"]
    assert final.content[0].signature  # type: ignore[union-attr]  # signature_delta passed on
    body = world.emus["anthropic"].stats.last_body
    assert body["stream"] is True and body["model"] == MODELS["claude-model"]
    billed(world, rid, final.usage.input_tokens, final.usage.output_tokens)


def test_failover_from_anthropic_to_openai(world: World) -> None:
    world.emus["anthropic"].configure(fail_status=500)
    msg = world.client.messages.create(
        model="both-model", max_tokens=100, messages=[{"role": "user", "content": "Hi"}]
    )
    assert msg.content[0].text == "Hello from the relaygate emulator."  # type: ignore[union-attr]
    assert world.emus["anthropic"].stats.requests == 1
    assert world.emus["openai"].stats.last_body["model"] == "gpt-4o-mini"
    world.emus["anthropic"].configure(fail_status=None)
    msg = world.client.messages.create(
        model="both-model", max_tokens=100, messages=[{"role": "user", "content": "Hi"}]
    )
    assert msg.model == "claude-shared"  # the Anthropic channel answered, as is


def test_anthropic_midstream_error_passes_on(world: World) -> None:
    world.emus["anthropic"].configure(midstream_error=True, chunk_interval_ms=50)
    with (
        pytest.raises(anthropic.APIStatusError) as info,
        world.client.messages.stream(
            model="claude-model", max_tokens=100, messages=[{"role": "user", "content": "Hi"}]
        ) as stream,
    ):
        for _ in stream:
            pass
    assert "Overloaded" in str(info.value)  # the upstream's own error event


def test_openai_midstream_error_is_an_error_event(world: World) -> None:
    world.emus["openai"].configure(midstream_error=True)
    r = httpx.post(
        world.gw.base + "/v1/messages",
        headers={"x-api-key": world.key, "anthropic-version": "2023-06-01"},
        json={
            "model": "oa-model",
            "max_tokens": 50,
            "stream": True,
            "messages": [{"role": "user", "content": "Hi"}],
        },
        timeout=10,
    )
    assert r.status_code == 200
    frames = [f for f in r.text.split("\n\n") if f.strip()]
    assert frames[0].startswith("event: message_start")
    assert frames[-1].startswith("event: error")
    assert '"type":"error"' in frames[-1]
    assert not any(f.startswith("event: message_stop") for f in frames)


# ---------------------------------------------------------------- count_tokens


def test_count_tokens(world: World) -> None:
    messages: Any = [{"role": "user", "content": "Count these words for me please"}]
    local = world.client.messages.count_tokens(model="oa-model", messages=messages)
    assert local.input_tokens > 5
    assert world.emus["openai"].stats.requests == 0
    more = world.client.messages.count_tokens(model="oa-model", messages=messages, tools=TOOLS)
    assert more.input_tokens > local.input_tokens
    upstream = world.client.messages.count_tokens(model="claude-model", messages=messages)
    rec = world.emus["anthropic"].stats.last_request
    assert rec is not None and rec.path == "/v1/messages/count_tokens"
    assert rec.body["model"] == MODELS["claude-model"] and upstream.input_tokens > 0
    with pytest.raises(anthropic.APIStatusError) as info:
        world.client.messages.count_tokens(model="no-such-model", messages=messages)
    assert info.value.body["error"]["type"] == "not_found_error"  # type: ignore[index]


# ---------------------------------------------------------------- errors


def test_unknown_model_is_not_found_error(world: World) -> None:
    with pytest.raises(anthropic.NotFoundError) as info:  # the SDK's own type for a 404
        world.client.messages.create(
            model="no-such-model", max_tokens=10, messages=[{"role": "user", "content": "x"}]
        )
    err = info.value
    assert err.status_code == 404  # other formats get the usual HTTP statuses
    assert err.body == {
        "type": "error",
        "error": {"type": "not_found_error", "message": err.body["error"]["message"]},
    }  # type: ignore[index]
    assert "no-such-model" in err.body["error"]["message"]  # type: ignore[index]


def test_bad_bodies_are_invalid_request_errors(world: World) -> None:
    headers = {"x-api-key": world.key, "anthropic-version": "2023-06-01"}
    for body in (
        {"model": "oa-model", "messages": [{"role": "user", "content": "x"}]},  # no max_tokens
        {"model": "oa-model", "max_tokens": 5, "messages": [{"role": "robot", "content": "x"}]},
        {"model": "oa-model", "max_tokens": 5, "messages": "hello"},
    ):
        r = httpx.post(world.gw.base + "/v1/messages", headers=headers, json=body, timeout=10)
        assert r.status_code == 400, r.text
        assert r.json()["type"] == "error"
        assert r.json()["error"]["type"] == "invalid_request_error"
    r = httpx.post(world.gw.base + "/v1/messages", headers=headers, content=b"{nope", timeout=10)
    assert r.json()["error"]["type"] == "invalid_request_error"
    assert world.emus["openai"].stats.requests == 0


def test_bad_key_is_authentication_error(world: World) -> None:
    client = anthropic.Anthropic(api_key="sk-wrong", base_url=world.gw.base, max_retries=0)
    with pytest.raises(anthropic.AuthenticationError) as info:
        client.messages.create(
            model="oa-model", max_tokens=10, messages=[{"role": "user", "content": "x"}]
        )
    assert info.value.body["error"]["type"] == "authentication_error"  # type: ignore[index]


def test_upstream_rejection_is_passed_on(world: World) -> None:
    world.emus["anthropic"].configure(fail_status=400)
    with pytest.raises(anthropic.BadRequestError) as info:
        world.client.messages.create(
            model="claude-model", max_tokens=10, messages=[{"role": "user", "content": "x"}]
        )
    assert info.value.body["error"]["type"] == "invalid_request_error"  # type: ignore[index]


def test_anthropic_only_blocks(world: World) -> None:
    messages: Any = [
        {"role": "user", "content": "Search the web"},
        {
            "role": "assistant",
            "content": [
                {"type": "server_tool_use", "id": "srvtoolu_1", "name": "web_search", "input": {}},
                {"type": "text", "text": "Done."},
            ],
        },
        {"role": "user", "content": "Thanks"},
    ]
    world.client.messages.create(model="claude-model", max_tokens=20, messages=messages)
    assert world.emus["anthropic"].stats.last_body["messages"] == messages  # as sent
    with pytest.raises(anthropic.APIStatusError) as info:
        world.client.messages.create(model="oa-model", max_tokens=20, messages=messages)
    assert info.value.body["error"]["type"] == "invalid_request_error"  # type: ignore[index]
    assert "server_tool_use" in info.value.body["error"]["message"]  # type: ignore[index]
    assert world.emus["openai"].stats.requests == 0


def test_shaping_applies_in_both_paths(world: World) -> None:
    world.client.messages.create(
        model="claude-shaped",
        max_tokens=20,
        system="Be brief.",
        messages=[{"role": "user", "content": "Hi"}],
    )
    sent = world.emus["anthropic"].stats.last_body
    assert sent["temperature"] == 0 and sent["system"] == "Prefix.\n\nBe brief."
    world.client.messages.create(
        model="oa-model", max_tokens=20, messages=[{"role": "user", "content": "Hi"}]
    )
    assert world.emus["openai"].stats.last_body["top_p"] == 0.5
