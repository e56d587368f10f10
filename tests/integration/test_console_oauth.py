"""Console sign-in with OpenID Connect and GitHub against real gateways on loopback and the
sign-in emulators (relaygate.emulator.oidc, relaygate.emulator.github_oauth), with httpx as
the browser and redirects followed by hand: the full flows create a user and reuse it,
and every failure (state, replayed code, ID token checks, provider errors and outages,
denied consent, sign-up off, a disabled user, a TOTP user) ends on the sign-in page with
its error code and no session."""

from __future__ import annotations

import sqlite3
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit, urlunsplit

import httpx
import pyotp
import pytest
from gateway import Gateway
from oauth_kit import oauth_env

from relaygate.emulator.github_oauth import GitHubOAuthEmulator
from relaygate.emulator.oidc import OIDCEmulator

API = "/console/api"


def _name(prefix: str = "u") -> str:
    return f"{prefix}{uuid.uuid4().hex[:8]}"


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
    g = Gateway(Path(tmp_path_factory.mktemp("console-oauth")), oauth_env(idp, gh)).start()
    try:
        yield g
    finally:
        g.stop()


@pytest.fixture(scope="module")
def closed(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[Gateway, OIDCEmulator, GitHubOAuthEmulator]]:
    """A gateway with sign-up off and its own providers (one of them is stopped by a test)."""
    with OIDCEmulator() as idp2, GitHubOAuthEmulator() as gh2:
        data = Path(tmp_path_factory.mktemp("console-oauth-closed"))
        g = Gateway(data, oauth_env(idp2, gh2, RELAYGATE_CONSOLE_SIGNUP="0")).start()
        try:
            yield g, idp2, gh2
        finally:
            g.stop()


class Browser:
    """A cookie-keeping client that follows the sign-in redirects by hand."""

    def __init__(self, gw: Gateway) -> None:
        self.gw = gw
        self.http = httpx.Client(base_url=gw.base, timeout=20, follow_redirects=False)

    def start(self, provider: str) -> httpx.Response:
        return self.http.get(f"{API}/oauth/{provider}/start")

    def authorize(self, provider: str) -> str:
        """Start, then let the provider approve: the callback URL it sends the browser to."""
        r = self.start(provider)
        assert r.status_code == 302, r.text
        at_provider = httpx.get(r.headers["location"], follow_redirects=False, timeout=20)
        assert at_provider.status_code == 302, at_provider.text
        callback = at_provider.headers["location"]
        assert callback.startswith(self.gw.base + f"{API}/oauth/{provider}/callback?")
        return callback

    def finish(self, callback: str) -> httpx.Response:
        return self.http.get(callback)

    def sign_in(self, provider: str) -> httpx.Response:
        return self.finish(self.authorize(provider))

    def me(self) -> httpx.Response:
        return self.http.get(f"{API}/me")

    def close(self) -> None:
        self.http.close()


@pytest.fixture
def browser(gw: Gateway) -> Iterator[Browser]:
    b = Browser(gw)
    try:
        yield b
    finally:
        b.close()


def _signed_in(r: httpx.Response) -> None:
    assert r.status_code == 302, r.text
    assert r.headers["location"] == "/console#/"
    cookies = r.headers.get_list("set-cookie")
    session = next(c for c in cookies if c.startswith("rg_session="))
    for part in ("HttpOnly", "SameSite=Lax", "Path=/console;"):
        assert part in session + ";"
    assert any(c.startswith("rg_oauth=;") and "Max-Age=0" in c for c in cookies)


def _refused(b: Browser, r: httpx.Response, code: str) -> None:
    """Back on the sign-in page with the error code, no session."""
    assert r.status_code == 302, r.text
    assert r.headers["location"] == f"/console#/sign-in?error={code}"
    assert not any(c.startswith("rg_session=") for c in r.headers.get_list("set-cookie"))
    assert b.me().status_code == 401


def _with_query(url: str, **changes: str) -> str:
    parts = urlsplit(url)
    q = {k: v[0] for k, v in parse_qs(parts.query).items()}
    return urlunsplit(parts._replace(query=urlencode({**q, **changes})))


def _users(gw: Gateway, username: str) -> list[dict[str, Any]]:
    return [u for u in gw.admin("GET", "/users")["data"] if u["username"] == username]


