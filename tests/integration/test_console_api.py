"""The console's JSON API (/console/api) against real gateways on loopback, with httpx as
the browser: sign-up, sign-in, sessions and their cookie, CSRF and cross-site refusals,
sign-in rate limits, TOTP two-factor, keys shown once, balance, logs, redemption, and
hostile inputs. The key a user creates is used through the openai SDK against the OpenAI
emulator (tests/integration/conftest.py ``upstreams``)."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pyotp
import pytest
from conftest import Upstreams
from gateway import Gateway


def _name(prefix: str = "u") -> str:
    return f"{prefix}{uuid.uuid4().hex[:10]}"


class Browser:
    """A cookie-keeping client speaking to /console/api like the console's pages do."""

    def __init__(self, gw: Gateway) -> None:
        self.gw = gw
        self.http = httpx.Client(base_url=gw.base, timeout=20)
        self.csrf = ""

    def call(self, method: str, path: str, body: Any = None, **kw: Any) -> httpx.Response:
        headers = dict(kw.pop("headers", {}))
        if self.csrf and method != "GET":
            headers.setdefault("X-CSRF-Token", self.csrf)
        if body is not None:
            kw["json"] = body
        return self.http.request(method, "/console/api" + path, headers=headers, **kw)

    def sign_up(self, username: str, password: str = "correct horse 1") -> httpx.Response:
        r = self.call("POST", "/sign-up", {"username": username, "password": password})
        if r.status_code == 201:
            self.load_me()
        return r

    def sign_in(self, username: str, password: str) -> httpx.Response:
        r = self.call("POST", "/sign-in", {"username": username, "password": password})
        if r.status_code == 200 and not r.json()["data"]["totp_required"]:
            self.load_me()
        return r

    def load_me(self) -> dict[str, Any]:
        r = self.call("GET", "/me")
        assert r.status_code == 200, r.text
        data: dict[str, Any] = r.json()["data"]
        self.csrf = data["csrf_token"]
        return data

    def close(self) -> None:
        self.http.close()


def _error(r: httpx.Response, status: int, code: str | None = None) -> dict[str, Any]:
    assert r.status_code == status, (r.status_code, r.text)
    assert r.headers["content-type"].startswith("application/json")
    err: dict[str, Any] = r.json()["error"]
    assert err["message"]
    if code is not None:
        assert err["code"] == code, err
    return err


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory, upstreams: Upstreams) -> Iterator[Gateway]:
    g = Gateway(
        Path(tmp_path_factory.mktemp("console")),
        {"RELAYGATE_CONSOLE_SIGNIN_USER_LIMIT": "3", "RELAYGATE_CONSOLE_SIGNUP_IP_LIMIT": "100"},
    ).start()
    g.create_channel(
        name="openai",
        provider="openai_compat",
        profile="openai",
        base_url=upstreams.openai.base_url,
        keys=["sk-up-openai"],
        models=["gpt-4o-mini"],
    )
    try:
        yield g
    finally:
        g.stop()


@pytest.fixture
def browser(gw: Gateway) -> Iterator[Browser]:
    b = Browser(gw)
    try:
        yield b
    finally:
        b.close()


# ---- sign-up, sign-in, sessions ------------------------------------------------------------
def test_sign_up_sets_a_safe_cookie_and_me_answers(browser: Browser) -> None:
    name = _name()
    r = browser.sign_up(name)
    assert r.status_code == 201, r.text
    cookie = r.headers["set-cookie"]
    assert cookie.startswith("rg_session=")
    for part in ("HttpOnly", "SameSite=Lax", "Path=/console"):
        assert part in cookie
    assert "Secure" not in cookie  # plain HTTP on loopback, RELAYGATE_CONSOLE_SECURE_COOKIES off
    me = browser.load_me()
    assert me["user"]["username"] == name and me["user"]["role"] == "user"
    assert me["totp_enabled"] is False and len(me["csrf_token"]) == 64
    # the session id itself is never in an answer body
    sid = browser.http.cookies["rg_session"]
    assert sid not in r.text and sid not in browser.call("GET", "/me").text


