"""Tencent Hunyuan: error mapping — ``Response.Error`` (``{"Code", "Message"}``, sent
with HTTP 200) and non-2xx bodies → the error hierarchy; unwrapping ``{"Response": …}``;
the channel secrets kept out of messages. Used by ``providers/tencent.py`` and
``providers/tencent_stream.py``."""

from __future__ import annotations

from typing import Any

import orjson

from relaygate.errors import RelayError, UpstreamError
from relaygate.providers.base import Target, error_from_status, parse_json_object

__all__ = ["error_body", "tencent_error", "tencent_secrets", "unwrap"]


def tencent_secrets(target: Target) -> tuple[str, ...]:
    """The channel key and its parts (never shown in messages)."""
    return tuple(p for p in (target.api_key, *target.api_key.split("|")) if p)


def tencent_error(err: Any, secrets: tuple[str, ...]) -> RelayError:
    """``Response.Error`` (``{"Code", "Message"}``) → the error hierarchy; the error is the
    upstream's answer (HTTP 200), so ``upstream_status`` is 200."""
    code = err.get("Code") if isinstance(err, dict) else None
    message = err.get("Message") if isinstance(err, dict) else None
    code = code if isinstance(code, str) else ""
    text = f"{message if isinstance(message, str) else ''} ({code})" if code else ""
    out: RelayError
    if code.startswith(("AuthFailure", "UnauthorizedOperation")):
        out = error_from_status(401, text, upstream_code=None, secrets=secrets)
    elif code.startswith(("RequestLimitExceeded", "LimitExceeded")):
        out = error_from_status(429, text, upstream_code=None, secrets=secrets)
    elif code.startswith(("InvalidParameter", "MissingParameter", "UnknownParameter")):
        out = error_from_status(400, text, upstream_code=code, secrets=secrets)
    elif code.startswith("ResourceInsufficient"):
        out = UpstreamError("The upstream provider is overloaded; retry shortly.")
    else:  # FailedOperation.*, InternalError, ResourceUnavailable.*, …
        out = UpstreamError(f"The upstream provider failed ({code or 'unknown error'}).")
    out.upstream_status = 200
    return out


def unwrap(target: Target, raw: bytes) -> dict[str, Any]:
    """The ``Response`` object of an answer; raises its ``Error`` if it has one."""
    obj = parse_json_object(raw)
    resp = obj.get("Response")
    if not isinstance(resp, dict):
        raise UpstreamError("The upstream provider returned an unexpected response.")
    if resp.get("Error") is not None:
        raise tencent_error(resp["Error"], tencent_secrets(target))
    return resp


def error_body(target: Target, status: int, raw: bytes) -> RelayError:
    """A non-2xx answer: its ``Response.Error`` when it has one, else the status."""
    try:
        obj = orjson.loads(raw)
    except orjson.JSONDecodeError:
        obj = None
    resp = obj.get("Response") if isinstance(obj, dict) else None
    if isinstance(resp, dict) and isinstance(resp.get("Error"), dict):
        return tencent_error(resp["Error"], tencent_secrets(target))
    return error_from_status(status, "", upstream_code=None, secrets=tencent_secrets(target))
