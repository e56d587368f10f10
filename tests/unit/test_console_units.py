"""Console pieces without a gateway: TOTP steps and drift, the RELAYGATE_CONSOLE_*
settings, the username and password rules, argon2 hashing."""

from __future__ import annotations

import asyncio

import pyotp
import pytest

from relaygate.console import passwords, totp
from relaygate.console.accounts import check_password, check_username
from relaygate.console.config import ConsoleSettings
from relaygate.errors import InvalidRequest

SECRET = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP"


def test_totp_accepts_one_step_of_drift_either_way() -> None:
    at = 1_800_000_015.0  # inside a step
    step = int(at // 30)
    t = pyotp.TOTP(SECRET)
    assert totp.matching_step(SECRET, t.at(at), at) == step
    assert totp.matching_step(SECRET, t.at(at - 30), at) == step - 1
    assert totp.matching_step(SECRET, t.at(at + 30), at) == step + 1
    far = t.at(at + 90)
    if far not in (t.at(at), t.at(at - 30), t.at(at + 30)):
        assert totp.matching_step(SECRET, far, at) is None


@pytest.mark.parametrize("code", ["", "12345", "1234567", "12a456", "１２３４５６", " 123456"])
def test_totp_refuses_malformed_codes(code: str) -> None:
    assert totp.matching_step(SECRET, code, 1_800_000_015.0) is None


def test_provisioning_uri_names_the_issuer_and_user() -> None:
    uri = totp.provisioning_uri(SECRET, "alice")
    assert uri.startswith("otpauth://totp/relaygate:alice?") and "issuer=relaygate" in uri


def test_settings_defaults_and_bad_values(monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = ConsoleSettings.from_env()
    assert cfg.signup is True and cfg.secure_cookies is False
    monkeypatch.setenv("RELAYGATE_CONSOLE_SIGNUP", "0")
    monkeypatch.setenv("RELAYGATE_CONSOLE_SESSION_TTL", "60")
    cfg = ConsoleSettings.from_env()
    assert cfg.signup is False and cfg.session_ttl == 60
    monkeypatch.setenv("RELAYGATE_CONSOLE_SESSION_TTL", "soon")
    with pytest.raises(ValueError, match="RELAYGATE_CONSOLE_SESSION_TTL"):
        ConsoleSettings.from_env()
    monkeypatch.setenv("RELAYGATE_CONSOLE_SESSION_TTL", "0")
    with pytest.raises(ValueError, match="at least"):
        ConsoleSettings.from_env()


@pytest.mark.parametrize("name", ["abc", "a.b-c_d", "用户名称", "x" * 32])
def test_usernames_accepted(name: str) -> None:
    assert check_username(name) == name


@pytest.mark.parametrize("name", ["ab", "x" * 33, "a b", "a/b", "<b>", "a\nb", 7, None])
def test_usernames_refused(name: object) -> None:
    with pytest.raises(InvalidRequest):
        check_username(name)


@pytest.mark.parametrize("pw", ["short", "x" * 129, "nul\x00nul\x00", 12345678, None])
def test_passwords_refused(pw: object) -> None:
    with pytest.raises(InvalidRequest):
        check_password(pw)


def test_argon2_hash_and_verify() -> None:
    async def run() -> None:
        stored = await passwords.hash_password("a fine password")
        assert stored.startswith("$argon2id$")
        assert await passwords.verify_password(stored, "a fine password") == (True, False)
        assert (await passwords.verify_password(stored, "another"))[0] is False
        assert (await passwords.verify_password(None, "a fine password"))[0] is False
        assert (await passwords.verify_password("not a hash", "x"))[0] is False

    asyncio.run(run())