def test_sign_in_wrong_and_right_password(gw: Gateway, browser: Browser) -> None:
    name = _name()
    assert browser.sign_up(name, "first password").status_code == 201
    other = Browser(gw)
    try:
        _error(other.sign_in(name, "wrong password"), 401, "invalid_credentials")
        _error(other.sign_in(_name("nobody"), "wrong password"), 401, "invalid_credentials")
        r = other.sign_in(name, "first password")
        assert r.status_code == 200 and r.json()["data"]["totp_required"] is False
        assert other.load_me()["user"]["username"] == name
    finally:
        other.close()


def test_a_new_sign_in_replaces_the_session_the_browser_held(browser: Browser) -> None:
    name = _name()
    assert browser.sign_up(name, "some password").status_code == 201
    first = browser.http.cookies["rg_session"]
    assert browser.sign_in(name, "some password").status_code == 200
    second = browser.http.cookies["rg_session"]
    assert second != first
    assert browser.call("GET", "/me").status_code == 200
    browser.http.cookies.set("rg_session", first, path="/console")
    _error(browser.call("GET", "/me"), 401, "not_signed_in")


def test_username_taken_case_insensitively(browser: Browser, gw: Gateway) -> None:
    name = _name("Case")
    assert browser.sign_up(name).status_code == 201
    b2 = Browser(gw)
    try:
        _error(b2.sign_up(name.lower()), 409, "username_taken")
        _error(b2.sign_up(name), 409, "username_taken")
    finally:
        b2.close()


def test_not_signed_in_is_401(browser: Browser) -> None:
    for path in ("/me", "/keys", "/account", "/logs"):
        _error(browser.call("GET", path), 401, "not_signed_in")
    browser.http.cookies.set("rg_session", "forged-session-id", path="/console")
    _error(browser.call("GET", "/me"), 401, "not_signed_in")


def test_sign_out_ends_the_session(browser: Browser) -> None:
    assert browser.sign_up(_name()).status_code == 201
    sid = browser.http.cookies["rg_session"]
    r = browser.call("POST", "/sign-out")
    assert r.status_code == 200, r.text
    assert "Max-Age=0" in r.headers["set-cookie"]
    # the old cookie no longer opens anything, even when replayed
    browser.http.cookies.set("rg_session", sid, path="/console")
    _error(browser.call("GET", "/me"), 401, "not_signed_in")


# ---- CSRF and cross-site requests -----------------------------------------------------------
def test_csrf_token_required_for_changes(browser: Browser) -> None:
    assert browser.sign_up(_name()).status_code == 201
    token = browser.csrf
    browser.csrf = ""
    _error(browser.call("POST", "/keys", {"name": "x"}), 403, "csrf_failed")
    _error(
        browser.call("POST", "/keys", {"name": "x"}, headers={"X-CSRF-Token": "0" * 64}),
        403,
        "csrf_failed",
    )
    _error(browser.call("POST", "/sign-out"), 403, "csrf_failed")
    assert browser.call("GET", "/me").status_code == 200  # still signed in
    browser.csrf = token
    assert browser.call("POST", "/keys", {"name": "x"}).status_code == 201


