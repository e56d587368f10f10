"""Request shaping: operator rules applied to a request body before it goes upstream
(docs/request-shaping.md). Pure functions, no I/O.

A rule set (validated by ``services/shaping_rules.py``) is an object with any of:

* ``defaults`` - parameters set when the client did not send them (absent or null);
* ``overrides`` - parameters always set, whatever the client sent;
* ``drop`` - parameters removed from what the client sent;
* ``system_prefix`` - text put before the system prompt (a system message is added when
  there is none), separated from it by a blank line.

Rules are written with chat-completions names. ``shape_chat`` applies them to a
chat-completions body as written; ``shape_anthropic`` and ``shape_responses`` apply them to
an Anthropic Messages or a Responses body under that API's names (``max_tokens`` becomes
Responses' ``max_output_tokens``, ``stop`` Anthropic's ``stop_sequences``, …) and leave out
the parameters that API does not have (an upstream would refuse them). Order within one rule
set: drop, then defaults, then overrides, then the prefix. Several rule sets (the model's,
then the channel's) are applied one after the other.

Every function returns a new body when a rule changes something and never changes the body
or the rules it is given: one client body serves every attempt of a request, each on a
channel with its own rules, and a rule's values are shared by every request.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from copy import deepcopy
from typing import Any

__all__ = [
    "ANTHROPIC_NAMES",
    "MAX_TOKENS_NAMES",
    "RESPONSES_NAMES",
    "apply_all",
    "shape_anthropic",
    "shape_chat",
    "shape_responses",
]

Rules = Mapping[str, Any]
Body = dict[str, Any]

#: the two chat names of one parameter: a default of one is not set when the client sent
#: the other, and an override of one removes the other (OpenAI refuses both at once)
MAX_TOKENS_NAMES = ("max_tokens", "max_completion_tokens")

#: rule name -> Anthropic Messages name, for the parameters Anthropic has
ANTHROPIC_NAMES: dict[str, str] = {
    "max_tokens": "max_tokens",
    "max_completion_tokens": "max_tokens",
    "stop": "stop_sequences",
    "stop_sequences": "stop_sequences",
    "temperature": "temperature",
    "top_p": "top_p",
    "top_k": "top_k",
    "thinking": "thinking",
}
_ANTHROPIC_REQUIRED = frozenset({"max_tokens"})  # never dropped

#: rule name -> Responses API name, for the parameters the Responses API has
#: (``reasoning_effort`` goes into ``reasoning.effort``)
RESPONSES_NAMES: dict[str, str] = {
    "max_tokens": "max_output_tokens",
    "max_completion_tokens": "max_output_tokens",
    "max_output_tokens": "max_output_tokens",
    "temperature": "temperature",
    "top_p": "top_p",
    "top_logprobs": "top_logprobs",
    "parallel_tool_calls": "parallel_tool_calls",
    "store": "store",
    "user": "user",
    "metadata": "metadata",
    "service_tier": "service_tier",
    "safety_identifier": "safety_identifier",
    "prompt_cache_key": "prompt_cache_key",
    "truncation": "truncation",
    "max_tool_calls": "max_tool_calls",
    "reasoning": "reasoning",
    "text": "text",
}

_SEPARATOR = "\n\n"


def _copy(value: Any) -> Any:
    """A rule's value as sent: containers copied (an adaptor may change the body)."""
    return deepcopy(value) if isinstance(value, dict | list) else value


def _params(
    out: Body,
    rules: Rules,
    rename: Mapping[str, str] | None,
    keep: frozenset[str] = frozenset(),
    aliases: tuple[str, ...] = (),
) -> None:
    """Drop, defaults and overrides on ``out`` (a copy already). ``rename``: rule name ->
    body name, names not in it are left out (None: names as written). ``keep``: body
    names never dropped. ``aliases``: body names of one parameter."""

    def name(raw: str) -> str | None:
        return raw if rename is None else rename.get(raw)

    for raw in rules.get("drop") or ():
        key = name(raw)
        if key is not None and key not in keep:
            out.pop(key, None)
    for raw, value in (rules.get("defaults") or {}).items():
        key = name(raw)
        if key is None or out.get(key) is not None:
            continue
        if key in aliases and any(out.get(a) is not None for a in aliases):
            continue
        out[key] = _copy(value)
    for raw, value in (rules.get("overrides") or {}).items():
        key = name(raw)
        if key is None:
            continue
        if key in aliases:
            for other in aliases:
                out.pop(other, None)
        out[key] = _copy(value)


