"""The vendor emulator's request checks: GLM's Zhipu JWT (:func:`verify_zhipu_jwt`) and the
parameters a vendor refuses with a 400 (:func:`parameter_refusal`: temperature range or fixed
value, ``tool_choice: "required"``, ``n > 1``), as its :class:`Style` says."""

from __future__ import annotations

import base64
import hashlib
import hmac
from typing import Any

import orjson

from relaygate.emulator.vendors_styles import Style

__all__ = ["parameter_refusal", "verify_zhipu_jwt"]


def _b64url_decode(part: str) -> bytes:
    return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))


def verify_zhipu_jwt(token: str, key_id: str, secret: str, now: float) -> bool:
    """Zhipu's JWT (``providers/zhipu_jwt.py``): HS256 with ``secret``, ``exp`` in ms."""
    parts = token.split(".")
    if len(parts) != 3:
        return False
    signing = f"{parts[0]}.{parts[1]}".encode()
    want = hmac.new(secret.encode(), signing, hashlib.sha256).digest()
    try:
        if not hmac.compare_digest(want, _b64url_decode(parts[2])):
            return False
        header = orjson.loads(_b64url_decode(parts[0]))
        payload = orjson.loads(_b64url_decode(parts[1]))
    except (ValueError, orjson.JSONDecodeError):
        return False
    return (
        header.get("alg") == "HS256"
        and header.get("sign_type") == "SIGN"
        and payload.get("api_key") == key_id
        and isinstance(payload.get("exp"), int)
        and payload["exp"] > now * 1000
    )


def parameter_refusal(st: Style, body: dict[str, Any], model: str) -> str | None:
    """The vendor's own refusal of a parameter (what the adaptor must avoid), or None."""
    temp = body.get("temperature")
    if isinstance(temp, int | float):
        for prefix, value in st.fixed_temperature:
            if model.startswith(prefix) and temp != value:
                return f"invalid temperature: only {value:g} is allowed for this model"
        if st.max_temperature is not None and not 0 <= temp <= st.max_temperature:
            return f"invalid temperature: must be in [0, {st.max_temperature:g}]"
    if st.rejects_required and body.get("tool_choice") == "required":
        return "tool_choice 'required' is not supported"
    n = body.get("n")
    if st.one_choice and n is not None and n != 1:
        return "'n' : number must be at most 1"
    return None
