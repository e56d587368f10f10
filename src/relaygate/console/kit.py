"""What every console API handler shares: JSON answers and errors, the body reader, the
session cookie, the same-origin and CSRF checks, and :class:`Call` (one request's view:
the worker's state, the accounts service, the signed-in user).

Console errors are always plain JSON (``{"error": {message, type, param, code}}``, never the
``code``/``msg`` envelope) with ordinary HTTP statuses (400, 401, 403, 404, 409, 413, 429),
whatever ``RELAYGATE_OPENAI_STATUS_CODES`` says: the console's own pages read them.
"""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import orjson
from starlette.requests import Request
from starlette.responses import Response

from relaygate.console.accounts import Accounts, Current, Issued
from relaygate.console.config import ConsoleSettings
from relaygate.errors import AuthError, BodyTooLarge, InvalidRequest, PolicyError, RelayError
from relaygate.state import AppState

__all__ = [
    "BODY_LIMIT",
    "COOKIE",
    "CSRF_HEADER",
    "Call",
    "Handler",
    "check_csrf",
    "check_origin",
    "clear_cookie",
    "fail",
    "ok",
    "read_body",
    "set_cookie",
]

COOKIE = "rg_session"
COOKIE_PATH = "/console"
CSRF_HEADER = "x-csrf-token"
BODY_LIMIT = 64 * 1024  # the console's requests are small forms


@dataclass(slots=True)
class Call:
    """One console API request: the worker's state, the accounts service and settings, the
    client's address and user agent, and the signed-in user (None when not signed in)."""

    st: AppState
    accounts: Accounts
    cfg: ConsoleSettings
    ip: str
    ua: str
    current: Current | None = None

    @property
    def me(self) -> Current:
        if self.current is None:  # pragma: no cover - routes that need it check first
            raise AuthError("Sign in first.", code="not_signed_in")
        return self.current


Handler = Callable[[Request, Call], Awaitable[Response]]

_NO_STORE = {"Cache-Control": "no-store"}


def ok(data: Any, status: int = 200) -> Response:
    return Response(
        orjson.dumps({"data": data}), status, headers=_NO_STORE, media_type="application/json"
    )


def fail(err: RelayError, headers: dict[str, str] | None = None) -> Response:
    status = err.http_status(True)
    extra = {**_NO_STORE, **(headers or {})}
    if status in (429, 503):
        extra["Retry-After"] = str(int(err.retry_after or 1))
    return Response(
        orjson.dumps({"error": err.to_dict()}), status, headers=extra, media_type="application/json"
    )


def _secure(request: Request, cfg: ConsoleSettings) -> bool:
    return cfg.secure_cookies or request.url.scheme == "https"


def set_cookie(response: Response, request: Request, cfg: ConsoleSettings, issued: Issued) -> None:
    """The session cookie: HttpOnly, SameSite=Lax, Secure over HTTPS (or when the operator
    says so), sent only to ``/console`` paths, living as long as the session."""
    parts = [
        f"{COOKIE}={issued.session_id}",
        f"Path={COOKIE_PATH}",
        f"Max-Age={int(cfg.session_ttl)}",
        "HttpOnly",
        "SameSite=Lax",
    ]
    if _secure(request, cfg):
        parts.append("Secure")
    response.headers.append("Set-Cookie", "; ".join(parts))


def clear_cookie(response: Response, request: Request, cfg: ConsoleSettings) -> None:
    parts = [f"{COOKIE}=", f"Path={COOKIE_PATH}", "Max-Age=0", "HttpOnly", "SameSite=Lax"]
    if _secure(request, cfg):
        parts.append("Secure")
    response.headers.append("Set-Cookie", "; ".join(parts))


def check_origin(request: Request) -> None:
    """A state-changing request must come from the console's own pages: an ``Origin``
    (or ``Sec-Fetch-Site``) naming another site is refused, and a body must be JSON
    (a cross-site form cannot send that without a preflight, which the console refuses)."""
    refused = PolicyError(
        "Cross-site request refused: use the console's own pages.", code="csrf_failed"
    )
    origin = request.headers.get("origin")
    if origin is not None:
        # the host the browser addressed: Host, or the first X-Forwarded-Host a reverse
        # proxy that rewrites Host adds (a cross-site page cannot set that header)
        hosts = {request.headers.get("host", "").lower()}
        forwarded = request.headers.get("x-forwarded-host")
        if forwarded:
            hosts.add(forwarded.split(",", 1)[0].strip().lower())
        if origin == "null" or urlsplit(origin).netloc.lower() not in hosts:
            raise refused
    if request.headers.get("sec-fetch-site", "same-origin") not in ("same-origin", "none"):
        raise refused
    length = request.headers.get("content-length", "")
    has_body = (length not in ("", "0")) or "transfer-encoding" in request.headers
    ctype = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if has_body and ctype != "application/json":
        raise InvalidRequest(
            "Send the body as JSON (Content-Type: application/json).",
            code="unsupported_media_type",
            status=415,
        )


def check_csrf(request: Request, call: Call) -> None:
    """A signed-in state-changing request carries its session's CSRF token in
    ``X-CSRF-Token`` (``GET /console/api/me`` gives it)."""
    cur = call.me
    given = request.headers.get(CSRF_HEADER, "")
    expected = call.accounts.csrf_token(cur.session_id)
    if not hmac.compare_digest(given.encode(), expected.encode()):
        raise PolicyError(
            "Missing or wrong CSRF token: reload the page and try again.", code="csrf_failed"
        )


async def read_body(request: Request) -> dict[str, Any]:
    """The request's JSON object (an empty body is ``{}``), at most :data:`BODY_LIMIT`."""
    too_large = BodyTooLarge(f"The request body is larger than {BODY_LIMIT // 1024} KiB.")
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > BODY_LIMIT:
        raise too_large
    parts: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > BODY_LIMIT:
            raise too_large
        parts.append(chunk)
    raw = b"".join(parts)
    if not raw:
        return {}
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise InvalidRequest("The request body is not valid JSON.") from None
    if not isinstance(body, dict):
        raise InvalidRequest("The request body must be a JSON object.")
    return body