def test_cross_site_requests_refused(browser: Browser) -> None:
    name = _name()
    evil = {"Origin": "https://evil.example"}
    _error(
        browser.call("POST", "/sign-up", {"username": name, "password": "p" * 10}, headers=evil),
        403,
        "csrf_failed",
    )
    _error(
        browser.call(
            "POST",
            "/sign-in",
            {"username": name, "password": "p" * 10},
            headers={"Sec-Fetch-Site": "cross-site"},
        ),
        403,
        "csrf_failed",
    )
    # a form post (what a cross-site page can send without a preflight) is refused
    r = browser.http.post(
        "/console/api/sign-in",
        content=b"username=a&password=b",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    _error(r, 415, "unsupported_media_type")
    # behind a reverse proxy that rewrites Host, the forwarded host is the origin's
    proxied = {"Origin": "https://gw.example.com", "X-Forwarded-Host": "gw.example.com"}
    r = browser.call("POST", "/sign-in", {"username": name, "password": "p" * 10}, headers=proxied)
    _error(r, 401, "invalid_credentials")  # past the origin check
    # same origin passes
    own = {"Origin": browser.gw.base}
    r = browser.call("POST", "/sign-up", {"username": name, "password": "p" * 10}, headers=own)
    assert r.status_code == 201, r.text
    # no CORS grant on the console
    assert "access-control-allow-origin" not in r.headers


# ---- rate limits ---------------------------------------------------------------------------
def test_failed_sign_ins_per_username_are_limited(gw: Gateway, browser: Browser) -> None:
    name = _name()
    assert browser.sign_up(name, "the right one").status_code == 201
    other = Browser(gw)
    try:
        for _ in range(3):  # RELAYGATE_CONSOLE_SIGNIN_USER_LIMIT=3
            _error(other.sign_in(name, "not it at all"), 401, "invalid_credentials")
        r = other.sign_in(name, "the right one")  # even the right password waits now
        _error(r, 429, "too_many_attempts")
        assert int(r.headers["retry-after"]) >= 1
        # another user is not affected
        name2 = _name()
        b3 = Browser(gw)
        assert b3.sign_up(name2, "another right one").status_code == 201
        b3.close()
        assert other.sign_in(name2, "another right one").status_code == 200
    finally:
        other.close()


# ---- hostile input ---------------------------------------------------------------------------
@pytest.mark.parametrize(
    "body",
    [
        {"username": 12345, "password": "long enough"},
        {"username": "ab", "password": "long enough"},
        {"username": "x" * 33, "password": "long enough"},
        {"username": "has space", "password": "long enough"},
        {"username": "<script>", "password": "long enough"},
        {"username": "fine_name", "password": "short"},
        {"username": "fine_name", "password": "x" * 129},
        {"username": "fine_name", "password": ["list"]},
        {"username": "fine_name", "password": None},
        {"username": "fine_name", "password": "nul\x00inside!"},
        {"username": "fine_name", "password": "long enough", "role": "admin"},
        {},
    ],
)
def test_sign_up_refuses_bad_input(browser: Browser, body: dict[str, Any]) -> None:
    err = _error(browser.call("POST", "/sign-up", body), 400)
    assert err["type"] == "invalid_request_error"


def test_bodies_that_are_not_objects_or_too_large(browser: Browser) -> None:
    for raw in (b"[]", b'"text"', b"not json", b"123", b"{"):
        r = browser.http.post(
            "/console/api/sign-in", content=raw, headers={"Content-Type": "application/json"}
        )
        _error(r, 400)
    big = b'{"username": "' + b"a" * (70 * 1024) + b'", "password": "x"}'
    r = browser.http.post(
        "/console/api/sign-in", content=big, headers={"Content-Type": "application/json"}
    )
    _error(r, 413)
    for body in ({"username": "a" * 65, "password": "x"}, {"username": "", "password": "x"}):
        _error(browser.call("POST", "/sign-in", body), 400)


def test_unknown_paths_and_methods(browser: Browser) -> None:
    _error(browser.call("GET", "/nothing-here"), 404)
    r = browser.call("PUT", "/keys", {})
    _error(r, 405, "method_not_allowed")
    assert "GET" in r.headers["allow"] and "POST" in r.headers["allow"]


# ---- keys: shown once, revoked, usable through the SDK ----------------------------------------
def test_key_shown_once_used_with_the_sdk_logged_and_revoked(gw: Gateway, browser: Browser) -> None:
    name = _name()
    assert browser.sign_up(name).status_code == 201
    uid = browser.load_me()["user"]["id"]
    gw.top_up(uid, "5")
    r = browser.call(
        "POST",
        "/keys",
        {"name": "laptop", "kind": "personal", "models": ["gpt-4o-mini"], "rpm_limit": 60},
    )
    assert r.status_code == 201, r.text
    made = r.json()["data"]
    plain = made["key"]
    assert plain.startswith("zp-") and made["kind"] == "personal"
    assert made["key_hint"] == f"{plain[:6]}…{plain[-4:]}"
    listed = browser.call("GET", "/keys").json()["data"]
    assert [k["id"] for k in listed] == [made["id"]]
    assert plain not in browser.call("GET", "/keys").text  # never shown again
    assert "key_hash" not in listed[0] and "user_id" not in listed[0]

    client = openai.OpenAI(base_url=gw.base_url, api_key=plain, max_retries=0)
    reply = client.chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}]
    )
    assert reply.choices[0].message.content

    logs = browser.call("GET", "/logs", params={"model": "gpt-4o-mini"}).json()["data"]
    rows = logs["data"]
    assert len(rows) == 1 and rows[0]["model"] == "gpt-4o-mini" and rows[0]["status"] == 200
    assert rows[0]["key_id"] == made["id"] and rows[0]["cost_units"] > 0
    assert "channel_id" not in rows[0]
    assert browser.call("GET", "/logs", params={"model": "other"}).json()["data"]["data"] == []
    _error(browser.call("GET", "/logs", params={"limit": "0"}), 400)
    _error(browser.call("GET", "/logs", params={"channel_id": "1"}), 400)
    _error(browser.call("GET", "/logs", params={"user_id": "1"}), 400)

    csv = browser.call("GET", "/logs.csv", params={"model": "gpt-4o-mini"})
    assert csv.status_code == 200 and csv.headers["content-type"].startswith("text/csv")
    assert "attachment" in csv.headers["content-disposition"]
    lines = csv.text.strip().splitlines()
    assert len(lines) == 2 and "gpt-4o-mini" in lines[1] and "channel_id" not in lines[0]
    _error(browser.call("GET", "/logs.csv", params={"limit": "5"}), 400)

    account = browser.call("GET", "/account").json()["data"]
    assert account["balance_units"] == 5_000_000 - rows[0]["cost_units"]

    r = browser.call("DELETE", f"/keys/{made['id']}")
    assert r.status_code == 200 and r.json()["data"]["status"] == "revoked"
    with pytest.raises(openai.AuthenticationError):
        client.chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}]
        )


