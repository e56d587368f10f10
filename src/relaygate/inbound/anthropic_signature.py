"""The gateway's signature on the ``thinking`` blocks it makes (pure, no I/O).

Only Anthropic can sign its own thinking. A ``/v1/messages`` answer translated from
another channel carries the reasoning as a ``thinking`` block whose ``signature`` is the
gateway's: the HMAC-SHA256 of the thinking text under a key derived from the gateway
secret, in base64. Clients that insist on a non-empty signature are satisfied, and when such
a block comes back in a later request:

* on a non-Anthropic channel, thinking blocks are dropped whatever their signature
  (``inbound/anthropic_request.py``): chat has no slot for them;
* on an Anthropic channel, the blocks that carry the gateway's signature are dropped before
  the request is sent (:func:`strip_gateway_thinking`): Anthropic never made them and would
  refuse the signature. Anthropic's own signed blocks go as sent.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from typing import Any

__all__ = ["sign_thinking", "signature", "strip_gateway_thinking"]


def signature(text: str, key: bytes) -> str:
    """The gateway's signature of the thinking ``text``."""
    digest = hmac.new(key, b"thinking:" + text.encode(), hashlib.sha256).digest()
    return base64.b64encode(digest).decode()


def sign_thinking(content: Any, key: bytes) -> None:
    """Fill in the signature of every unsigned thinking block of ``content`` (in place)."""
    if not key or not isinstance(content, list):
        return
    for block in content:
        if (
            isinstance(block, dict)
            and block.get("type") == "thinking"
            and not block.get("signature")
        ):
            text = block.get("thinking")
            block["signature"] = signature(text if isinstance(text, str) else "", key)


def _ours(block: Any, key: bytes) -> bool:
    if not isinstance(block, dict) or block.get("type") != "thinking":
        return False
    text, sig = block.get("thinking"), block.get("signature")
    if not isinstance(text, str) or not isinstance(sig, str):
        return False
    return hmac.compare_digest(sig, signature(text, key))


def strip_gateway_thinking(body: dict[str, Any], key: bytes) -> dict[str, Any]:
    """``body`` (a Messages request) without the thinking blocks the gateway signed; the
    same object when it has none."""
    messages = body.get("messages")
    if not key or not isinstance(messages, list):
        return body
    changed = False
    out: list[Any] = []
    for msg in messages:
        content = msg.get("content") if isinstance(msg, dict) else None
        if isinstance(content, list) and any(_ours(b, key) for b in content):
            kept = [b for b in content if not _ours(b, key)]
            if kept:  # a message of nothing else is left to the upstream to judge
                msg = {**msg, "content": kept}
                changed = True
        out.append(msg)
    return {**body, "messages": out} if changed else body
