"""The console's admin operations pages in a real browser (Debian's Chromium driven by
Playwright, as in test_console_browser.py): an admin adds a channel pointing at the OpenAI
emulator from the channel-type catalogue, tests it (a latency is shown), edits it without
retyping its key, changes a model's price and sees a user's request through the openai SDK
charged at the new price, bulk-imports prices (a bad row refused whole), sees the requests
on the system status page, and deletes a channel; the pages fit a phone-sized screen.

Skipped only when /usr/bin/chromium is missing (``apt-get install -y chromium``)."""

from __future__ import annotations

import re
import time
from decimal import Decimal
from typing import Any

import openai
import pytest
from console_kit import PHONE, Servers, make_admin, no_horizontal_overflow, open_page, sign_up

from integration.gateway import Gateway
from relaygate.emulator import EmulatorServer

expect = pytest.importorskip("playwright.sync_api").expect
UPSTREAM_KEY = "sk-up-openai-e2e-secret"


@pytest.fixture(scope="module")
def gateway(servers: Servers) -> Gateway:
    return servers.gateway("console-admin-e2e")  # no channel: the test adds it in the page


@pytest.fixture(scope="module")
def upstream(servers: Servers) -> EmulatorServer:
    return servers.emulator(UPSTREAM_KEY)


def _admin_page(gw: Gateway, browser: Any, username: str, **context: Any) -> tuple[Any, Any]:
    """A console page signed in as a new user made admin through the admin API (as the
    admin bridge's tests do), with page errors collected on ``page.errors``."""
    ctx, page = open_page(browser, gw, **context)
    sign_up(page, username, "an admin password")
    make_admin(gw, page, username, shows="nav-admin-channels")
    return ctx, page


def _channel_id(page: Any, name: str) -> int:
    row = page.get_by_test_id("channel-list").locator("tr", has_text=name)
    expect(row).to_have_count(1)
    testid = row.get_attribute("data-testid")
    assert testid and testid.startswith("channel-"), testid
    return int(testid.removeprefix("channel-"))