def test_keys_of_others_and_bad_key_bodies(gw: Gateway, browser: Browser) -> None:
    assert browser.sign_up(_name()).status_code == 201
    mine = browser.call("POST", "/keys", {"name": "mine"}).json()["data"]
    other = Browser(gw)
    try:
        assert other.sign_up(_name()).status_code == 201
        _error(other.call("DELETE", f"/keys/{mine['id']}"), 404)
        _error(other.call("DELETE", "/keys/not-a-number"), 400)
        _error(other.call("DELETE", "/keys/99999999999999999999999"), 400)
        assert other.call("GET", "/keys").json()["data"] == []
        for body in (
            {"kind": "admin"},
            {"user_id": 1},
            {"username": "someone"},
            {"status": "active"},
            {"name": 5},
            {"models": []},
            {"models": "gpt-4o-mini"},
            {"rpm_limit": -1},
            {"rpm_limit": 10**30},
            {"rpm_limit": True},
            {"expires_at": "2001-01-01T00:00:00Z"},
            {"expires_at": "soon"},
            {"spend_limit": "lots"},
            {"ip_allow": ["not an ip"]},
            {"name": "n" * 129},
        ):
            _error(other.call("POST", "/keys", body), 400)
    finally:
        other.close()


# ---- balance, redemption --------------------------------------------------------------------
def test_redeem_a_code(gw: Gateway, browser: Browser) -> None:
    assert browser.sign_up(_name()).status_code == 201
    account = browser.call("GET", "/account").json()["data"]
    assert account["balance_units"] == 0 and account["packages"] == []
    code = gw.admin("POST", "/codes", {"count": 1, "amount": "2.5"})["data"]["codes"][0]
    r = browser.call("POST", "/redeem", {"code": code.lower()})
    assert r.status_code == 200, r.text
    assert r.json()["data"]["credited"] == "balance"
    assert browser.call("GET", "/account").json()["data"]["balance_units"] == 2_500_000
    _error(browser.call("POST", "/redeem", {"code": code}), 400, "code_used")
    _error(browser.call("POST", "/redeem", {"code": "NOPE"}), 400)
    _error(browser.call("POST", "/redeem", {"code": 42}), 400)
    _error(browser.call("POST", "/redeem", {"code": code, "user_id": 1}), 400)


