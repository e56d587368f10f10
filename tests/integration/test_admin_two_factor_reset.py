"""An admin turns off a user's console two-factor sign-in (docs/console.md, "Two-factor
sign-in"): ``GET`` and ``DELETE /admin/api/users/{id}/console-two-factor`` with an admin
token and through the console's admin bridge, and ``relaygate user reset-two-factor``.

A user with TOTP on and recovery codes is reset: the user signs in with the password
alone, their sessions (and a half-done sign-in) are gone, the recovery rows are deleted,
the admin audit log has the row and the console log the line, with no secret. A reset of a
user without two-factor answers ``"was_on": false`` and changes nothing. Unknown and
hostile ids, hostile bodies and non-admin callers get JSON errors.

A real gateway on SQLite (the database file is read to see the rows), httpx as the
browser; the reset once more on PostgreSQL at the end."""

from __future__ import annotations

import asyncio
import sqlite3
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pyotp
import pytest
from gateway import Gateway, fresh_pg_database
from test_console_api import Browser, _error, _fresh_step

PASSWORD = "reset pass 12"
PATH = "/users/{}/console-two-factor"


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    g = Gateway(
        Path(tmp_path_factory.mktemp("two-factor-reset")),
        {"RELAYGATE_CONSOLE_SIGNUP_IP_LIMIT": "100"},
    ).start()
    try:
        yield g
    finally:
        g.stop()


def _name() -> str:
    return f"tf{uuid.uuid4().hex[:10]}"


def _db_rows(gw: Gateway, sql: str, *args: Any) -> list[tuple[Any, ...]]:
    db = sqlite3.connect(Path(gw.env["RELAYGATE_DATA_DIR"]) / "relaygate.db")
    try:
        return list(db.execute(sql, args))
    finally:
        db.close()


def _raw(gw: Gateway, method: str, path: str, token: str | None = None, **kw: Any) -> Any:
    headers = {"Authorization": f"Bearer {token or gw.admin_token}", **kw.pop("headers", {})}
    return httpx.request(method, gw.base + "/admin/api" + path, headers=headers, timeout=20, **kw)


def _json_4xx(r: httpx.Response) -> dict[str, Any]:
    assert 400 <= r.status_code < 500, (r.status_code, r.text)
    assert r.headers["content-type"].startswith("application/json"), r.headers
    err: dict[str, Any] = r.json()["error"]
    assert err["message"]
    return err


class TwoFactorUser:
    """A signed-up user with two-factor on: its browser, TOTP secret and recovery codes."""

    def __init__(self, gw: Gateway) -> None:
        self.gw = gw
        self.name = _name()
        self.browser = Browser(gw)
        assert self.browser.sign_up(self.name, PASSWORD).status_code == 201
        self.id = int(self.browser.load_me()["user"]["id"])
        setup = self.browser.call("POST", "/totp/setup").json()["data"]
        self.secret: str = setup["secret"]
        t0 = _fresh_step()
        r = self.browser.call("POST", "/totp/enable", {"code": pyotp.TOTP(self.secret).at(t0)})
        assert r.status_code == 200, r.text
        self.codes: list[str] = r.json()["data"]["recovery_codes"]
        assert len(self.codes) == 10

    def recovery_rows(self) -> int:
        sql = "SELECT count(*) FROM console_recovery_codes WHERE user_id = ?"
        return int(_db_rows(self.gw, sql, self.id)[0][0])

    def credentials(self) -> tuple[Any, ...]:
        sql = (
            "SELECT totp_secret, totp_pending, totp_enabled, totp_last_step "
            "FROM console_credentials WHERE user_id = ?"
        )
        return _db_rows(self.gw, sql, self.id)[0]

    def close(self) -> None:
        self.browser.close()


def _password_only(gw: Gateway, name: str) -> bool:
    """Whether the password alone signs ``name`` in (a full session, no second step)."""
    b = Browser(gw)
    try:
        r = b.sign_in(name, PASSWORD)
        assert r.status_code == 200, r.text
        if r.json()["data"]["totp_required"]:
            return False
        return b.call("GET", "/me").status_code == 200
    finally:
        b.close()


def _admin_browser(gw: Gateway) -> tuple[Browser, int]:
    b = Browser(gw)
    assert b.sign_up(_name(), PASSWORD).status_code == 201
    uid = int(b.load_me()["user"]["id"])
    gw.admin("PATCH", f"/users/{uid}", {"role": "admin"})
    b.load_me()
    return b, uid


