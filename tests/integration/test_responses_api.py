"""``/v1/responses`` through the running gateway with the official openai SDK's Responses
client: native (an OpenAI channel serving the Responses surface: passed through) and
translated (a DeepSeek channel: chat completions behind), whole and streamed, function
tools over two turns, ``previous_response_id`` on both paths, retrieve / delete /
input_items, another user's id (404), and the request log's tokens and cost.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import openai
import orjson
import pytest
from gateway import Gateway

from relaygate.emulator import EmulatorServer, Knobs

TOOL = {
    "type": "function",
    "name": "weather",
    "description": "Get weather information for a location",
    "parameters": {
        "type": "object",
        "properties": {"location": {"type": "string", "description": "the city"}},
        "required": ["location"],
    },
}


class World:
    def __init__(self, gw: Gateway, emus: dict[str, EmulatorServer], keys: list[str]) -> None:
        self.gw, self.emus = gw, emus
        self.client = openai.OpenAI(api_key=keys[0], base_url=gw.base_url, max_retries=0)
        self.other = openai.OpenAI(api_key=keys[1], base_url=gw.base_url, max_retries=0)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    emus = {
        "openai": EmulatorServer("openai", knobs=Knobs(api_key="sk-up-o")).start(),
        "deepseek": EmulatorServer("deepseek", knobs=Knobs(api_key="sk-up-d")).start(),
        "anthropic": EmulatorServer("anthropic", knobs=Knobs(api_key="sk-ant-up")).start(),
    }
    gw = Gateway(Path(tmp_path_factory.mktemp("responses")), {})
    try:
        gw.start()
        gw.create_channel(
            name="openai", provider="openai_compat", profile="openai",
            base_url=emus["openai"].base_url, keys=["sk-up-o"], models=["resp-native"],
            model_mapping={"resp-native": "gpt-4o-mini"},
        )  # fmt: skip
        gw.create_channel(
            name="deepseek", provider="openai_compat", profile="deepseek",
            base_url=emus["deepseek"].base_url, keys=["sk-up-d"], models=["resp-chat"],
            model_mapping={"resp-chat": "deepseek-chat"},
        )  # fmt: skip
        gw.create_channel(
            name="anthropic", provider="anthropic", base_url=emus["anthropic"].base_url,
            keys=["sk-ant-up"], models=["resp-claude"],
            model_mapping={"resp-claude": "claude-sonnet-4-20250514"},
        )  # fmt: skip
        for model in ("resp-native", "resp-chat", "resp-claude"):
            gw.admin("POST", "/prices", {"currency": "CNY", "per": "1m", "model": model,
                                         "input": "2", "output": "8"})  # fmt: skip
        keys = []
        for name in ("alice", "bob"):
            uid = gw.create_user(name, balance="100")
            keys.append(gw.create_key(uid, name=name))
        time.sleep(1.2)  # the workers load the configuration
        yield World(gw, emus, keys)
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


def recorded(emu: EmulatorServer) -> list[dict[str, Any]]:
    return list(emu.stats.snapshot()["recorded"])


def upstream_paths(emu: EmulatorServer) -> list[str]:
    return [r["path"] for r in recorded(emu)]


@pytest.mark.parametrize("model", ["resp-native", "resp-chat", "resp-claude"])
def test_whole_response_is_billed_by_its_usage(world: World, model: str) -> None:
    raw = world.client.responses.with_raw_response.create(
        model=model, input="Say hi in Portuguese", instructions="Be brief."
    )
    resp = raw.parse()
    assert resp.object == "response" and resp.status == "completed"
    assert resp.output_text and resp.id.startswith("resp")
    assert resp.usage is not None and resp.usage.input_tokens > 0
    row = log_row(world.gw, raw.headers["x-request-id"])
    assert row["endpoint"] == "responses"
    assert row["prompt_tokens"] == resp.usage.input_tokens
    assert row["completion_tokens"] == resp.usage.output_tokens
    assert units(row) == resp.usage.input_tokens * 2 + resp.usage.output_tokens * 8
    native = model == "resp-native"
    assert ("/v1/responses" in upstream_paths(world.emus["openai"])) is native
    if model == "resp-chat":
        assert upstream_paths(world.emus["deepseek"]) == ["/v1/chat/completions"]
    if model == "resp-claude":
        assert upstream_paths(world.emus["anthropic"]) == ["/v1/messages"]


@pytest.mark.parametrize("model", ["resp-native", "resp-chat", "resp-claude"])
def test_stream_events_and_usage(world: World, model: str) -> None:
    with world.client.responses.stream(model=model, input="Say hi") as stream:
        events = list(stream)
        final = stream.get_final_response()
    kinds = [e.type for e in events]
    assert kinds[:2] == ["response.created", "response.in_progress"]
    assert "response.output_text.delta" in kinds and kinds[-1] == "response.completed"
    assert [e.sequence_number for e in events] == list(range(len(events)))
    text = "".join(e.delta for e in events if e.type == "response.output_text.delta")
    assert text and final.output_text == text
    assert final.usage is not None and final.usage.output_tokens > 0


@pytest.mark.parametrize("model", ["resp-native", "resp-chat", "resp-claude"])
def test_function_call_then_output_next_turn(world: World, model: str) -> None:
    first = world.client.responses.create(model=model, input="Weather in Florence?", tools=[TOOL])
    calls = [o for o in first.output if o.type == "function_call"]
    assert len(calls) == 1 and calls[0].name == "weather"
    assert "location" in calls[0].arguments
    second = world.client.responses.create(
        model=model,
        previous_response_id=first.id,
        tools=[TOOL],
        input=[{"type": "function_call_output", "call_id": calls[0].call_id, "output": "40 C"}],
    )
    assert second.output_text == "The tool returned: 40 C"
    assert second.previous_response_id == first.id


def test_translated_multi_turn_rebuilds_the_conversation(world: World) -> None:
    first = world.client.responses.create(model="resp-chat", input="My name is Ada.")
    world.emus["deepseek"].reset(stats=True)
    world.client.responses.create(
        model="resp-chat", previous_response_id=first.id, input="What is my name?"
    )
    sent = recorded(world.emus["deepseek"])[-1]["body"]
    roles = [(m["role"], m["content"]) for m in sent["messages"]]
    assert roles == [
        ("user", "My name is Ada."),
        ("assistant", first.output_text),
        ("user", "What is my name?"),
    ]


def test_native_multi_turn_goes_to_the_same_channel(world: World) -> None:
    first = world.client.responses.create(model="resp-native", input="Hello")
    second = world.client.responses.create(
        model="resp-native", previous_response_id=first.id, input="Again"
    )
    sent = recorded(world.emus["openai"])[-1]["body"]
    assert sent["previous_response_id"] == first.id and sent["model"] == "gpt-4o-mini"
    assert second.previous_response_id == first.id


@pytest.mark.parametrize("model", ["resp-native", "resp-chat"])
def test_retrieve_input_items_delete(world: World, model: str) -> None:
    made = world.client.responses.create(model=model, input="Keep me")
    got = world.client.responses.retrieve(made.id)
    assert got.id == made.id and got.output_text == made.output_text
    items = world.client.responses.input_items.list(made.id)
    assert [i.type for i in items.data] == ["message"]
    assert items.data[0].content[0].text == "Keep me"  # type: ignore[union-attr]
    world.client.responses.delete(made.id)
    with pytest.raises(openai.NotFoundError):
        world.client.responses.retrieve(made.id)


@pytest.mark.parametrize("model", ["resp-native", "resp-chat"])
def test_another_users_response_is_not_found(world: World, model: str) -> None:
    made = world.client.responses.create(model=model, input="Mine")
    with pytest.raises(openai.NotFoundError) as err:
        world.other.responses.retrieve(made.id)
    assert err.value.body is not None
    with pytest.raises(openai.NotFoundError):
        world.other.responses.delete(made.id)
    with pytest.raises(openai.NotFoundError):
        world.other.responses.create(model=model, previous_response_id=made.id, input="x")
    assert world.client.responses.retrieve(made.id).id == made.id


def test_store_false_keeps_nothing(world: World) -> None:
    made = world.client.responses.create(model="resp-chat", input="Forget me", store=False)
    with pytest.raises(openai.NotFoundError):
        world.client.responses.retrieve(made.id)


def test_translated_stream_tool_call_events(world: World) -> None:
    with world.client.responses.stream(model="resp-chat", input="Weather?", tools=[TOOL]) as s:
        events = list(s)
        final = s.get_final_response()
    kinds = [e.type for e in events]
    assert "response.function_call_arguments.delta" in kinds
    assert "response.function_call_arguments.done" in kinds
    call = final.output[0]
    assert call.type == "function_call" and call.name == "weather"


@pytest.mark.parametrize("model", ["resp-native", "resp-chat", "resp-claude"])
def test_stream_is_billed_by_the_completed_events_usage(world: World, model: str) -> None:
    with world.client.responses.with_streaming_response.create(
        model=model, input="Say hi", stream=True
    ) as raw:
        rid = raw.headers["x-request-id"]
        frames = raw.read().decode()
    events = [orjson.loads(line[6:]) for line in frames.split("\n") if line.startswith("data: ")]
    usage = events[-1]["response"]["usage"]
    assert events[-1]["type"] == "response.completed" and usage["output_tokens"] > 0
    row = log_row(world.gw, rid)
    assert (row["prompt_tokens"], row["completion_tokens"]) == (
        usage["input_tokens"],
        usage["output_tokens"],
    )
    assert units(row) == usage["input_tokens"] * 2 + usage["output_tokens"] * 8


def test_errors_are_in_openais_shape(world: World) -> None:
    with pytest.raises(openai.NotFoundError) as err:
        world.client.responses.retrieve("resp_nope")
    assert err.value.code == "not_found"
    with pytest.raises(openai.APIStatusError) as bad:  # 403 unless OpenAI status codes are on
        world.client.responses.create(model="resp-chat", input=[{"type": "web_search_call"}])  # type: ignore[list-item]
    assert bad.value.param == "input"
