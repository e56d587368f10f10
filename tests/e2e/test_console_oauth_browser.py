"""External sign-in in a real browser: Debian's Chromium driven by Playwright clicks the
OpenID Connect button of the console's sign-in page, goes through the OIDC emulator (a real
HTTP server on loopback that approves its test user) and lands signed in on the dashboard;
a denied consent comes back to the sign-in page with the error shown.

Skipped only when /usr/bin/chromium is missing (``apt-get install -y chromium``)."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from integration.gateway import Gateway
from relaygate.emulator.github_oauth import GitHubOAuthEmulator
from relaygate.emulator.oidc import OIDCEmulator

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]

pytestmark = pytest.mark.skipif(
    not os.path.exists(CHROMIUM) and not os.environ.get("CI"),
    reason=f"{CHROMIUM} is not installed (apt-get install -y chromium)",
)

sync_api = pytest.importorskip("playwright.sync_api")
expect = sync_api.expect
TIMEOUT = 15_000  # ms


@pytest.fixture(scope="module")
def idp() -> Iterator[OIDCEmulator]:
    with OIDCEmulator() as server:
        yield server


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory, idp: OIDCEmulator) -> Iterator[Gateway]:
    with GitHubOAuthEmulator() as gh:
        env = {
            "RELAYGATE_CONSOLE_OIDC_ISSUER": idp.issuer,
            "RELAYGATE_CONSOLE_OIDC_CLIENT_ID": idp.knobs.client_id,
            "RELAYGATE_CONSOLE_OIDC_CLIENT_SECRET": idp.knobs.client_secret,
            "RELAYGATE_CONSOLE_OIDC_NAME": "Emulated SSO",
            "RELAYGATE_CONSOLE_GITHUB_CLIENT_ID": gh.knobs.client_id,
            "RELAYGATE_CONSOLE_GITHUB_CLIENT_SECRET": gh.knobs.client_secret,
            "RELAYGATE_CONSOLE_GITHUB_URL": gh.origin,
            "RELAYGATE_CONSOLE_GITHUB_API_URL": gh.api_url,
        }
        gw = Gateway(Path(tmp_path_factory.mktemp("console-oauth-e2e")), env).start()
        try:
            yield gw
        finally:
            gw.stop()


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    with sync_api.sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            yield b
        finally:
            b.close()


def test_the_oidc_button_signs_in_and_lands_on_the_dashboard(
    gateway: Gateway, idp: OIDCEmulator, browser: object
) -> None:
    login = f"sso-{uuid.uuid4().hex[:8]}"
    idp.configure(user={"sub": f"sub-{login}", "preferred_username": login, "name": "SSO"})
    context = browser.new_context(base_url=gateway.base)  # type: ignore[attr-defined]
    context.set_default_timeout(TIMEOUT)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    try:
        page.goto("/console")
        expect(page.get_by_test_id("signin-form")).to_be_visible()
        expect(page.get_by_test_id("oauth-github")).to_have_text("使用 GitHub 登录")
        expect(page.get_by_test_id("oauth-oidc")).to_have_text("使用 Emulated SSO 登录")

        # consent denied at the provider: back on the sign-in page with the reason
        idp.configure(deny=True)
        page.get_by_test_id("oauth-oidc").click()
        expect(page.get_by_test_id("oauth-error")).to_have_text("您在登录服务处取消了授权。")
        assert page.url.endswith("/console#/sign-in")  # the error is not kept in the address

        idp.configure(deny=False)
        page.get_by_test_id("oauth-oidc").click()
        expect(page.get_by_test_id("page-dashboard")).to_be_visible()
        expect(page.get_by_test_id("whoami")).to_have_text(login)
        assert any(path == "/token" for _, path, _ in idp.requests)

        # signed out and in again: the same account
        page.get_by_test_id("sign-out").click()
        expect(page.get_by_test_id("signin-form")).to_be_visible()
        page.get_by_test_id("language").select_option("en")
        expect(page.get_by_test_id("oauth-oidc")).to_have_text("Sign in with Emulated SSO")
        page.get_by_test_id("oauth-oidc").click()
        expect(page.get_by_test_id("whoami")).to_have_text(login)
        users = [u for u in gateway.admin("GET", "/users")["data"] if u["username"] == login]
        assert len(users) == 1
        assert errors == []
    finally:
        context.close()
