"""Linking GitHub and OpenID Connect identities to an existing console account, and
unlinking them, against a real gateway on loopback and the sign-in emulators
(relaygate.emulator.oidc, relaygate.emulator.github_oauth), with httpx as the browser and
redirects followed by hand: a linked identity then signs in to the same user (through the
TOTP step when two-factor is on); an identity of another user, a callback without the
session that started it (or with another user's session, or a stale state) are refused
and change nothing; unlinking works unless it is the last way in; hostile inputs are JSON
4xx errors."""

from __future__ import annotations

import sqlite3
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pyotp
import pytest
from gateway import Gateway
from oauth_kit import oauth_env

from relaygate.emulator.github_oauth import GitHubOAuthEmulator
from relaygate.emulator.oidc import OIDCEmulator

API = "/console/api"
PASSWORD = "linking pass 1"


def _name(prefix: str = "u") -> str:
    return f"{prefix}{uuid.uuid4().hex[:8]}"


def _gh_id() -> int:
    return 100_000_000 + uuid.uuid4().int % 10**8


@pytest.fixture(scope="module")
def idp() -> Iterator[OIDCEmulator]:
    with OIDCEmulator() as server:
        yield server


@pytest.fixture(scope="module")
def gh() -> Iterator[GitHubOAuthEmulator]:
    with GitHubOAuthEmulator() as server:
        yield server


@pytest.fixture(autouse=True)
def _fresh_knobs(idp: OIDCEmulator, gh: GitHubOAuthEmulator) -> None:
    idp.reset()
    gh.reset()


@pytest.fixture(scope="module")
def gw(
    tmp_path_factory: pytest.TempPathFactory, idp: OIDCEmulator, gh: GitHubOAuthEmulator
) -> Iterator[Gateway]:
    env = oauth_env(idp, gh)
    g = Gateway(Path(tmp_path_factory.mktemp("console-link")), env).start()
    try:
        yield g
    finally:
        g.stop()


class Browser:
    """A cookie-keeping client that follows the provider's redirects by hand."""

    def __init__(self, gw: Gateway) -> None:
        self.gw = gw
        self.http = httpx.Client(base_url=gw.base, timeout=20, follow_redirects=False)
        self.csrf = ""

    def sign_up(self, username: str, password: str = PASSWORD) -> int:
        r = self.http.post(f"{API}/sign-up", json={"username": username, "password": password})
        assert r.status_code == 201, r.text
        return self.refresh()

    def refresh(self) -> int:
        data = self.me().json()["data"]
        self.csrf = data["csrf_token"]
        return int(data["user"]["id"])

    def me(self) -> httpx.Response:
        return self.http.get(f"{API}/me")

    def at_provider(self, url: str, provider: str) -> str:
        """The provider approves: the callback URL it sends the browser to."""
        r = httpx.get(url, follow_redirects=False, timeout=20)
        assert r.status_code == 302, r.text
        callback = r.headers["location"]
        assert callback.startswith(self.gw.base + f"{API}/oauth/{provider}/callback?")
        return callback

    def start_link(self, provider: str, body: Any = None, **headers: str) -> httpx.Response:
        hdrs = {"X-CSRF-Token": self.csrf, **headers}
        body = {"password": PASSWORD} if body is None else body
        return self.http.post(f"{API}/oauth/{provider}/link", json=body, headers=hdrs)

    def link_callback(self, provider: str, body: Any = None) -> str:
        r = self.start_link(provider, body)
        assert r.status_code == 200, r.text
        assert any(c.startswith("rg_oauth=") for c in r.headers.get_list("set-cookie"))
        return self.at_provider(r.json()["data"]["url"], provider)

    def link(self, provider: str, body: Any = None) -> httpx.Response:
        return self.http.get(self.link_callback(provider, body))

    def cookie(self, name: str) -> str:
        value = self.http.cookies.get(name)
        assert value, name
        return value

    def sign_in(self, provider: str) -> httpx.Response:
        r = self.http.get(f"{API}/oauth/{provider}/start")
        assert r.status_code == 302, r.text
        return self.http.get(self.at_provider(r.headers["location"], provider))

    def identities(self) -> dict[str, Any]:
        r = self.http.get(f"{API}/identities")
        assert r.status_code == 200, r.text
        return dict(r.json()["data"])

    def unlink(self, provider: str, **headers: str) -> httpx.Response:
        hdrs = {"X-CSRF-Token": self.csrf, **headers}
        return self.http.delete(f"{API}/identities/{provider}", headers=hdrs)

    def close(self) -> None:
        self.http.close()