def _logged(gw: Gateway, text: str) -> bool:
    """Whether the gateway logged ``text`` (its log lines are written off the request path)."""
    deadline = time.monotonic() + 5
    while text not in gw.logs():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def _db(gw: Gateway) -> sqlite3.Connection:
    return sqlite3.connect(Path(gw.env["RELAYGATE_DATA_DIR"]) / "relaygate.db")


# ---- the flows -------------------------------------------------------------------------------
def test_config_names_the_providers(browser: Browser) -> None:
    data = browser.http.get(f"{API}/config").json()["data"]
    assert data["oauth_providers"] == [
        {"id": "github", "name": "GitHub"},
        {"id": "oidc", "name": "Emulated SSO"},
    ]
    assert data["sign_in_methods"] == ["password", "github", "oidc"]


def test_oidc_sign_in_creates_a_user_and_the_next_reuses_it(
    gw: Gateway, idp: OIDCEmulator, browser: Browser
) -> None:
    login = _name("oidc")
    idp.configure(
        user={
            "sub": f"sub-{login}",
            "preferred_username": login,
            "email": f"{login}@example.test",
            "email_verified": True,
        }
    )
    r = browser.start("oidc")
    assert r.status_code == 302
    to = urlsplit(r.headers["location"])
    q = {k: v[0] for k, v in parse_qs(to.query).items()}
    assert f"{to.scheme}://{to.netloc}{to.path}" == idp.issuer + "/authorize"
    assert q["client_id"] == "relaygate-console" and q["response_type"] == "code"
    assert q["code_challenge_method"] == "S256" and len(q["code_challenge"]) == 43
    assert len(q["state"]) >= 40 and len(q["nonce"]) >= 40 and q["scope"] == "openid profile email"
    assert q["redirect_uri"] == gw.base + f"{API}/oauth/oidc/callback"
    state_cookie = r.headers["set-cookie"]
    for part in ("rg_oauth=", "HttpOnly", "SameSite=Lax", "Path=/console/api/oauth", "Max-Age=600"):
        assert part in state_cookie
    # nothing of the flow is readable in the cookie (encrypted)
    assert q["state"] not in state_cookie and q["nonce"] not in state_cookie

    callback = httpx.get(r.headers["location"], follow_redirects=False).headers["location"]
    done = browser.finish(callback)
    _signed_in(done)
    me = browser.me().json()["data"]
    assert me["user"]["username"] == login and me["user"]["role"] == "user"
    assert browser.http.get(f"{API}/account").status_code == 200
    # the token request carried the PKCE verifier (the emulator checked it against the challenge)
    token_call = next(p for m, path, p in idp.requests if path == "/token")
    assert 43 <= len(token_call["code_verifier"]) <= 128

    other = Browser(gw)
    try:
        _signed_in(other.sign_in("oidc"))
        assert other.me().json()["data"]["user"]["id"] == me["user"]["id"]
    finally:
        other.close()
    assert len(_users(gw, login)) == 1
    with _db(gw) as db:
        rows = db.execute(
            "SELECT provider, subject, email FROM console_identities WHERE user_id = ?",
            (me["user"]["id"],),
        ).fetchall()
    assert rows == [("oidc", f"sub-{login}", f"{login}@example.test")]


def test_github_sign_in_creates_a_user_with_a_verified_email_and_reuses_it(
    gw: Gateway, gh: GitHubOAuthEmulator, browser: Browser
) -> None:
    login = _name("octo")
    gh_id = int(time.time() * 1000) % 10**9
    gh.configure(user={"id": gh_id, "login": login, "name": "Octo"})
    r = browser.start("github")
    q = parse_qs(urlsplit(r.headers["location"]).query)
    assert r.headers["location"].startswith(gh.origin + "/login/oauth/authorize?")
    assert q["scope"] == ["read:user user:email"] and q["code_challenge_method"] == ["S256"]
    _signed_in(browser.sign_in("github"))
    me = browser.me().json()["data"]
    assert me["user"]["username"] == login
    with _db(gw) as db:
        row = db.execute(
            "SELECT subject, email FROM console_identities WHERE provider = 'github' AND user_id = ?",
            (me["user"]["id"],),
        ).fetchone()
    assert row == (str(gh_id), "octo@example.test")  # the verified primary, not the other one

    # the same GitHub account later (even renamed) opens the same user
    gh.configure(user={"id": gh_id, "login": login + "-renamed"})
    again = Browser(gw)
    try:
        _signed_in(again.sign_in("github"))
        assert again.me().json()["data"]["user"]["id"] == me["user"]["id"]
    finally:
        again.close()

    # another GitHub account with the first login: a new user, its name made unique
    gh.configure(user={"id": gh_id + 1, "login": login.upper()}, emails_status=404)
    third = Browser(gw)
    try:
        _signed_in(third.sign_in("github"))
        data = third.me().json()["data"]
        assert data["user"]["username"] == login.upper() + "-2"
        assert data["user"]["id"] != me["user"]["id"]
    finally:
        third.close()


