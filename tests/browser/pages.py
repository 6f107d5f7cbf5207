"""Page helpers for the browser tests: sign in through the form, read a form's CSRF token."""

from __future__ import annotations

import re
from typing import Any

import requests
from playwright.sync_api import Page, expect


def sign_in(page: Page, login: str, password: str) -> None:
    """Sign in through the form and wait for the page it leads to."""
    page.goto("/users/sign_in")
    page.get_by_label("Username or primary email").fill(login)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_load_state()


def signed_in(page: Page, login: str, password: str) -> Page:
    """Sign in and check it worked: Sign out is on screen (on a phone, behind the top bar's Menu)."""
    sign_in(page, login, password)
    sign_out = page.get_by_role("button", name="Sign out")
    menu = page.get_by_role("button", name="Menu", exact=True)
    if menu.is_visible():
        menu.click()
        expect(sign_out).to_be_visible()
        page.keyboard.press("Escape")
        expect(menu).to_have_attribute("aria-expanded", "false")
    else:
        expect(sign_out).to_be_visible()
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
