"""Two-factor sign-in in a real browser (Debian's Chromium driven by Playwright), on a
phone's 390 px screen: a user turns TOTP on from the settings page, sees the QR code (read
back from the pixels the browser drew, with zxing-cpp, to the same otpauth:// URI as the set-up
link), confirms with the app's code, saves the 10 recovery codes shown once, signs out, signs in
with a recovery code instead of the app's code, and finds one code fewer on the settings page;
the same code is refused the second time.

Skipped only when /usr/bin/chromium is missing (``apt-get install -y chromium``)."""

from __future__ import annotations

import re
import uuid
from pathlib import Path
from typing import Any

import pyotp
import pytest
import zxingcpp
from console_kit import PHONE, Servers, no_horizontal_overflow, open_page, sign_up

from integration.gateway import Gateway

expect = pytest.importorskip("playwright.sync_api").expect

PASSWORD = "two factor pass"
CODE_RE = re.compile(r"[2-9a-z]{5}-[2-9a-z]{5}")
SIDE = 400  # px: the QR image is drawn this big on a canvas to be read back

#: the <img>'s pixels, grey, drawn on a canvas (a tainted canvas would throw here)
PIXELS_JS = f"""(img) => {{
  const c = document.createElement("canvas");
  c.width = {SIDE}; c.height = {SIDE};
  const g = c.getContext("2d");
  g.imageSmoothingEnabled = false;
  g.drawImage(img, 0, 0, {SIDE}, {SIDE});
  const rgba = g.getImageData(0, 0, {SIDE}, {SIDE}).data;
  const grey = new Array({SIDE} * {SIDE});
  for (let i = 0; i < grey.length; i++) grey[i] = Math.round(
    (rgba[4 * i] + rgba[4 * i + 1] + rgba[4 * i + 2]) / 3);
  return grey;
}}"""


@pytest.fixture(scope="module")
def gateway(servers: Servers) -> Gateway:
    return servers.gateway("console-2fa-e2e")


def _read_qr(page: Any) -> str:
    img = page.get_by_test_id("totp-qr")
    expect(img).to_be_visible()
    assert img.evaluate("(i) => i.complete && i.naturalWidth > 0"), "the QR image did not load"
    box = img.bounding_box()
    assert box is not None and box["width"] >= 150 and box["x"] + box["width"] <= 390
    grey = bytearray(img.evaluate(PIXELS_JS))
    found = zxingcpp.read_barcodes(memoryview(grey).cast("B", (SIDE, SIDE)))
    assert len(found) == 1, f"{len(found)} QR codes read from the page"
    return str(found[0].text)


def _sign_in(page: Any, username: str) -> None:
    page.goto("/console#/sign-in")
    page.get_by_test_id("username").fill(username)
    page.get_by_test_id("password").fill(PASSWORD)
    page.get_by_test_id("submit").click()
    expect(page.get_by_test_id("totp-form")).to_be_visible()


def test_turn_on_scan_save_codes_and_sign_in_with_one(gateway: Gateway, browser: Any) -> None:
    username = f"tf{uuid.uuid4().hex[:8]}"
    context, page = open_page(browser, gateway, **PHONE)
    try:
        sign_up(page, username, PASSWORD)
        page.goto("/console#/settings")
        card = page.get_by_test_id("totp-card")
        expect(card).to_be_visible()
        page.get_by_test_id("totp-setup").click()

        # the QR code: what an authenticator app reads is the set-up link, with the secret
        uri = _read_qr(page)
        assert uri.startswith(f"otpauth://totp/relaygate:{username}?")
        secret = page.get_by_test_id("totp-secret").inner_text().strip()
        assert f"secret={secret}" in uri
        assert page.get_by_test_id("totp-uri").text_content() == uri
        no_horizontal_overflow(page, "TOTP set-up")

        page.get_by_test_id("totp-confirm-code").fill(pyotp.TOTP(secret).now())
        page.get_by_test_id("totp-confirm").click()

        # the recovery codes, shown once, with copy and download
        expect(page.get_by_test_id("recovery-codes")).to_be_visible()
        codes = [c.strip() for c in page.get_by_test_id("recovery-list").inner_text().split()]
        assert len(codes) == 10 and len(set(codes)) == 10
        assert all(CODE_RE.fullmatch(c) for c in codes), codes
        download = page.get_by_test_id("recovery-download")
        assert download.get_attribute("href").startswith("blob:")
        assert download.get_attribute("download") == "relaygate-recovery-codes.txt"
        expect(page.get_by_test_id("recovery-copy")).to_be_visible()
        no_horizontal_overflow(page, "recovery codes shown")
        with page.expect_download() as saved:
            download.click()
        text = Path(saved.value.path()).read_text(encoding="utf-8")
        assert all(c in text for c in codes) and username in text
        page.get_by_test_id("recovery-done").click()
        expect(page.get_by_test_id("totp-on")).to_be_visible()
        expect(page.get_by_test_id("recovery-left")).to_have_text("剩余 10 / 10 个恢复码。")
        assert page.get_by_test_id("recovery-list").count() == 0  # not shown again
        no_horizontal_overflow(page, "settings with two-factor on")

        # sign out, sign in with a recovery code in place of the app's code
        page.get_by_test_id("sign-out").click()
        expect(page.get_by_test_id("signin-form")).to_be_visible()
        _sign_in(page, username)
        expect(page.get_by_test_id("totp-recovery-hint")).to_contain_text("恢复码")
        no_horizontal_overflow(page, "the TOTP step")
        page.get_by_test_id("totp-use-recovery").click()
        page.get_by_test_id("totp-code").fill(codes[0])
        submit = page.get_by_test_id("totp-submit")
        expect(submit).to_have_text("验证")
        submit.click()
        expect(page.get_by_test_id("page-dashboard")).to_be_visible()
        expect(page.get_by_test_id("whoami")).to_have_text(username)

        page.goto("/console#/settings")
        expect(page.get_by_test_id("recovery-left")).to_have_text("剩余 9 / 10 个恢复码。")

        # the same code does not sign in twice (in English this time)
        page.get_by_test_id("language").select_option("en")
        page.get_by_test_id("sign-out").click()
        _sign_in(page, username)
        expect(page.get_by_test_id("totp-recovery-hint")).to_contain_text("recovery codes")
        page.get_by_test_id("totp-use-recovery").click()
        page.get_by_test_id("totp-code").fill(codes[0])
        expect(page.get_by_test_id("totp-submit")).to_have_text("Verify")
        page.get_by_test_id("totp-submit").click()
        expect(page.get_by_test_id("totp-form").locator(".msg.error")).to_be_visible()
        assert page.get_by_test_id("page-dashboard").count() == 0
        assert page.errors == []
    finally:
        context.close()
