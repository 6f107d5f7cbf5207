"""Driving the web UI's forms over plain HTTP (requests): the CSRF token of a page, signing in."""

from __future__ import annotations

import re

import requests


def csrf_of(html: str) -> str:
    """The CSRF token a page's forms carry."""
    match = re.search(r'name="authenticity_token" value="([^"]+)"', html)
    assert match, "the page carries a CSRF token"
    return match.group(1)


def sign_in_form(url: str) -> tuple[requests.Session, str]:
    """A visitor who opened the sign-in form: its CSRF cookie and the form's token."""
    http = requests.Session()
    page = http.get(f"{url}/users/sign_in", timeout=30)
    assert page.status_code == 200
    return http, csrf_of(page.text)


def sign_in(url: str, login: str, password: str) -> tuple[requests.Session, int]:
    """Post the sign-in form: the visitor's session and the answer's status (303 when signed in)."""
    http, token = sign_in_form(url)
    response = http.post(
        f"{url}/users/sign_in",
        data={"login": login, "password": password, "authenticity_token": token},
        timeout=30,
        allow_redirects=False,
    )
    return http, response.status_code


def signed_in(url: str, login: str, password: str) -> tuple[requests.Session, str]:
    """A session signed in through the form, and the CSRF token of its pages."""
    http, status = sign_in(url, login, password)
    assert status == 303, f"sign-in answered {status}"
    return http, csrf_of(http.get(f"{url}/-/user_settings/personal_access_tokens", timeout=30).text)
