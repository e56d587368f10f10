"""The web console in a real browser: Debian's Chromium driven by Playwright (its own
browser download is not used). A new user signs up, gets a starting credit from the
operator, creates a key (shown once, copied), calls the API with it through the openai SDK
against the OpenAI emulator, sees the request and its charge in the logs page, redeems a
code the admin made through the admin API, and switches the console to English; the
dashboard fits a phone-sized screen.

Skipped only when /usr/bin/chromium is missing (``apt-get install -y chromium``)."""

from __future__ import annotations

import re
from decimal import Decimal
from pathlib import Path
from typing import Any

import openai
import pytest
from console_kit import PHONE, Servers, no_horizontal_overflow, open_page, sign_up, user_id

from integration.gateway import Gateway

expect = pytest.importorskip("playwright.sync_api").expect


@pytest.fixture(scope="module")
def gateway(servers: Servers) -> Gateway:
    return servers.openai_gateway("console-e2e")


def _amount(text: str) -> Decimal:
    match = re.search(r"-?\d+(?:\.\d+)?", text)
    assert match, text
    return Decimal(match.group(0))


def test_new_user_signs_up_creates_a_key_uses_it_sees_the_charge_and_redeems(
    gateway: Gateway, browser: Any
) -> None:
    gw = gateway
    context, page = open_page(browser, gw, permissions=["clipboard-read", "clipboard-write"])

    # --- sign up (the console opens in Chinese) ---
    page.goto("/console")
    expect(page.get_by_test_id("signin-form")).to_be_visible()
    assert page.evaluate("document.documentElement.lang") == "zh-CN"
    expect(page.get_by_test_id("submit")).to_have_text("登录")
    page.get_by_test_id("to-signup").click()
    username = "browser_user"
    page.get_by_test_id("username").fill(username)
    page.get_by_test_id("password").fill("a strong password")
    page.get_by_test_id("submit").click()
    expect(page.get_by_test_id("page-dashboard")).to_be_visible()
    expect(page.get_by_test_id("whoami")).to_have_text(username)
    expect(page.get_by_test_id("balance")).to_contain_text("0")

    # the operator gives the new user a starting credit
    uid = user_id(gw, username)
    gw.top_up(uid, "5")
    page.reload()
    expect(page.get_by_test_id("balance")).to_contain_text("5")

    # --- create a key: shown once, copied ---
    page.get_by_test_id("nav-keys").click()
    expect(page.get_by_test_id("page-keys")).to_be_visible()
    page.get_by_test_id("key-name").fill("my laptop")
    page.get_by_test_id("create-key").click()
    shown = page.get_by_test_id("new-key")
    expect(shown).to_be_visible()
    key = shown.inner_text().strip()
    assert key.startswith("zk-"), key
    page.get_by_test_id("copy-key").click()
    expect(page.get_by_test_id("copy-key")).to_have_text("已复制")
    assert page.evaluate("navigator.clipboard.readText()") == key
    expect(page.get_by_test_id("key-list")).to_contain_text("my laptop")
    page.reload()
    expect(page.get_by_test_id("key-list")).to_contain_text("my laptop")
    assert key not in page.content()  # never shown again

    # --- the key works with the openai SDK ---
    client = openai.OpenAI(base_url=gw.base_url, api_key=key, max_retries=0)
    reply = client.chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "Hello from the browser test"}]
    )
    assert reply.choices[0].message.content

    # --- the request and its charge in the logs page ---
    page.get_by_test_id("nav-logs").click()
    rows = page.get_by_test_id("log-row")
    expect(rows).to_have_count(1)
    expect(rows.first.get_by_test_id("log-model")).to_have_text("gpt-4o-mini")
    cost = _amount(rows.first.get_by_test_id("log-cost").inner_text())
    assert cost > 0
    page.get_by_test_id("log-filter-model").fill("some-other-model")
    page.get_by_test_id("log-apply").click()
    expect(page.get_by_test_id("no-logs")).to_be_visible()
    page.get_by_test_id("log-filter-model").fill("gpt-4o-mini")
    page.get_by_test_id("log-apply").click()
    expect(rows).to_have_count(1)

    with page.expect_download() as download:
        page.get_by_test_id("log-export").click()
    exported = Path(download.value.path()).read_text()
    assert "gpt-4o-mini" in exported and key not in exported

    # --- the public catalogue lists the model ---
    page.get_by_test_id("nav-models").click()
    page.get_by_test_id("model-search").fill("4o-mini")
    expect(page.get_by_test_id("model-row").first).to_contain_text("gpt-4o-mini")

    page.get_by_test_id("nav-dashboard").click()
    balance = _amount(page.get_by_test_id("balance").inner_text())
    assert balance == Decimal(5) - cost

    # --- redeem a code the admin made through the admin API ---
    code = gw.admin("POST", "/codes", {"count": 1, "amount": "3"})["data"]["codes"][0]
    page.get_by_test_id("nav-redeem").click()
    page.get_by_test_id("redeem-code").fill(code)
    page.get_by_test_id("redeem-submit").click()
    expect(page.get_by_test_id("redeem-ok")).to_be_visible()
    page.get_by_test_id("redeem-code").fill(code)  # a second time: refused, in Chinese
    page.get_by_test_id("redeem-submit").click()
    expect(page.get_by_test_id("redeem-error")).to_have_text("该兑换码已被使用。")
    page.get_by_test_id("nav-dashboard").click()
    expect(page.get_by_test_id("balance")).to_contain_text(str(balance + 3))

    # --- English ---
    page.get_by_test_id("language").select_option("en")
    expect(page.get_by_test_id("nav-dashboard")).to_have_text("Dashboard")
    expect(page.get_by_test_id("sign-out")).to_have_text("Sign out")
    assert page.evaluate("document.documentElement.lang") == "en"
    page.reload()  # the choice is remembered
    expect(page.get_by_test_id("nav-keys")).to_have_text("API keys")

    # --- sign out: back to the sign-in page, the session is gone ---
    page.get_by_test_id("sign-out").click()
    expect(page.get_by_test_id("signin-form")).to_be_visible()
    page.goto("/console#/keys")
    expect(page.get_by_test_id("signin-form")).to_be_visible()
    assert page.errors == []
    context.close()


def test_dashboard_fits_a_phone_screen(gateway: Gateway, browser: Any) -> None:
    context, page = open_page(browser, gateway, **PHONE)
    sign_up(page, "phone_user", "another strong one")
    for path in ("/", "/keys", "/logs", "/models", "/redeem", "/quickstart", "/settings"):
        page.goto(f"/console#{path}")
        page.wait_for_load_state("networkidle")
        no_horizontal_overflow(page, path)
    page.goto("/console#/quickstart")
    expect(page.get_by_test_id("base-url")).to_have_text(f"{gateway.base}/v1")
    context.close()
