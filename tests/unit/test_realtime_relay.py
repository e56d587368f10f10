"""The pure parts of the realtime relay: usage of a ``response.done`` event, the error event,
close codes and upstream URLs."""

from __future__ import annotations

import orjson

from relaygate.errors import (
    AuthError,
    ModelNotFound,
    QuotaExceeded,
    RateLimited,
    ServiceUnavailable,
    UpstreamError,
)
from relaygate.providers.base import Usage
from relaygate.relay.realtime import close_code, upstream_url
from relaygate.relay.realtime_pump import error_event, realtime_usage

# the example of the API reference's response.done (openapi.yaml RealtimeServerEventResponseDone)
DONE = {
    "type": "response.done",
    "event_id": "event_CCXHxcMy86rrKhBLDdqCh",
    "response": {
        "object": "realtime.response",
        "id": "resp_CCXHw0UJld10EzIUXQCNh",
        "status": "completed",
        "usage": {
            "total_tokens": 253,
            "input_tokens": 132,
            "output_tokens": 121,
            "input_token_details": {
                "text_tokens": 119,
                "audio_tokens": 13,
                "image_tokens": 0,
                "cached_tokens": 64,
                "cached_tokens_details": {"text_tokens": 64, "audio_tokens": 0},
            },
            "output_token_details": {"text_tokens": 30, "audio_tokens": 91},
        },
    },
}


def test_usage_of_response_done() -> None:
    assert realtime_usage(DONE) == Usage(
        prompt_tokens=132,
        completion_tokens=121,
        total_tokens=253,
        cached_tokens=64,
        audio_prompt_tokens=13,
        audio_completion_tokens=91,
    )


def test_audio_usage_leaves_out_cached_audio_and_stays_within_the_counts() -> None:
    usage = {"input_tokens": 100, "output_tokens": 10,
             "input_token_details": {"audio_tokens": 80, "cached_tokens": 50,
                                     "cached_tokens_details": {"audio_tokens": 20}},
             "output_token_details": {"audio_tokens": 99}}  # fmt: skip
    got = realtime_usage({"response": {"usage": usage}})
    # 80 audio of which 20 cached: 60 fresh audio, but only 50 input tokens are not cached
    assert (got.audio_prompt_tokens, got.audio_completion_tokens) == (50, 10)
    bad = {"input_tokens": 5, "input_token_details": {"audio_tokens": "5"},
           "output_token_details": [1]}  # fmt: skip
    got = realtime_usage({"response": {"usage": bad}})
    assert (got.audio_prompt_tokens, got.audio_completion_tokens) == (0, 0)


def test_usage_missing_or_malformed_is_zero() -> None:
    assert realtime_usage({"type": "response.done"}) == Usage()
    assert realtime_usage({"response": {"usage": None}}) == Usage()
    bad = {"response": {"usage": {"input_tokens": "9", "output_tokens": -3}}}
    assert realtime_usage(bad) == Usage()
    # cached tokens never exceed the input they are part of
    odd = {"response": {"usage": {"input_tokens": 5, "input_token_details": {"cached_tokens": 9}}}}
    assert realtime_usage(odd).cached_tokens == 5


def test_error_event_shape() -> None:
    event = orjson.loads(error_event(ModelNotFound("No such model.", param="model")))
    assert event["type"] == "error" and event["event_id"].startswith("event_")
    assert event["error"] == {
        "type": ModelNotFound.type,
        "code": "model_not_found",
        "message": "No such model.",
        "param": "model",
        "event_id": None,
    }


def test_close_codes() -> None:
    assert close_code(AuthError("no"), 401) == 1008
    assert close_code(QuotaExceeded("poor"), 403) == 1008
    assert close_code(RateLimited("slow down"), 429) == 1013
    assert close_code(ServiceUnavailable("later"), 503) == 1013
    assert close_code(UpstreamError("down"), 502) == 1011


def test_upstream_url() -> None:
    assert upstream_url("https://api.openai.com/v1/realtime?model=m") == (
        "wss://api.openai.com/v1/realtime?model=m"
    )
    assert upstream_url("http://127.0.0.1:9/v1/realtime") == "ws://127.0.0.1:9/v1/realtime"
    assert upstream_url("wss://x/realtime") == "wss://x/realtime"
