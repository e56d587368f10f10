"""The admin API calls the console's account pages added (docs/console.md, "Admin pages:
accounts"): the user search (``GET /admin/api/users?q=&limit=&after_id=``, with balances)
and ``POST /admin/api/users/{id}/console-password`` (sessions end, the password is never
echoed nor audited), plus the code export's formula quoting through the console bridge.

A real gateway on PostgreSQL (a fresh database), httpx as the browser."""

from __future__ import annotations

import csv
import io
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from gateway import Gateway, fresh_pg_database
from test_console_api import Browser, _error


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    with fresh_pg_database("rg_admcons_") as url:
        g = Gateway(
            Path(tmp_path_factory.mktemp("admin-console-extras")),
            {"RELAYGATE_DATABASE_URL": url, "RELAYGATE_CONSOLE_SIGNUP_IP_LIMIT": "100"},
        ).start()
        try:
            yield g
        finally:
            g.stop()


def _tag() -> str:
    return uuid.uuid4().hex[:8]


def _admin_browser(gw: Gateway) -> tuple[Browser, int]:
    b = Browser(gw)
    assert b.sign_up(f"adm{_tag()}").status_code == 201
    uid = int(b.load_me()["user"]["id"])
    gw.admin("PATCH", f"/users/{uid}", {"role": "admin"})
    b.load_me()
    return b, uid


def _raw(gw: Gateway, method: str, path: str, **kw: Any) -> httpx.Response:
    headers = {"Authorization": f"Bearer {gw.admin_token}", **kw.pop("headers", {})}
    return httpx.request(method, gw.base + "/admin/api" + path, headers=headers, timeout=20, **kw)


def _bad(r: httpx.Response, param: str | None = None) -> dict[str, Any]:
    """A refused input: a JSON error naming the parameter (the admin API answers a bad
    field 400 or, with the seed's status table, 403), never a 500."""
    assert r.status_code in (400, 403), (r.status_code, r.text)
    err: dict[str, Any] = r.json()["error"]
    assert err["message"]
    if param is not None:
        assert err["param"] == param, err
    return err


# ---- the user search ---------------------------------------------------------------------------
def test_users_are_searched_by_name_or_id_paged_with_balances(gw: Gateway) -> None:
    tag = _tag()
    names = [f"Find{tag}_{i}" for i in range(5)]
    ids = [gw.create_user(n, balance=None) for n in names]
    gw.top_up(ids[2], "12.5", reason="welcome")

    found = gw.admin("GET", f"/users?q=find{tag.upper()}&balance=1")  # any letter case
    assert [u["username"] for u in found["data"]] == names
    assert found["has_more"] is False and found["next_after_id"] is None
    by_id = {u["id"]: u for u in found["data"]}
    assert by_id[ids[2]]["balance"] == "12.5000" and by_id[ids[2]]["balance_units"] == 12_500_000
    assert by_id[ids[0]]["balance"] == "0.0000"
    assert {"role", "status", "group_name"} <= set(by_id[ids[0]])

    # pages of two, in id order, until has_more is false
    seen: list[int] = []
    after = ""
    while True:
        page = gw.admin("GET", f"/users?q={tag}&limit=2{after}")
        seen += [u["id"] for u in page["data"]]
        if not page["has_more"]:
            break
        after = f"&after_id={page['next_after_id']}"
    assert seen == ids

    # the id itself finds the user; LIKE wildcards are plain characters
    assert ids[3] in [u["id"] for u in gw.admin("GET", f"/users?q={ids[3]}")["data"]]
    for wild in ("%25", "_", "%25%25", "\\"):
        rows = gw.admin("GET", f"/users?q={wild}")["data"]
        assert all(wild.replace("%25", "%") in u["username"] for u in rows), rows
    # no parameter: every user, as before (the bootstrap admin too)
    everyone = gw.admin("GET", "/users")["data"]
    assert set(ids) <= {u["id"] for u in everyone} and len(everyone) > 5
    assert "balance" not in everyone[0]  # money only when asked for