def test_es256_id_tokens_and_userinfo_claims(
    gw: Gateway, idp: OIDCEmulator, browser: Browser
) -> None:
    login = _name("es")
    idp.configure(
        alg="ES256",
        profile_in_id_token=False,  # the ID token names only sub: the gateway asks /userinfo
        user={
            "sub": f"sub-{login}",
            "preferred_username": login,
            "email_verified": False,
            "email": "unverified@example.test",
        },
    )
    _signed_in(browser.sign_in("oidc"))
    me = browser.me().json()["data"]
    assert me["user"]["username"] == login
    assert any(path == "/userinfo" for _, path, _ in idp.requests)
    with _db(gw) as db:
        email = db.execute(
            "SELECT email FROM console_identities WHERE user_id = ?", (me["user"]["id"],)
        ).fetchone()[0]
    assert email is None  # an unverified e-mail is not kept


def test_a_rotated_signing_key_is_fetched(gw: Gateway, idp: OIDCEmulator) -> None:
    login = _name("rot")
    idp.configure(user={"sub": f"sub-{login}", "preferred_username": login})
    first = Browser(gw)
    try:
        _signed_in(first.sign_in("oidc"))  # the gateway holds the provider's keys
    finally:
        first.close()
    kid = idp.rotate()
    time.sleep(5.2)  # the keys are fetched again for an unknown kid, at most every 5 s
    second = Browser(gw)
    try:
        _signed_in(second.sign_in("oidc"))
        assert second.me().json()["data"]["user"]["username"] == login
    finally:
        second.close()
    assert kid.startswith("emu-rsa-")


# ---- state and codes -------------------------------------------------------------------------
def test_a_callback_made_in_another_browser_is_refused(
    gw: Gateway, idp: OIDCEmulator, browser: Browser
) -> None:
    attacker = Browser(gw)
    try:
        # the attacker starts a sign-in with their own account and sends the callback URL on
        forged = attacker.authorize("oidc")
        tokens_before = sum(1 for _, path, _ in idp.requests if path == "/token")
        _refused(browser, browser.finish(forged), "oauth_state")  # no flow in this browser
        browser.authorize("oidc")  # even with a sign-in of its own under way
        _refused(browser, browser.finish(forged), "oauth_state")
        # the attacker's code was never redeemed
        assert sum(1 for _, path, _ in idp.requests if path == "/token") == tokens_before
    finally:
        attacker.close()


def test_state_mismatch_and_missing_state_are_refused(browser: Browser) -> None:
    callback = browser.authorize("oidc")
    _refused(browser, browser.finish(_with_query(callback, state="x" * 43)), "oauth_state")
    callback = browser.authorize("github")
    parts = urlsplit(callback)
    q = {k: v[0] for k, v in parse_qs(parts.query).items() if k != "state"}
    _refused(browser, browser.finish(urlunsplit(parts._replace(query=urlencode(q)))), "oauth_state")
    # a flow started with one provider is not finished with another
    callback = browser.authorize("github")
    wrong = callback.replace("/oauth/github/callback", "/oauth/oidc/callback")
    _refused(browser, browser.finish(wrong), "oauth_state")