# ---- two-factor sign-in ---------------------------------------------------------------------
def _fresh_step() -> float:
    """Now, at least 10 s before the next 30 s step starts (waiting if needed), so the codes
    of the previous, this and the next step all stay within the gateway's drift window for
    the test. Each code is accepted once, in increasing steps: enable with the previous,
    sign in with this one, disable with the next."""
    left = 30 - time.time() % 30
    if left < 10:
        time.sleep(left + 0.1)
    return time.time()


def test_totp_enable_sign_in_and_disable(gw: Gateway, browser: Browser) -> None:
    name = _name()
    assert browser.sign_up(name, "password with 2fa").status_code == 201
    _error(browser.call("POST", "/totp/enable", {"code": "123456"}), 400, "totp_not_set_up")
    setup = browser.call("POST", "/totp/setup").json()["data"]
    assert setup["uri"].startswith("otpauth://totp/") and len(setup["secret"]) >= 16
    secret = setup["secret"]
    wrong = "000000" if pyotp.TOTP(secret).now() != "000000" else "111111"
    _error(browser.call("POST", "/totp/enable", {"code": wrong}), 400, "invalid_code")
    _error(browser.call("POST", "/totp/enable", {"code": "12ab56"}), 400)
    t0 = _fresh_step()
    r = browser.call("POST", "/totp/enable", {"code": pyotp.TOTP(secret).at(t0 - 30)})
    assert r.status_code == 200, r.text
    assert browser.load_me()["totp_enabled"] is True
    _error(browser.call("POST", "/totp/setup"), 409, "totp_enabled")

    other = Browser(gw)
    try:
        r = other.sign_in(name, "password with 2fa")
        step = r.json()["data"]
        assert step["totp_required"] is True and "set-cookie" not in r.headers
        ticket = step["ticket"]
        _error(other.call("GET", "/me"), 401)  # the password alone opens nothing
        # the code already used to enable is refused (each code once)
        r = other.call(
            "POST", "/sign-in/totp", {"ticket": ticket, "code": pyotp.TOTP(secret).at(t0 - 30)}
        )
        _error(r, 401, "invalid_code")
        _error(
            other.call("POST", "/sign-in/totp", {"ticket": "forged", "code": "123456"}),
            401,
            "ticket_expired",
        )
        code = pyotp.TOTP(secret).at(t0)
        r = other.call("POST", "/sign-in/totp", {"ticket": ticket, "code": code})
        assert r.status_code == 200, r.text
        assert "rg_session=" in r.headers["set-cookie"]
        assert other.load_me()["user"]["username"] == name
        # the ticket is spent
        _error(
            other.call("POST", "/sign-in/totp", {"ticket": ticket, "code": code}),
            401,
            "ticket_expired",
        )
        # turning it off needs the password and a fresh code
        later = pyotp.TOTP(secret).at(t0 + 30)
        _error(other.call("POST", "/totp/disable", {"password": "nope nope", "code": later}), 401)
        r = other.call("POST", "/totp/disable", {"password": "password with 2fa", "code": later})
        assert r.status_code == 200, r.text
        assert other.load_me()["totp_enabled"] is False
    finally:
        other.close()