@pytest.fixture
def browsers(gw: Gateway) -> Iterator[list[Browser]]:
    made: list[Browser] = []
    yield made
    for b in made:
        b.close()


def _new(gw: Gateway, browsers: list[Browser]) -> Browser:
    b = Browser(gw)
    browsers.append(b)
    return b


def _linked_ok(r: httpx.Response, result: str = "linked") -> None:
    """Back on the settings page with the result; the session is untouched."""
    assert r.status_code == 302, r.text
    assert r.headers["location"] == f"/console#/settings?link={result}"
    cookies = r.headers.get_list("set-cookie")
    assert not any(c.startswith(("rg_session=", "rg_oauth_totp=")) for c in cookies)
    assert any(c.startswith("rg_oauth=;") and "Max-Age=0" in c for c in cookies)


def _link_refused(r: httpx.Response, code: str, signed_in: bool = True) -> None:
    assert r.status_code == 302, r.text
    page = (
        f"/console#/settings?link_error={code}" if signed_in else f"/console#/sign-in?error={code}"
    )
    assert r.headers["location"] == page
    assert not any(c.startswith("rg_session=") for c in r.headers.get_list("set-cookie"))


def _db(gw: Gateway) -> sqlite3.Connection:
    return sqlite3.connect(Path(gw.env["RELAYGATE_DATA_DIR"]) / "relaygate.db")


def _rows(gw: Gateway, provider: str, subject: str) -> list[int]:
    """The users the identity is linked to (at most one)."""
    with _db(gw) as db:
        found = db.execute(
            "SELECT user_id FROM console_identities WHERE provider = ? AND subject = ?",
            (provider, subject),
        ).fetchall()
    return [int(r[0]) for r in found]


def _get(url: str, **cookies: str) -> httpx.Response:
    """The URL with exactly these cookies (another browser's, put together)."""
    header = "; ".join(f"{k}={v}" for k, v in cookies.items())
    return httpx.get(url, headers={"Cookie": header}, follow_redirects=False, timeout=20)


def _error(r: httpx.Response, status: int, code: str) -> None:
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/json")
    assert r.json()["error"]["code"] == code


# ---- link, then sign in ------------------------------------------------------------------------
def test_link_oidc_then_sign_in_with_it_lands_on_the_same_user(
    gw: Gateway, idp: OIDCEmulator, browsers: list[Browser]
) -> None:
    name = _name("pw")
    a = _new(gw, browsers)
    uid = a.sign_up(name)
    listed = a.identities()
    assert listed["identities"] == [] and listed["has_password"] is True
    assert [p["id"] for p in listed["providers"]] == ["github", "oidc"]

    sub = f"sub-{name}"
    idp.configure(
        user={
            "sub": sub,
            "preferred_username": "someone-else",
            "email": f"{name}@sso.test",
            "email_verified": True,
        }
    )
    session = a.http.cookies.get("rg_session")
    _linked_ok(a.link("oidc"))
    assert a.http.cookies.get("rg_session") == session  # the same session goes on
    assert a.refresh() == uid
    assert _rows(gw, "oidc", sub) == [uid]
    (ident,) = a.identities()["identities"]
    assert set(ident) == {"provider", "name", "configured", "email", "linked_at"}
    assert ident["provider"] == "oidc" and ident["name"] == "Emulated SSO"
    assert ident["email"] == f"{name}@sso.test" and ident["configured"] is True

    # the same identity again: nothing to add
    _linked_ok(a.link("oidc"), "already_linked")
    assert _rows(gw, "oidc", sub) == [uid]

    b = _new(gw, browsers)
    r = b.sign_in("oidc")
    assert r.status_code == 302 and r.headers["location"] == "/console#/", r.text
    me = b.me().json()["data"]["user"]
    assert me["id"] == uid and me["username"] == name
    names = [u["username"] for u in gw.admin("GET", "/users")["data"]]
    assert "someone-else" not in names  # no new user was made


def test_link_github_then_sign_in_with_it(
    gw: Gateway, gh: GitHubOAuthEmulator, browsers: list[Browser]
) -> None:
    a = _new(gw, browsers)
    name = _name("gh")
    uid = a.sign_up(name)
    gh_id = _gh_id()
    gh.configure(user={"id": gh_id, "login": f"octo-{name}"})
    _linked_ok(a.link("github"))
    assert _rows(gw, "github", str(gh_id)) == [uid]
    b = _new(gw, browsers)
    assert b.sign_in("github").headers["location"] == "/console#/"
    assert b.me().json()["data"]["user"]["id"] == uid