def test_a_replayed_code_or_state_is_refused(gw: Gateway, idp: OIDCEmulator) -> None:
    login = _name("replay")
    idp.configure(user={"sub": f"sub-{login}", "preferred_username": login})
    b = Browser(gw)
    try:
        callback = b.authorize("oidc")
        saved = b.http.cookies.get("rg_oauth", path="/console/api/oauth")
        _signed_in(b.finish(callback))
        # the same callback with the same (copied) cookie: the state was used
        assert saved
        b.http.cookies.set("rg_oauth", saved, domain="127.0.0.1", path="/console/api/oauth")
        r = b.finish(callback)
        assert r.headers["location"] == "/console#/sign-in?error=oauth_state"
        # a fresh state of this browser with the used code: the provider refuses the code
        fresh = b.authorize("oidc")
        replay = _with_query(callback, state=parse_qs(urlsplit(fresh).query)["state"][0])
        r = b.finish(replay)
        assert r.headers["location"] == "/console#/sign-in?error=oauth_code"
    finally:
        b.close()
    assert _logged(gw, "refused the code")


def test_github_replayed_code_is_bad_verification_code(gw: Gateway, browser: Browser) -> None:
    callback = browser.authorize("github")
    _signed_in(browser.finish(callback))
    fresh = browser.authorize("github")
    replay = _with_query(callback, state=parse_qs(urlsplit(fresh).query)["state"][0])
    r = browser.finish(replay)
    assert r.headers["location"] == "/console#/sign-in?error=oauth_code"
    assert _logged(gw, "bad_verification_code")


# ---- the provider's failures -------------------------------------------------------------------
@pytest.mark.parametrize(
    ("knobs", "code", "logged"),
    [
        ({"wrong_nonce": True}, "oauth_id_token", "the nonce is not this browser's"),
        ({"expired": True}, "oauth_id_token", "ExpiredSignatureError"),
        ({"wrong_audience": True}, "oauth_id_token", "InvalidAudienceError"),
        ({"bad_signature": True}, "oauth_id_token", "InvalidSignatureError"),
        ({"alg": "none"}, "oauth_id_token", "algorithm 'none' is not accepted"),
        ({"alg": "HS256"}, "oauth_id_token", "algorithm 'HS256' is not accepted"),
        ({"token_status": 500}, "oauth_provider", "the token endpoint answered 500"),
        ({"deny": True}, "oauth_denied", "error='access_denied'"),
    ],
    ids=[
        "nonce",
        "expired",
        "audience",
        "signature",
        "alg-none",
        "alg-hs256",
        "token-500",
        "denied",
    ],
)
def test_oidc_failures_end_on_the_sign_in_page(
    gw: Gateway,
    idp: OIDCEmulator,
    browser: Browser,
    knobs: dict[str, Any],
    code: str,
    logged: str,
) -> None:
    login = _name("fail")
    idp.configure(user={"sub": f"sub-{login}", "preferred_username": login}, **knobs)
    _refused(browser, browser.sign_in("oidc"), code)
    assert _users(gw, login) == []
    assert _logged(gw, logged)


@pytest.mark.parametrize(
    ("knobs", "code"),
    [
        ({"deny": True}, "oauth_denied"),
        ({"token_status": 500}, "oauth_provider"),
        ({"client_secret": "rotated"}, "oauth_provider"),  # incorrect_client_credentials
    ],
    ids=["denied", "token-500", "client-secret"],
)
def test_github_failures_end_on_the_sign_in_page(
    gw: Gateway, gh: GitHubOAuthEmulator, browser: Browser, knobs: dict[str, Any], code: str
) -> None:
    login = _name("ghfail")
    gh.configure(user={"id": 9_000_000 + int(time.time()) % 10**6, "login": login}, **knobs)
    _refused(browser, browser.sign_in("github"), code)
    assert _users(gw, login) == []


def test_unknown_provider_and_bare_callback(browser: Browser) -> None:
    _refused(browser, browser.start("gitlab"), "oauth_not_configured")
    _refused(browser, browser.http.get(f"{API}/oauth/oidc/callback"), "oauth_state")
    r = browser.http.get(f"{API}/oauth/oidc/callback?code=x&state=y")
    _refused(browser, r, "oauth_state")
    browser.http.cookies.set("rg_oauth", "garbage", domain="127.0.0.1", path="/console/api/oauth")
    _refused(browser, browser.http.get(f"{API}/oauth/oidc/callback?state=y"), "oauth_state")


