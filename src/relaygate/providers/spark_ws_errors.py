"""iFlytek Spark over WebSocket: error mapping — a frame's ``header.code`` (other than
0 and content moderation) and a refused upgrade's body → the error hierarchy; the
channel secrets kept out of messages. Used by ``providers/spark_ws.py`` and
``providers/spark_ws_stream.py``."""

from __future__ import annotations

import orjson

from relaygate.errors import RelayError, UpstreamError, sanitize
from relaygate.providers.base import Target, error_from_status

__all__ = ["MODERATION", "spark_error", "spark_secrets", "upgrade_error"]

#: ``header.code`` values that mean content moderation
MODERATION = frozenset({10013, 10014, 10019})
_AUTH = frozenset({11200, 10313})  # 10313: the app id does not match the key
_RATE = frozenset({11201, 11202, 11203})  # daily quota, QPS, concurrency
_REJECTED = frozenset({10163, 10907})  # parameter check, input too long


def spark_secrets(target: Target) -> tuple[str, ...]:
    """The channel key and its parts (never shown in messages)."""
    return (target.api_key, *(p for p in target.api_key.split("|") if len(p) >= 6))


def spark_error(code: int, message: str, secrets: tuple[str, ...]) -> RelayError:
    """A ``header.code`` other than 0 (and not content moderation) → the error table:
    11200/10313 (authorisation) → 502 ``upstream_auth_failed``; 11201/11202/11203 (daily
    quota, QPS, concurrency) → 429; 10163/10907 (parameters, too long) → 400 passed on;
    anything else → 502. ``upstream_status`` is set to the mapped status, so the attempt
    loop treats it like the same HTTP answer (a 429 is retried on another channel)."""
    text = f"Spark error {code}: {message}" if message else f"Spark error {code}"
    if code in _AUTH:
        status = 401
    elif code in _RATE:
        status = 429
    elif code in _REJECTED:
        status = 400
    else:
        status = 500
    err: RelayError
    if status == 500:
        err = UpstreamError(f"The upstream provider failed ({sanitize(text, secrets)}).")
    else:
        err = error_from_status(status, text, upstream_code=str(code), secrets=secrets)
    err.upstream_status = status
    return err


def upgrade_error(target: Target, status: int, raw: bytes) -> RelayError:
    """A refused WebSocket upgrade (401 bad signature, 403 stale date, …) or a non-2xx
    answer: Spark's gateway answers ``{"message": "…"}``."""
    message = ""
    stripped = raw.strip()
    if stripped.startswith(b"{"):
        try:
            obj = orjson.loads(stripped)
        except orjson.JSONDecodeError:
            obj = None
        if isinstance(obj, dict):
            message = str(obj.get("message") or "")
    elif stripped and not stripped.startswith(b"<"):
        message = stripped[:300].decode("utf-8", "replace")
    return error_from_status(status, message, upstream_code=None, secrets=spark_secrets(target))