def test_starting_a_link_needs_the_password_the_session_and_its_csrf_token(
    gw: Gateway, browsers: list[Browser]
) -> None:
    a = _new(gw, browsers)
    a.sign_up(_name("pw"))
    _error(a.start_link("oidc", {}), 400, "invalid_request_error")
    _error(a.start_link("oidc", {"password": "not the password"}), 401, "invalid_credentials")
    _error(a.start_link("oidc", {"password": 12}), 400, "invalid_request_error")
    _error(a.start_link("oidc", {"password": PASSWORD, "x": 1}), 400, "invalid_request_error")
    r = a.http.post(f"{API}/oauth/oidc/link", json={"password": PASSWORD})  # no CSRF token
    _error(r, 403, "csrf_failed")
    r = a.start_link("oidc", Origin="https://evil.example")
    _error(r, 403, "csrf_failed")
    r = a.start_link("oidc", **{"Sec-Fetch-Site": "cross-site"})
    _error(r, 403, "csrf_failed")
    r = a.http.post(
        f"{API}/oauth/oidc/link",
        content=f"password={PASSWORD}",
        headers={"X-CSRF-Token": a.csrf, "Content-Type": "application/x-www-form-urlencoded"},
    )
    assert r.status_code == 415, r.text
    # none of those set a flow cookie
    assert a.http.cookies.get("rg_oauth") is None
    # a cross-site GET (a link or a top-level navigation) cannot start a link
    r = a.http.get(f"{API}/oauth/oidc/link")
    _error(r, 405, "method_not_allowed")
    anon = _new(gw, browsers)
    _error(anon.start_link("oidc"), 401, "not_signed_in")


def test_wrong_link_passwords_count_towards_the_sign_in_limit(
    gw: Gateway, browsers: list[Browser]
) -> None:
    a = _new(gw, browsers)
    name = _name("rl")
    a.sign_up(name)
    for _ in range(5):  # RELAYGATE_CONSOLE_SIGNIN_USER_LIMIT's default
        _error(a.start_link("oidc", {"password": "wrong"}), 401, "invalid_credentials")
    r = a.start_link("oidc")  # even the right one now waits
    _error(r, 429, "too_many_attempts")
    assert int(r.headers["retry-after"]) >= 1
    r = a.http.post(f"{API}/sign-in", json={"username": name, "password": PASSWORD})
    _error(r, 429, "too_many_attempts")  # the same per-username limit as the sign-in page


# ---- refusals --------------------------------------------------------------------------------
def test_an_identity_of_another_user_is_refused(
    gw: Gateway, gh: GitHubOAuthEmulator, browsers: list[Browser]
) -> None:
    gh_id = _gh_id()
    gh.configure(user={"id": gh_id, "login": _name("octo")})
    owner = _new(gw, browsers)
    assert owner.sign_in("github").headers["location"] == "/console#/"
    owner_id = owner.refresh()

    a = _new(gw, browsers)
    uid = a.sign_up(_name("pw"))
    _link_refused(a.link("github"), "identity_linked_elsewhere")
    assert _rows(gw, "github", str(gh_id)) == [owner_id]
    assert a.identities()["identities"] == []
    assert a.refresh() == uid  # still signed in as itself

    # one identity per provider: a second GitHub account is refused too
    other = _gh_id()
    gh.configure(user={"id": other, "login": _name("octo")})
    _linked_ok(a.link("github"))
    gh.configure(user={"id": other + 1, "login": _name("octo")})
    _link_refused(a.link("github"), "identity_provider_linked")
    assert _rows(gw, "github", str(other + 1)) == []
    assert _rows(gw, "github", str(other)) == [uid]