# ---- accounts -----------------------------------------------------------------------------------
def test_a_disabled_user_is_refused(gw: Gateway, idp: OIDCEmulator, browser: Browser) -> None:
    login = _name("off")
    idp.configure(user={"sub": f"sub-{login}", "preferred_username": login})
    _signed_in(browser.sign_in("oidc"))
    uid = browser.me().json()["data"]["user"]["id"]
    gw.admin("PATCH", f"/users/{uid}", {"status": "disabled"})
    assert browser.me().status_code == 401  # the open session stops at once
    other = Browser(gw)
    try:
        _refused(other, other.sign_in("oidc"), "account_disabled")
    finally:
        other.close()


def _fresh_step() -> float:
    left = 30 - time.time() % 30
    if left < 10:
        time.sleep(left + 0.1)
    return time.time()


def test_a_totp_user_needs_the_code_after_the_provider(
    gw: Gateway, idp: OIDCEmulator, browser: Browser
) -> None:
    # a password user with two-factor on, whose account is linked to the OIDC subject
    name = _name("totp")
    r = browser.http.post(f"{API}/sign-up", json={"username": name, "password": "pass with 2fa"})
    assert r.status_code == 201, r.text
    csrf = browser.me().json()["data"]["csrf_token"]
    headers = {"X-CSRF-Token": csrf}
    secret = browser.http.post(f"{API}/totp/setup", headers=headers).json()["data"]["secret"]
    t0 = _fresh_step()
    code = pyotp.TOTP(secret).at(t0 - 30)
    r = browser.http.post(f"{API}/totp/enable", json={"code": code}, headers=headers)
    assert r.status_code == 200, r.text
    uid = browser.me().json()["data"]["user"]["id"]
    with _db(gw) as db:
        db.execute(
            "INSERT INTO console_identities (provider, subject, user_id, email, created_at) "
            "VALUES ('oidc', ?, ?, NULL, ?)",
            (f"sub-{name}", uid, datetime.now(UTC).isoformat(sep=" ")),
        )
    idp.configure(user={"sub": f"sub-{name}", "preferred_username": "ignored"})

    b = Browser(gw)
    try:
        r = b.sign_in("oidc")
        assert r.status_code == 302 and r.headers["location"] == "/console#/sign-in?totp=oauth"
        cookies = r.headers.get_list("set-cookie")
        assert not any(c.startswith("rg_session=") for c in cookies)
        ticket = next(c for c in cookies if c.startswith("rg_oauth_totp="))
        assert "HttpOnly" in ticket and "Path=/console/api/oauth" in ticket
        assert b.me().status_code == 401  # the provider alone opens nothing
        wrong = "000000" if pyotp.TOTP(secret).at(t0) != "000000" else "111111"
        r = b.http.post(f"{API}/oauth/totp", json={"code": wrong})
        assert r.status_code == 401 and r.json()["error"]["code"] == "invalid_code"
        r = b.http.post(f"{API}/oauth/totp", json={"code": pyotp.TOTP(secret).at(t0)})
        assert r.status_code == 200, r.text
        assert b.me().json()["data"]["user"]["username"] == name
        # without the ticket cookie there is nothing to finish
        fresh = Browser(gw)
        try:
            r = fresh.http.post(f"{API}/oauth/totp", json={"code": "123456"})
            assert r.status_code == 401 and r.json()["error"]["code"] == "ticket_expired"
        finally:
            fresh.close()
    finally:
        b.close()


# ---- sign-up off, provider down -------------------------------------------------------------------
def test_sign_up_off_refuses_unknown_identities(
    closed: tuple[Gateway, OIDCEmulator, GitHubOAuthEmulator],
) -> None:
    g, _, gh2 = closed
    login = _name("nosign")
    gh2.configure(user={"id": 77_000_001, "login": login})
    b = Browser(g)
    try:
        _refused(b, b.sign_in("github"), "signup_disabled")
        assert _users(g, login) == []
    finally:
        b.close()


def test_a_provider_that_is_down_ends_on_the_sign_in_page(
    closed: tuple[Gateway, OIDCEmulator, GitHubOAuthEmulator],
) -> None:
    g, idp2, _ = closed
    b = Browser(g)
    try:
        callback = b.authorize("oidc")  # discovery fetched, the provider approved...
        idp2.stop()  # ...and then it went away before the code was exchanged
        _refused(b, b.finish(callback), "oauth_unreachable")
    finally:
        b.close()
    assert _logged(g, "OIDC token endpoint: Client")