def test_user_search_refuses_hostile_parameters(gw: Gateway) -> None:
    cases = {
        "q=" + "x" * 65: "q",
        "q=a%00b": "q",
        "q=%1b[31m": "q",
        "limit=0": "limit",
        "limit=501": "limit",
        "limit=-3": "limit",
        "limit=abc": "limit",
        "limit=%C2%B2": "limit",
        "limit=99999999999999999999999": "limit",
        "after_id=0": "after_id",
        "after_id=1e9": "after_id",
        "order=id": "order",
        "balance=yes": "balance",
    }
    for query, param in cases.items():
        _bad(_raw(gw, "GET", f"/users?{query}"), param)
    # through the console bridge too, with the same answers
    b, _ = _admin_browser(gw)
    try:
        _bad(b.call("GET", "/admin/users?limit=0"), "limit")
        r = b.call("GET", "/admin/users?q=adm&limit=1")
        assert r.status_code == 200 and len(r.json()["data"]) == 1, r.text
    finally:
        b.close()


# ---- a console password set by an admin --------------------------------------------------------
def test_an_admin_sets_a_console_password_and_the_users_sessions_end(gw: Gateway) -> None:
    admin, admin_id = _admin_browser(gw)
    name = f"pw{_tag()}"
    one, two = Browser(gw), Browser(gw)
    try:
        assert one.sign_up(name, "first password 1").status_code == 201
        assert two.sign_in(name, "first password 1").status_code == 200
        uid = int(one.load_me()["user"]["id"])
        secret = "a brand new secret 9"
        r = admin.call("POST", f"/admin/users/{uid}/console-password", {"password": secret})
        assert r.status_code == 200, r.text
        assert r.json()["data"] == {"user_id": uid, "sessions_ended": 2}
        assert secret not in r.text
        # both sessions ended; the old password no longer opens one, the new one does
        _error(one.call("GET", "/me"), 401)
        _error(two.call("GET", "/keys"), 401)
        _error(
            one.call("POST", "/sign-in", {"username": name, "password": "first password 1"}), 401
        )
        assert one.sign_in(name, secret).status_code == 200
        assert one.load_me()["user"]["id"] == uid
        # the admin's own session is untouched
        assert admin.call("GET", "/me").status_code == 200

        # the audit row names the field, never the value
        rows = admin.call("GET", f"/admin/audit?actor_id={admin_id}&limit=5").json()["data"]
        row = rows[0]
        assert (row["method"], row["status"], row["via"]) == ("POST", 200, "console")
        assert row["path"] == f"/console/api/admin/users/{uid}/console-password"
        assert row["fields"] == ["password"]
        assert secret not in admin.call("GET", "/admin/audit?limit=500").text
        assert secret not in gw.logs()

        # an admin cannot skip the current-password check for their own account here
        r = admin.call("POST", f"/admin/users/{admin_id}/console-password", {"password": secret})
        assert _bad(r, "id")["code"] == "use_account_settings"
    finally:
        for b in (admin, one, two):
            b.close()


def test_a_user_made_by_the_admin_api_can_sign_in_once_a_password_is_set(gw: Gateway) -> None:
    name = f"cli{_tag()}"
    uid = gw.create_user(name, balance=None)
    b = Browser(gw)
    try:
        _error(b.call("POST", "/sign-in", {"username": name, "password": "whatever pass"}), 401)
        got = gw.admin("POST", f"/users/{uid}/console-password", {"password": "set by token 1"})
        assert got["data"] == {"user_id": uid, "sessions_ended": 0}
        assert b.sign_in(name, "set by token 1").status_code == 200
        assert b.load_me()["user"]["username"] == name
        last = gw.admin("GET", "/audit?limit=1")["data"][0]
        assert last["via"] == "api" and last["fields"] == ["password"]
        # a disabled user gets a password but still cannot sign in
        gw.admin("PATCH", f"/users/{uid}", {"status": "disabled"})
        gw.admin("POST", f"/users/{uid}/console-password", {"password": "another one 22"})
        _error(b.call("GET", "/me"), 401)
        r = b.call("POST", "/sign-in", {"username": name, "password": "another one 22"})
        assert r.status_code == 403 and r.json()["error"]["code"] == "account_disabled"
    finally:
        b.close()


