"""External sign-in in a real browser: Debian's Chromium driven by Playwright clicks the
OpenID Connect button of the console's sign-in page, goes through the OIDC emulator (a real
HTTP server on loopback that approves its test user) and lands signed in on the dashboard;
a denied consent comes back to the sign-in page with the error shown.

Skipped only when /usr/bin/chromium is missing (``apt-get install -y chromium``)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from console_kit import Servers, open_page

from integration.gateway import Gateway
from integration.oauth_kit import github_env, oidc_env
from relaygate.emulator.github_oauth import GitHubOAuthEmulator
from relaygate.emulator.oidc import OIDCEmulator

expect = pytest.importorskip("playwright.sync_api").expect


@pytest.fixture(scope="module")
def idp() -> Iterator[OIDCEmulator]:
    with OIDCEmulator() as server:
        yield server


@pytest.fixture(scope="module")
def gateway(idp: OIDCEmulator, servers: Servers) -> Gateway:  # idp stops last
    gh = servers.enter(GitHubOAuthEmulator())
    env = oidc_env(idp) | github_env(gh)
    return servers.gateway("console-oauth-e2e", env)


def test_the_oidc_button_signs_in_and_lands_on_the_dashboard(
    gateway: Gateway, idp: OIDCEmulator, browser: Any
) -> None:
    login = f"sso-{uuid.uuid4().hex[:8]}"
    idp.configure(user={"sub": f"sub-{login}", "preferred_username": login, "name": "SSO"})
    context, page = open_page(browser, gateway)
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
        assert page.errors == []
    finally:
        context.close()
