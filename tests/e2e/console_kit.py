"""What the console's browser tests share: Debian's Chromium and how it is launched, the
servers a test module starts (the gateway, the OpenAI emulator), and the steps every test
takes in the page (open a context on the gateway, sign up, become admin, check that nothing
is wider than a phone's screen).

Playwright is imported inside the helpers, so that a test module without it is skipped by
its own ``pytest.importorskip`` rather than failing on this module's import."""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from integration.gateway import Gateway
from relaygate.emulator import EmulatorServer, Knobs

CHROMIUM = "/usr/bin/chromium"  # Debian's; Playwright's own browser download is not used
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
TIMEOUT = 15_000  # ms, for anything the page shows
OPENAI_KEY = "sk-up-openai"  # the OpenAI emulator's key, unless a module wants its own
PHONE: dict[str, Any] = {"viewport": {"width": 390, "height": 844}, "is_mobile": True}
OVERFLOW = "document.documentElement.scrollWidth - document.documentElement.clientWidth"


class Servers:
    """The servers of one test module: started on demand, stopped at the module's end in
    the reverse order of their start (a gateway before the emulators it was pointed at)."""

    def __init__(self, tmp_path_factory: pytest.TempPathFactory) -> None:
        self._tmp = tmp_path_factory
        self._stack = contextlib.ExitStack()

    def enter(self, server: Any) -> Any:
        """Any context-managed server (an OAuth emulator), left with the others."""
        return self._stack.enter_context(server)

    def emulator(self, api_key: str = OPENAI_KEY) -> EmulatorServer:
        """The OpenAI emulator, a real HTTP server on loopback, taking ``api_key``."""
        srv = EmulatorServer("openai", knobs=Knobs(api_key=api_key))
        srv.start()
        self._stack.callback(srv.stop)
        return srv

    def gateway(self, name: str, env: dict[str, str] | None = None) -> Gateway:
        """A gateway process with a data directory of its own, without channels."""
        gw = Gateway(Path(self._tmp.mktemp(name)), env).start()
        self._stack.callback(gw.stop)
        return gw

    def openai_gateway(
        self,
        name: str,
        upstream: EmulatorServer | None = None,
        api_key: str = OPENAI_KEY,
        models: Sequence[str] = ("gpt-4o-mini",),
    ) -> Gateway:
        """A gateway whose one channel, ``openai``, points at the OpenAI emulator
        (``upstream``, or one started here with ``api_key``)."""
        upstream = upstream or self.emulator(api_key)
        gw = self.gateway(name)
        gw.create_channel(
            name="openai",
            provider="openai_compat",
            profile="openai",
            base_url=upstream.base_url,
            keys=[api_key],
            models=list(models),
        )
        return gw

    def close(self) -> None:
        self._stack.close()


def open_page(browser: Any, gw: Gateway, **context: Any) -> tuple[Any, Any]:
    """A new browser context on the gateway (with ``context``'s options, the page timeout
    set) and its page; the page's errors are collected on ``page.errors`` and dialogs
    (confirmations) accepted."""
    ctx = browser.new_context(base_url=gw.base, **context)
    ctx.set_default_timeout(TIMEOUT)
    page = ctx.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on("dialog", lambda dialog: dialog.accept())
    page.errors = errors
    return ctx, page


def sign_up(page: Any, username: str, password: str) -> None:
    """A new console user through the sign-up page; the dashboard shows."""
    from playwright.sync_api import expect

    page.goto("/console#/sign-up")
    page.get_by_test_id("username").fill(username)
    page.get_by_test_id("password").fill(password)
    page.get_by_test_id("submit").click()
    expect(page.get_by_test_id("page-dashboard")).to_be_visible()


def user_id(gw: Gateway, username: str) -> int:
    users = gw.admin("GET", f"/users?q={username}")["data"]
    return int(next(u["id"] for u in users if u["username"] == username))


def make_admin(gw: Gateway, page: Any, username: str, shows: str | None = None) -> None:
    """The user made admin through the admin API (as the admin bridge's tests do), the
    page reloaded; with ``shows``, that test id (an admin menu entry) is visible."""
    from playwright.sync_api import expect

    gw.admin("PATCH", f"/users/{user_id(gw, username)}", {"role": "admin"})
    page.reload()
    if shows is not None:
        expect(page.get_by_test_id(shows)).to_be_visible()


def no_horizontal_overflow(page: Any, where: object) -> None:
    """Nothing on the page is wider than the screen (``where`` names the place)."""
    overflow = page.evaluate(OVERFLOW)
    assert overflow <= 0, (where, overflow)
