"""Browser fixtures: Playwright for Python driving Debian's headless Chromium against the live server.

The browser is the one the Makefile installs from Debian (chromium-headless-shell); Playwright
never downloads one. It is started once per test module (Playwright's sync API keeps an event
loop of its own while it runs, so it is not left running under other modules' tests).
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from playwright.sync_api import Browser, BrowserContext, Page, expect, sync_playwright

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


def sign_in(page: Page, login: str, password: str) -> None:
    """Sign in through the form and wait for the page it leads to."""
    page.goto("/users/sign_in")
    page.get_by_label("Username or primary email").fill(login)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_load_state()


def signed_in(page: Page, login: str, password: str) -> Page:
    sign_in(page, login, password)
    expect(page.get_by_role("button", name="Sign out")).to_be_visible()
    return page


def csrf_of(html: str) -> str:
    match = re.search(r'name="authenticity_token" value="([^"]+)"', html)
    assert match, "the page carries a CSRF token"
    return match.group(1)


def session_for(server: Any, login: str, password: str) -> requests.Session:
    """A requests session signed in through the form (for checks a browser cannot make)."""
    http = requests.Session()
    form = http.get(f"{server.url}/users/sign_in", timeout=30)
    response = http.post(
        f"{server.url}/users/sign_in",
        data={"login": login, "password": password, "authenticity_token": csrf_of(form.text)},
        timeout=30,
        allow_redirects=False,
    )
    assert response.status_code == 303, response.text
    return http


__all__ = ["browser", "browser_context", "csrf_of", "page", "session_for", "sign_in", "signed_in"]
