"""Screenshots of the web console for docs/screenshots.md (issue 17).

Starts ``relaygate serve --demo`` on a free loopback port with a temporary data dir, makes a
few requests with the demo user's key through the openai SDK, runs the usage roll-up once (the
workers run it every 5 minutes; see docs/usage-reports.md) so the dashboard's charts have
today's data, then drives Debian's Chromium through Playwright and saves PNGs of the user
pages (as ``demo``) and the admin pages (as ``demo-admin``), in Chinese and in English, to
``docs/screenshots/<lang>/<page>.png``.

    .venv/bin/python scripts/screenshots.py [--out docs/screenshots]

Nothing secret is shot: the keys page shows key hints only, the one-time key dialog is never
opened, the playground is given the key through its input (it then shows a hint only).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import openai
from playwright.sync_api import Page, expect, sync_playwright

from relaygate.storage.db import create_engine
from relaygate.storage.usage_reports import daily_usage, rollup

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [  # as tests/e2e/test_console_browser.py
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
LANGS = ("zh-CN", "en")
DESKTOP = {"width": 1280, "height": 800}
PHONE = {"width": 390, "height": 844}
TIMEOUT = 20_000  # ms

#: (file name, console route) of the pages shot as the demo user
USER_PAGES = [
    ("dashboard", "/"),
    ("keys", "/keys"),
    ("logs", "/logs"),
    ("models", "/models"),
    ("quickstart", "/quickstart"),
    ("playground", "/playground"),
]
#: the same for the demo admin
ADMIN_PAGES = [
    ("admin-channels", "/admin/channels"),
    ("admin-prices", "/admin/prices"),
    ("admin-users", "/admin/users"),
    ("admin-codes", "/admin/codes"),
    ("admin-safety", "/admin/safety"),
    ("admin-status", "/admin/status"),
    ("admin-settings", "/admin/settings"),
    ("admin-audit", "/admin/audit"),
]
PROMPTS = {"zh-CN": "用一句话介绍一下你自己。", "en": "Introduce yourself in one sentence."}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_gateway(data_dir: Path, port: int) -> subprocess.Popen[bytes]:
    env = {**os.environ, "RELAYGATE_DATA_DIR": str(data_dir)}
    log = (data_dir / "serve.log").open("wb")
    proc = subprocess.Popen(
        [
            *(str(ROOT / ".venv/bin/relaygate"), "serve", "--demo", "--host", "127.0.0.1"),
            *("--port", str(port), "--workers", "1"),
        ],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        cwd=data_dir,
    )
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            sys.exit(f"relaygate serve --demo exited; see {data_dir / 'serve.log'}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/console", timeout=2).status_code == 200:
                return proc
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    proc.terminate()
    sys.exit("relaygate serve --demo did not answer within 90 s")


def make_traffic(base: str, key: str) -> int:
    """A few chat requests with the demo key; returns how many were made."""
    client = openai.OpenAI(base_url=f"{base}/v1", api_key=key, max_retries=2)
    n = 0
    for model, count in (("emulator-gpt", 5), ("emulator-claude", 3)):
        for i in range(count):
            client.chat.completions.create(
                model=model,
                messages=[{"role": "user", "content": f"Hello number {i}"}],
                max_tokens=64,
            )
            n += 1
    stream = client.chat.completions.create(
        model="emulator-gpt",
        messages=[{"role": "user", "content": "Stream a short answer"}],
        stream=True,
    )
    for _ in stream:
        pass
    return n + 1


def roll_up(data_dir: Path, requests: int) -> None:
    """Run the usage roll-up the workers run every 5 minutes (requestlog/retention.py) once
    the request-log writer has committed the rows, as tests/e2e/test_console_extras_browser.py
    does, so the dashboard's charts need not wait."""

    async def once() -> int:
        engine = create_engine(f"sqlite+aiosqlite:///{data_dir}/relaygate.db")
        try:
            today = datetime.now(UTC).date()
            await rollup(engine, today)
            rows = await daily_usage(engine, group_by="model", start=today, end=today)
            return sum(int(r["requests"]) for r in rows)
        finally:
            await engine.dispose()

    deadline = time.monotonic() + 30
    while asyncio.run(once()) < requests:
        if time.monotonic() > deadline:
            sys.exit("the requests never reached the usage tables")
        time.sleep(0.5)


#: the demo key and passwords: checked absent from every page before it is shot
SECRETS: list[str] = []


def settle(page: Page) -> None:
    page.wait_for_load_state("networkidle")
    page.wait_for_timeout(600)  # Chart.js animations and late renders
    html = page.content()
    for value in page.locator("input, textarea").evaluate_all("es => es.map(e => e.value)"):
        html += "\n" + str(value)
    leaked = [s for s in SECRETS if s in html]
    if leaked:
        sys.exit(f"a secret is on the page {page.url}; not shooting it")