def test_password_change_ends_other_sessions(gw: Gateway, browser: Browser) -> None:
    name = _name()
    assert browser.sign_up(name, "old password!").status_code == 201
    other = Browser(gw)
    try:
        assert other.sign_in(name, "old password!").status_code == 200
        _error(
            browser.call(
                "POST",
                "/password",
                {"current_password": "bad one!", "new_password": "new password!"},
            ),
            401,
        )
        _error(
            browser.call(
                "POST", "/password", {"current_password": "old password!", "new_password": "short"}
            ),
            400,
        )
        r = browser.call(
            "POST",
            "/password",
            {"current_password": "old password!", "new_password": "new password!"},
        )
        assert r.status_code == 200 and r.json()["data"]["other_sessions_ended"] == 1
        assert browser.call("GET", "/me").status_code == 200
        _error(other.call("GET", "/me"), 401)
        _error(other.sign_in(name, "old password!"), 401)
        assert other.sign_in(name, "new password!").status_code == 200
    finally:
        other.close()


# ---- the app shell ----------------------------------------------------------------------------
def test_console_pages_are_served_with_a_strict_policy(gw: Gateway) -> None:
    r = httpx.get(gw.base + "/console", timeout=10)
    assert r.status_code == 200 and "text/html" in r.headers["content-type"]
    assert '<html lang="zh-CN">' in r.text
    csp = r.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "frame-ancestors 'none'" in csp
    assert r.headers["x-frame-options"] == "DENY"
    for path in (
        "/console/assets/app.js",
        "/console/assets/i18n/en.json",
        "/console/assets/style.css",
    ):
        asset = httpx.get(gw.base + path, timeout=10)
        assert asset.status_code == 200, path
    assert httpx.get(gw.base + "/console/assets/../../app.py", timeout=10).status_code == 404
    assert httpx.get(gw.base + "/console/assets/nothing.js", timeout=10).status_code == 404


# ---- short sessions, the per-address limit, sign-up turned off --------------------------------
@pytest.fixture(scope="module")
def short_gw(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    g = Gateway(
        Path(tmp_path_factory.mktemp("console-short")),
        {
            "RELAYGATE_CONSOLE_SESSION_TTL": "2",
            "RELAYGATE_CONSOLE_SIGNIN_IP_LIMIT": "3",
            "RELAYGATE_CONSOLE_SIGNUP_IP_LIMIT": "2",
        },
    ).start()
    try:
        yield g
    finally:
        g.stop()


def test_session_expires(short_gw: Gateway) -> None:
    b = Browser(short_gw)
    try:
        assert b.sign_up(_name()).status_code == 201
        assert b.call("GET", "/me").status_code == 200
        time.sleep(2.5)
        _error(b.call("GET", "/me"), 401, "not_signed_in")
    finally:
        b.close()


def test_sign_ins_and_sign_ups_per_address_are_limited(short_gw: Gateway) -> None:
    b = Browser(short_gw)
    try:
        # RELAYGATE_CONSOLE_SIGNUP_IP_LIMIT=2 per hour (another test of this gateway may
        # have used one)
        statuses = [b.sign_up(_name()).status_code for _ in range(3)]
        assert statuses.count(201) <= 2 and statuses[-1] == 429, statuses
        for _ in range(3):  # RELAYGATE_CONSOLE_SIGNIN_IP_LIMIT=3, whatever the usernames
            _error(b.sign_in(_name(), "some password"), 401, "invalid_credentials")
        r = b.sign_in(_name(), "some password")
        _error(r, 429, "too_many_attempts")
        assert int(r.headers["retry-after"]) >= 1
    finally:
        b.close()


def test_sign_up_turned_off(tmp_path: Path) -> None:
    g = Gateway(tmp_path, {"RELAYGATE_CONSOLE_SIGNUP": "0"}).start()
    try:
        b = Browser(g)
        assert b.call("GET", "/config").json()["data"]["signup"] is False
        _error(b.sign_up(_name()), 403, "signup_disabled")
        b.close()
    finally:
        g.stop()


# ---- the demo's console accounts (console/demo.py) ------------------------------------------
async def test_demo_console_accounts_are_stable_and_sign_in(tmp_path: Path) -> None:
    from relaygate.console.demo import console_banner, demo_console_accounts
    from relaygate.console.passwords import verify_password
    from relaygate.services.admin import AdminService
    from relaygate.storage.console import ConsoleStore
    from relaygate.storage.crypto import Secrets
    from relaygate.storage.db import create_engine, migrate
    from relaygate.storage.repo import Repository

    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'rg.db'}")
    await migrate(engine)
    try:
        svc = AdminService(Repository(engine, Secrets("test-secret")))
        first = await demo_console_accounts(svc, tmp_path)
        again = await demo_console_accounts(svc, tmp_path)
        assert first == again and [(u, r) for u, r, _ in first] == [
            ("demo", "user"),
            ("demo-admin", "admin"),
        ]
        assert (tmp_path / "console-demo.json").stat().st_mode & 0o777 == 0o600
        store = ConsoleStore(engine)
        for username, _, password in first:
            user, creds = await store.user_and_credentials(username)
            assert user is not None and creds is not None
            assert (await verify_password(creds.password_hash, password))[0]
        text = console_banner("0.0.0.0", 8080, first)
        assert "http://127.0.0.1:8080/console" in text and first[1][2] in text
    finally:
        await engine.dispose()


