"""What the OpenAI model endpoints share: the emulator they run on and OpenAI's parameter checks.

The endpoints beyond chat and embeddings (``openai_completions.py``, ``openai_misc.py``,
``openai_images.py``, ``openai_audio.py``) are plain functions of a :class:`Host` (an
``OpenAIEmulator`` or a subclass: its errors, gate, JSON and stream writers), registered by
``openai_endpoints.py``. The checks raise ``EarlyResponse`` with OpenAI's current 400 wording
(``Invalid value: 'x'. Supported values are: …``, ``integer above maximum value``, …) and its
error ``code`` where the host's error body has an OpenAI ``error.code`` slot.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, Protocol

import orjson
from aiohttp import web

from relaygate.emulator.base import Core, EarlyResponse, Handler, Op, StreamPlan
from relaygate.emulator.knobs import Knobs, Stats

__all__ = [
    "Endpoint",
    "Host",
    "bad_request",
    "bind",
    "get_choice",
    "get_int",
    "get_number",
    "json_object",
    "max_length",
    "need_model",
    "required",
]


class Host(Protocol):
    """The emulator an endpoint runs on (``OpenAIEmulator`` and its subclasses)."""

    core: Core
    stats: Stats

    def api(self, op: Op, *, checks: bool = True, multipart: bool = False) -> Handler: ...

    def error(
        self, status: int, message: str | None = None, *, param: str | None = None
    ) -> web.Response: ...

    def midstream_error_frame(self) -> bytes: ...

    async def gate(self, knobs: Knobs, model: str) -> str | None: ...

    async def send_json(
        self,
        request: web.Request,
        knobs: Knobs,
        payload: Any,
        headers: Mapping[str, str] | None = None,
    ) -> web.StreamResponse: ...

    async def send_stream(
        self,
        request: web.Request,
        knobs: Knobs,
        plan: StreamPlan,
        trigger: str | None,
        headers: Mapping[str, str] | None = None,
    ) -> web.StreamResponse: ...


Endpoint = Callable[[Host, web.Request, Knobs, Any], Awaitable[web.StreamResponse]]


def bind(host: Host, endpoint: Endpoint) -> Op:
    """``endpoint`` as an operation of ``host`` (for ``host.api``)."""

    async def op(request: web.Request, knobs: Knobs, body: Any) -> web.StreamResponse:
        return await endpoint(host, request, knobs, body)

    return op


def bad_request(
    host: Host, message: str, param: str | None = None, code: str | None = None, status: int = 400
) -> EarlyResponse:
    """An early 400 in the host's error shape, with OpenAI's ``code`` when the shape has one."""
    resp = host.error(status, message, param=param)
    if code is None or not isinstance(resp.body, bytes):
        return EarlyResponse(resp)
    payload = orjson.loads(resp.body)
    err = payload.get("error") if isinstance(payload, dict) else None
    if isinstance(err, dict) and "code" in err and err["code"] is None:
        err["code"] = code
        resp = web.Response(
            body=orjson.dumps(payload), status=resp.status, content_type="application/json"
        )
    return EarlyResponse(resp)


def json_object(host: Host, body: Any) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise EarlyResponse(host.error(400, "The request body must be a JSON object."))
    return body


def required(host: Host, value: Any, name: str) -> Any:
    """``value`` unless it is missing (None or empty string)."""
    if value is None or value == "":
        raise bad_request(
            host, f"Missing required parameter: '{name}'.", name, "missing_required_parameter"
        )
    return value


def need_model(host: Host, value: Any) -> str:
    if not isinstance(value, str) or not value:
        raise EarlyResponse(host.error(400, "you must provide a model parameter", param="model"))
    return value


def _kind(value: Any) -> str:
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, list):
        return "an array"
    return "an object"


def _as_number(value: Any, integer: bool) -> int | float | None:
    """A JSON number, or a form field's text read as one (None: not a number)."""
    if isinstance(value, str):
        try:
            return int(value) if integer else float(value)
        except ValueError:
            return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    if integer and not isinstance(value, int):
        return None
    return value


def _bounded(
    host: Host, value: Any, name: str, lo: float | None, hi: float | None, integer: bool
) -> Any:
    kind = "integer" if integer else "decimal"
    num = _as_number(value, integer)
    if num is None:
        expected = "an integer" if integer else "a decimal"
        raise bad_request(
            host,
            f"Invalid type for '{name}': expected {expected}, but got {_kind(value)} instead.",
            name,
            "invalid_type",
        )
    if lo is not None and num < lo:
        raise bad_request(
            host,
            f"Invalid '{name}': {kind} below minimum value. Expected a value >= {lo}, "
            f"but got {num} instead.",
            name,
            f"{kind}_below_min_value",
        )
    if hi is not None and num > hi:
        raise bad_request(
            host,
            f"Invalid '{name}': {kind} above maximum value. Expected a value <= {hi}, "
            f"but got {num} instead.",
            name,
            f"{kind}_above_max_value",
        )
    return num


def get_int(host: Host, value: Any, name: str, lo: int | None, hi: int | None, default: int) -> int:
    """An integer parameter within ``lo..hi`` (``default`` when absent or null)."""
    if value is None:
        return default
    return int(_bounded(host, value, name, lo, hi, True))


def get_number(
    host: Host, value: Any, name: str, lo: float | None, hi: float | None, default: float
) -> float:
    """A number parameter within ``lo..hi`` (``default`` when absent or null)."""
    if value is None:
        return default
    return float(_bounded(host, value, name, lo, hi, False))


def _listing(values: Sequence[str]) -> str:
    quoted = [f"'{v}'" for v in values]
    if len(quoted) <= 2:
        return " and ".join(quoted)
    return ", ".join(quoted[:-1]) + f", and {quoted[-1]}"


def get_choice(
    host: Host, value: Any, name: str, allowed: Sequence[str], default: str | None
) -> str | None:
    """One of ``allowed`` (``default`` when absent or null)."""
    if value is None:
        return default
    if value not in allowed:
        raise bad_request(
            host,
            f"Invalid value: '{value}'. Supported values are: {_listing(allowed)}.",
            name,
            "invalid_value",
        )
    return str(value)


def max_length(host: Host, value: str, name: str, limit: int) -> str:
    """``value`` unless it is longer than ``limit`` characters."""
    if len(value) > limit:
        raise bad_request(
            host,
            f"Invalid '{name}': string too long. Expected a string with maximum length "
            f"{limit}, but got a string with length {len(value)} instead.",
            name,
            "string_above_max_length",
        )
    return value
