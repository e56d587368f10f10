"""Vendor quirks of the OpenAI-compatible adaptor that a profile switches on (pure, no I/O).

* requests: parameter ranges and unsupported values (``temperature_range``,
  ``fixed_temperature``, ``n_choices``, ``tool_choice_required``, ``request_defaults``);
* errors reported inside HTTP 200 bodies: MiniMax ``base_resp.status_code != 0`` and
  iFlytek Spark ``code != 0`` (with ``message``/``sid``), in bodies and stream events;
* iFlytek Spark answers without ``id``/``object``/``model``/``finish_reason`` and with
  ``tool_calls`` as one object: filled in so strict clients accept them.

Facts and their sources: ``docs/providers.md`` (MiniMax, iFlytek Spark, Moonshot, Zhipu).
"""

from __future__ import annotations

from typing import Any

from relaygate.errors import (
    InvalidRequest,
    RateLimited,
    RelayError,
    UpstreamError,
    UpstreamRejected,
    sanitize,
)
from relaygate.providers.base import Target, error_from_status
from relaygate.providers.profiles import Profile

__all__ = [
    "NUDGE_TEXT",
    "SERVICE_TIERS",
    "body_error",
    "fill_chunk",
    "fill_completion",
    "fix_service_tier",
    "has_body_error",
    "has_usage_value",
    "minimax_error",
    "normalize_reasoning",
    "odd_service_tier",
    "only_finish",
    "shape_request",
    "spark_error",
    "zero_usage",
]

#: the closing user message that stands in for ``tool_choice: "required"`` (LiteLLM's text)
NUDGE_TEXT = "Please select a tool to handle the current issue."

# ---------------------------------------------------------------- shared helpers

#: ``service_tier`` values the OpenAI schema allows; vendors send others (Groq:
#: ``on_demand``) which make strict clients reject the whole response.
SERVICE_TIERS = frozenset({"auto", "default", "flex", "scale", "priority", "fast"})
_TIER_KEY = b'"service_tier":'


def fix_service_tier(obj: dict[str, Any]) -> None:
    tier = obj.get("service_tier")
    if tier is not None and tier not in SERVICE_TIERS:
        del obj["service_tier"]


def odd_service_tier(data: bytes) -> bool:
    i = data.find(_TIER_KEY)
    if i == -1:
        return False
    rest = data[i + len(_TIER_KEY) :].lstrip()
    if rest.startswith(b"null"):
        return False
    if not rest.startswith(b'"'):
        return True
    end = rest.find(b'"', 1)
    return rest[1:end].decode("utf-8", "replace") not in SERVICE_TIERS


def only_finish(choices: list[Any]) -> bool:
    """Every choice is a bare finish marker (no content, tool call or reasoning)."""
    for choice in choices:
        if not isinstance(choice, dict) or not choice.get("finish_reason"):
            return False
        delta = choice.get("delta")
        if isinstance(delta, dict) and any(v for k, v in delta.items() if k != "role"):
            return False
    return True


def normalize_reasoning(msg: dict[str, Any], vendor_field: str | None = None) -> None:
    """Put a message's or delta's reasoning text under ``reasoning_content``.

    Sources, in order: ``reasoning_content``; the profile's own field name;
    ``reasoning`` (a string: OpenRouter, Ollama, vLLM); the texts of
    ``reasoning_details`` (OpenRouter ``reasoning.text``/``reasoning.summary``,
    MiniMax). ``reasoning`` is removed (it would count the text twice);
    ``reasoning_details`` stays (OpenRouter wants it back, encrypted parts too).
    """
    if vendor_field is not None and vendor_field in msg and vendor_field != "reasoning":
        value = msg.pop(vendor_field)
        if not msg.get("reasoning_content") and isinstance(value, str):
            msg["reasoning_content"] = value
    if "reasoning" in msg and (msg["reasoning"] is None or isinstance(msg["reasoning"], str)):
        value = msg.pop("reasoning")
        if not msg.get("reasoning_content") and value:
            msg["reasoning_content"] = value
    details = msg.get("reasoning_details")
    if not msg.get("reasoning_content") and isinstance(details, list):
        texts = [
            t
            for d in details
            if isinstance(d, dict)
            for t in (d.get("text"), d.get("summary"))
            if isinstance(t, str) and t
        ]
        if texts:
            msg["reasoning_content"] = "".join(texts)