def test_admin_adds_and_tests_a_channel_prices_a_model_and_sees_the_status(
    gateway: Gateway, upstream: EmulatorServer, browser: Any
) -> None:
    gw = gateway
    ctx, page = _admin_page(gw, browser, "ops_admin")

    # --- add a channel from the catalogue: the OpenAI type fills the base URL and models ---
    page.get_by_test_id("nav-admin-channels").click()
    expect(page.get_by_test_id("page-admin-channels")).to_be_visible()
    expect(page.get_by_test_id("channels-empty")).to_be_visible()
    page.get_by_test_id("channel-add").click()
    page.get_by_test_id("channel-type").select_option("openai")
    expect(page.get_by_test_id("channel-base-url")).to_have_value("https://api.openai.com/v1")
    expect(page.get_by_test_id("channel-models")).to_have_value(re.compile("gpt-4o-mini"))
    page.get_by_test_id("channel-name").fill("emu-openai")
    page.get_by_test_id("channel-base-url").fill(upstream.base_url)
    page.get_by_test_id("channel-keys").fill(UPSTREAM_KEY)
    page.get_by_test_id("channel-models").fill("gpt-4o-mini, gpt-4o")
    page.get_by_test_id("channel-save").click()
    expect(page.get_by_test_id("channels-note")).to_contain_text("emu-openai")
    cid = _channel_id(page, "emu-openai")
    expect(page.get_by_test_id(f"channel-status-{cid}")).to_have_text("已启用")
    expect(page.get_by_test_id(f"channel-circuit-{cid}")).to_have_text("正常")
    assert UPSTREAM_KEY not in page.content()  # keys are write-only
    stored = next(c for c in gw.admin("GET", "/channels")["data"] if c["id"] == cid)
    assert stored["base_url"] == upstream.base_url and stored["models"] == ["gpt-4o-mini", "gpt-4o"]

    # --- Test: the latency and the result ---
    page.get_by_test_id(f"channel-test-{cid}").click()
    result = page.get_by_test_id(f"channel-test-result-{cid}")
    expect(page.get_by_test_id("channels-error")).to_have_count(0)
    expect(result).to_contain_text(re.compile(r"可用 · \d+ ms"))

    # --- edit without retyping the key: the key is kept and still works ---
    page.get_by_test_id(f"channel-edit-{cid}").click()
    expect(page.get_by_test_id("channel-keys")).to_have_value("")
    expect(page.get_by_test_id("channel-keys-hint")).to_contain_text("留空则保留当前的 1 个密钥")
    page.get_by_test_id("channel-discover").click()  # the upstream's model list, not saved
    expect(page.get_by_test_id("channel-discovered")).to_contain_text("上游提供")
    page.get_by_test_id("channel-weight").fill("3")
    page.get_by_test_id("channel-save").click()
    expect(page.get_by_test_id(f"channel-{cid}")).to_contain_text("0 / 3")
    page.get_by_test_id(f"channel-test-{cid}").click()
    expect(result).to_contain_text(re.compile(r"可用 · \d+ ms"))

    # --- disable and enable again ---
    page.get_by_test_id(f"channel-toggle-{cid}").click()
    expect(page.get_by_test_id(f"channel-status-{cid}")).to_have_text("已停用")
    page.get_by_test_id(f"channel-toggle-{cid}").click()
    expect(page.get_by_test_id(f"channel-status-{cid}")).to_have_text("已启用")

    # --- change gpt-4o-mini's price (a default model: PATCH stores it) ---
    page.get_by_test_id("nav-admin-prices").click()
    expect(page.get_by_test_id("page-admin-prices")).to_be_visible()
    page.get_by_test_id("price-search").fill("gpt-4o-mini")
    page.get_by_test_id("price-edit-gpt-4o-mini").click()
    expect(page.get_by_test_id("price-model")).to_have_value("gpt-4o-mini")
    page.get_by_test_id("price-currency").select_option("CNY")
    page.get_by_test_id("price-per").select_option("1m")
    page.get_by_test_id("price-input").fill("10")
    page.get_by_test_id("price-output").fill("20")
    page.get_by_test_id("price-cached-input").fill("10")
    page.get_by_test_id("price-save").click()
    expect(page.get_by_test_id("prices-note")).to_contain_text("gpt-4o-mini")
    expect(page.get_by_test_id("price-billed-gpt-4o-mini")).to_have_text("10 / 20 CNY")
    assert gw.admin("GET", "/prices/gpt-4o-mini")["data"]["origin"] == "db"

    # a user's request through the openai SDK is charged at the new price
    uid = gw.create_user("priced_user", balance="5")
    key = gw.create_key(uid, name="sdk")
    before = int(gw.balance(uid)["balance_units"])
    client = openai.OpenAI(base_url=gw.base_url, api_key=key, max_retries=0)
    done = client.chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "hello there"}]
    )
    assert done.usage is not None
    units = done.usage.prompt_tokens * 10 + done.usage.completion_tokens * 20
    want = Decimal(units) / Decimal(1_000_000)
    deadline = time.monotonic() + 10
    while True:  # the log row arrives with the writer's next batch
        rows = gw.admin("GET", f"/logs?user_id={uid}")["data"]
        if rows:
            break
        assert time.monotonic() < deadline
        time.sleep(0.2)
    assert Decimal(str(rows[0]["cost"])) == want, rows[0]
    after = int(gw.balance(uid)["balance_units"])  # units: 10^-6 of the currency
    assert before - after == units

    # --- bulk import: a bad row refuses everything, a good paste is applied ---
    text = page.get_by_test_id("price-import-text")
    text.fill(
        "model,provider,currency,per,input,output\ne2e-a,acme,CNY,1m,1,2\ne2e-b,acme,CNY,1m,-1,2"
    )
    page.get_by_test_id("price-import-force").check()
    page.get_by_test_id("price-import-preview").click()
    expect(page.get_by_test_id("price-import-count")).to_contain_text("2")
    page.get_by_test_id("price-import-apply").click()
    expect(page.get_by_test_id("price-import-error")).to_contain_text("prices[1]")
    assert not any(r["model"].startswith("e2e-") for r in gw.admin("GET", "/prices")["data"])
    text.fill(
        '[{"model": "e2e-a", "provider": "acme", "currency": "CNY", "input": "1", "output": "2"},'
        ' {"model": "e2e-b", "provider": "acme", "currency": "CNY", "input": "3", "output": "4"}]'
    )
    page.get_by_test_id("price-import-preview").click()
    expect(page.get_by_test_id("price-import-table")).to_contain_text("e2e-b")
    page.get_by_test_id("price-import-apply").click()
    expect(page.get_by_test_id("price-import-result")).to_contain_text("2")
    page.get_by_test_id("price-search").fill("e2e-")
    expect(page.get_by_test_id("price-billed-e2e-b")).to_have_text("3 / 4 CNY")

    # --- the system status page shows the requests ---
    page.get_by_test_id("nav-admin-status").click()
    expect(page.get_by_test_id("page-admin-status")).to_be_visible()
    expect(page.get_by_test_id("status-requests")).to_have_text(re.compile(r"^[1-9]\d*$"))
    expect(page.get_by_test_id(f"status-channel-{cid}")).to_contain_text("emu-openai")
    assert page.locator(".chart-box canvas").count() >= 3  # traffic, latency, channel health
    assert page.evaluate("typeof window.Chart") == "function"
    page.get_by_test_id("status-window-24h").click()
    expect(page.get_by_test_id("status-requests")).to_have_text(re.compile(r"^[1-9]\d*$"))

    # --- delete a channel (confirmed) ---
    spare = gw.create_channel(
        name="spare", base_url=upstream.base_url, keys=[UPSTREAM_KEY], models=["gpt-4o-mini"]
    )
    page.get_by_test_id("nav-admin-channels").click()
    page.get_by_test_id(f"channel-delete-{spare}").click()
    expect(page.get_by_test_id("channels-note")).to_contain_text("spare")
    expect(page.get_by_test_id(f"channel-{spare}")).to_have_count(0)
    assert all(c["id"] != spare for c in gw.admin("GET", "/channels")["data"])

    # --- English ---
    page.get_by_test_id("language").select_option("en")
    expect(page.get_by_test_id("nav-admin-channels")).to_have_text("Channels")
    expect(page.get_by_test_id(f"channel-status-{cid}")).to_have_text("Enabled")
    assert page.errors == []
    ctx.close()


def test_the_admin_pages_fit_a_phone_screen(gateway: Gateway, browser: Any) -> None:
    ctx, page = _admin_page(gateway, browser, "phone_admin", **PHONE)
    for path in ("/admin/channels", "/admin/prices", "/admin/status"):
        page.goto(f"/console#{path}")
        expect(page.get_by_test_id(f"page-{path[1:].replace('/', '-')}")).to_be_visible()
        page.wait_for_load_state("networkidle")
        no_horizontal_overflow(page, path)
    page.goto("/console#/admin/channels")
    page.get_by_test_id("channel-add").click()
    no_horizontal_overflow(page, "channel form")
    assert page.errors == []
    ctx.close()
