"""The console's dashboard charts, playground and runtime settings page in a real browser
(Debian's Chromium driven by Playwright, as in test_console_browser.py), against a real
gateway and the OpenAI emulator: a user creates a key, chats with a model in the playground
(the answer streams in chunk by chunk, usage is shown, Stop aborts a slow answer, a bad key
shows the gateway's error, the key never goes to /console/api nor shows in full), then sees
the last 30 days as charts (Chart.js draws non-zero stacked bars; cost/tokens toggle; a
phone-sized screen); an admin turns the envelope off and sign-up off on the settings page
and both take effect, then resets them.

Skipped only when /usr/bin/chromium is missing (``apt-get install -y chromium``)."""

from __future__ import annotations

import asyncio
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from console_kit import Servers, make_admin, open_page, sign_up, user_id

from integration.gateway import Gateway
from relaygate.emulator import EmulatorServer
from relaygate.storage.db import create_engine
from relaygate.storage.usage_reports import daily_usage, rollup

expect = pytest.importorskip("playwright.sync_api").expect
REPLY = "Hello from the relaygate emulator."
UPSTREAM_KEY = "sk-up-extras"


@pytest.fixture(scope="module")
def upstream(servers: Servers) -> EmulatorServer:
    return servers.emulator(UPSTREAM_KEY)


@pytest.fixture(scope="module")
def gateway(servers: Servers, upstream: EmulatorServer) -> Gateway:
    return servers.openai_gateway(
        "console-extras-e2e", upstream, UPSTREAM_KEY, ["gpt-4o-mini", "gpt-4o"]
    )


def _signed_up(gw: Gateway, browser: Any, username: str, **context: Any) -> tuple[Any, Any]:
    ctx, page = open_page(browser, gw, **context)
    sign_up(page, username, "a strong password")
    return ctx, page


def _roll_up(gw: Gateway, user_id: int, requests: int) -> None:
    """Run the usage rollup the workers run every 5 minutes (requestlog/retention.py) once
    the request-log writer has committed the user's rows, so the charts need not wait."""

    async def run() -> int:
        engine = create_engine(f"sqlite+aiosqlite:///{gw.env['RELAYGATE_DATA_DIR']}/relaygate.db")
        try:
            today = datetime.now(UTC).date()
            await rollup(engine, today)
            rows = await daily_usage(
                engine, group_by="model", start=today, end=today, user_id=user_id
            )
            return sum(int(r["requests"]) for r in rows)
        finally:
            await engine.dispose()

    def counted() -> int:  # in a thread of its own: Playwright's loop runs in this one
        with ThreadPoolExecutor(1) as pool:
            return pool.submit(asyncio.run, run()).result()

    deadline = time.monotonic() + 20
    while counted() < requests:
        assert time.monotonic() < deadline, "the requests never reached the usage tables"
        time.sleep(0.3)


def _chart_sums(page: Any, testid: str) -> list[float]:
    """Each dataset's total of the Chart.js chart drawn on the canvas ``testid``."""
    sums: list[float] = page.evaluate(
        """(id) => {
            const canvas = document.querySelector(`[data-testid="${id}"]`);
            const chart = canvas && window.Chart.getChart(canvas);
            if (!chart) return [];
            return chart.data.datasets.map((d) => d.data.reduce((a, b) => a + Number(b), 0));
        }""",
        testid,
    )
    return sums