def zero_usage(usage: dict[str, Any]) -> bool:
    """A usage placeholder (MiniMax sends ``{"total_tokens": 0, …}`` on every chunk)."""
    return not any(usage.get(k) for k in ("prompt_tokens", "completion_tokens", "total_tokens"))


def has_usage_value(data: bytes) -> bool:
    i = data.find(b'"usage"')
    while i != -1:
        j = i + 7
        n = len(data)
        while j < n and data[j] in b" :":
            j += 1
        if j < n and data[j] == 0x7B:  # '{'
            return True
        i = data.find(b'"usage"', j)
    return False


# ---------------------------------------------------------------- requests


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _fixed_temperature(profile: Profile, target: Target) -> float | None:
    model = target.upstream_model
    extra = target.config.get("fixed_temperature")
    if isinstance(extra, dict):
        for prefix, value in extra.items():
            if model.startswith(str(prefix)) and _number(value):
                return float(value)
    for prefix, value in profile.fixed_temperature:
        if model.startswith(prefix):
            return value
    return None


def shape_request(profile: Profile, target: Target, out: dict[str, Any]) -> None:
    """Apply the profile's parameter rules to an outgoing chat body (in place)."""
    for name, value in profile.request_defaults.items():
        out.setdefault(name, value)
    temp = out.get("temperature")
    if isinstance(temp, int | float) and not isinstance(temp, bool):
        fixed = _fixed_temperature(profile, target)
        if fixed is not None:
            out["temperature"] = fixed
        elif profile.temperature_range is not None:
            low, high = profile.temperature_range
            out["temperature"] = min(max(float(temp), low), high)
    if profile.n_choices == "reject" and "n" in out:
        n = out["n"]
        if n is None or n == 1:
            del out["n"]
        else:
            raise InvalidRequest(
                f"{profile.label} returns one choice per request; `n` must be 1.", param="n"
            )
    if out.get("tool_choice") == "required" and profile.tool_choice_required != "pass":
        if profile.tool_choice_required == "reject":
            raise InvalidRequest(
                f'{profile.label} does not support `tool_choice: "required"`; use "auto" '
                "or name a function.",
                param="tool_choice",
            )
        out["tool_choice"] = "auto"
        messages = out.get("messages")
        if isinstance(messages, list):
            out["messages"] = [*messages, {"role": "user", "content": NUDGE_TEXT}]


# ---------------------------------------------------------------- errors in HTTP 200 bodies

_MINIMAX_AUTH = frozenset({1004, 2049})
_MINIMAX_RATE = frozenset({1002, 1039})
_MINIMAX_CONTENT = frozenset({1026, 1027})
_MINIMAX_PARAMS = frozenset({2013})

_SPARK_CONTENT = frozenset({10013, 10014, 10019})
_SPARK_PARAMS = frozenset({10003, 10004, 10005, 10163, 10907})
_SPARK_AUTH = frozenset({10015, 10016, 11200})
_SPARK_RATE = frozenset({10006, 10007, 11201, 11202, 11203})


def _content_policy(message: str) -> RelayError:
    return UpstreamRejected(
        f"The upstream provider refused the content. ({message})",
        code="content_policy_violation",
        status=400,
    )


def minimax_error(code: int, message: str, secrets: tuple[str, ...]) -> RelayError:
    """A MiniMax ``base_resp`` failure mapped onto the error table."""
    clean = sanitize(message, secrets) if message else f"MiniMax status {code}"
    if code in _MINIMAX_AUTH:
        return error_from_status(401, clean, upstream_code=str(code), secrets=secrets)
    if code in _MINIMAX_RATE:
        return RateLimited(
            f"The upstream provider is rate limiting this model; retry shortly. ({clean})"
        )
    if code == 1008:
        return error_from_status(402, clean, upstream_code=str(code), secrets=secrets)
    if code in _MINIMAX_CONTENT:
        return _content_policy(clean)
    if code in _MINIMAX_PARAMS:
        return UpstreamRejected(clean, code="invalid_request_error", status=400)
    return UpstreamError(f"The upstream provider failed (MiniMax status {code}: {clean}).")


