"""Checks of a request-shaping rule set (docs/request-shaping.md): a channel's
``config.shaping`` (``services/channel_config.py``) and a model route's ``shaping``
(``services/routes.py``). The rules are applied by ``services/shaping.py``.

What a save refuses, each error naming the field (``config.shaping.defaults.temperature``):

* a key other than ``defaults``, ``overrides``, ``drop``, ``system_prefix``;
* a parameter name that is not an identifier (letters, digits, ``_``; 1-64 characters);
* the request's structure: ``model``, ``messages``, ``stream``, ``stream_options`` and the
  other formats' ``system``, ``input``, ``instructions``, ``contents``, ``prompt`` (the
  prefix is the way to change the system prompt);
* more than ``PARAMS_MAX`` defaults, overrides or dropped names; a value of more than
  ``VALUE_MAX_BYTES`` bytes as JSON; a ``system_prefix`` longer than ``PREFIX_MAX`` characters;
* a null value (``drop`` removes a parameter), a value of the wrong type or out of range for
  the parameters whose type is known (``temperature`` 0-2, ``top_p`` 0-1, ``max_tokens``
  >= 1, ``stop`` a string or up to 4 strings, …);
* a name both in ``defaults`` and ``overrides``, or in ``drop`` and one of them;
  ``max_tokens`` and ``max_completion_tokens`` both in ``defaults`` or both in ``overrides``.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from typing import Any

import orjson

from relaygate.services.fields import (
    ValidationError,
    boolean,
    integer,
    json_object,
    string,
)
from relaygate.services.shaping import MAX_TOKENS_NAMES

__all__ = [
    "PARAMS_MAX",
    "PREFIX_MAX",
    "PROTECTED",
    "VALUE_MAX_BYTES",
    "shaping_rules",
]

PARAMS_MAX = 32  # defaults, overrides, drop: entries each
VALUE_MAX_BYTES = 4096  # one value as JSON
PREFIX_MAX = 16_000  # characters of system_prefix
PROTECTED = frozenset(
    {
        "model",
        "messages",
        "stream",
        "stream_options",
        "system",
        "input",
        "instructions",
        "contents",
        "prompt",
    }
)
_PARTS = ("defaults", "overrides", "drop", "system_prefix")
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,63}")

Checker = Callable[[str, Any], Any]


def _kind(value: Any) -> str:
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "an object"
    return "null" if value is None else type(value).__name__


def _number(low: float, high: float) -> Checker:
    def check(name: str, value: Any) -> float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ValidationError(name, f"`{name}` must be a number, not {_kind(value)}.")
        if not math.isfinite(value) or not low <= value <= high:
            raise ValidationError(
                name, f"`{name}` must be a number from {low:g} to {high:g}, not {value}."
            )
        return value

    return check


def _stop(name: str, value: Any) -> Any:
    """``stop``: a string or an array of up to 4 strings (OpenAI's limit)."""
    if isinstance(value, str) and value:
        return value
    if (
        isinstance(value, list)
        and 1 <= len(value) <= 4
        and all(isinstance(v, str) and v for v in value)
    ):
        return value
    raise ValidationError(
        name, f"`{name}` must be a non-empty string or an array of 1 to 4 non-empty strings."
    )


def _strings(name: str, value: Any) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise ValidationError(name, f"`{name}` must be an array of non-empty strings.")
    return value


def _object(name: str, value: Any) -> dict[str, Any]:
    return json_object(name, value)


_TOKENS = integer(1, 10_000_000)

#: parameters whose type is known: checked when a rule sets them (others: any JSON value)
KNOWN: dict[str, Checker] = {
    "temperature": _number(0, 2),
    "top_p": _number(0, 1),
    "top_k": integer(0, 1000),
    "presence_penalty": _number(-2, 2),
    "frequency_penalty": _number(-2, 2),
    "max_tokens": _TOKENS,
    "max_completion_tokens": _TOKENS,
    "max_output_tokens": _TOKENS,
    "n": integer(1, 128),
    "seed": integer(-(2**63), 2**63 - 1),
    "stop": _stop,
    "stop_sequences": _strings,
    "logprobs": boolean,
    "top_logprobs": integer(0, 20),
    "parallel_tool_calls": boolean,
    "store": boolean,
    "reasoning_effort": string(1, 32, no_space=True),
    "service_tier": string(1, 32, no_space=True),
    "user": string(1, 256),
    "response_format": _object,
    "metadata": _object,
    "logit_bias": _object,
    "thinking": _object,
    "reasoning": _object,
}


def _param_name(where: str, raw: Any) -> str:
    if not isinstance(raw, str) or not _NAME.fullmatch(raw):
        shown = repr(raw)[:80]
        raise ValidationError(
            where,
            f"`{where}` holds {shown}: a parameter name is 1-64 letters, digits or `_`, "
            "not starting with a digit.",
        )
    if raw in PROTECTED:
        hint = (
            " Use `system_prefix` to add to the system prompt."
            if raw in ("messages", "system", "instructions")
            else ""
        )
        raise ValidationError(
            where,
            f"`{where}` names `{raw}`, which shaping may not set or remove: it is the "
            f"request's structure, not a parameter.{hint}",
        )
    return raw


def _value(name: str, value: Any, param: str) -> Any:
    if value is None:
        raise ValidationError(
            name, f"`{name}` is null; to remove a parameter from requests, list it in `drop`."
        )
    check = KNOWN.get(param)
    if check is not None:
        value = check(name, value)
    try:
        size = len(orjson.dumps(value))
    except (orjson.JSONEncodeError, TypeError):
        raise ValidationError(name, f"`{name}` must be a JSON value.") from None
    if size > VALUE_MAX_BYTES:
        raise ValidationError(
            name, f"`{name}` is {size} bytes as JSON; a value may have at most {VALUE_MAX_BYTES}."
        )
    if _has_non_finite(value):
        raise ValidationError(name, f"`{name}` must not hold NaN or infinite numbers.")
    return value


def _has_non_finite(value: Any) -> bool:
    if isinstance(value, float):
        return not math.isfinite(value)
    if isinstance(value, dict):
        return any(_has_non_finite(v) for v in value.values())
    if isinstance(value, list):
        return any(_has_non_finite(v) for v in value)
    return False


def _params(name: str, raw: Any) -> dict[str, Any]:
    obj = json_object(name, raw)
    if len(obj) > PARAMS_MAX:
        raise ValidationError(name, f"`{name}` may set at most {PARAMS_MAX} parameters.")
    out = {_param_name(f"{name} key", k): _value(f"{name}.{k}", v, k) for k, v in obj.items()}
    if all(n in out for n in MAX_TOKENS_NAMES):
        raise ValidationError(
            name,
            f"`{name}` sets both `max_tokens` and `max_completion_tokens`, two names of one "
            "parameter: keep one.",
        )
    return out


def _drop(name: str, raw: Any) -> list[str]:
    if not isinstance(raw, list):
        raise ValidationError(name, f"`{name}` must be an array of parameter names.")
    if len(raw) > PARAMS_MAX:
        raise ValidationError(name, f"`{name}` may list at most {PARAMS_MAX} names.")
    out = [_param_name(f"{name}[{i}]", v) for i, v in enumerate(raw)]
    return list(dict.fromkeys(out))


def _prefix(name: str, raw: Any) -> str:
    if not isinstance(raw, str):
        raise ValidationError(name, f"`{name}` must be a string, not {_kind(raw)}.")
    if len(raw) > PREFIX_MAX:
        raise ValidationError(name, f"`{name}` must be at most {PREFIX_MAX} characters.")
    if any((ord(c) < 32 and c not in "\n\r\t") or ord(c) == 127 for c in raw):
        raise ValidationError(
            name, f"`{name}` must not contain control characters other than newlines and tabs."
        )
    return raw


def shaping_rules(name: str, value: Any) -> dict[str, Any]:
    """A rule set, checked and normalized: only the parts that do something are kept
    (``{}`` when none: no shaping)."""
    obj = json_object(name, value)
    unknown = [k for k in obj if k not in _PARTS]
    if unknown:
        raise ValidationError(
            f"{name}.{unknown[0]}",
            f"Unknown key `{unknown[0][:64]}` in `{name}`; known: {', '.join(_PARTS)}.",
        )
    out: dict[str, Any] = {}
    for part in ("defaults", "overrides"):
        if obj.get(part) is not None:
            params = _params(f"{name}.{part}", obj[part])
            if params:
                out[part] = params
    if obj.get("drop") is not None:
        dropped = _drop(f"{name}.drop", obj["drop"])
        if dropped:
            out["drop"] = dropped
    if obj.get("system_prefix") is not None:
        prefix = _prefix(f"{name}.system_prefix", obj["system_prefix"])
        if prefix:
            out["system_prefix"] = prefix
    defaults, overrides = out.get("defaults", {}), out.get("overrides", {})
    both = next((k for k in defaults if k in overrides), None)
    if both is not None:
        raise ValidationError(
            f"{name}.defaults.{both}",
            f"`{both}` is in both `{name}.defaults` and `{name}.overrides`; an override "
            "always wins: keep it in one.",
        )
    for dropped_name in out.get("drop", ()):
        if dropped_name in defaults or dropped_name in overrides:
            part = "defaults" if dropped_name in defaults else "overrides"
            raise ValidationError(
                f"{name}.drop",
                f"`{dropped_name}` is both dropped and in `{name}.{part}`: drop removes what "
                f"the client sent, `{part}` sets it; keep one.",
            )
    return out
