"""Browser tests: Playwright for Python driving Debian's headless Chromium against the live server.

The browser is the one the Makefile installs from Debian (chromium-headless-shell); Playwright
never downloads one. It is started once per test module (Playwright's sync API keeps an event
loop of its own while it runs, so it is not left running under other modules' tests).

The live-server fixtures (`server`, `factory`) come from tests/support/fixtures.py, loaded by
tests/conftest.py; the page helpers (sign in, CSRF) are in tests/browser/pages.py.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, BrowserContext, Page, sync_playwright

# Debian's real binaries (the /usr/bin names are shell wrappers); the headless shell is lighter.
CHROMIUM_CANDIDATES = (
    "/usr/lib/chromium/chromium-headless-shell",
    "/usr/lib/chromium/chromium",
)
# Keep the browser off the network: no DNS for anything but this machine.
CHROMIUM_ARGS = [
    "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE localhost, EXCLUDE 127.0.0.1",
    "--disable-gpu",
    "--disable-quic",
]


def chromium_path() -> str:
    configured = os.environ.get("KEYCREW_TEST_CHROMIUM")
    for candidate in (configured, *CHROMIUM_CANDIDATES):
        if candidate and Path(candidate).exists():
            return candidate
    found = shutil.which("chromium-headless-shell") or shutil.which("chromium")
    if found:
        return found
    raise RuntimeError("Debian's chromium-headless-shell is not installed: run `make test` (it installs it)")


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=chromium_path(), headless=True, args=CHROMIUM_ARGS
        )
        try:
            yield launched
        finally:
            launched.close()


@pytest.fixture
def browser_context(browser: Browser, server: Any) -> Iterator[BrowserContext]:
    context = browser.new_context(base_url=server.url, viewport={"width": 1280, "height": 900})
    context.set_default_timeout(15_000)
    try:
        yield context
    finally:
        context.close()


@pytest.fixture
def page(browser_context: BrowserContext) -> Page:
    return browser_context.new_page()


@pytest.fixture(scope="session", autouse=True)
def _token_hygiene(token_hygiene: None) -> None:
    """Every browser test runs under the session's token recording and its final check
    (tests/support/hygiene.py)."""
