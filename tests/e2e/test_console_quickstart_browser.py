"""The console's quick start page in a real browser (Debian's Chromium driven by Playwright):
each of the eight tools seed 000 documents has its own section, in Chinese and in English,
with the gateway's real address in it (with /v1 where the tool wants it, the bare host where
it adds /v1 itself), the key kind to use and, for tools set up by a file or environment
variables, a snippet that the copy button puts on the clipboard; the page fits a phone.

Skipped only when /usr/bin/chromium is missing (``apt-get install -y chromium``)."""

from __future__ import annotations

from typing import Any

import pytest
from console_kit import PHONE, Servers, no_horizontal_overflow, open_page, sign_up

from integration.gateway import Gateway

expect = pytest.importorskip("playwright.sync_api").expect

# slug -> (the heading in Chinese, in English; the key prefix to use; the address form shown)
TOOLS = {
    "nextchat": ("ChatGPT-Next-Web", "ChatGPT-Next-Web", "zp-", "origin"),
    "chatbox": ("Chatbox", "Chatbox", "zp-", "origin"),
    "immersive-translate": ("沉浸式翻译", "Immersive Translate", "zp-", "chat"),
    "openai-translator": ("OpenAI Translator", "OpenAI Translator", "zp-", "origin"),
    "gpt-academic": ("GPT 学术优化", "GPT Academic", "zp-", "chat"),
    "chatgpt-on-wechat": ("chatgpt-on-wechat", "chatgpt-on-wechat", "zk-", "base"),
    "fastgpt": ("FastGPT", "FastGPT", "zk-", "base"),
    "autogpt": ("AutoGPT", "AutoGPT", "zk-", "base"),
}
SNIPPETS = {
    "nextchat": "BASE_URL={origin}\n",
    "gpt-academic": '"{base}/chat/completions"',
    "chatgpt-on-wechat": '"open_ai_api_base": "{base}"',
    "fastgpt": "OPENAI_BASE_URL={base}\n",
    "autogpt": "OPENAI_API_BASE_URL={base}",
}


@pytest.fixture(scope="module")
def gateway(servers: Servers) -> Gateway:
    return servers.gateway("quickstart-e2e")


def _check_sections(page: Any, gw: Gateway, lang: int) -> None:
    origin = gw.base
    forms = {"origin": origin, "base": f"{origin}/v1", "chat": f"{origin}/v1/chat/completions"}
    for slug, (zh, en, prefix, form) in TOOLS.items():
        section = page.get_by_test_id(f"tool-{slug}")
        expect(section).to_be_visible()
        expect(section.locator("h3")).to_contain_text((zh, en)[lang])
        text = section.inner_text()
        assert forms[form] in text, (slug, form, text)
        if form == "origin":  # the tool appends /v1 itself: the address shown has none
            assert f"{origin}/v1 " not in text and f"{origin}/v1，" not in text, (slug, text)
        expect(section.get_by_test_id("tool-key-kind")).to_contain_text(prefix)
        assert len(section.locator("li").all()) >= 2, slug


def test_every_tool_has_a_section_in_chinese_and_english_with_the_gateway_address(
    gateway: Gateway, browser: Any
) -> None:
    gw = gateway
    context, page = open_page(browser, gw, permissions=["clipboard-read", "clipboard-write"])
    sign_up(page, "quickstart_user", "a strong password")

    page.goto("/console#/quickstart")
    expect(page.get_by_test_id("tools")).to_be_visible()
    assert page.evaluate("document.documentElement.lang") == "zh-CN"
    expect(page.get_by_test_id("tool-nextchat")).to_contain_text("接口地址")
    _check_sections(page, gw, 0)
    assert "qt." not in page.get_by_test_id("tools").inner_text()  # every text key found

    # the snippets carry the real address, and the copy button copies exactly the snippet
    base = f"{gw.base}/v1"
    for slug, expected in SNIPPETS.items():
        snippet = page.get_by_test_id(f"snippet-{slug}")
        text = snippet.inner_text()
        assert expected.format(origin=gw.base, base=base).strip() in text, (slug, text)
        button = page.get_by_test_id(f"copy-{slug}")
        button.click()
        expect(button).to_have_text("已复制")
        assert page.evaluate("navigator.clipboard.readText()") == text
    # the tools that take the address in a form field have no snippet
    for slug in ("chatbox", "immersive-translate", "openai-translator"):
        expect(page.get_by_test_id(f"snippet-{slug}")).to_have_count(0)

    page.get_by_test_id("language").select_option("en")
    expect(page.get_by_test_id("tool-nextchat")).to_contain_text("Custom Endpoint")
    assert page.evaluate("document.documentElement.lang") == "en"
    _check_sections(page, gw, 1)
    expect(page.get_by_test_id("copy-autogpt")).to_have_text("Copy")
    assert "qt." not in page.get_by_test_id("tools").inner_text()
    assert page.errors == []
    context.close()


def test_quickstart_tools_fit_a_phone_screen(gateway: Gateway, browser: Any) -> None:
    context, page = open_page(browser, gateway, **PHONE)
    sign_up(page, "quickstart_phone", "a strong password")
    for lang in ("zh-CN", "en"):
        page.get_by_test_id("language").select_option(lang)
        # the switch reloads the texts and redraws the page in the background: wait for it
        expect(page.locator("html")).to_have_attribute("lang", lang)
        page.goto("/console#/quickstart")
        expect(page.get_by_test_id("page-quickstart")).to_be_visible()
        expect(page.get_by_test_id("tool-autogpt")).to_be_visible()
        page.wait_for_load_state("networkidle")
        no_horizontal_overflow(page, lang)
        for slug in TOOLS:
            box = page.get_by_test_id(f"tool-{slug}").bounding_box()
            assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= 390, (
                lang,
                slug,
                box,
            )
    context.close()