# ---- the admin API with a token ----------------------------------------------------------------
def test_reset_lets_the_user_in_with_the_password_alone(gw: Gateway) -> None:
    u = TwoFactorUser(gw)
    half = Browser(gw)  # a sign-in waiting for its second step
    try:
        assert not _password_only(gw, u.name)
        assert u.recovery_rows() == 10
        r = half.sign_in(u.name, PASSWORD)
        ticket = r.json()["data"]["ticket"]
        status = gw.admin("GET", PATH.format(u.id))["data"]
        assert status == {
            "user_id": u.id,
            "password_set": True,
            "two_factor_enabled": True,
            "recovery_codes_left": 10,
        }

        done = gw.admin("DELETE", PATH.format(u.id))["data"]
        assert done["user_id"] == u.id and done["was_on"] is True
        assert done["recovery_codes_deleted"] == 10
        # the user's session and two half-done sign-ins (_password_only's and half's)
        assert done["sessions_ended"] == 3

        # the secrets, the used step and the recovery rows are gone
        assert u.credentials() == (None, None, 0, None)
        assert u.recovery_rows() == 0
        # the old session has ended, the waiting second step too
        _error(u.browser.call("GET", "/me"), 401)
        code = pyotp.TOTP(u.secret).now()
        late = half.call("POST", "/sign-in/totp", {"ticket": ticket, "code": code})
        assert late.status_code in (400, 401), late.text
        # the password alone signs in now; a recovery code is no longer a way in
        assert _password_only(gw, u.name)
        after = gw.admin("GET", PATH.format(u.id))["data"]
        assert after["two_factor_enabled"] is False and after["recovery_codes_left"] == 0

        # the audit row (no body, so no field names) and the console log line, no secret
        row = gw.admin("GET", "/audit?limit=1")["data"][0]
        assert (row["method"], row["path"], row["status"], row["via"]) == (
            "DELETE",
            f"/admin/api/users/{u.id}/console-two-factor",
            200,
            "api",
        )
        assert row["fields"] == []
        logs = gw.logs()
        lines = [ln for ln in logs.splitlines() if "turned off by an admin" in ln]
        assert lines and str(u.id) in lines[-1] and "relaygate.console" in lines[-1], lines
        assert u.secret not in logs
        assert not any(c in logs or c.replace("-", "") in logs for c in u.codes)

        # again: it was not on, nothing changes, still 200
        again = gw.admin("DELETE", PATH.format(u.id))["data"]
        assert again == {
            "user_id": u.id,
            "was_on": False,
            "recovery_codes_deleted": 0,
            "sessions_ended": 0,
        }
        assert _password_only(gw, u.name)
    finally:
        half.close()
        u.close()


def test_a_user_without_two_factor_is_left_alone(gw: Gateway) -> None:
    b = Browser(gw)
    try:
        name = _name()
        assert b.sign_up(name, PASSWORD).status_code == 201
        uid = int(b.load_me()["user"]["id"])
        done = gw.admin("DELETE", PATH.format(uid))["data"]
        assert done["was_on"] is False and done["sessions_ended"] == 0
        assert b.call("GET", "/me").status_code == 200  # the session goes on
        # a user made by the admin API has no console password at all
        bare = gw.create_user(_name(), balance=None)
        assert gw.admin("GET", PATH.format(bare))["data"] == {
            "user_id": bare,
            "password_set": False,
            "two_factor_enabled": False,
            "recovery_codes_left": 0,
        }
        assert gw.admin("DELETE", PATH.format(bare))["data"]["was_on"] is False
    finally:
        b.close()


def test_unknown_and_hostile_ids_and_bodies_get_json_errors(gw: Gateway) -> None:
    for method in ("GET", "DELETE"):
        err = _json_4xx(_raw(gw, method, PATH.format(2_000_000_000)))
        assert err["code"] == "not_found" or "No user" in err["message"], err
    ids = ["abc", "-1", "0", "1e3", "1.0", "%00", "%D9%A1", "99999999999999999999999", "x" * 300]
    for bad in ids:
        for method in ("GET", "DELETE"):
            _json_4xx(_raw(gw, method, PATH.format(bad)))
    uid = gw.create_user(_name(), balance=None)
    bodies: list[dict[str, Any]] = [
        {"json": {"confirm": True}},
        {"json": [1, 2]},
        {"json": "off"},
        {"content": b"{not json", "headers": {"content-type": "application/json"}},
        {"content": b"x" * (8 << 20), "headers": {"content-type": "application/json"}},
    ]
    for kw in bodies:
        _json_4xx(_raw(gw, "DELETE", PATH.format(uid), **kw))
    # an empty object is no body
    assert _raw(gw, "DELETE", PATH.format(uid), json={}).status_code == 200
    # other methods: 405 with Allow
    r = _raw(gw, "POST", PATH.format(uid), json={})
    assert r.status_code == 405 and set(r.headers["allow"].split(", ")) >= {"GET", "DELETE"}


