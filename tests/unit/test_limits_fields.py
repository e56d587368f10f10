"""The user and key fields of billing and limits: validation (group, limits, spending cap,
IP allow-list), the records built from rows, and their public form."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest

from relaygate.billing.money import UNITS, format_amount
from relaygate.services.fields import ValidationError
from relaygate.services.validation import (
    IP_ALLOW_MAX,
    validate_key_create,
    validate_key_patch,
    validate_user_create,
    validate_user_patch,
)
from relaygate.storage.keys import key_from_row
from relaygate.storage.records import amount_text
from relaygate.storage.users import user_from_row

NOW = datetime(2030, 1, 1, tzinfo=UTC)


def refused(fn: Any, body: Any, field: str, match: str) -> None:
    with pytest.raises(ValidationError) as info:
        fn(body)
    assert info.value.field == field, info.value.message
    assert match in info.value.message, info.value.message


def test_user_group_and_limits() -> None:
    out = validate_user_create(
        {"username": "u", "group_name": "vip-2", "rpm_limit": 60, "tpm_limit": 10_000}
    )
    assert out["group_name"] == "vip-2" and out["rpm_limit"] == 60 and out["tpm_limit"] == 10_000
    assert out["concurrency_limit"] is None
    assert validate_user_patch({"concurrency_limit": None, "group_name": "default"}) == {
        "concurrency_limit": None,
        "group_name": "default",
    }


@pytest.mark.parametrize(
    ("body", "field", "match"),
    [
        ({"group_name": "VIP"}, "group_name", "a-z"),
        ({"group_name": ""}, "group_name", "1-32"),
        ({"group_name": "x" * 33}, "group_name", "1-32"),
        ({"group_name": "a b"}, "group_name", "a-z"),
        ({"group_name": 3}, "group_name", "1-32"),
        ({"rpm_limit": -1}, "rpm_limit", ">= 1"),
        ({"tpm_limit": 0}, "tpm_limit", ">= 1"),
        ({"tpm_limit": 1.5}, "tpm_limit", "integer"),
        ({"concurrency_limit": "2"}, "concurrency_limit", "integer"),
        ({"concurrency_limit": 2**31}, "concurrency_limit", "integer"),
    ],
)
def test_user_field_refusals(body: dict[str, Any], field: str, match: str) -> None:
    refused(validate_user_create, {"username": "u", **body}, field, match)
    refused(validate_user_patch, body, field, match)


def test_key_spend_limit_ip_allow_and_tpm() -> None:
    out = validate_key_create(
        {
            "user_id": 1,
            "spend_limit": "12.5",
            "ip_allow": ["203.0.113.7", "10.0.0.0/8", "2001:DB8::/32", "::ffff:1.2.3.4"],
            "tpm_limit": 5000,
        }
    )
    assert out["spend_limit"] == 12_500_000
    assert out["ip_allow"] == ["203.0.113.7", "10.0.0.0/8", "2001:db8::/32", "::ffff:102:304"]
    assert out["tpm_limit"] == 5000
    assert validate_key_patch({"spend_limit": 0.000001})["spend_limit"] == 1
    assert validate_key_patch({"spend_limit": 0})["spend_limit"] == 0  # a cap of nothing
    assert validate_key_patch({"spend_limit": None, "ip_allow": None}) == {
        "spend_limit": None,
        "ip_allow": None,
    }
    assert (
        len(
            validate_key_patch({"ip_allow": ["10.0.0.1"] * 1 + [f"10.1.0.{i}" for i in range(99)]})[
                "ip_allow"
            ]
        )
        == IP_ALLOW_MAX
    )


@pytest.mark.parametrize(
    ("body", "field", "match"),
    [
        ({"spend_limit": "-1"}, "spend_limit", "negative"),
        ({"spend_limit": "1.0000001"}, "spend_limit", "decimals"),
        ({"spend_limit": "ten"}, "spend_limit", "number"),
        ({"spend_limit": "NaN"}, "spend_limit", "finite"),
        ({"spend_limit": True}, "spend_limit", "number"),
        ({"spend_limit": "1e13"}, "spend_limit", "too large"),
        ({"ip_allow": []}, "ip_allow", "at least one"),
        ({"ip_allow": "10.0.0.1"}, "ip_allow", "array"),
        ({"ip_allow": ["10.0.0.1/8"]}, "ip_allow[0]", "did you mean 10.0.0.0/8"),
        ({"ip_allow": ["1.2.3.4", "300.1.1.1"]}, "ip_allow[1]", "'300.1.1.1'"),
        ({"ip_allow": ["10.0.0.0/33"]}, "ip_allow[0]", "CIDR"),
        ({"ip_allow": ["example.com"]}, "ip_allow[0]", "IP address"),
        ({"ip_allow": [7]}, "ip_allow[0]", "string"),
        ({"ip_allow": ["1.2.3.4", "1.2.3.4"]}, "ip_allow", "twice"),
        ({"ip_allow": [f"10.0.{i // 256}.{i % 256}" for i in range(101)]}, "ip_allow", "100"),
        ({"tpm_limit": -5}, "tpm_limit", ">= 1"),
        ({"tpm_limit": "many"}, "tpm_limit", "integer"),
    ],
)
def test_key_field_refusals(body: dict[str, Any], field: str, match: str) -> None:
    refused(validate_key_create, {"user_id": 1, **body}, field, match)
    refused(validate_key_patch, body, field, match)


def test_records_from_rows_and_public_form() -> None:
    user = user_from_row(
        {
            "id": 4,
            "username": "u",
            "role": "user",
            "status": "active",
            "created_at": NOW,
            "group_name": "vip",
            "rpm_limit": None,
            "tpm_limit": 100,
            "concurrency_limit": None,
            "balance": 99,  # billing's: not in the record
        }
    )
    assert user.limited and user.to_public()["group_name"] == "vip"
    assert "balance" not in user.to_public()
    plain = user_from_row(
        {
            "id": 5,
            "username": "p",
            "role": "user",
            "status": "active",
            "created_at": NOW,
            "group_name": None,
        }
    )
    assert not plain.limited and plain.group_name == "default"
    row = {
        "id": 9,
        "user_id": 4,
        "name": "",
        "kind": "personal",
        "key_hash": "h",
        "key_hint": "zp-…abcd",
        "status": "active",
        "expires_at": None,
        "models": None,
        "created_at": NOW,
        "rpm_limit": None,
        "concurrency_limit": None,
        "tpm_limit": None,
        "spend_limit": 12_345_600,
        "ip_allow": ["10.0.0.0/8", "not-an-address"],
    }
    key = key_from_row(row)
    assert key.limited  # an allow-list is a limit
    assert [str(n) for n in key.ip_networks or ()] == ["10.0.0.0/8"]  # bad entry: left out
    pub = key.to_public()
    assert pub["spend_limit"] == "12.3456" and pub["spend_limit_units"] == 12_345_600
    assert pub["ip_allow"] == ["10.0.0.0/8", "not-an-address"] and pub["tpm_limit"] is None
    free = key_from_row({**row, "spend_limit": None, "ip_allow": None})
    assert not free.limited and free.ip_networks is None
    assert free.to_public()["spend_limit"] is None


@pytest.mark.parametrize(
    "units", [0, 1, 99, 10_000, 12_500_000, 111_865_800, 5 * UNITS, 10**18, -1, -12_345_678]
)
def test_amount_text_is_exact_and_agrees_with_format_amount(units: int) -> None:
    text = amount_text(units)
    assert Decimal(text) * UNITS == units  # exact
    if units % 100 == 0:  # four decimals suffice: the same text as billing's formatter
        assert text == format_amount(units)
