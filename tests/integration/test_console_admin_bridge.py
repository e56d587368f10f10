"""The console's admin bridge (/console/api/admin/… = /admin/api/… for a signed-in admin)
and the admin audit log, against a real gateway on loopback with httpx as the browser."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from gateway import Gateway
from test_console_api import Browser, _error, _name


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    g = Gateway(Path(tmp_path_factory.mktemp("console-admin"))).start()
    try:
        yield g
    finally:
        g.stop()


def _admin_browser(gw: Gateway) -> tuple[Browser, int]:
    b = Browser(gw)
    name = _name("adm")
    assert b.sign_up(name).status_code == 201
    uid = b.load_me()["user"]["id"]
    gw.admin("PATCH", f"/users/{uid}", {"role": "admin"})
    b.load_me()
    return b, uid


def test_an_admin_reaches_the_admin_api_and_every_write_is_audited(gw: Gateway) -> None:
    b, uid = _admin_browser(gw)
    try:
        r = b.call("GET", "/admin/users")
        assert r.status_code == 200, r.text
        assert any(u["id"] == uid for u in r.json()["data"])
        secret = "sk-very-secret-upstream-key"
        r = b.call(
            "POST",
            "/admin/channels",
            {
                "name": _name("ch"),
                "provider": "openai_compat",
                "profile": "openai",
                "base_url": "http://127.0.0.1:9/v1",
                "keys": [secret],
                "models": ["m-audit"],
            },
        )
        assert r.status_code == 201, r.text
        cid = r.json()["data"]["id"]
        assert secret not in r.text
        # a refused write is audited too (with its status)
        # (the admin API's statuses follow the seed's error table: 403 for a bad field)
        r = b.call("PATCH", f"/admin/channels/{cid}", {"weight": "heavy"})
        assert r.status_code in (400, 403) and r.json()["error"]["param"] == "weight", r.text
        rows = b.call("GET", f"/admin/audit?actor_id={uid}").json()["data"]
        assert [(x["method"], x["status"]) for x in rows[:2]] == [
            ("PATCH", r.status_code),
            ("POST", 201),
        ]
        made = rows[1]
        assert made["via"] == "console" and made["actor"] == b.load_me()["user"]["username"]
        assert made["path"] == "/console/api/admin/channels"
        assert "keys" in made["fields"] and "name" in made["fields"]
        assert secret not in b.call("GET", "/admin/audit").text  # names only, never values
        # the same write through the admin API with a token is audited as `api`
        gw.admin("PATCH", f"/channels/{cid}", {"weight": 3})
        last = gw.admin("GET", "/audit?limit=1")["data"][0]
        assert last["via"] == "api" and last["path"] == f"/admin/api/channels/{cid}"
        assert last["fields"] == ["weight"] and last["status"] == 200
    finally:
        b.close()


def test_the_bridge_refuses_non_admins_missing_csrf_and_other_sites(gw: Gateway) -> None:
    anon = Browser(gw)
    user = Browser(gw)
    b, _ = _admin_browser(gw)
    try:
        _error(anon.call("GET", "/admin/users"), 401, "not_signed_in")
        assert user.sign_up(_name()).status_code == 201
        _error(user.call("GET", "/admin/users"), 403, "admin_required")
        _error(user.call("POST", "/admin/users", {"username": _name()}), 403, "admin_required")
        body = {"username": _name()}
        _error(b.call("POST", "/admin/users", body, headers={"X-CSRF-Token": "x"}), 403)
        r = b.call("POST", "/admin/users", body, headers={"Origin": "https://evil.example"})
        _error(r, 403, "csrf_failed")
        # the session cookie is never taken as an admin token, nor a bearer header as a session
        r = anon.call("GET", "/admin/users", headers={"Authorization": f"Bearer {gw.admin_token}"})
        _error(r, 401, "not_signed_in")
        # dot segments the client did not resolve (encoded) never leave the admin API
        for bad in ("/admin/%2e%2e/me", "/admin/users/%2E%2E/%2e%2e/me", "/admin/.%2e/sign-out"):
            _error(b.call("GET", bad), 404)
        _error(b.call("GET", "/admin/no-such-thing"), 404)
        for q in ("limit=0", "before=x", "actor_id=-1", "limit=%C2%B2"):
            r = b.call("GET", f"/admin/audit?{q}")
            assert r.status_code in (400, 403) and r.json()["error"]["param"], r.text
    finally:
        for x in (anon, user, b):
            x.close()


def test_the_cli_sets_a_console_password_and_ends_sessions(gw: Gateway) -> None:
    import subprocess
    import sys

    name = _name("cli")
    b = Browser(gw)
    try:
        assert b.sign_up(name, "first password 1").status_code == 201

        def set_password(user: str, password: str) -> subprocess.CompletedProcess[str]:
            return subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "relaygate",
                    "user",
                    "set-password",
                    "--username",
                    user,
                    "--password-stdin",
                ],
                input=password + "\n",
                env=gw.env,
                capture_output=True,
                text=True,
                timeout=60,
            )

        out = set_password(name, "second password 2")
        assert out.returncode == 0 and "1 console session(s) ended" in out.stdout, out
        assert "second password" not in out.stdout + out.stderr
        assert b.call("GET", "/me").status_code == 401  # the old session has ended
        assert b.sign_in(name, "first password 1").status_code == 401
        assert b.sign_in(name, "second password 2").status_code == 200
        bad = set_password(name, "short")
        assert bad.returncode != 0 and "8 to 128" in bad.stderr
        assert set_password("no-such-user", "long enough 3").returncode != 0
    finally:
        b.close()
