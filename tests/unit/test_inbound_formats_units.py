"""Pure parts of the other client formats' second round: RELAYGATE_ENVELOPE_FORMATS checks,
the envelope helpers, stop sequences and thinking signatures of translated Anthropic
answers, and the chat views of native Responses requests and streams."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from relaygate.errors import InvalidRequest, ModelNotFound
from relaygate.inbound.anthropic_response import to_message
from relaygate.inbound.anthropic_signature import signature, strip_gateway_thinking
from relaygate.inbound.anthropic_stream import MessagesStream
from relaygate.inbound.gemini_request import chat_body
from relaygate.inbound.responses_view import (
    ResponsesShadow,
    apply_prepared,
    chat_view,
    estimate_chat,
)
from relaygate.relay.envelope import enveloped, plain_openai_error, wrap_ok
from relaygate.settings import Settings

KEY = b"k" * 32


# ---- RELAYGATE_ENVELOPE_FORMATS ---------------------------------------------------------
def test_envelope_formats_default_and_list(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("RELAYGATE_ENVELOPE_FORMATS", raising=False)
    assert Settings.from_env().envelope_formats == ("openai", "responses")
    monkeypatch.setenv("RELAYGATE_ENVELOPE_FORMATS", " OpenAI, gemini ,anthropic,gemini")
    assert Settings.from_env().envelope_formats == ("openai", "gemini", "anthropic")


@pytest.mark.parametrize(
    ("raw", "words"),
    [("openai,claude", "unknown format 'claude'"), ("anthropic", "must include openai")],
)
def test_envelope_formats_refused_at_start(
    monkeypatch: pytest.MonkeyPatch, raw: str, words: str
) -> None:
    monkeypatch.setenv("RELAYGATE_ENVELOPE_FORMATS", raw)
    with pytest.raises(ValueError, match=words):
        Settings.from_env()


def test_envelope_helpers() -> None:
    assert orjson.loads(wrap_ok({"a": 1}, True)) == {"code": 0, "msg": "ok", "a": 1}
    assert wrap_ok(b'{"a":1}', False) == b'{"a":1}'
    assert wrap_ok(b"[1]", True) == b"[1]"
    err = ModelNotFound("No such model.")
    render = enveloped(lambda e, status: orjson.dumps({"type": "error"}), True)
    assert orjson.loads(render(err, 404)) == {"code": 404, "msg": "No such model.", "type": "error"}
    assert set(orjson.loads(plain_openai_error(err, 404))) == {"error"}


# ---- Anthropic: stop sequences, signatures ----------------------------------------------
def _completion(choice: dict[str, Any]) -> dict[str, Any]:
    msg = {"role": "assistant", "content": "Hi", "reasoning_content": "Think."}
    return {"id": "x", "choices": [{"index": 0, "message": msg, **choice}]}


def test_stop_sequence_named_by_the_upstream() -> None:
    got = to_message(_completion({"finish_reason": "stop", "stop_reason": "END"}), "m", ("END",))
    assert got["stop_reason"] == "stop_sequence" and got["stop_sequence"] == "END"
    plain = to_message(_completion({"finish_reason": "stop"}), "m", ("END",))
    assert plain["stop_reason"] == "end_turn" and plain["stop_sequence"] is None
    other = to_message(_completion({"finish_reason": "stop", "stop_reason": 7}), "m", ("END",))
    assert other["stop_sequence"] is None


def test_stream_signs_thinking_and_names_the_stop() -> None:
    stream = MessagesStream("m", 3, key=KEY, stops=("END",))
    chunks = [
        {"id": "c", "choices": [{"index": 0, "delta": {"reasoning_content": "Th"}}]},
        {"id": "c", "choices": [{"index": 0, "delta": {"reasoning_content": "ink."}}]},
        {"id": "c", "choices": [{"index": 0, "delta": {"content": "Hi"}}]},
        {"id": "c", "choices": [{"index": 0, "delta": {}, "finish_reason": "stop",
                                 "matched_stop": "END"}]},
    ]  # fmt: skip
    out = stream.feed([orjson.dumps(c) for c in chunks]) + stream.finish()
    events = [orjson.loads(line[6:]) for line in out.split(b"\n") if line.startswith(b"data: ")]
    sig = [e["delta"] for e in events if e.get("delta", {}).get("type") == "signature_delta"]
    assert sig == [{"type": "signature_delta", "signature": signature("Think.", KEY)}]
    end = next(e for e in events if e["type"] == "message_delta")
    assert end["delta"] == {"stop_reason": "stop_sequence", "stop_sequence": "END"}


def test_gateway_thinking_is_stripped_for_anthropic() -> None:
    ours = {"type": "thinking", "thinking": "Mine.", "signature": signature("Mine.", KEY)}
    theirs = {"type": "thinking", "thinking": "Theirs.", "signature": "EqQBCkYIBBgCKkD"}
    text = {"type": "text", "text": "Hi"}
    body = {"messages": [{"role": "assistant", "content": [ours, theirs, text]}]}
    got = strip_gateway_thinking(body, KEY)
    assert got["messages"][0]["content"] == [theirs, text]
    assert strip_gateway_thinking({"messages": []}, KEY) == {"messages": []}


# ---- Responses: chat views ---------------------------------------------------------------
def test_estimate_counts_every_text() -> None:
    body = {"model": "m", "instructions": "Be brief.", "max_output_tokens": 9}
    items = [{"role": "user", "content": [{"type": "input_text", "text": "A"},
                                          {"type": "input_file", "file_data": "QUJD" * 9}]},
             {"type": "function_call_output", "call_id": "c1", "output": "B"}]  # fmt: skip
    chat = estimate_chat(body, items)
    assert chat["messages"] == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "A\nB"},
    ]
    assert chat["max_tokens"] == 9


def test_apply_prepared_carries_changes_back() -> None:
    body = {"model": "m", "input": "Q", "instructions": "Old."}
    view = {"model": "m", "messages": [{"role": "system", "content": "Old."},
                                       {"role": "user", "content": "Q"}]}  # fmt: skip
    before = [orjson.dumps(m) for m in view["messages"]]
    view["model"] = "m2"
    view["messages"].insert(0, {"role": "system", "content": "New."})
    view["messages"].insert(2, {"role": "user", "content": "Found: X"})
    view["max_tokens"] = 5
    got = apply_prepared(body, before, view)
    assert got["model"] == "m2" and got["instructions"] == "New.\n\nOld."
    assert got["max_output_tokens"] == 5
    assert got["input"] == [
        {
            "type": "message",
            "role": "user",
            "content": [{"type": "input_text", "text": "Found: X"}],
        },
        {"type": "message", "role": "user", "content": "Q"},
    ]
    assert apply_prepared(body, before, {"model": "m", "messages": view["messages"][1:2]}) == body


def test_shadow_reads_text_calls_usage_and_failures() -> None:
    shadow = ResponsesShadow()
    events = [
        {"type": "response.created", "response": {"id": "resp_1"}},
        {"type": "response.output_text.delta", "delta": "Hi"},
        {"type": "response.output_item.added", "output_index": 1,
         "item": {"type": "function_call", "call_id": "c", "name": "f"}},
        {"type": "response.function_call_arguments.delta", "output_index": 1, "delta": "{}"},
        {"type": "response.completed", "response": {"id": "resp_1", "status": "completed",
                                                    "usage": {"input_tokens": 3, "output_tokens": 4}}},
    ]  # fmt: skip
    chunks = [orjson.loads(p) for e in events for p in shadow.feed(e["type"], orjson.dumps(e))]
    assert shadow.done and shadow.response_id == "resp_1"
    assert shadow.usage is not None and shadow.usage.total_tokens == 7
    assert chunks[0]["choices"][0]["delta"] == {"content": "Hi"}
    assert chunks[1]["choices"][0]["delta"]["tool_calls"][0]["function"]["name"] == "f"
    assert chunks[3]["choices"][0]["finish_reason"] == "tool_calls"
    assert chunks[-1]["usage"]["completion_tokens"] == 4
    failed = ResponsesShadow()
    failed.feed("error", b'{"type":"error","message":"boom"}')
    assert failed.error is not None and failed.error.message == "boom"
    assert failed.feed(None, b"[DONE]") == [] and failed.feed(None, b"{oops") == []


def test_chat_view_of_a_response() -> None:
    resp = {"id": "r", "status": "incomplete", "incomplete_details": {"reason": "max_output_tokens"},
            "output": [{"type": "reasoning", "summary": [{"type": "summary_text", "text": "S"}]},
                       {"type": "message", "content": [{"type": "output_text", "text": "T"}]}],
            "usage": {"input_tokens": 1, "output_tokens": 2}}  # fmt: skip
    view = chat_view(resp)
    choice = view["choices"][0]
    assert choice["message"]["content"] == "T" and choice["message"]["reasoning_content"] == "S"
    assert choice["finish_reason"] == "length" and view["usage"]["total_tokens"] == 3


# ---- Gemini: topK, built-in tools ---------------------------------------------------------
def test_gemini_top_k_and_builtin_tools() -> None:
    base = {"contents": [{"role": "user", "parts": [{"text": "hi"}]}]}
    assert chat_body("m", {**base, "generationConfig": {"topK": 5}}, stream=False)["top_k"] == 5
    with pytest.raises(InvalidRequest, match=r"generationConfig\.topK"):
        chat_body("m", {**base, "generationConfig": {"topK": "x"}}, stream=False)
    for key in ("google_search", "googleSearch", "googleSearchRetrieval"):
        out = chat_body("m", {**base, "tools": [{key: {}}]}, stream=False)
        assert out["online"] is True and "tools" not in out
    with pytest.raises(InvalidRequest, match="`code_execution`"):
        chat_body("m", {**base, "tools": [{"code_execution": {}}]}, stream=False)