def spark_error(code: int, message: str, sid: str, secrets: tuple[str, ...]) -> RelayError:
    """An iFlytek Spark ``code != 0`` answer mapped onto the error table."""
    clean = sanitize(message, secrets) if message else f"Spark code {code}"
    if sid:
        clean = f"{clean} (sid {sid})"
    if code in _SPARK_AUTH:
        return error_from_status(401, clean, upstream_code=str(code), secrets=secrets)
    if code in _SPARK_RATE:
        return RateLimited(
            f"The upstream provider is rate limiting this model; retry shortly. ({clean})"
        )
    if code in _SPARK_CONTENT:
        return _content_policy(clean)
    if code in _SPARK_PARAMS:
        return UpstreamRejected(clean, code="invalid_request_error", status=400)
    return UpstreamError(f"The upstream provider failed (Spark code {code}: {clean}).")


def body_error(obj: dict[str, Any], secrets: tuple[str, ...]) -> RelayError | None:
    """The failure an HTTP 200 body reports, or None (MiniMax ``base_resp``, Spark ``code``)."""
    base = obj.get("base_resp")
    if isinstance(base, dict):
        code = base.get("status_code")
        if isinstance(code, int) and not isinstance(code, bool) and code != 0:
            return minimax_error(code, str(base.get("status_msg") or ""), secrets)
    code = obj.get("code")
    if (
        isinstance(code, int)
        and not isinstance(code, bool)
        and code != 0
        and not obj.get("choices")
        and "error" not in obj
    ):
        return spark_error(code, str(obj.get("message") or ""), str(obj.get("sid") or ""), secrets)
    return None


def has_body_error(data: bytes) -> bool:
    """Cheap check of a stream event: may it report an error inside a 200 (parse it)?"""
    if b'"base_resp"' in data:
        return True
    head = data[:12]
    return head.startswith(b'{"code":') and not head.startswith(b'{"code":0,')


# ---------------------------------------------------------------- Spark: missing fields


def _tool_calls(value: Any, fallback_id: str, stream: bool) -> list[Any] | None:
    """``tool_calls`` as OpenAI's list (Spark may send one object), with index/type/id."""
    if isinstance(value, dict):
        value = [value]
    if not isinstance(value, list):
        return None
    for i, call in enumerate(value):
        if not isinstance(call, dict):
            continue
        if stream:
            call.setdefault("index", i)
        if isinstance(call.get("function"), dict):
            call.setdefault("type", "function")
            if not call.get("id"):
                call["id"] = f"call_{fallback_id}_{i}"
    return value


def fill_completion(obj: dict[str, Any], model: str, now: int) -> None:
    """A non-stream answer given the OpenAI fields strict clients need (Spark)."""
    sid = str(obj.get("sid") or "")
    if not obj.get("id"):
        obj["id"] = f"chatcmpl-{sid or now}"
    obj.setdefault("object", "chat.completion")
    if not isinstance(obj.get("created"), int):
        obj["created"] = now
    if not obj.get("model"):
        obj["model"] = model
    obj.pop("code", None)
    obj.pop("message", None)
    for i, choice in enumerate(obj.get("choices") or ()):
        if not isinstance(choice, dict):
            continue
        choice.setdefault("index", i)
        msg = choice.get("message")
        calls = None
        if isinstance(msg, dict) and "tool_calls" in msg:
            calls = _tool_calls(msg["tool_calls"], sid or str(now), False)
            msg["tool_calls"] = calls
        if not choice.get("finish_reason"):
            choice["finish_reason"] = "tool_calls" if calls else "stop"


def fill_chunk(obj: dict[str, Any], ident: str, model: str, created: int) -> bool:
    """A stream chunk given ``id``/``object``/``model``/``created``; True if it has tool calls."""
    if not obj.get("id"):
        obj["id"] = ident
    obj.setdefault("object", "chat.completion.chunk")
    if not isinstance(obj.get("created"), int):
        obj["created"] = created
    if not obj.get("model"):
        obj["model"] = model
    obj.pop("code", None)
    obj.pop("message", None)
    calls = False
    for i, choice in enumerate(obj.get("choices") or ()):
        if not isinstance(choice, dict):
            continue
        choice.setdefault("index", i)
        delta = choice.get("delta")
        if isinstance(delta, dict) and "tool_calls" in delta:
            delta["tool_calls"] = _tool_calls(delta["tool_calls"], ident, True)
            calls = calls or bool(delta["tool_calls"])
    return calls
