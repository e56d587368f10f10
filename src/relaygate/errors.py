"""The one error hierarchy of relaygate.

Every failure that reaches a client is a :class:`RelayError`. Each subclass knows
its ``error.code``, its OpenAI ``type`` and two HTTP statuses: the default one
from the seed error table (docs/decisions/0003-errors-and-envelope.md) and
OpenAI's own status, used when the operator sets ``RELAYGATE_OPENAI_STATUS_CODES=1``::

    RelayError
    ├── AuthError                 401  no_api_key | invalid_api_key | invalid_request_error
    ├── PolicyError               402  account_disabled | admin_required | policy_violation | …
    │   └── ContentPolicyError    402  content_policy_violation     (OpenAI: 400)
    ├── QuotaExceeded             403  insufficient_quota           (OpenAI: 429)
    ├── ModelNotFound             403  model_not_found              (OpenAI: 404)
    ├── InvalidRequest            403  invalid_request_error        (OpenAI: 400)
    │   └── BodyTooLarge          403  invalid_request_error        (OpenAI: 413)
    ├── NotFound                  404  unknown_url                  (no such URL or object)
    ├── RateLimited               429  rate_limit_exceeded
    ├── NotImplementedByProvider  501  not_implemented
    ├── UpstreamError             502  upstream_error
    │   └── UpstreamRejected      4xx  passed on from the upstream (caused by the request)
    ├── ServiceUnavailable        503  service_unavailable
    └── UpstreamTimeout           504  upstream_timeout

Rendering lives in :func:`error_body`; it never includes upstream URLs or credentials
(callers sanitise upstream text with :func:`sanitize` first).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any, ClassVar

import orjson

from relaygate.asgi import Send, send_json

__all__ = [
    "AuthError",
    "BodyTooLarge",
    "ContentPolicyError",
    "InvalidRequest",
    "ModelNotFound",
    "NotFound",
    "NotImplementedByProvider",
    "PolicyError",
    "QuotaExceeded",
    "RateLimited",
    "RelayError",
    "ServiceUnavailable",
    "UpstreamError",
    "UpstreamRejected",
    "UpstreamTimeout",
    "error_body",
    "parse_retry_after",
    "sanitize",
    "send_error",
]


class RelayError(Exception):
    """Base of every client-visible failure."""

    status: ClassVar[int] = 500
    openai_status: ClassVar[int] = 500
    default_code: ClassVar[str] = "internal_error"
    type: ClassVar[str] = "server_error"

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        param: str | None = None,
        status: int | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.code = code or self.default_code
        self.param = param
        self._status = status
        #: the upstream's HTTP status when this error is the upstream's answer
        self.upstream_status: int | None = None
        #: seconds the client should wait (``Retry-After``); None: the default
        self.retry_after: float | None = None

    def http_status(self, openai_statuses: bool) -> int:
        if self._status is not None:
            return self._status
        return self.openai_status if openai_statuses else self.status

    def to_dict(self) -> dict[str, Any]:
        return {
            "message": self.message,
            "type": self.type,
            "param": self.param,
            "code": self.code,
        }


class AuthError(RelayError):
    status = 401
    openai_status = 401
    default_code = "invalid_api_key"
    type = "invalid_request_error"


class PolicyError(RelayError):
    """Refused for a policy reason other than auth or quota (seed 001: 402)."""

    status = 402
    openai_status = 403
    default_code = "policy_violation"
    type = "permission_error"


class ContentPolicyError(PolicyError):
    """A prompt holds text the operator's word lists block (docs/safety.md); the
    message names the category, never the word."""

    openai_status = 400
    default_code = "content_policy_violation"
    type = "invalid_request_error"


class QuotaExceeded(RelayError):
    status = 403
    openai_status = 429
    default_code = "insufficient_quota"
    type = "insufficient_quota"


class ModelNotFound(RelayError):
    status = 403
    openai_status = 404
    default_code = "model_not_found"
    type = "invalid_request_error"


class InvalidRequest(RelayError):
    status = 403
    openai_status = 400
    default_code = "invalid_request_error"
    type = "invalid_request_error"


class BodyTooLarge(InvalidRequest):
    openai_status = 413


class NotFound(RelayError):
    """An URL the gateway does not serve at all."""

    status = 404
    openai_status = 404
    default_code = "unknown_url"
    type = "invalid_request_error"


class RateLimited(RelayError):
    status = 429
    openai_status = 429
    default_code = "rate_limit_exceeded"
    type = "rate_limit_error"


class NotImplementedByProvider(RelayError):
    status = 501
    openai_status = 501
    default_code = "not_implemented"
    type = "invalid_request_error"


class UpstreamError(RelayError):
    """The upstream failed (5xx, connection error, broken stream, bad credentials)."""

    status = 502
    openai_status = 502
    default_code = "upstream_error"
    type = "upstream_error"


class UpstreamRejected(UpstreamError):
    """An upstream 4xx caused by the request itself: passed on with its status."""

    type = "invalid_request_error"


class ServiceUnavailable(RelayError):
    status = 503
    openai_status = 503
    default_code = "service_unavailable"
    type = "server_error"


class UpstreamTimeout(RelayError):
    status = 504
    openai_status = 504
    default_code = "upstream_timeout"
    type = "timeout_error"


def error_body(err: RelayError, *, envelope: bool, status: int) -> bytes:
    """Serialise ``err`` as an OpenAI error body, with the envelope when enabled."""
    body: dict[str, Any] = {"error": err.to_dict()}
    if envelope:
        body = {"code": status, "msg": err.message, **body}
    return orjson.dumps(body)


_URL_RE = re.compile(r"https?://[^\s\"'<>]+")
#: what upstream error text must not show clients: IP addresses (v4, bracketed v6)
#: with their ports, host names with a port or on an internal domain, and account
#: identifiers (OpenAI organisation and project ids)
_HOST_RE = re.compile(
    r"\[[0-9A-Fa-f:.]*:[0-9A-Fa-f:.]*\](?::\d{1,5})?"  # [fd00::1]:8443
    r"|\b(?:\d{1,3}\.){3}\d{1,3}(?::\d{1,5})?\b"  # 10.1.2.3:8443
    r"|\b(?:[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?\.)*"
    r"[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?"
    r"\.(?:internal|local|localdomain|lan|corp|intranet|home|svc|cluster)\b(?::\d{1,5})?"
    r"|\b(?:[A-Za-z0-9-]+\.)+[A-Za-z]{2,}:\d{1,5}\b"  # api.vendor.example:8443
    r"|\blocalhost(?::\d{1,5})?\b"
)
_ACCOUNT_RE = re.compile(r"\b(?:org|proj)[-_][A-Za-z0-9]{6,}\b")


def sanitize(text: str, secrets: Iterable[str] = ()) -> str:
    """Remove URLs, internal host names and IP addresses (with ports), organisation
    and project ids, and the given secrets (upstream keys) from upstream-provided text."""
    for secret in secrets:
        if secret and len(secret) >= 4:
            text = text.replace(secret, "[redacted]")
    text = _URL_RE.sub("[upstream]", text)
    text = _HOST_RE.sub("[host]", text)
    text = _ACCOUNT_RE.sub("[account]", text)
    if len(text) > 1000:
        text = text[:1000] + "…"
    return text


async def send_error(
    send: Send,
    err: RelayError,
    request_id: str,
    *,
    envelope: bool,
    openai_statuses: bool,
    render: Callable[[RelayError, int], bytes] | None = None,
) -> int:
    """Answer with ``err`` as a JSON error (``render``: in another format's shape, given
    the error and the status); returns the HTTP status sent. Another format's client (the
    Anthropic or Google SDK) gets the usual HTTP statuses (OpenAI's column of the table):
    its SDK maps them to its own error types, and the seed's 403-for-everything would read as
    a permission error there."""
    status = err.http_status(openai_statuses or render is not None)
    extra = None
    if err.retry_after is not None:
        extra = [(b"retry-after", str(max(1, math.ceil(err.retry_after))).encode())]
    elif status in (429, 503):
        extra = [(b"retry-after", b"1")]
    if render is not None:
        body = render(err, status)
    else:
        body = error_body(err, envelope=envelope, status=status)
    await send_json(send, status, body, request_id, extra)
    return status


def parse_retry_after(value: str | None) -> float | None:
    """``Retry-After`` as seconds: delay-seconds or an HTTP-date; None when absent
    or unreadable. Capped at one day."""
    if not value:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        seconds = (when - datetime.now(UTC)).total_seconds()
    if seconds != seconds or seconds < 0:  # NaN or in the past
        return 0.0 if seconds == seconds else None
    return min(seconds, 86400.0)