def test_playground_streams_and_the_dashboard_charts_the_usage(
    gateway: Gateway, upstream: EmulatorServer, browser: Any
) -> None:
    gw = gateway
    ctx, page = _signed_up(gw, browser, "extras_user")
    uid = user_id(gw, "extras_user")
    gw.top_up(uid, "5")
    seen_console: list[str] = []

    def watch(request: Any) -> None:
        if "/console/api" in request.url:
            seen_console.append(str(request.headers) + (request.post_data or ""))

    page.on("request", watch)

    # before any use: the usage card says so
    page.reload()
    expect(page.get_by_test_id("no-usage")).to_be_visible()

    # --- the user creates a key on the keys page ---
    page.get_by_test_id("nav-keys").click()
    page.get_by_test_id("key-name").fill("playground")
    page.get_by_test_id("create-key").click()
    key = page.get_by_test_id("new-key").inner_text().strip()
    assert key.startswith("zk-")

    # --- the playground: the answer streams in, chunk by chunk ---
    upstream.configure(chunks=6, chunk_interval_ms=250)
    page.get_by_test_id("nav-playground").click()
    expect(page.get_by_test_id("page-playground")).to_be_visible()
    page.get_by_test_id("pg-model").select_option("gpt-4o-mini")
    page.get_by_test_id("pg-key").fill(key)
    page.get_by_test_id("pg-system").fill("You are terse.")
    page.get_by_test_id("pg-temperature").fill("0.3")
    page.get_by_test_id("pg-max-tokens").fill("64")
    page.get_by_test_id("pg-prompt").fill("Say hello")
    page.get_by_test_id("pg-send").click()
    output = page.get_by_test_id("pg-output")
    expect(output).not_to_have_text("")  # the first chunks are shown ...
    partial = output.inner_text()
    assert partial != REPLY and REPLY.startswith(partial), partial  # ... before the last one
    expect(page.get_by_test_id("pg-stop")).to_be_enabled()
    expect(output).to_have_text(REPLY)
    expect(page.get_by_test_id("pg-usage")).to_contain_text("Token")
    expect(page.get_by_test_id("pg-stop")).to_be_disabled()
    sent = upstream.stats.last_body  # what the playground asked for, as relayed
    assert sent["messages"] == [
        {"role": "system", "content": "You are terse."},
        {"role": "user", "content": "Say hello"},
    ]
    assert (sent["temperature"], sent["max_tokens"], sent["stream"]) == (0.3, 64, True)

    # the key: kept in this tab's sessionStorage, shown only as a hint, never sent to the console
    assert page.evaluate("sessionStorage.getItem('rg_playground_key')") == key
    expect(page.get_by_test_id("pg-key-hint")).to_contain_text(key[:7])
    assert key not in page.get_by_test_id("page-playground").inner_text()
    assert page.get_by_test_id("pg-key").input_value() == ""
    assert not any(key in seen for seen in seen_console)

    # not streamed: the whole answer at once
    upstream.configure(chunks=5, chunk_interval_ms=0)
    page.get_by_test_id("pg-stream").uncheck()
    page.get_by_test_id("pg-prompt").fill("Again")
    page.get_by_test_id("pg-send").click()
    expect(page.get_by_test_id("pg-output").nth(1)).to_have_text(REPLY)
    expect(page.get_by_test_id("pg-usage")).to_be_visible()

    # Stop aborts a slow answer, and the gateway ends the upstream stream
    gone = upstream.stats.disconnected
    upstream.configure(chunks=8, chunk_interval_ms=1500)
    page.get_by_test_id("pg-stream").check()
    page.get_by_test_id("pg-prompt").fill("Slowly")
    page.get_by_test_id("pg-send").click()
    expect(page.get_by_test_id("pg-output").nth(2)).not_to_have_text("")
    page.get_by_test_id("pg-stop").click()
    expect(page.get_by_test_id("pg-stopped")).to_be_visible()
    assert page.get_by_test_id("pg-output").nth(2).inner_text() != REPLY
    assert upstream.stats.wait_for(lambda st: st.disconnected > gone, timeout=10)
    upstream.configure(chunks=5, chunk_interval_ms=0)

    # a bad key: the gateway's own message
    page.get_by_test_id("pg-forget-key").click()
    assert page.evaluate("sessionStorage.getItem('rg_playground_key')") is None
    page.get_by_test_id("pg-key").fill("zk-not-a-real-key")
    page.get_by_test_id("pg-prompt").fill("Hi")
    page.get_by_test_id("pg-send").click()
    expect(page.get_by_test_id("pg-error")).to_contain_text("Invalid API key")

    # --- the dashboard: the last 30 days as charts ---
    _roll_up(gw, uid, 2)
    page.get_by_test_id("nav-dashboard").click()
    expect(page.get_by_test_id("usage-chart")).to_be_visible()
    page.wait_for_function(
        "() => window.Chart.getChart(document.querySelector('[data-testid=usage-chart]'))"
    )
    cost = _chart_sums(page, "usage-chart")
    assert cost and sum(cost) > 0, cost  # stacked cost per day, by model
    chart_info = page.evaluate(
        """() => {
            const c = window.Chart.getChart(document.querySelector('[data-testid=usage-chart]'));
            return { labels: c.data.labels.length, type: c.config.type,
                     stacked: Boolean(c.options.scales.x.stacked),
                     models: c.data.datasets.map((d) => d.label) };
        }"""
    )
    assert chart_info["labels"] == 30 and chart_info["type"] == "bar" and chart_info["stacked"]
    assert chart_info["models"] == ["gpt-4o-mini"]
    requests = _chart_sums(page, "requests-chart")
    assert sum(requests) >= 2, requests
    page.get_by_test_id("usage-metric-tokens").click()
    tokens = _chart_sums(page, "usage-chart")
    assert tokens and sum(tokens) > sum(cost), (tokens, cost)  # now tokens, not money
    expect(page.get_by_test_id("usage-totals")).to_contain_text("CNY")

    # readable on a phone: nothing wider than the screen
    page.set_viewport_size({"width": 375, "height": 740})
    page.reload()
    expect(page.get_by_test_id("usage-chart")).to_be_visible()
    page.wait_for_function(
        "() => window.Chart.getChart(document.querySelector('[data-testid=usage-chart]'))"
    )
    width = page.evaluate(
        "() => document.querySelector('[data-testid=usage-chart]').getBoundingClientRect().right"
    )
    assert width <= 375, width
    assert page.evaluate("document.documentElement.scrollWidth") <= 375
    assert page.errors == []
    ctx.close()


