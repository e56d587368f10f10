"""Shaping of realtime sessions, pure: the gateway's first ``session.update``, the client's
``session.update`` and ``response.create`` under the beta and GA names, and the client
frames the gateway checks (``relay/realtime_events.py``)."""

from __future__ import annotations

import orjson

from relaygate.relay.realtime_events import ClientFrames
from relaygate.services.shaping_realtime import (
    initial_session,
    needs_initial,
    shape_response,
    shape_session,
)

MODEL = {
    "defaults": {"temperature": 0.6, "max_tokens": 300, "voice": "alloy"},
    "overrides": {"tool_choice": "none"},
    "drop": ["tools"],
    "system_prefix": "Be polite.",
}
CHANNEL = {"overrides": {"max_tokens": 100}, "defaults": {"temperature": 0.9, "top_p": 0.5}}


def test_initial_session_beta_names() -> None:
    assert initial_session([MODEL, CHANNEL], beta=True) == {
        "temperature": 0.6,  # the model's default first: the channel's default does not win
        "max_response_output_tokens": 100,  # the channel's override does
        "voice": "alloy",
        "tool_choice": "none",
        "instructions": "Be polite.",
    }  # top_p: no realtime name, left out


def test_initial_session_ga_names() -> None:
    assert initial_session([MODEL], beta=False) == {
        "type": "realtime",
        "max_output_tokens": 300,
        "tool_choice": "none",
        "instructions": "Be polite.",
    }  # temperature and voice are not GA session fields


def test_nothing_to_start_with() -> None:
    assert initial_session([None, {"drop": ["tools"]}], beta=True) is None
    assert initial_session([{"defaults": {"top_p": 1}}], beta=True) is None
    assert not needs_initial([None, {"drop": ["x"]}])
    assert needs_initial([{"system_prefix": "p"}])


def test_client_session_update_drops_overrides_and_prefixes_without_defaults() -> None:
    sent = {"temperature": 1.0, "tools": [{"type": "function"}], "tool_choice": "auto",
            "instructions": "Talk like a pirate.", "max_response_output_tokens": 4000}  # fmt: skip
    before = dict(sent)
    out = shape_session(sent, [MODEL, CHANNEL], beta=True)
    assert out == {
        "temperature": 1.0,  # the client's own value: a default does not replace it
        "tool_choice": "none",
        "instructions": "Be polite.\n\nTalk like a pirate.",
        "max_response_output_tokens": 100,
    }
    assert sent == before  # not changed in place
    # an update without instructions keeps the session's: no prefix, no defaults added
    assert shape_session({"voice": "echo"}, [MODEL], beta=True) == {
        "voice": "echo",
        "tool_choice": "none",
    }


def test_response_create_overrides_under_ga_names() -> None:
    out = shape_response({"max_output_tokens": 999, "instructions": "Short."}, [CHANNEL, MODEL],
                         beta=False)  # fmt: skip
    assert out == {"max_output_tokens": 100, "instructions": "Be polite.\n\nShort.",
                   "tool_choice": "none"}  # fmt: skip
    assert shape_response({}, [None], beta=False) == {}


def test_client_frames_refuse_non_objects_and_shape_updates() -> None:
    frames = ClientFrames([MODEL], beta=True)
    for bad in ("not json", "[1, 2]", '"text"', "42", "", "null"):
        _, error = frames.check(bad)
        assert error is not None and error.code == "invalid_event"
    text, error = frames.check('{"type":"session.update","session":{"instructions":"Hi"}}')
    assert error is None
    assert orjson.loads(text)["session"] == {"instructions": "Be polite.\n\nHi",
                                             "tool_choice": "none"}  # fmt: skip
    # wrong types pass unchanged (the upstream answers them)
    for odd in ('{"type":"session.update","session":7}', '{"type":"response.create",'
                '"response":"x"}', '{"type":"x"}', '{"broken'):  # fmt: skip
        assert frames.check(odd) == (odd, None)
    transcription = '{"type":"session.update","session":{"type":"transcription"}}'
    assert frames.check(transcription) == (transcription, None)
    # no rules: nothing parsed or changed
    plain = ClientFrames([], beta=False)
    assert plain.initial() is None
    same = '{"type":"session.update","session":{"instructions":"Hi"}}'
    assert plain.check(same) == (same, None)


def test_the_answer_to_the_gateways_own_update_is_hidden_once() -> None:
    frames = ClientFrames([MODEL], beta=False)
    first = orjson.loads(frames.initial() or "")
    assert first["type"] == "session.update" and first["session"]["type"] == "realtime"
    assert not frames.hides('{"type":"session.created"}')
    assert frames.hides('{"type":"session.updated","session":{}}')
    assert not frames.hides('{"type":"session.updated","session":{}}')  # the client's
    again = ClientFrames([MODEL], beta=False)
    eid = orjson.loads(again.initial() or "")["event_id"]
    assert not again.hides(orjson.dumps({"type": "error", "error": {"event_id": eid}}).decode())
    assert again.initial_id is None  # the error is forwarded and ends the wait
