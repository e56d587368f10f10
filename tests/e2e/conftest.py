"""Fixtures of the console's browser tests: Debian's Chromium driven by Playwright (its own
browser download is not used) and the servers of a test module (console_kit.Servers).

Skipped only when /usr/bin/chromium is missing (``apt-get install -y chromium``) — on a
developer machine; never in CI (.ci/run installs it), where a missing browser must fail
rather than hide the console's tests."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.register_assert_rewrite("console_kit")

from console_kit import CHROMIUM, CHROMIUM_ARGS, Servers  # noqa: E402 - after the rewrite

HERE = Path(__file__).parent
NEEDS_CHROMIUM = pytest.mark.skipif(
    not os.path.exists(CHROMIUM) and not os.environ.get("CI"),
    reason=f"{CHROMIUM} is not installed (apt-get install -y chromium)",
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:  # every item of the run comes here: mark only this folder's
        if item.path.is_relative_to(HERE):
            item.add_marker(NEEDS_CHROMIUM)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            yield b
        finally:
            b.close()


@pytest.fixture(scope="module")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Servers]:
    started = Servers(tmp_path_factory)
    try:
        yield started
    finally:
        started.close()
