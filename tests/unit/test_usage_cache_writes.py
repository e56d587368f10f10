"""Anthropic usage → :class:`Usage`: cache reads and writes are inside ``prompt_tokens``
(Anthropic's ``input_tokens`` excludes them), writes split into 5-minute and 1-hour ones
when the upstream sends the split; the OpenAI-shaped usage the client sees is unchanged."""

from __future__ import annotations

from typing import Any

import orjson

from relaygate.providers.anthropic import AnthropicAdaptor
from relaygate.providers.anthropic_stream import usage_from_anthropic
from relaygate.providers.base import Target

TARGET = Target(
    channel_id=1,
    provider="anthropic",
    profile="anthropic",
    base_url="https://api.anthropic.com",
    api_key="sk-ant-test",
    upstream_model="claude-sonnet-5-5",
)
ADAPTOR = AnthropicAdaptor()

SPLIT = orjson.loads(
    b"""{"input_tokens": 50, "cache_creation_input_tokens": 3000,
    "cache_read_input_tokens": 2000,
    "cache_creation": {"ephemeral_5m_input_tokens": 1800, "ephemeral_1h_input_tokens": 1200},
    "output_tokens": 400, "service_tier": "standard"}"""
)


def test_split_cache_writes_and_reads_are_inside_prompt_tokens() -> None:
    u = usage_from_anthropic(SPLIT)
    assert u.prompt_tokens == 50 + 2000 + 3000
    assert (u.cached_tokens, u.cache_write_tokens, u.cache_write_1h_tokens) == (2000, 1800, 1200)
    assert (u.completion_tokens, u.total_tokens) == (400, 5450)


def test_writes_without_the_split_count_as_5_minute_writes() -> None:
    raw = {"input_tokens": 10, "cache_creation_input_tokens": 700, "output_tokens": 5}
    u = usage_from_anthropic(raw)
    assert (u.prompt_tokens, u.cache_write_tokens, u.cache_write_1h_tokens) == (710, 700, 0)


def test_split_without_the_total_and_a_split_larger_than_the_total() -> None:
    only_split = {
        "input_tokens": 1,
        "cache_creation": {"ephemeral_5m_input_tokens": 4, "ephemeral_1h_input_tokens": 6},
    }
    u = usage_from_anthropic(only_split)
    assert (u.prompt_tokens, u.cache_write_tokens, u.cache_write_1h_tokens) == (11, 4, 6)
    odd = {"cache_creation_input_tokens": 5, "cache_creation": {"ephemeral_1h_input_tokens": 9}}
    u = usage_from_anthropic(odd)  # never more 1-hour writes than writes
    assert (u.prompt_tokens, u.cache_write_tokens, u.cache_write_1h_tokens) == (5, 0, 5)


def test_recorded_usage_without_cache_fields_is_unchanged() -> None:
    u = usage_from_anthropic({"input_tokens": 394, "output_tokens": 68})
    assert (u.prompt_tokens, u.cache_write_tokens, u.cache_write_1h_tokens) == (394, 0, 0)


def test_non_stream_response_maps_usage_and_the_client_sees_openai_usage() -> None:
    body: dict[str, Any] = {
        "id": "msg_1",
        "type": "message",
        "role": "assistant",
        "model": "claude-sonnet-5-5",
        "content": [{"type": "text", "text": "hi"}],
        "stop_reason": "end_turn",
        "usage": SPLIT,
    }
    out, usage = ADAPTOR.chat_response(TARGET, orjson.dumps(body))
    assert usage is not None and usage.cache_write_1h_tokens == 1200
    assert out["usage"] == {
        "prompt_tokens": 5050,
        "completion_tokens": 400,
        "total_tokens": 5450,
        "prompt_tokens_details": {"cached_tokens": 2000},
    }


def test_stream_usage_merges_message_start_and_message_delta() -> None:
    tr = ADAPTOR.chat_stream(TARGET, True)
    start = {
        "type": "message_start",
        "message": {
            "id": "msg_2",
            "type": "message",
            "role": "assistant",
            "model": "claude-sonnet-5-5",
            "content": [],
            "usage": {
                "input_tokens": 20,
                "cache_creation_input_tokens": 300,
                "cache_read_input_tokens": 100,
                "cache_creation": {
                    "ephemeral_5m_input_tokens": 0,
                    "ephemeral_1h_input_tokens": 300,
                },
                "output_tokens": 1,
            },
        },
    }
    delta = {
        "type": "message_delta",
        "delta": {"stop_reason": "end_turn"},
        # later counts; a zero for a known count must not erase it
        "usage": {"output_tokens": 42, "cache_creation": {"ephemeral_1h_input_tokens": 0}},
    }
    tr.feed("message_start", orjson.dumps(start))
    tr.feed("message_delta", orjson.dumps(delta))
    chunks = [orjson.loads(c) for c in tr.feed("message_stop", b'{"type":"message_stop"}')]
    chunks += [orjson.loads(c) for c in tr.finish()]
    u = tr.usage
    assert u is not None
    assert (u.prompt_tokens, u.completion_tokens) == (420, 42)
    assert (u.cached_tokens, u.cache_write_tokens, u.cache_write_1h_tokens) == (100, 0, 300)
    usage_chunks = [c["usage"] for c in chunks if c.get("usage")]
    assert usage_chunks and usage_chunks[-1]["prompt_tokens"] == 420
