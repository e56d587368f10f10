"""The error table (docs/decisions/0003-errors-and-envelope.md) as rendered, in both status modes."""

from __future__ import annotations

import orjson
import pytest

from relaygate.errors import (
    AuthError,
    BodyTooLarge,
    InvalidRequest,
    ModelNotFound,
    NotImplementedByProvider,
    PolicyError,
    QuotaExceeded,
    RateLimited,
    RelayError,
    ServiceUnavailable,
    UpstreamError,
    UpstreamTimeout,
    error_body,
    sanitize,
)

TABLE = [
    (AuthError("x", code="no_api_key"), 401, 401, "no_api_key"),
    (AuthError("x"), 401, 401, "invalid_api_key"),
    (AuthError("x", code="invalid_request_error"), 401, 401, "invalid_request_error"),
    (PolicyError("x", code="account_disabled"), 402, 403, "account_disabled"),
    (QuotaExceeded("x"), 403, 429, "insufficient_quota"),
    (ModelNotFound("x"), 403, 404, "model_not_found"),
    (InvalidRequest("x"), 403, 400, "invalid_request_error"),
    (BodyTooLarge("x"), 403, 413, "invalid_request_error"),
    (RateLimited("x"), 429, 429, "rate_limit_exceeded"),
    (NotImplementedByProvider("x"), 501, 501, "not_implemented"),
    (UpstreamError("x"), 502, 502, "upstream_error"),
    (ServiceUnavailable("x"), 503, 503, "service_unavailable"),
    (UpstreamTimeout("x"), 504, 504, "upstream_timeout"),
]


@pytest.mark.parametrize(("err", "seed", "openai", "code"), TABLE)
def test_statuses_and_codes(err: RelayError, seed: int, openai: int, code: str) -> None:
    assert err.http_status(False) == seed
    assert err.http_status(True) == openai
    assert err.code == code


@pytest.mark.parametrize(("err", "seed", "openai", "code"), TABLE)
def test_body_shape(err: RelayError, seed: int, openai: int, code: str) -> None:
    with_env = orjson.loads(error_body(err, envelope=True, status=seed))
    assert with_env["code"] == seed and with_env["msg"] == "x"
    assert with_env["error"] == {"message": "x", "type": err.type, "param": None, "code": code}
    plain = orjson.loads(error_body(err, envelope=False, status=openai))
    assert set(plain) == {"error"}


def test_sanitize_removes_urls_and_secrets() -> None:
    text = sanitize("bad key sk-abcdef at https://api.internal:8443/v1/x?key=1 ok", ["sk-abcdef"])
    assert "sk-abcdef" not in text and "internal" not in text and text.endswith("ok")
    assert len(sanitize("y" * 5000)) <= 1001
