"""The per-chunk byte checks of the streamed path give the same answers as the plain
substring tests they replaced (docs/performance.md, "Paced streams: where the per-chunk CPU
went"): the translator's parse decision and finish detection, the SSE decoder's one-event
read, and the stream meter's counts."""

from __future__ import annotations

import itertools

import orjson
import pytest

from relaygate.billing.tokens import StreamMeter, count_text
from relaygate.providers.base import Target
from relaygate.providers.openai_compat import (
    OpenAICompatAdaptor,
    OpenAIStreamTranslator,
    _has_finish_reason,
)
from relaygate.providers.vendor_quirks import has_body_error, has_usage_value
from relaygate.relay.sse import SSEDecoder

HEAD = b'{"id":"c1","object":"chat.completion.chunk","created":1,"model":"m",'
PARTS = [
    b'"choices":[{"index":0,"delta":{"content":"hi"},"finish_reason":null}]',
    b'"choices":[{"index":0,"delta":{},"finish_reason":"stop"}]',
    b'"choices":[{"index":0,"delta":{},"finish_reason": "stop"}]',
    b'"choices":[{"index":0,"finish_reason":null},{"index":1,"finish_reason":"length"}]',
    b'"choices":[]',
    b'"choices":[{"index":0,"delta":{"reasoning":"r"}}]',
    b'"choices":[{"index":0,"delta":{"reasoning_details":[{"text":"r"}]}}]',
    b'"choices":[{"index":0,"delta":{"reasoning_content":"r"}}]',
    b'"choices":[{"index":0,"delta":{"role":"","tool_calls":[{"index":0}]}}]',
]
TAILS = [
    b"",
    b',"usage":null',
    b',"usage": {"prompt_tokens":1}',
    b',"usage":null,"x":{"usage":{"total_tokens":2}}',
    b',"usage":null,"note":"usage"',
    b',"object":""',
    b',"service_tier":"default"',
    b',"base_resp":{"status_code":1}',
]
CHUNKS = [HEAD + p + t + b"}" for p, t in itertools.product(PARTS, TAILS)] + [
    b'{"error":{"message":"x"}}',
    b'{"code":10013,"message":"x"}',
    b"not json",
    b"",
]


def _target(profile: str) -> Target:
    return Target(1, "openai_compat", profile, "http://127.0.0.1", "k", "m")


def _old_needs_parse(tr: OpenAIStreamTranslator, data: bytes) -> bool:
    """The checks as they were written before (``in`` on the whole chunk)."""
    rename = tr._profile.reasoning_field
    return (
        (b'"usage"' in data and has_usage_value(data))
        or b'"error"' in data[:16]
        or b'"choices":[]' in data
        or b'"object":""' in data
        or not tr._id
        or tr._fill
        or (tr._body_errors and has_body_error(data))
        or (tr._closing and b'"role":""' in data)
        or b'"reasoning"' in data
        or b'"reasoning_details"' in data
        or (rename is not None and rename.encode() in data)
        or (tr._legacy is not None and b'"tool_calls"' in data)
    )


@pytest.mark.parametrize("profile", ["openai", "ollama", "minimax", "spark"])
@pytest.mark.parametrize("legacy", [False, True])
def test_parse_decision_unchanged(profile: str, legacy: bool) -> None:
    tr = OpenAICompatAdaptor().chat_stream(_target(profile), True, legacy_functions=legacy)
    for with_id in (False, True):
        tr._id = "c1" if with_id else ""
        for data in CHUNKS:
            assert tr._needs_parse(data) == _old_needs_parse(tr, data), data


def test_finish_detection_unchanged() -> None:
    extra = [b'"finish_reason":null,"finish_reason":"stop"', b'"finish_reason":  "stop"']
    for data in [*CHUNKS, *extra]:
        old = b'"finish_reason":"' in data or b'"finish_reason": "' in data
        assert _has_finish_reason(data) == old, data


def test_usage_null_then_usage_value_is_parsed() -> None:
    tr = OpenAICompatAdaptor().chat_stream(_target("openai"), True)
    tr.feed(None, HEAD + PARTS[0] + b"}")  # the first chunk names the stream
    usage = b'{"prompt_tokens":3,"completion_tokens":4,"total_tokens":7}'
    out = tr.feed(None, HEAD + PARTS[0] + b',"usage":null,"x":{"usage":' + usage + b"}}")
    assert tr.usage is None  # a nested usage object is not the chunk's usage
    assert orjson.loads(out[0])["usage"] is None  # but the chunk was parsed and normalised
    out = tr.feed(None, HEAD + b'"choices":[],"usage":' + usage + b"}")
    assert tr.usage is not None and tr.usage.total_tokens == 7


def _decode_one_by_one(raw: bytes) -> list[tuple[str | None, bytes]]:
    d = SSEDecoder()
    out: list[tuple[str | None, bytes]] = []
    for i in range(len(raw)):
        out.extend(d.feed(raw[i : i + 1]))  # never one whole event per read: the slow path
    return out


@pytest.mark.parametrize(
    "raw",
    [
        b'data: {"a":1}\n\n',
        b"data: a\ndata: b\n\n",
        b"data:{}\n\n",
        b"event: x\ndata: 1\n\n",
        b"data: [DONE]\n\n",
        b"\n\n",
        b'data: {"a":1}\n\ndata: 2\n\n',
        b"data: 1\r\n\r\n",
        b"data: 1\n\n\n",
    ],
)
def test_decoder_whole_event_read_matches_byte_by_byte(raw: bytes) -> None:
    assert SSEDecoder().feed(raw) == _decode_one_by_one(raw)


def test_meter_counts_every_text_field() -> None:
    m = StreamMeter()
    chunk = {
        "id": "c1",
        "model": "m",
        "created": 5,
        "choices": [
            {"index": 0, "delta": {"content": "Hello there", "reasoning_content": "think"}},
            {
                "index": 1,
                "delta": {
                    "tool_calls": [{"function": {"name": "get_weather", "arguments": '{"c":"x"}'}}]
                },
            },
        ],
    }
    want = sum(map(count_text, ["Hello there", "think", "get_weather", '{"c":"x"}']))
    assert m.feed(orjson.dumps(chunk)) == want
    assert (m.tokens, m.id, m.model, m.created, m.chunks) == (want, "c1", "m", 5, 1)
    assert m.feed(b'{"choices":[{"delta":{"role":"assistant"}}]}') == 0  # no text: no parse
    assert m.feed(b'{"choices":[{"delta":{"content":"x"') == 0  # not JSON: nothing counted
    assert m.tokens == want and m.chunks == 3
