"""Runtime settings' checks and how a worker applies stored overrides
(services/runtime_settings.py); the admin API and the workers are tested on a real gateway in
tests/integration/test_runtime_settings.py."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from relaygate.services.fields import ValidationError
from relaygate.services.runtime_settings import RuntimeSettings, check_changes, check_rate
from relaygate.settings import Settings
from relaygate.storage.db import create_engine
from relaygate.storage.runtime_settings import Override


@pytest.mark.parametrize(
    ("raw", "out"),
    [
        ("7.2", "7.2"),
        ("7.20", "7.2"),
        (" 8 ", "8"),
        (8, "8"),
        ("1e2", "100"),
        ("0.00000001", "0.00000001"),
    ],
)
def test_rates_are_normalised(raw: Any, out: str) -> None:
    assert check_rate(raw) == out


@pytest.mark.parametrize(
    "raw", ["", "0", "-1", "nan", "inf", "1e7", "0.000000001", "x", 7.2, True, None, "9" * 40]
)
def test_bad_rates_are_refused(raw: Any) -> None:
    with pytest.raises(ValidationError) as caught:
        check_rate(raw)
    assert caught.value.field == "usd_rate"


def test_changes_are_checked_whole() -> None:
    assert check_changes({"envelope": False, "usd_rate": None}) == {
        "envelope": False,
        "usd_rate": None,
    }
    for body in ({}, {"envelope": "no"}, {"envelope": 1}, {"currency": "USD"}):
        with pytest.raises(ValidationError):
            check_changes(body)


def _override(value: Any) -> Override:
    return Override(value, datetime(2030, 1, 1, tzinfo=UTC), "root")


def test_overrides_apply_in_place_and_reset_to_the_environment() -> None:
    s = Settings(envelope=True, openai_status_codes=False, usd_rate="7.2")
    seen: list[bool] = []
    runtime = RuntimeSettings(s, create_engine("sqlite+aiosqlite://"), seen.append)
    runtime.apply(
        {
            "envelope": _override(False),
            "openai_status_codes": _override(True),
            "console_signup": _override(False),
            "usd_rate": _override("8.1"),
        }
    )
    assert (s.envelope, s.openai_status_codes, s.console_signup, s.usd_rate) == (
        False,
        True,
        False,
        "8.1",
    )
    assert seen == [False]
    view = {f["name"]: f for f in runtime.view({"usd_rate": _override("8.1")})}
    assert view["usd_rate"]["value"] == "8.1" and view["usd_rate"]["default"] == "7.2"
    assert (
        view["envelope"]["overridden"] is False and view["envelope"]["env"] == "RELAYGATE_ENVELOPE"
    )
    runtime.apply({})
    assert (s.envelope, s.openai_status_codes, s.console_signup, s.usd_rate) == (
        True,
        False,
        None,
        "7.2",
    )


def test_a_bad_stored_row_keeps_the_default() -> None:
    s = Settings(usd_rate="7.2")
    runtime = RuntimeSettings(s, create_engine("sqlite+aiosqlite://"))
    runtime.apply({"usd_rate": _override("-5"), "envelope": _override("yes")})
    assert s.usd_rate == "7.2" and s.envelope is True
