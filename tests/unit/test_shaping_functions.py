"""Request shaping (services/shaping.py, services/shaping_rules.py): the pure functions on
chat-completions, Anthropic Messages and Responses bodies with literal fixtures, and the
refusals of a rule set in a channel's ``config.shaping`` and a model route's ``shaping``."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from relaygate.services.channel_config import channel_config
from relaygate.services.fields import ValidationError
from relaygate.services.routes import validate_route_create, validate_route_patch
from relaygate.services.shaping import apply_all, shape_anthropic, shape_chat, shape_responses
from relaygate.services.shaping_rules import PARAMS_MAX, PREFIX_MAX, shaping_rules
from relaygate.services.validation import validate_channel_create

CHAT: dict[str, Any] = {
    "model": "gpt-4o-mini",
    "messages": [{"role": "user", "content": "hi"}],
    "top_p": 0.5,
    "presence_penalty": 1,
}


def shaped(fn: Any, body: dict[str, Any], rules: dict[str, Any]) -> dict[str, Any]:
    """``fn(body, rules)``, checking that neither argument was changed."""
    before_body, before_rules = copy.deepcopy(body), copy.deepcopy(rules)
    out: dict[str, Any] = fn(body, rules)
    assert body == before_body and rules == before_rules
    return out


# ---- chat completions --------------------------------------------------------------


def test_chat_defaults_only_when_absent_or_null() -> None:
    rules = {"defaults": {"temperature": 0, "top_p": 1, "seed": 7}}
    out = shaped(shape_chat, {**CHAT, "seed": None}, rules)
    assert out["temperature"] == 0  # absent: set
    assert out["top_p"] == 0.5  # sent: kept
    assert out["seed"] == 7  # null counts as not sent
    out = shaped(shape_chat, {**CHAT, "temperature": 1.3}, rules)
    assert out["temperature"] == 1.3


def test_chat_overrides_and_drop() -> None:
    rules = {"overrides": {"temperature": 0.2, "n": 1}, "drop": ["presence_penalty", "logit_bias"]}
    out = shaped(shape_chat, {**CHAT, "temperature": 1.9, "n": 3}, rules)
    assert out["temperature"] == 0.2 and out["n"] == 1
    assert "presence_penalty" not in out and "logit_bias" not in out
    assert out["top_p"] == 0.5 and out["messages"] == CHAT["messages"]


def test_chat_max_tokens_is_one_parameter_under_two_names() -> None:
    # a default of one name is not added beside the other (OpenAI refuses both)
    out = shaped(shape_chat, {**CHAT, "max_completion_tokens": 50}, {"defaults": {"max_tokens": 9}})
    assert "max_tokens" not in out and out["max_completion_tokens"] == 50
    # an override of one replaces the other
    body = {**CHAT, "max_completion_tokens": 50}
    out = shaped(shape_chat, body, {"overrides": {"max_tokens": 9}})
    assert out["max_tokens"] == 9 and "max_completion_tokens" not in out


def test_chat_override_values_are_copies() -> None:
    rules = {"overrides": {"response_format": {"type": "json_object"}}}
    out = shaped(shape_chat, CHAT, rules)
    out["response_format"]["type"] = "changed by an adaptor"
    assert rules["overrides"]["response_format"] == {"type": "json_object"}


def test_chat_system_prefix() -> None:
    rules = {"system_prefix": "Answer in French."}
    out = shaped(shape_chat, CHAT, rules)
    assert out["messages"] == [
        {"role": "system", "content": "Answer in French."},
        {"role": "user", "content": "hi"},
    ]
    body = {**CHAT, "messages": [{"role": "system", "content": "Be brief."}, *CHAT["messages"]]}
    out = shaped(shape_chat, body, rules)
    assert out["messages"][0] == {"role": "system", "content": "Answer in French.\n\nBe brief."}
    assert len(out["messages"]) == 2
    parts = [{"type": "text", "text": "Be brief."}]
    body = {**CHAT, "messages": [{"role": "developer", "content": parts}, *CHAT["messages"]]}
    out = shaped(shape_chat, body, rules)
    assert out["messages"][0] == {
        "role": "developer",
        "content": [{"type": "text", "text": "Answer in French."}, *parts],
    }


def test_chat_no_rules_is_the_same_object() -> None:
    assert shape_chat(CHAT, {}) is CHAT
    assert shape_chat(CHAT, None) is CHAT
    assert apply_all(shape_chat, CHAT, [None, {}]) is CHAT


def test_rule_sets_apply_in_order_model_then_channel() -> None:
    model = {"defaults": {"temperature": 0}, "overrides": {"top_p": 0.9}, "system_prefix": "M"}
    channel = {"overrides": {"top_p": 0.1}, "drop": ["temperature"], "system_prefix": "C"}
    out = apply_all(shape_chat, CHAT, [model, channel])
    assert out["top_p"] == 0.1  # the channel's override comes last
    assert "temperature" not in out  # the channel's upstream takes none
    assert out["messages"][0] == {"role": "system", "content": "C\n\nM"}


# ---- Anthropic Messages ------------------------------------------------------------

ANTHROPIC: dict[str, Any] = {
    "model": "claude-sonnet-4",
    "max_tokens": 1024,
    "messages": [{"role": "user", "content": "hi"}],
}


def test_anthropic_names_and_prefix() -> None:
    rules = {
        "defaults": {"temperature": 0, "stop": "END", "presence_penalty": 1},
        "overrides": {"max_completion_tokens": 256, "top_p": 0.8},
        "system_prefix": "House rules.",
    }
    out = shaped(shape_anthropic, ANTHROPIC, rules)
    assert out["temperature"] == 0
    assert out["stop_sequences"] == ["END"]  # stop, as Anthropic names it
    assert out["max_tokens"] == 256 and "max_completion_tokens" not in out
    assert out["top_p"] == 0.8
    assert "presence_penalty" not in out  # Anthropic has none: not sent
    assert out["system"] == "House rules."
    out = shaped(shape_anthropic, {**ANTHROPIC, "system": "Be brief."}, rules)
    assert out["system"] == "House rules.\n\nBe brief."
    blocks = [{"type": "text", "text": "Be brief.", "cache_control": {"type": "ephemeral"}}]
    out = shaped(shape_anthropic, {**ANTHROPIC, "system": blocks}, rules)
    assert out["system"] == [{"type": "text", "text": "House rules."}, *blocks]


def test_anthropic_drop_keeps_the_required_max_tokens() -> None:
    body = {**ANTHROPIC, "stop_sequences": ["x"], "top_k": 5}
    out = shaped(shape_anthropic, body, {"drop": ["max_tokens", "stop", "top_k"]})
    assert out["max_tokens"] == 1024
    assert "stop_sequences" not in out and "top_k" not in out


def test_anthropic_default_sent_value_kept() -> None:
    out = shaped(shape_anthropic, {**ANTHROPIC, "temperature": 1}, {"defaults": {"temperature": 0}})
    assert out["temperature"] == 1


# ---- Responses ---------------------------------------------------------------------

RESPONSES: dict[str, Any] = {"model": "gpt-4o-mini", "input": "hi"}


def test_responses_names_and_prefix() -> None:
    rules = {
        "defaults": {"max_tokens": 300, "temperature": 0, "stop": ["x"], "reasoning_effort": "low"},
        "system_prefix": "House rules.",
    }
    out = shaped(shape_responses, RESPONSES, rules)
    assert out["max_output_tokens"] == 300 and "max_tokens" not in out
    assert out["temperature"] == 0
    assert "stop" not in out  # the Responses API has no stop sequences
    assert out["reasoning"] == {"effort": "low"}
    assert out["instructions"] == "House rules."
    body = {**RESPONSES, "instructions": "Be brief.", "reasoning": {"effort": "high"}}
    out = shaped(shape_responses, body, rules)
    assert out["instructions"] == "House rules.\n\nBe brief."
    assert out["reasoning"] == {"effort": "high"}  # sent: a default does not change it


def test_responses_overrides_and_drop() -> None:
    body = {
        **RESPONSES,
        "max_output_tokens": 5000,
        "reasoning": {"effort": "high", "summary": "auto"},
        "store": True,
    }
    rules = {
        "overrides": {"max_completion_tokens": 100, "reasoning_effort": "minimal"},
        "drop": ["store"],
    }
    out = shaped(shape_responses, body, rules)
    assert out["max_output_tokens"] == 100
    assert out["reasoning"] == {"effort": "minimal", "summary": "auto"}
    assert "store" not in out
    out = shaped(shape_responses, body, {"drop": ["reasoning_effort"]})
    assert out["reasoning"] == {"summary": "auto"}


# ---- validation --------------------------------------------------------------------


def test_rules_normalized() -> None:
    given = {
        "defaults": {"temperature": 0},
        "overrides": {},
        "drop": ["logit_bias", "logit_bias"],
        "system_prefix": "Line one.\nLine two.\t",
    }
    assert shaping_rules("shaping", given) == {
        "defaults": {"temperature": 0},
        "drop": ["logit_bias"],
        "system_prefix": "Line one.\nLine two.\t",
    }
    assert shaping_rules("shaping", {"system_prefix": "", "drop": []}) == {}


@pytest.mark.parametrize(
    ("rules", "param", "match"),
    [
        ("x", "s", "must be an object"),
        ({"default": {}}, "s.default", "Unknown key `default`"),
        ({"defaults": []}, "s.defaults", "must be an object"),
        ({"overrides": {"model": "gpt-4o"}}, "s.overrides key", "may not set or remove"),
        ({"overrides": {"stream": False}}, "s.overrides key", "request's structure"),
        ({"defaults": {"messages": []}}, "s.defaults key", "system_prefix"),
        ({"drop": ["stream_options"]}, "s.drop[0]", "may not set or remove"),
        ({"drop": ["system"]}, "s.drop[0]", "system_prefix"),
        ({"drop": "temperature"}, "s.drop", "array of parameter names"),
        ({"drop": ["top p"]}, "s.drop[0]", "parameter name"),
        ({"defaults": {"1x": 1}}, "s.defaults key", "parameter name"),
        ({"defaults": {"temperature": 3}}, "s.defaults.temperature", "from 0 to 2"),
        ({"defaults": {"temperature": "0"}}, "s.defaults.temperature", "must be a number"),
        ({"overrides": {"top_p": -0.1}}, "s.overrides.top_p", "from 0 to 1"),
        ({"overrides": {"max_tokens": 0}}, "s.overrides.max_tokens", "integer from 1"),
        ({"overrides": {"stop": ["a", "b", "c", "d", "e"]}}, "s.overrides.stop", "1 to 4"),
        ({"defaults": {"seed": None}}, "s.defaults.seed", "list it in `drop`"),
        ({"defaults": {"x": "a" * 5000}}, "s.defaults.x", "at most 4096"),
        ({"defaults": {"x": [float("nan")]}}, "s.defaults.x", "NaN"),
        (
            {"defaults": {"max_tokens": 1, "max_completion_tokens": 2}},
            "s.defaults",
            "two names of one parameter",
        ),
        (
            {"defaults": {"temperature": 0}, "overrides": {"temperature": 1}},
            "s.defaults.temperature",
            "both",
        ),
        ({"defaults": {"top_p": 1}, "drop": ["top_p"]}, "s.drop", "both dropped"),
        ({"system_prefix": 5}, "s.system_prefix", "must be a string"),
        ({"system_prefix": "a\x00b"}, "s.system_prefix", "control characters"),
        ({"system_prefix": "a" * (PREFIX_MAX + 1)}, "s.system_prefix", "at most"),
        (
            {"defaults": {f"p{i}": 1 for i in range(PARAMS_MAX + 1)}},
            "s.defaults",
            "at most 32",
        ),
    ],
)
def test_rules_refused(rules: Any, param: str, match: str) -> None:
    with pytest.raises(ValidationError, match=match) as info:
        shaping_rules("s", rules)
    assert info.value.field == param


def test_channel_config_shaping() -> None:
    config = {"shaping": {"defaults": {"temperature": 0}, "system_prefix": "P"}}
    out = validate_channel_create(
        {"name": "c", "base_url": "https://api.example.com/v1", "models": ["m"], "config": config}
    )
    assert out["config"]["shaping"] == {"defaults": {"temperature": 0}, "system_prefix": "P"}
    with pytest.raises(ValidationError) as info:
        channel_config("config", {"shaping": {"overrides": {"temperature": 9}}})
    assert info.value.field == "config.shaping.overrides.temperature"


def test_route_shaping_fields() -> None:
    fields, _ = validate_route_create({"name": "gpt-4o", "shaping": {"drop": ["seed"]}})
    assert fields["shaping"] == {"drop": ["seed"]} and fields["fallbacks"] == []
    fields, _ = validate_route_create({"name": "gpt-4o"})
    assert fields["shaping"] is None
    assert validate_route_patch({"shaping": {}})[0] == {"shaping": None}  # {}: no rules
    assert validate_route_patch({"shaping": None})[0] == {"shaping": None}
    with pytest.raises(ValidationError) as info:
        validate_route_patch({"shaping": {"overrides": {"model": "x"}}})
    assert info.value.field == "shaping.overrides key"