def test_non_admins_are_refused(gw: Gateway) -> None:
    u = TwoFactorUser(gw)
    try:
        key = gw.create_key(gw.create_user(_name(), balance=None))
        for method in ("GET", "DELETE"):
            # the status is the seed's status table's (402 for a permission error here)
            refused = _json_4xx(_raw(gw, method, PATH.format(u.id), token=key))
            assert refused["code"] == "admin_required", refused
            _json_4xx(_raw(gw, method, PATH.format(u.id), token="sk-nonsense"))
        # a signed-in user who is not an admin, through the console's bridge
        r = u.browser.call("DELETE", "/admin" + PATH.format(u.id))
        _error(r, 403, "admin_required")
        assert u.credentials()[2] == 1 and u.recovery_rows() == 10  # still on
    finally:
        u.close()


# ---- through the console ------------------------------------------------------------------------
def test_console_admin_resets_through_the_bridge(gw: Gateway) -> None:
    u = TwoFactorUser(gw)
    admin, admin_id = _admin_browser(gw)
    try:
        path = "/admin" + PATH.format(u.id)
        assert admin.call("GET", path).json()["data"]["two_factor_enabled"] is True
        # a write needs the CSRF token
        r = admin.call("DELETE", path, headers={"X-CSRF-Token": "wrong"})
        assert r.status_code == 403, r.text
        assert u.recovery_rows() == 10
        r = admin.call("DELETE", path)
        assert r.status_code == 200, r.text
        assert r.json()["data"]["was_on"] is True
        assert _password_only(gw, u.name)
        row = admin.call("GET", f"/admin/audit?actor_id={admin_id}&limit=1").json()["data"][0]
        assert (row["method"], row["path"], row["status"], row["via"]) == (
            "DELETE",
            f"/console/api{path}",
            200,
            "console",
        )
        line = [ln for ln in gw.logs().splitlines() if "turned off by an admin" in ln][-1]
        assert str(admin_id) in line and str(u.id) in line
        # one's own two-factor is turned off on the settings page (it asks for a code)
        own = admin.call("DELETE", "/admin" + PATH.format(admin_id))
        assert _json_4xx(own)["code"] == "use_account_settings"
    finally:
        admin.close()
        u.close()


# ---- the CLI ------------------------------------------------------------------------------------
def _cli(gw: Gateway, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "relaygate", "user", "reset-two-factor", *args],
        env=gw.env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_cli_resets_two_factor(gw: Gateway) -> None:
    u = TwoFactorUser(gw)
    try:
        out = _cli(gw, "--user", u.name)
        assert out.returncode == 0, out
        assert "10 recovery code(s) deleted" in out.stdout
        assert "1 console session(s) ended" in out.stdout
        assert u.secret not in out.stdout + out.stderr
        assert u.recovery_rows() == 0 and u.credentials() == (None, None, 0, None)
        _error(u.browser.call("GET", "/me"), 401)
        assert _password_only(gw, u.name)
        again = _cli(gw, "--user", u.name)
        assert again.returncode == 0 and "was not on" in again.stdout, again
        missing = _cli(gw, "--user", "no-such-user-" + _name())
        assert missing.returncode != 0 and "No user named" in missing.stderr, missing
        assert _cli(gw).returncode != 0  # --user is required
    finally:
        u.close()


# ---- a gateway on PostgreSQL --------------------------------------------------------------------
def _pg_state(url: str, user_id: int) -> tuple[int, tuple[Any, ...], int]:
    """The user's recovery rows, TOTP columns and console sessions."""

    async def run() -> tuple[int, tuple[Any, ...], int]:
        conn = await asyncpg.connect(url)
        try:
            codes = await conn.fetchval(
                "SELECT count(*) FROM console_recovery_codes WHERE user_id = $1", user_id
            )
            cred = await conn.fetchrow(
                "SELECT totp_secret, totp_pending, totp_enabled, totp_last_step "
                "FROM console_credentials WHERE user_id = $1",
                user_id,
            )
            sessions = await conn.fetchval(
                "SELECT count(*) FROM console_sessions WHERE user_id = $1", user_id
            )
        finally:
            await conn.close()
        return int(codes), tuple(cred), int(sessions)

    return asyncio.run(run())


def test_reset_on_postgresql(tmp_path: Path) -> None:
    with fresh_pg_database("rg_tfreset_") as url:
        g = Gateway(tmp_path, {"RELAYGATE_DATABASE_URL": url}).start()
        try:
            u = TwoFactorUser(g)
            try:
                codes, cred, sessions = _pg_state(url, u.id)
                assert codes == 10 and cred[2] is True and cred[0] and sessions == 1
                done = g.admin("DELETE", PATH.format(u.id))["data"]
                assert done == {
                    "user_id": u.id,
                    "was_on": True,
                    "recovery_codes_deleted": 10,
                    "sessions_ended": 1,
                }
                assert _pg_state(url, u.id) == (0, (None, None, False, None), 0)
                assert _password_only(g, u.name)
                assert g.admin("DELETE", PATH.format(u.id))["data"]["was_on"] is False
                _json_4xx(_raw(g, "DELETE", PATH.format("99999999999999999999")))
                _json_4xx(_raw(g, "DELETE", PATH.format(2**31)))
            finally:
                u.close()
        finally:
            g.stop()