def test_a_link_callback_without_the_session_that_started_it_is_refused(
    gw: Gateway, idp: OIDCEmulator, browsers: list[Browser]
) -> None:
    sub = f"sub-{_name()}"
    idp.configure(user={"sub": sub, "preferred_username": _name("sso")})

    # signed out between the start and the callback
    a = _new(gw, browsers)
    a.sign_up(_name("pw"))
    callback = a.link_callback("oidc")
    r = a.http.post(f"{API}/sign-out", headers={"X-CSRF-Token": a.csrf})
    assert r.status_code == 200
    _link_refused(a.http.get(callback), "link_session", signed_in=False)
    assert _rows(gw, "oidc", sub) == []

    # another user's session with the flow cookie of the first: refused, nothing linked
    a2 = _new(gw, browsers)
    first = a2.sign_up(_name("pw"))
    callback = a2.link_callback("oidc")
    flow = a2.cookie("rg_oauth")
    b = _new(gw, browsers)
    second = b.sign_up(_name("pw"))
    _link_refused(_get(callback, rg_session=b.cookie("rg_session"), rg_oauth=flow), "link_session")
    assert _rows(gw, "oidc", sub) == []
    assert b.refresh() == second  # b is still signed in as itself

    # the same user signed in again (a new session): not the session that started it
    callback = a2.link_callback("oidc")
    r = a2.http.post(
        f"{API}/sign-in",
        json={"username": a2.me().json()["data"]["user"]["username"], "password": PASSWORD},
    )
    assert r.status_code == 200, r.text
    _link_refused(a2.http.get(callback), "link_session")
    assert _rows(gw, "oidc", sub) == []

    # the callback opened in a browser that did not start it (no flow cookie)
    a2.refresh()
    callback = a2.link_callback("oidc")
    c = _new(gw, browsers)
    r = c.http.get(callback)
    assert r.headers["location"] == "/console#/sign-in?error=oauth_state"
    assert _rows(gw, "oidc", sub) == []

    # a stale state (an older start's callback), then the right one, then it again
    session = a2.cookie("rg_session")
    old = a2.link_callback("oidc")
    new = a2.link_callback("oidc")
    flow = a2.cookie("rg_oauth")
    _link_refused(_get(old, rg_session=session, rg_oauth=flow), "oauth_state")
    assert _rows(gw, "oidc", sub) == []
    _linked_ok(_get(new, rg_session=session, rg_oauth=flow))
    assert _rows(gw, "oidc", sub) == [first]
    _link_refused(_get(new, rg_session=session, rg_oauth=flow), "oauth_state")  # used once


def test_the_session_must_still_be_valid_at_the_callback(
    gw: Gateway, idp: OIDCEmulator, browsers: list[Browser]
) -> None:
    sub = f"sub-{_name()}"
    idp.configure(user={"sub": sub, "preferred_username": _name("sso")})
    a = _new(gw, browsers)
    name = _name("pw")
    uid = a.sign_up(name)
    callback = a.link_callback("oidc")
    gw.admin("PATCH", f"/users/{uid}", {"status": "disabled"})
    try:
        _link_refused(a.http.get(callback), "link_session", signed_in=False)
    finally:
        gw.admin("PATCH", f"/users/{uid}", {"status": "active"})
    assert _rows(gw, "oidc", sub) == []


# ---- unlink ----------------------------------------------------------------------------------
def test_unlink_and_the_last_way_in(
    gw: Gateway, idp: OIDCEmulator, gh: GitHubOAuthEmulator, browsers: list[Browser]
) -> None:
    # a password user: unlinking its only identity is fine (the password remains)
    a = _new(gw, browsers)
    uid = a.sign_up(_name("pw"))
    sub = f"sub-{_name()}"
    idp.configure(user={"sub": sub, "preferred_username": _name("sso")})
    _linked_ok(a.link("oidc"))
    _error(a.http.delete(f"{API}/identities/oidc"), 403, "csrf_failed")  # no CSRF token
    assert _rows(gw, "oidc", sub) == [uid]
    r = a.unlink("oidc")
    assert r.status_code == 200 and r.json()["data"] == {"unlinked": "oidc"}, r.text
    assert _rows(gw, "oidc", sub) == [] and a.identities()["identities"] == []
    _error(a.unlink("oidc"), 404, "identity_not_linked")
    # the unlinked identity now opens a new account, not this one
    b = _new(gw, browsers)
    assert b.sign_in("oidc").headers["location"] == "/console#/"
    assert b.refresh() != uid

    # a user made by a GitHub sign-in, without a password: its only way in stays
    gh_id = _gh_id()
    gh.configure(user={"id": gh_id, "login": _name("octo")})
    c = _new(gw, browsers)
    assert c.sign_in("github").headers["location"] == "/console#/"
    cid = c.refresh()
    assert c.identities()["has_password"] is False
    _error(c.unlink("github"), 409, "last_sign_in_method")
    assert _rows(gw, "github", str(gh_id)) == [cid]
    # linking needs no password here (the provider's sign-in was the proof)
    sub2 = f"sub-{_name()}"
    idp.configure(user={"sub": sub2, "preferred_username": _name("sso")})
    _linked_ok(c.link("oidc", {}))
    assert [i["provider"] for i in c.identities()["identities"]] == ["github", "oidc"]
    r = c.unlink("github")
    assert r.status_code == 200, r.text
    _error(c.unlink("oidc"), 409, "last_sign_in_method")
    assert _rows(gw, "oidc", sub2) == [cid]
    # and the remaining identity still signs in to the account
    d = _new(gw, browsers)
    assert d.sign_in("oidc").headers["location"] == "/console#/"
    assert d.refresh() == cid


