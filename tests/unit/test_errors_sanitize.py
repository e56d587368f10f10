"""Upstream error text shown to clients: no internal hosts, addresses, account ids;
``Retry-After`` parsing."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import orjson
import pytest

from relaygate.errors import RelayError, parse_retry_after, sanitize
from relaygate.providers.anthropic import AnthropicAdaptor
from relaygate.providers.base import Target
from relaygate.providers.openai_compat import OpenAICompatAdaptor


@pytest.mark.parametrize(
    ("raw", "gone"),
    [
        ("connect to host 10.1.2.3:8443 failed", ["10.1.2.3", "8443"]),
        ("upstream 192.168.0.7 refused", ["192.168.0.7"]),
        ("backend [fd00::1]:9000 reset the connection", ["fd00::1", "9000"]),
        ("no route to llm-pool-3.svc.cluster.local:8080", ["llm-pool-3", "cluster.local"]),
        ("gateway ip-10-0-0-5.ec2.internal timed out", ["ip-10-0-0-5", "ec2.internal"]),
        ("proxy inference.corp rejected", ["inference.corp"]),
        ("dial tcp api.vendor.example:8443: i/o timeout", ["api.vendor.example"]),
        ("server localhost:11434 unavailable", ["localhost", "11434"]),
        ("Rate limit reached for gpt-4o in organization org-AbC123xyz789", ["org-AbC123xyz789"]),
        ("project proj_Zx81kLmn0Q has no access", ["proj_Zx81kLmn0Q"]),
        ("see https://internal.example/docs?x=1", ["internal.example"]),
    ],
)
def test_sanitize_removes_internal_details(raw: str, gone: list[str]) -> None:
    out = sanitize(raw)
    for item in gone:
        assert item not in out
    assert out.split()[0] == raw.split()[0]  # the rest of the message is kept


@pytest.mark.parametrize(
    "text",
    [
        "This model's maximum context length is 128000 tokens.",
        "Invalid value for 'temperature': 2.5 is greater than the maximum of 2.",
        "model gpt-4.1-mini does not exist",
        "messages.1.content.0.type: Expected `thinking`",
    ],
)
def test_sanitize_keeps_ordinary_text(text: str) -> None:
    assert sanitize(text) == text


def test_adaptors_sanitise_upstream_errors() -> None:
    body = orjson.dumps(
        {
            "error": {
                "message": "org-AbC123xyz789 over quota at host 10.1.2.3:8443",
                "type": "invalid_request_error",
                "code": "bad",
            }
        }
    )
    t = Target(1, "openai_compat", "openai", "https://up.example/v1", "sk-up", "m")
    for msg in (
        OpenAICompatAdaptor().error(t, 400, body).message,
        AnthropicAdaptor().error(t, 400, body).message,
    ):
        assert "10.1.2.3" not in msg and "8443" not in msg and "org-AbC" not in msg
        assert "over quota" in msg


def test_parse_retry_after() -> None:
    assert parse_retry_after(None) is None
    assert parse_retry_after("") is None
    assert parse_retry_after("garbage") is None
    assert parse_retry_after("7") == 7.0
    assert parse_retry_after(" 1.5 ") == 1.5
    later = datetime.now(UTC) + timedelta(seconds=120)
    got = parse_retry_after(format_datetime(later, usegmt=True))
    assert got is not None and 110 <= got <= 121
    past = datetime.now(UTC) - timedelta(seconds=60)
    assert parse_retry_after(format_datetime(past, usegmt=True)) == 0.0


def test_relay_error_retry_after_defaults_to_none() -> None:
    err = RelayError("x")
    assert err.retry_after is None
    err.retry_after = 3.0
    assert err.retry_after == 3.0
