"""The vendor emulator's error bodies beyond OpenAI's: GLM's ``{"error": {"code": "1214", …}}``,
the HTTP-200 errors of MiniMax (``base_resp.status_code``) and Spark (``code``) with their
``error-200-<code>`` model trigger, the error frame a stream breaks off with, and the request
id Qwen and Qianfan add to OpenAI's error body."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from relaygate.emulator.vendors_styles import Style

__all__ = [
    "error_request_id_key",
    "glm_error",
    "in_body_code",
    "in_body_error",
    "midstream_error",
]

_IN_BODY = re.compile(r"^error-200-(\d+)$")

_GLM_CODES = {400: "1214", 401: "1000", 403: "1000", 404: "1211", 429: "1302", 500: "500"}
_MINIMAX_200 = {
    1004: "login fail",
    1002: "rate limit",
    1008: "insufficient balance",
    1026: "input new_sensitive",
    1027: "output new_sensitive",
}


def glm_error(status: int, message: str | None) -> dict[str, Any]:
    """GLM's error body for ``status`` (its own numeric code as a string)."""
    code = _GLM_CODES.get(status, str(status))
    return {"error": {"code": code, "message": message or f"emulated GLM error {code}"}}


def error_request_id_key(st: Style) -> str | None:
    """The key of the request id Qwen (``request_id``) and Qianfan (``id``) add to OpenAI's
    error body, or None."""
    if st.name in ("qwen", "qianfan"):
        return "request_id" if st.name == "qwen" else "id"
    return None


def in_body_code(st: Style, model: str) -> int | None:
    """The code of an ``error-200-<code>`` model trigger for a vendor with HTTP-200 errors."""
    m = _IN_BODY.match(model)
    if m and st.errors in ("minimax", "spark"):
        return int(m.group(1))
    return None


def in_body_error(st: Style, code: int, ids: Callable[[str], str]) -> dict[str, Any]:
    """The HTTP-200 error body with ``code``: MiniMax's ``base_resp`` or Spark's ``code``."""
    if st.errors == "minimax":
        msg = _MINIMAX_200.get(code, "unknown error")
        return {
            "id": "",
            "choices": None,
            "base_resp": {"status_code": code, "status_msg": msg},
        }
    return {
        "code": code,
        "message": f"emulated Spark error {code}",
        "sid": ids("cha"),
    }


def midstream_error(st: Style, ids: Callable[[str], str]) -> dict[str, Any] | None:
    """The event a stream breaks off with, or None where it is OpenAI's."""
    if st.errors in ("minimax", "spark"):
        return in_body_error(st, 1000 if st.errors == "minimax" else 10012, ids)
    if st.errors == "glm":
        return {"error": {"code": "500", "message": "Internal Error"}}
    return None
