"""Text a web form cannot store (a NUL byte, which PostgreSQL refuses) is refused at the edge with
a 400 page, on both databases, and nothing is written (issue 10, bad input)."""

from __future__ import annotations

import pytest
import requests

from tests.support.live import ROOT_PASSWORD, LiveServer, uid
from tests.support.web import csrf_of, signed_in


@pytest.mark.parametrize("bad", ["a\x00b", "\x00"])
def test_a_nul_byte_in_a_form_field_is_a_400_page(server: LiveServer, bad: str) -> None:
    http, csrf = signed_in(server.url, "root", ROOT_PASSWORD)
    name = uid("web-nul")
    response = http.post(
        f"{server.url}/-/user_settings/personal_access_tokens",
        data={"name": name + bad, "scopes": "read_api", "authenticity_token": csrf},
        timeout=30,
        allow_redirects=False,
    )
    assert response.status_code == 400, response.text[:300]
    assert "cannot store" in response.text
    assert "text/html" in response.headers["content-type"]
    assert "X-Frame-Options" in response.headers
    tokens = server.root("GET", "/personal_access_tokens", params={"search": name}).json()
    assert tokens == []


def test_a_nul_byte_in_a_field_name_is_a_400_page(server: LiveServer) -> None:
    http, csrf = signed_in(server.url, "root", ROOT_PASSWORD)
    response = http.post(
        f"{server.url}/-/user_settings/personal_access_tokens",
        data={"na\x00me": "x", "authenticity_token": csrf},
        timeout=30,
        allow_redirects=False,
    )
    assert response.status_code == 400, response.text[:300]
    assert "cannot store" in response.text


def test_a_nul_byte_in_the_sign_in_form_is_a_400_page(server: LiveServer) -> None:
    http = requests.Session()
    page = http.get(f"{server.url}/users/sign_in", timeout=30)
    response = http.post(
        f"{server.url}/users/sign_in",
        data={"login": "ro\x00ot", "password": "x\x00", "authenticity_token": csrf_of(page.text)},
        timeout=30,
        allow_redirects=False,
    )
    assert response.status_code == 400, response.text[:300]
    assert "cannot store" in response.text