def test_admin_changes_runtime_settings_and_they_take_effect(
    gateway: Gateway, browser: Any
) -> None:
    gw = gateway
    ctx, page = _signed_up(gw, browser, "extras_admin")
    make_admin(gw, page, "extras_admin")
    page.get_by_test_id("nav-admin-settings").click()
    expect(page.get_by_test_id("page-admin-settings")).to_be_visible()
    expect(page.get_by_test_id("default-envelope")).to_be_visible()
    assert httpx.get(gw.base + "/readyz", timeout=10).json().get("code") == 0

    # the envelope off and sign-up off, saved together
    page.get_by_test_id("setting-envelope").select_option("false")
    page.get_by_test_id("setting-console_signup").select_option("false")
    page.get_by_test_id("save-settings").click()
    expect(page.get_by_test_id("settings-saved")).to_be_visible()
    expect(page.get_by_test_id("overridden-envelope")).to_be_visible()
    expect(page.get_by_test_id("overridden-console_signup")).to_be_visible()
    expect(page.get_by_test_id("default-usd_rate")).to_be_visible()
    assert "code" not in httpx.get(gw.base + "/readyz", timeout=10).json()
    refused = httpx.post(
        gw.base + "/console/api/sign-up",
        json={"username": "too_late", "password": "a strong password"},
        timeout=10,
    )
    assert refused.status_code == 403 and refused.json()["error"]["code"] == "signup_disabled"

    # a hostile rate is refused with the gateway's message; nothing changes
    page.get_by_test_id("setting-usd_rate").fill("-3")
    page.get_by_test_id("save-settings").click()
    expect(page.get_by_test_id("settings-error")).to_contain_text("usd_rate")
    expect(page.get_by_test_id("default-usd_rate")).to_be_visible()

    # reset to the environment's values
    page.reload()
    page.get_by_test_id("reset-envelope").click()
    expect(page.get_by_test_id("default-envelope")).to_be_visible()
    page.get_by_test_id("reset-console_signup").click()
    expect(page.get_by_test_id("default-console_signup")).to_be_visible()
    assert httpx.get(gw.base + "/readyz", timeout=10).json().get("code") == 0
    config = httpx.get(gw.base + "/console/api/config", timeout=10).json()["data"]
    assert config["signup"] is True
    assert page.errors == []
    ctx.close()
