"""Request shaping of realtime sessions (``/v1/realtime``; docs/request-shaping.md,
"Realtime"). Pure functions, no I/O; the rules are those of ``services/shaping.py``.

A realtime session is configured by events, not by one body, so the rules apply in three
places:

* :func:`initial_session` - the ``session`` of a ``session.update`` the gateway sends
  upstream first, before any client frame, when a rule set has defaults, overrides or a
  prefix: the defaults, the overrides, and ``instructions`` set to the prefix. The session
  so starts with them whatever the client does next (a client that never sends
  ``session.update`` still gets them);
* :func:`shape_session` - the ``session`` of each client ``session.update``: dropped
  parameters removed, overrides forced, the prefix put before ``instructions`` when the
  update sets them. Defaults are not added again: an update changes only the fields it
  names, so a default added to a later update would undo what the client set before (the
  session already holds the defaults since the first update);
* :func:`shape_response` - the ``response`` of a ``response.create`` (per-response
  settings that override the session's for that response): dropped parameters removed,
  overrides forced, the prefix before its ``instructions``. No defaults either: a default
  here would override the client's own session setting.

Names. Rules are written with chat-completions names; each maps to the realtime name of the
protocol the client speaks (``OpenAI-Beta: realtime=v1``: the beta API, else GA):
``max_tokens`` / ``max_completion_tokens`` / ``max_output_tokens`` /
``max_response_output_tokens`` become ``max_response_output_tokens`` (beta) or
``max_output_tokens`` (GA); ``temperature`` exists in the beta API only; the realtime
parameters (``voice``, ``turn_detection``, ``tool_choice``, …) keep their names. A rule on
any other name (``top_p``, ``seed``, …) is left out: a realtime upstream refuses unknown
parameters.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from relaygate.services.shaping import Rules, _copy, _params, _prefixed_text

__all__ = [
    "REALTIME_BETA_NAMES",
    "REALTIME_GA_NAMES",
    "RESPONSE_BETA_NAMES",
    "RESPONSE_GA_NAMES",
    "initial_session",
    "needs_initial",
    "shape_response",
    "shape_session",
]

Body = dict[str, Any]

_MAX_NAMES = (
    "max_tokens",
    "max_completion_tokens",
    "max_output_tokens",
    "max_response_output_tokens",
)


def _same(*names: str) -> dict[str, str]:
    return {n: n for n in names}


#: rule name -> beta session name (``OpenAI-Beta: realtime=v1``)
REALTIME_BETA_NAMES: dict[str, str] = {
    **dict.fromkeys(_MAX_NAMES, "max_response_output_tokens"),
    **_same(
        "temperature",
        "tool_choice",
        "tools",
        "voice",
        "modalities",
        "turn_detection",
        "input_audio_format",
        "output_audio_format",
        "input_audio_transcription",
        "input_audio_noise_reduction",
        "speed",
        "tracing",
    ),
}
#: rule name -> GA session name
REALTIME_GA_NAMES: dict[str, str] = {
    **dict.fromkeys(_MAX_NAMES, "max_output_tokens"),
    **_same(
        "tool_choice",
        "tools",
        "output_modalities",
        "audio",
        "parallel_tool_calls",
        "reasoning",
        "truncation",
        "tracing",
        "include",
    ),
}
_BETA_RESPONSE = frozenset(
    {"max_response_output_tokens", "temperature", "tool_choice", "tools", "voice",
     "modalities", "output_audio_format", "metadata"}
)  # fmt: skip
_GA_RESPONSE = frozenset(
    {"max_output_tokens", "tool_choice", "tools", "output_modalities", "audio",
     "parallel_tool_calls", "reasoning", "metadata"}
)  # fmt: skip
#: rule name -> ``response.create`` ``response`` name (the session names a response has)
RESPONSE_BETA_NAMES = {k: v for k, v in REALTIME_BETA_NAMES.items() if v in _BETA_RESPONSE}
RESPONSE_GA_NAMES = {k: v for k, v in REALTIME_GA_NAMES.items() if v in _GA_RESPONSE}
RESPONSE_BETA_NAMES["metadata"] = RESPONSE_GA_NAMES["metadata"] = "metadata"


def _names(beta: bool, response: bool) -> dict[str, str]:
    if response:
        return RESPONSE_BETA_NAMES if beta else RESPONSE_GA_NAMES
    return REALTIME_BETA_NAMES if beta else REALTIME_GA_NAMES


def _without_defaults(rules: Rules) -> dict[str, Any]:
    return {k: v for k, v in rules.items() if k != "defaults"}


def _prefix(out: Body, rules: Rules, *, always: bool) -> None:
    prefix = rules.get("system_prefix")
    if not prefix:
        return
    given = out.get("instructions")
    if isinstance(given, str):
        out["instructions"] = _prefixed_text(prefix, given)
    elif always or "instructions" in out:  # a null or wrong-typed value is replaced
        out["instructions"] = prefix


def needs_initial(rule_sets: Iterable[Rules | None]) -> bool:
    """Whether the rules set anything a session must start with."""
    return any(
        r and (r.get("defaults") or r.get("overrides") or r.get("system_prefix")) for r in rule_sets
    )


def initial_session(rule_sets: Iterable[Rules | None], *, beta: bool) -> Body | None:
    """The ``session`` of the gateway's first ``session.update`` (see the module
    docstring), or None when the rules set nothing. A GA session carries
    ``"type": "realtime"`` (the GA API requires it)."""
    out: Body = {} if beta else {"type": "realtime"}
    names = _names(beta, False)
    changed = False
    for rules in rule_sets:
        if not rules:
            continue
        for raw in rules.get("drop") or ():
            key = names.get(raw)
            if key is not None and key in out:
                del out[key]
                changed = True
        for part in ("defaults", "overrides"):
            for raw, value in (rules.get(part) or {}).items():
                key = names.get(raw)
                if key is not None and (part == "overrides" or key not in out):
                    out[key] = _copy(value)
                    changed = True
        if rules.get("system_prefix"):
            _prefix(out, rules, always=True)
            changed = True
    return out if changed else None


def shape_session(session: Body, rule_sets: Iterable[Rules | None], *, beta: bool) -> Body:
    """A client ``session.update``'s ``session`` with the rules applied (a copy when a
    rule changes something; ``session`` is not changed)."""
    return _shape(session, rule_sets, _names(beta, False))


def shape_response(response: Body, rule_sets: Iterable[Rules | None], *, beta: bool) -> Body:
    """A ``response.create``'s ``response`` with the rules applied (a copy when a rule
    changes something; ``response`` is not changed)."""
    return _shape(response, rule_sets, _names(beta, True))


def _shape(body: Body, rule_sets: Iterable[Rules | None], names: Mapping[str, str]) -> Body:
    out: Body | None = None
    for rules in rule_sets:
        if not rules or not (
            rules.get("drop") or rules.get("overrides") or rules.get("system_prefix")
        ):
            continue
        if out is None:
            out = dict(body)
        _params(out, _without_defaults(rules), names)
        _prefix(out, rules, always=False)
    return body if out is None else out
