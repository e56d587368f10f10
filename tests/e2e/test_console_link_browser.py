"""Linking an external identity in a real browser (Debian's Chromium driven by Playwright,
on a phone-sized screen): a user signs up with a password, links the OIDC emulator's
identity from the settings page (the current password asked first), signs out, signs in
with the OIDC button and lands on the same account; then unlinks it.

Skipped only when /usr/bin/chromium is missing (``apt-get install -y chromium``)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from console_kit import PHONE, Servers, no_horizontal_overflow, open_page, sign_up, user_id

from integration.gateway import Gateway
from integration.oauth_kit import oidc_env
from relaygate.emulator.oidc import OIDCEmulator

expect = pytest.importorskip("playwright.sync_api").expect

PASSWORD = "link me in the browser"


@pytest.fixture(scope="module")
def idp() -> Iterator[OIDCEmulator]:
    with OIDCEmulator() as server:
        yield server


@pytest.fixture(scope="module")
def gateway(idp: OIDCEmulator, servers: Servers) -> Gateway:  # idp stops last
    env = oidc_env(idp)
    return servers.gateway("console-link-e2e", env)


def test_link_the_oidc_identity_from_settings_then_sign_in_with_it(
    gateway: Gateway, idp: OIDCEmulator, browser: Any
) -> None:
    name = f"linker{uuid.uuid4().hex[:6]}"
    idp.configure(
        user={
            "sub": f"sub-{name}",
            "preferred_username": f"sso-{name}",  # would name a new user: none is made
            "email": f"{name}@sso.test",
            "email_verified": True,
        }
    )
    context, page = open_page(browser, gateway, **PHONE)
    try:
        sign_up(page, name, PASSWORD)
        page.goto("/console#/settings")
        card = page.get_by_test_id("identities-card")
        expect(card).to_be_visible()
        expect(card.get_by_role("heading")).to_have_text("关联登录")
        expect(page.get_by_test_id("identity-oidc-state")).to_have_text("未关联")
        no_horizontal_overflow(page, "settings with the linked sign-in card")

        # the password is asked first; a wrong one is refused before the provider
        page.get_by_test_id("link-oidc").click()
        expect(card.get_by_test_id("msg-error")).to_have_text("请输入当前密码后再关联账户。")
        page.get_by_test_id("link-password").fill("not my password")
        page.get_by_test_id("link-oidc").click()
        expect(card.get_by_test_id("msg-error")).to_have_text("用户名或密码错误。")
        assert not any(path == "/token" for _, path, _ in idp.requests)

        page.get_by_test_id("link-password").fill(PASSWORD)
        page.get_by_test_id("link-oidc").click()
        expect(page.get_by_test_id("link-result")).to_have_text("已关联：现在可以用该账户登录。")
        assert page.url.endswith("/console#/settings")  # the result is not kept in the address
        expect(page.get_by_test_id("identity-oidc-state")).to_contain_text(f"{name}@sso.test")
        expect(page.get_by_test_id("unlink-oidc")).to_be_visible()
        no_horizontal_overflow(page, "settings with a linked identity")

        # signed out, then in with the OIDC button: the same account
        page.get_by_test_id("sign-out").click()
        expect(page.get_by_test_id("signin-form")).to_be_visible()
        page.get_by_test_id("oauth-oidc").click()
        expect(page.get_by_test_id("page-dashboard")).to_be_visible()
        expect(page.get_by_test_id("whoami")).to_have_text(name)
        users = [u["username"] for u in gateway.admin("GET", "/users")["data"]]
        assert f"sso-{name}" not in users and users.count(name) == 1

        # in English, unlinked again (the password still signs in)
        page.get_by_test_id("language").select_option("en")
        page.goto("/console#/settings")
        expect(page.get_by_test_id("identity-oidc-state")).to_contain_text("Linked")
        page.get_by_test_id("unlink-oidc").click()  # the confirmation is accepted
        expect(page.get_by_test_id("identity-oidc-state")).to_have_text("Not linked")
        expect(page.get_by_test_id("link-oidc")).to_have_text("Link Emulated SSO")
        assert user_id(gateway, name) > 0
        assert page.errors == []
    finally:
        context.close()