def _prefixed_text(prefix: str, text: str) -> str:
    return prefix + _SEPARATOR + text if text else prefix


def shape_chat(body: Body, rules: Rules | None) -> Body:
    """A chat-completions body with ``rules`` applied. The prefix joins the first message
    when it is a ``system`` or ``developer`` one (text, or a first text part), else comes
    as a new first ``system`` message."""
    if not rules:
        return body
    out = dict(body)
    _params(out, rules, None, aliases=MAX_TOKENS_NAMES)
    prefix = rules.get("system_prefix")
    messages = out.get("messages")
    if prefix and isinstance(messages, list):
        first = messages[0] if messages else None
        if isinstance(first, dict) and first.get("role") in ("system", "developer"):
            content = first.get("content")
            if content is None or isinstance(content, str):
                merged = {**first, "content": _prefixed_text(prefix, content or "")}
            elif isinstance(content, list):
                merged = {**first, "content": [{"type": "text", "text": prefix}, *content]}
            else:
                merged = None
            if merged is not None:
                out["messages"] = [merged, *messages[1:]]
                return out
        out["messages"] = [{"role": "system", "content": prefix}, *messages]
    return out


def _anthropic_value(key: str, value: Any) -> Any:
    if key == "stop_sequences" and isinstance(value, str):
        return [value]
    return value


def _renamed_values(
    rules: Rules, rename: Mapping[str, str], convert: Callable[[str, Any], Any]
) -> dict[str, Any]:
    """``rules`` with its defaults and overrides values converted for the target API."""
    out = dict(rules)
    for part in ("defaults", "overrides"):
        given = rules.get(part)
        if given:
            out[part] = {k: convert(rename[k], v) for k, v in given.items() if k in rename}
    return out


def shape_anthropic(body: Body, rules: Rules | None) -> Body:
    """An Anthropic Messages body with ``rules`` applied under Anthropic's names
    (``ANTHROPIC_NAMES``; ``stop`` as a one-item ``stop_sequences``; ``max_tokens``, which
    Anthropic requires, is never dropped). The prefix goes into ``system``: before its text,
    or as a first text block."""
    if not rules:
        return body
    out = dict(body)
    _params(
        out,
        _renamed_values(rules, ANTHROPIC_NAMES, _anthropic_value),
        ANTHROPIC_NAMES,
        keep=_ANTHROPIC_REQUIRED,
    )
    prefix = rules.get("system_prefix")
    if prefix:
        system = out.get("system")
        if isinstance(system, list):
            out["system"] = [{"type": "text", "text": prefix}, *system]
        else:
            out["system"] = _prefixed_text(prefix, system if isinstance(system, str) else "")
    return out


def _effort(out: Body, rules: Rules) -> None:
    """``reasoning_effort`` of the rules as the Responses API's ``reasoning.effort``."""
    if "reasoning_effort" in (rules.get("drop") or ()):
        reasoning = out.get("reasoning")
        if isinstance(reasoning, dict) and "effort" in reasoning:
            out["reasoning"] = {k: v for k, v in reasoning.items() if k != "effort"}
    for part, forced in (("defaults", False), ("overrides", True)):
        given = rules.get(part) or {}
        if "reasoning_effort" not in given:
            continue
        reasoning = out.get("reasoning")
        current = dict(reasoning) if isinstance(reasoning, dict) else {}
        if forced or current.get("effort") is None:
            current["effort"] = given["reasoning_effort"]
            out["reasoning"] = current


def shape_responses(body: Body, rules: Rules | None) -> Body:
    """A Responses API body with ``rules`` applied under its names (``RESPONSES_NAMES``;
    ``max_tokens`` as ``max_output_tokens``, ``reasoning_effort`` as ``reasoning.effort``).
    The prefix goes before ``instructions`` (which a ``previous_response_id`` does not carry
    over, so every turn gets it)."""
    if not rules:
        return body
    out = dict(body)
    _params(out, rules, RESPONSES_NAMES)
    _effort(out, rules)
    prefix = rules.get("system_prefix")
    if prefix:
        given = out.get("instructions")
        out["instructions"] = _prefixed_text(prefix, given if isinstance(given, str) else "")
    return out


def apply_all(
    shape: Callable[[Body, Rules], Body], body: Body, rule_sets: Iterable[Rules | None]
) -> Body:
    """``shape`` (one of the functions above) with each rule set in turn."""
    for rules in rule_sets:
        if rules:
            body = shape(body, rules)
    return body