# ---- the store on SQLite and PostgreSQL -------------------------------------------------------
async def test_console_store(repo: Any) -> None:
    from datetime import UTC, datetime, timedelta

    from relaygate.storage.base import Conflict
    from relaygate.storage.console import ConsoleStore

    store = ConsoleStore(repo.engine)
    user = await store.create_account("Mixed.Case", "$argon2id$stand-in")
    assert await store.username_taken("mixed.case") and not await store.username_taken("other")
    with pytest.raises(Conflict):
        await store.create_account("Mixed.Case", "x")
    found, creds = await store.user_and_credentials("Mixed.Case")
    assert found == user and creds is not None and creds.password_hash == "$argon2id$stand-in"
    admin_made = await repo.users.create("no-password")
    assert (await store.user_and_credentials("no-password")) == (admin_made, None)
    assert (await store.user_and_credentials("nobody")) == (None, None)
    await store.set_password(admin_made.id, "$argon2id$set")
    assert (await store.credentials(admin_made.id)).password_hash == "$argon2id$set"  # type: ignore[union-attr]
    with pytest.raises(Conflict):
        await store.set_password(999_999, "x")

    assert await store.claim_totp_step(user.id, 100)
    assert not await store.claim_totp_step(user.id, 100)
    assert not await store.claim_totp_step(user.id, 99)
    assert await store.claim_totp_step(user.id, 101)

    at = datetime.now(UTC)
    for n, ends in enumerate(
        (at + timedelta(hours=1), at - timedelta(seconds=1), at + timedelta(hours=1))
    ):
        await store.create_session(
            f"{n:064d}",
            user.id,
            kind="session",
            expires_at=ends,
            ip="1.2.3.4",
            user_agent="x" * 999,
        )
    row = await store.session(f"{0:064d}")
    assert row is not None and row.user_id == user.id and row.kind == "session"
    assert await store.count_attempt(f"{0:064d}") == 1
    assert await store.purge_expired(at) == 1
    assert await store.session(f"{1:064d}") is None
    assert await store.delete_user_sessions(user.id, keep=f"{0:064d}") == 1
    assert await store.session(f"{0:064d}") is not None
    assert await store.delete_session(f"{0:064d}") and not await store.delete_session(f"{0:064d}")
