"""The OpenAI emulator's Responses API, through the official SDK, checked against OpenAI's
recorded answers (tests/fixtures/provider-recordings/TestOpenAIResponsesCommon): the same
response fields, the same event sequence (deltas aside), tools over two turns, the kept
responses (retrieve, input_items, delete, previous_response_id) and their 404/400s."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openai
import orjson
import pytest

from recordings import load_cassette, recordings_dir
from relaygate.emulator import DEFAULT_REPLY, EmulatorServer
from relaygate.relay.sse import SSEDecoder

TOOL = {
    "type": "function",
    "name": "weather",
    "description": "Get weather information for a location",
    "parameters": {
        "type": "object",
        "properties": {"location": {"type": "string"}},
        "required": ["location"],
    },
}


@pytest.fixture(scope="module")
def emu() -> Iterator[EmulatorServer]:
    with EmulatorServer("openai") as server:
        yield server


@pytest.fixture
def client(emu: EmulatorServer) -> openai.OpenAI:
    emu.reset()
    return openai.OpenAI(base_url=emu.base_url, api_key="sk-test", max_retries=0)


def _cassette(name: str) -> Path:
    root = recordings_dir()
    if root is None:
        pytest.skip("no recordings")
    return root / "TestOpenAIResponsesCommon" / "openai-gpt-4o-mini" / name


def _events(body: bytes) -> list[dict[str, Any]]:
    dec = SSEDecoder()
    got = dec.feed(body) + dec.flush()
    return [orjson.loads(d) for _, d in got]


def _shape(kinds: list[str]) -> list[str]:
    """Event types with runs of deltas folded into one."""
    out: list[str] = []
    for k in kinds:
        if not (out and out[-1] == k and k.endswith(".delta")):
            out.append(k)
    return out


def test_whole_answer_has_the_recorded_fields(client: openai.OpenAI) -> None:
    rec = load_cassette(_cassette("simple.yaml"))[0]
    raw = client.responses.with_raw_response.create(**rec.request_json())
    got = orjson.loads(raw.content)
    want = rec.response_json()
    missing = set(want) - set(got) - {"billing", "moderation", "prompt_cache_key",
                                       "prompt_cache_retention", "safety_identifier",
                                       "frequency_penalty", "presence_penalty", "max_tool_calls",
                                       "top_logprobs"}  # fmt: skip
    assert not missing
    assert got["object"] == "response" and got["status"] == "completed"
    assert got["output"][0]["type"] == "message"
    assert set(got["output"][0]) == set(want["output"][0])
    assert got["output"][0]["content"][0]["text"] == DEFAULT_REPLY
    assert set(got["usage"]) == set(want["usage"])
    assert (
        got["usage"]["total_tokens"] == got["usage"]["input_tokens"] + got["usage"]["output_tokens"]
    )


@pytest.mark.parametrize("name", ["simple_streaming.yaml", "tool_streaming.yaml"])
def test_stream_follows_the_recorded_event_sequence(client: openai.OpenAI, name: str) -> None:
    rec = load_cassette(_cassette(name))[0]
    want = [e["type"] for e in _events(rec.response_body)]
    last_turn = want.index("response.completed") + 1
    want = want[:last_turn]  # the tool cassette's first turn
    with client.responses.with_streaming_response.create(**rec.request_json()) as resp:
        got = _events(resp.read())
    assert _shape([e["type"] for e in got]) == _shape(want)
    assert [e["sequence_number"] for e in got] == list(range(len(got)))


def test_tool_call_then_its_output(client: openai.OpenAI) -> None:
    first = client.responses.create(model="gpt-4o-mini", input="Weather?", tools=[TOOL])  # type: ignore[list-item]
    call = first.output[0]
    assert call.type == "function_call" and call.name == "weather"
    assert set(orjson.loads(call.arguments)) == {"location"}
    second = client.responses.create(
        model="gpt-4o-mini",
        previous_response_id=first.id,
        input=[{"type": "function_call_output", "call_id": call.call_id, "output": "40 C"}],
    )
    assert second.output_text == "The tool returned: 40 C"
    assert second.usage is not None and first.usage is not None
    assert second.usage.input_tokens > first.usage.input_tokens  # the history counts


def test_kept_responses_and_their_errors(client: openai.OpenAI) -> None:
    made = client.responses.create(model="gpt-4o-mini", input="Hi")
    assert client.responses.retrieve(made.id).id == made.id
    items = client.responses.input_items.list(made.id)
    assert [i.type for i in items.data] == ["message"]
    with pytest.raises(openai.BadRequestError):
        client.responses.cancel(made.id)
    client.responses.delete(made.id)
    with pytest.raises(openai.NotFoundError):
        client.responses.retrieve(made.id)
    with pytest.raises(openai.BadRequestError):
        client.responses.create(model="gpt-4o-mini", input="x", previous_response_id=made.id)
    gone = client.responses.create(model="gpt-4o-mini", input="x", store=False)
    with pytest.raises(openai.NotFoundError):
        client.responses.retrieve(gone.id)


def test_max_output_tokens_makes_it_incomplete(client: openai.OpenAI) -> None:
    resp = client.responses.create(model="gpt-4o-mini", input="Hi", max_output_tokens=2)
    assert resp.status == "incomplete"
    assert resp.incomplete_details is not None
    assert resp.incomplete_details.reason == "max_output_tokens"
