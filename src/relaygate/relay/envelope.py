"""The seed's ``code``/``msg`` envelope for the other client formats
(``RELAYGATE_ENVELOPE_FORMATS``, ``docs/configuration.md``).

The OpenAI-format answers get it from ``asgi.ok_body`` and ``errors.error_body`` when
``RELAYGATE_ENVELOPE`` is on. The Responses, Anthropic Messages and Gemini endpoints ask
:func:`envelope_on` for their own format, and wrap their whole (non-stream) answers with
:func:`wrap_ok` and their errors with :func:`enveloped` — the same two fields in front:
``code`` 0 and ``msg`` ``"ok"`` on success, the HTTP status and the error's message on
failure. Streams never carry them.
"""

from __future__ import annotations

from typing import Any

import orjson

from relaygate.errors import RelayError
from relaygate.relay.present import ErrorRender
from relaygate.settings import Settings

__all__ = ["envelope_on", "enveloped", "plain_openai_error", "wrap_ok"]


def envelope_on(settings: Settings, fmt: str) -> bool:
    """Whether answers in client format ``fmt`` carry the envelope."""
    return settings.envelope and fmt in settings.envelope_formats


def wrap_ok(body: bytes | dict[str, Any], on: bool) -> bytes:
    """A success body (JSON object, as bytes or parsed), with the envelope when ``on``."""
    if not on:
        return body if isinstance(body, bytes) else orjson.dumps(body)
    obj = orjson.loads(body) if isinstance(body, bytes) else body
    if not isinstance(obj, dict):  # a JSON array is left as it is
        return body if isinstance(body, bytes) else orjson.dumps(body)
    return orjson.dumps({"code": 0, "msg": "ok", **obj})


def enveloped(render: ErrorRender, on: bool) -> ErrorRender:
    """``render`` (an error in a format's shape) with the envelope in front when ``on``."""
    if not on:
        return render

    def wrapped(err: RelayError, status: int) -> bytes:
        obj = orjson.loads(render(err, status))
        return orjson.dumps({"code": status, "msg": err.message, **obj})

    return wrapped


def plain_openai_error(err: RelayError, status: int) -> bytes:
    """An OpenAI error body without the envelope (Responses, when it is left out)."""
    return orjson.dumps({"error": err.to_dict()})