# ---- two-factor --------------------------------------------------------------------------------
def _fresh_step() -> float:
    left = 30 - time.time() % 30
    if left < 10:
        time.sleep(left + 0.1)
    return time.time()


def test_a_linked_identity_of_a_two_factor_user_still_needs_the_code(
    gw: Gateway, idp: OIDCEmulator, browsers: list[Browser]
) -> None:
    a = _new(gw, browsers)
    name = _name("tf")
    uid = a.sign_up(name)
    hdrs = {"X-CSRF-Token": a.csrf}
    secret = a.http.post(f"{API}/totp/setup", headers=hdrs).json()["data"]["secret"]
    t0 = _fresh_step()
    r = a.http.post(
        f"{API}/totp/enable", json={"code": pyotp.TOTP(secret).at(t0 - 30)}, headers=hdrs
    )
    assert r.status_code == 200, r.text
    recovery = r.json()["data"]["recovery_codes"]
    sub = f"sub-{name}"
    idp.configure(user={"sub": sub, "preferred_username": name})
    _linked_ok(a.link("oidc"))  # the signed-in session passed two-factor already

    b = _new(gw, browsers)
    r = b.sign_in("oidc")
    assert r.headers["location"] == "/console#/sign-in?totp=oauth"
    assert not any(c.startswith("rg_session=") for c in r.headers.get_list("set-cookie"))
    assert b.me().status_code == 401  # the provider alone opens nothing
    r = b.http.post(f"{API}/oauth/totp", json={"code": pyotp.TOTP(secret).at(t0)})
    assert r.status_code == 200, r.text
    assert b.refresh() == uid

    c = _new(gw, browsers)
    assert c.sign_in("oidc").headers["location"] == "/console#/sign-in?totp=oauth"
    r = c.http.post(f"{API}/oauth/totp", json={"code": recovery[0]})
    assert r.status_code == 200, r.text
    assert c.refresh() == uid


# ---- hostile inputs ----------------------------------------------------------------------------
def test_hostile_inputs_are_json_errors(gw: Gateway, browsers: list[Browser]) -> None:
    anon = _new(gw, browsers)
    _error(anon.http.get(f"{API}/identities"), 401, "not_signed_in")
    _error(anon.http.delete(f"{API}/identities/oidc"), 401, "not_signed_in")

    a = _new(gw, browsers)
    a.sign_up(_name("pw"))
    for bad in ("gitlab", "GitHub", "oidc2", "x" * 5000, "%00", "github%20"):
        _error(a.unlink(bad), 404, "unknown_provider")
        _error(a.start_link(bad), 404, "unknown_provider")
    for path in ("..", "o%2Fidc"):  # no route: /console/api, /identities/o/idc
        _error(a.unlink(path), 404, "unknown_url")
    _error(a.unlink("github"), 404, "identity_not_linked")
    r = a.http.request(
        "DELETE",
        f"{API}/identities/oidc",
        content=b"not json",
        headers={"X-CSRF-Token": a.csrf, "Content-Type": "application/json"},
    )
    _error(r, 400, "invalid_request_error")
    _error(a.start_link("oidc", {"password": "p" * 5000}), 400, "invalid_request_error")
    r = a.http.post(
        f"{API}/oauth/oidc/link",
        content=b"[1, 2]",
        headers={"X-CSRF-Token": a.csrf, "Content-Type": "application/json"},
    )
    _error(r, 400, "invalid_request_error")
    r = a.http.put(f"{API}/identities/oidc", headers={"X-CSRF-Token": a.csrf})
    _error(r, 405, "method_not_allowed")
    assert a.identities()["identities"] == []