def sign_in(page: Page, base: str, username: str, password: str) -> None:
    page.goto(f"{base}/console#/sign-in")
    page.get_by_test_id("username").fill(username)
    page.get_by_test_id("password").fill(password)
    page.get_by_test_id("submit").click()
    expect(page.get_by_test_id("page-dashboard")).to_be_visible()
    settle(page)


def shoot(page: Page, base: str, route: str, path: Path) -> None:
    page.goto(f"{base}/console#{route}")
    test_id = route.strip("/").replace("/", "-") or "dashboard"
    expect(page.get_by_test_id(f"page-{test_id}")).to_be_visible()
    settle(page)
    if route == "/":
        page.wait_for_function(
            "document.querySelectorAll('canvas').length > 0"
            " && [...document.querySelectorAll('canvas')].every(c => c.width > 0)"
        )
        page.wait_for_timeout(900)
    # the dashboard is shot whole (both charts); the other pages as the window shows them
    page.screenshot(path=str(path), full_page=route == "/")
    print(f"  {path.relative_to(ROOT) if path.is_relative_to(ROOT) else path}")


def new_page(browser: Any, lang: str, viewport: dict[str, int]) -> Page:
    ctx = browser.new_context(viewport=viewport, device_scale_factor=1, locale=lang)
    ctx.add_init_script(f"localStorage.setItem('rg_lang', {json.dumps(lang)})")
    ctx.set_default_timeout(TIMEOUT)
    page: Page = ctx.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.errors = errors  # type: ignore[attr-defined]
    return page


def playground(page: Page, base: str, key: str, lang: str, path: Path) -> None:
    page.goto(f"{base}/console#/playground")
    expect(page.get_by_test_id("page-playground")).to_be_visible()
    settle(page)
    model = page.get_by_test_id("pg-model")
    if model.evaluate("e => e.tagName") == "SELECT":
        model.select_option("emulator-gpt")
    else:
        model.fill("emulator-gpt")
    page.get_by_test_id("pg-key").fill(key)
    page.get_by_test_id("pg-prompt").fill(PROMPTS[lang])
    page.get_by_test_id("pg-send").click()
    expect(page.get_by_test_id("pg-usage")).to_be_visible()
    assert key not in page.get_by_test_id("page-playground").inner_text()
    settle(page)
    page.screenshot(path=str(path), full_page=True)  # the answer is below the form
    print(f"  {path.relative_to(ROOT) if path.is_relative_to(ROOT) else path}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "screenshots")
    out: Path = parser.parse_args().out.resolve()
    with tempfile.TemporaryDirectory(prefix="rg-shots-") as tmp:
        data_dir = Path(tmp)
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        proc = start_gateway(data_dir, port)
        try:
            passwords = json.loads((data_dir / "console-demo.json").read_text())
            key = (data_dir / "demo-key.txt").read_text().strip()
            SECRETS.extend([key, *passwords.values()])
            roll_up(data_dir, make_traffic(base, key))
            with sync_playwright() as pw:
                browser = pw.chromium.launch(
                    executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True
                )
                errors: list[str] = []
                for lang in LANGS:
                    folder = out / lang
                    folder.mkdir(parents=True, exist_ok=True)
                    print(lang)
                    page = new_page(browser, lang, DESKTOP)
                    page.goto(f"{base}/console#/sign-in")
                    expect(page.get_by_test_id("signin-form")).to_be_visible()
                    settle(page)
                    page.screenshot(path=str(folder / "signin.png"))
                    print(f"  {folder / 'signin.png'}")
                    sign_in(page, base, "demo", passwords["demo"])
                    for name, route in USER_PAGES:
                        if name == "playground":
                            playground(page, base, key, lang, folder / f"{name}.png")
                        else:
                            shoot(page, base, route, folder / f"{name}.png")
                    errors += page.errors  # type: ignore[attr-defined]
                    page.context.close()

                    phone = new_page(browser, lang, PHONE)
                    sign_in(phone, base, "demo", passwords["demo"])
                    shoot(phone, base, "/", folder / "dashboard-phone.png")
                    errors += phone.errors  # type: ignore[attr-defined]
                    phone.context.close()

                    admin = new_page(browser, lang, DESKTOP)
                    sign_in(admin, base, "demo-admin", passwords["demo-admin"])
                    for name, route in ADMIN_PAGES:
                        shoot(admin, base, route, folder / f"{name}.png")
                    errors += admin.errors  # type: ignore[attr-defined]
                    admin.context.close()
                browser.close()
            if errors:
                sys.exit("errors in the pages:\n" + "\n".join(errors))
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()


if __name__ == "__main__":
    main()