def test_console_password_refuses_hostile_input(gw: Gateway) -> None:
    uid = gw.create_user(f"hp{_tag()}", balance=None)
    path = f"/users/{uid}/console-password"
    bodies: list[tuple[Any, str | None]] = [
        ({}, "password"),
        ({"password": None}, "password"),
        ({"password": 12345678}, "password"),
        ({"password": ["a long password"]}, "password"),
        ({"password": "short"}, "password"),
        ({"password": "x" * 129}, "password"),
        ({"password": "nul \x00 inside it"}, "password"),
        ({"password": "fine password", "role": "admin"}, "role"),
    ]
    for body, param in bodies:
        _bad(_raw(gw, "POST", path, json=body), param)
    _bad(_raw(gw, "POST", path, json=["not", "an", "object"]))
    _bad(_raw(gw, "POST", path, content=b"{not json", headers={"Content-Type": "application/json"}))
    r = _raw(gw, "POST", path, json={"password": "p" * (2 * 1024 * 1024)})
    assert r.status_code in (403, 413) and "larger than" in r.json()["error"]["message"], r.text
    for bad_id in ("abc", "0", "-1", "99999999999999999999999"):
        r = _raw(gw, "POST", f"/users/{bad_id}/console-password", json={"password": "good pass 1"})
        assert r.status_code in (400, 403, 404) and r.json()["error"], r.text
    r = _raw(gw, "POST", "/users/2147483000/console-password", json={"password": "good pass 1"})
    assert r.status_code == 404 and r.json()["error"]["param"] == "user_id", r.text
    r = _raw(gw, "GET", path)
    assert r.status_code == 405 and r.headers["allow"] == "POST"
    # none of it set a password: the user still cannot sign in
    b = Browser(gw)
    try:
        users = gw.admin("GET", f"/users?q={uid}")["data"]
        name = next(u["username"] for u in users if u["id"] == uid)
        _error(b.call("POST", "/sign-in", {"username": name, "password": "fine password"}), 401)
    finally:
        b.close()
    # without a token: refused before anything is read
    r = httpx.post(gw.base + "/admin/api" + path, json={"password": "good pass 1"}, timeout=10)
    assert r.status_code in (401, 403) and r.json()["error"], r.text


# ---- balances with a reason and codes through the bridge ---------------------------------------
def test_balance_adjustment_and_code_export_through_the_bridge(gw: Gateway) -> None:
    admin, admin_id = _admin_browser(gw)
    user = Browser(gw)
    try:
        name = f"bal{_tag()}"
        assert user.sign_up(name).status_code == 201
        uid = int(user.load_me()["user"]["id"])
        body = {"amount": "7.25", "reason": "refund for ticket 42"}
        r = admin.call("POST", f"/admin/users/{uid}/balance", body)
        assert r.status_code == 200 and r.json()["data"]["balance"] == "7.2500", r.text
        _bad(admin.call("POST", f"/admin/users/{uid}/balance", {"amount": "1"}), "reason")
        ledger = admin.call("GET", f"/admin/users/{uid}/ledger").json()["data"]
        assert ledger[0]["reason"] == "refund for ticket 42"
        assert ledger[0]["actor"] == admin.load_me()["user"]["username"]
        assert user.call("GET", "/account").json()["data"]["balance"].startswith("7.25")

        batch = f"=HYPERLINK({_tag()})"
        r = admin.call("POST", "/admin/codes", {"count": 3, "amount": "1", "batch": batch})
        assert r.status_code == 201, r.text
        codes = r.json()["data"]["codes"]
        r = admin.call("GET", "/admin/codes.csv", params={"batch": batch})
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
        rows = list(csv.DictReader(io.StringIO(r.text)))
        assert sorted(x["code"] for x in rows) == sorted(codes)
        assert {x["batch"] for x in rows} == {"'" + batch}  # never run as a formula
        assert user.call("POST", "/redeem", {"code": codes[0]}).status_code == 200
        listed = admin.call("GET", "/admin/codes", params={"batch": batch}).json()["data"]
        assert sorted(c["status"] for c in listed) == ["unused", "unused", "used"]

        audit = admin.call("GET", f"/admin/audit?actor_id={admin_id}&limit=10").json()["data"]
        paths = [(a["method"], a["path"], a["status"]) for a in audit]
        assert ("POST", "/console/api/admin/codes", 201) in paths
        assert ("POST", f"/console/api/admin/users/{uid}/balance", 200) in paths
        refused = [a for a in audit if a["path"].endswith("/balance") and a["status"] != 200]
        assert refused and refused[0]["fields"] == ["amount"]
        assert "ticket 42" not in admin.call("GET", "/admin/audit").text
    finally:
        admin.close()
        user.close()
