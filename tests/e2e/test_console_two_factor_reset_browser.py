"""An admin turns off a user's two-factor sign-in from the users page, in a real browser
(Debian's Chromium driven by Playwright) on a phone's 390 px screen: the user's detail shows
two-factor on with the recovery codes left, the "turn off" button asks for confirmation
(accepted), the answer names the codes deleted and the sessions ended, the state turns to
off and the button goes; the user then signs in with the password alone. An admin's own
detail has no such button (one's own is turned off on the settings page).

Skipped only when /usr/bin/chromium is missing (``apt-get install -y chromium``)."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pyotp
import pytest
from console_kit import PHONE, Servers, make_admin, no_horizontal_overflow, open_page, sign_up

from integration.gateway import Gateway

expect = pytest.importorskip("playwright.sync_api").expect

PASSWORD = "reset in browser 1"


@pytest.fixture(scope="module")
def gateway(servers: Servers) -> Gateway:
    return servers.gateway("console-2fa-reset-e2e", {"RELAYGATE_CONSOLE_SIGNUP_IP_LIMIT": "100"})


def _user_with_two_factor(gw: Gateway) -> tuple[str, int]:
    """A console user (signed up through the console API) with TOTP on."""
    name = f"tfr{uuid.uuid4().hex[:8]}"
    with httpx.Client(base_url=gw.base + "/console/api", timeout=20) as c:
        assert c.post("/sign-up", json={"username": name, "password": PASSWORD}).is_success
        me = c.get("/me").json()["data"]
        headers = {"X-CSRF-Token": me["csrf_token"]}
        secret = c.post("/totp/setup", headers=headers).json()["data"]["secret"]
        r = c.post("/totp/enable", json={"code": pyotp.TOTP(secret).now()}, headers=headers)
        assert r.status_code == 200, r.text
        return name, int(me["user"]["id"])


def _signs_in_with_password_alone(gw: Gateway, name: str) -> bool:
    with httpx.Client(base_url=gw.base + "/console/api", timeout=20) as c:
        r = c.post("/sign-in", json={"username": name, "password": PASSWORD})
        assert r.status_code == 200, r.text
        return r.json()["data"]["totp_required"] is False


def _open_user(page: Any, name: str) -> None:
    page.goto("/console#/admin/users")
    page.get_by_test_id("user-search").fill(name)
    page.get_by_test_id("user-search-submit").click()
    page.locator("[data-testid^=user-open-]").first.click()
    expect(page.get_by_test_id("user-2fa")).to_be_visible()


def test_an_admin_turns_off_a_users_two_factor_on_a_phone(gateway: Gateway, browser: Any) -> None:
    name, uid = _user_with_two_factor(gateway)
    admin_name = f"adm{uuid.uuid4().hex[:8]}"
    ctx, page = open_page(browser, gateway, **PHONE)
    try:
        sign_up(page, admin_name, PASSWORD)
        make_admin(gateway, page, admin_name, shows="nav-admin-users")
        _open_user(page, name)
        state = page.get_by_test_id("user-2fa-state")
        expect(state).to_contain_text("已开启")  # the console's default language
        expect(state).to_contain_text("10")
        reset = page.get_by_test_id("user-2fa-reset")
        expect(reset).to_be_visible()
        page.wait_for_load_state("networkidle")
        no_horizontal_overflow(page, "user detail with two-factor")
        box = reset.bounding_box()
        assert box is not None and box["x"] + box["width"] <= 390

        reset.click()  # the confirmation is accepted (open_page)
        ok = page.get_by_test_id("user-2fa-ok")
        expect(ok).to_contain_text("删除了 10 个恢复码")
        expect(state).to_contain_text("未开启")
        expect(reset).to_be_hidden()
        no_horizontal_overflow(page, "after the reset")
        status = gateway.admin("GET", f"/users/{uid}/console-two-factor")["data"]
        assert status["two_factor_enabled"] is False
        assert _signs_in_with_password_alone(gateway, name)

        # no button on one's own detail, a pointer to the settings page instead
        _open_user(page, admin_name)
        expect(page.get_by_test_id("user-2fa-state")).to_contain_text("未开启")
        expect(page.get_by_test_id("user-2fa-reset")).to_be_hidden()
        expect(page.get_by_test_id("user-2fa")).to_contain_text("账户设置")
        assert page.errors == []
    finally:
        ctx.close()
