"""Where the importer's git goes with the source token: only the source's own host."""

from __future__ import annotations

import pytest

from keycrew.automation.direct_transfer.repository import _clean_url
from keycrew.imports.source import SourceProtocolError

SOURCE = "https://old.example.com"


def test_the_source_hosts_repository_url_is_kept_without_credentials() -> None:
    project = {"http_url_to_repo": "https://someone:secret@old.example.com/team/app.git"}
    assert _clean_url(project, SOURCE) == "https://old.example.com/team/app.git"
    assert _clean_url({"http_url_to_repo": "http://OLD.example.com:8080/a/b.git"}, SOURCE) == (
        "http://OLD.example.com:8080/a/b.git"
    )


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("https://169.254.169.254/latest/meta-data.git", "another host (169.254.169.254)"),
        ("https://old.example.com.evil.test/a.git", "another host"),
        ("ssh://old.example.com/a.git", "not http(s)"),
        ("", "did not give"),
    ],
)
def test_a_repository_url_elsewhere_is_refused(url: str, says: str) -> None:
    with pytest.raises(SourceProtocolError) as raised:
        _clean_url({"http_url_to_repo": url}, SOURCE)
    assert says in raised.value.message
