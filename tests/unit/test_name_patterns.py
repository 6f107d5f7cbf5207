"""Names and paths are validated with full-match patterns: a trailing newline is not accepted
(a ``$`` would match just before it)."""

from __future__ import annotations

import pytest

from keycrew.identity import validation
from keycrew.packages import names
from keycrew.tokens import deploy

ENDINGS = ("\n", "\r\n", "\r", "\n\n")


@pytest.mark.parametrize("ending", ENDINGS)
def test_usernames(ending: str) -> None:
    assert validation.username_errors("alice") == []
    assert validation.username_errors("alice" + ending) != []


@pytest.mark.parametrize("ending", ENDINGS)
def test_group_and_project_paths(ending: str) -> None:
    assert validation.namespace_path_errors("team", top_level=True) == []
    assert validation.namespace_path_errors("team" + ending, top_level=True) != []
    assert validation.namespace_path_errors("sub" + ending, top_level=False) != []
    assert validation.project_path_errors("proj") == []
    assert validation.project_path_errors("proj" + ending) != []


@pytest.mark.parametrize("ending", ENDINGS)
def test_names_and_emails(ending: str) -> None:
    assert validation.name_errors("Team") == []
    assert validation.name_errors("Team" + ending) != []
    assert validation.name_errors("Proj", project=True) == []
    assert validation.name_errors("Proj" + ending, project=True) != []
    assert validation.email_errors("a@example.com") == []
    assert validation.email_errors("a@example.com" + ending) != []


@pytest.mark.parametrize("ending", ENDINGS)
def test_pypi_names_versions_and_file_names(ending: str) -> None:
    assert names.valid_name("my-pkg")
    assert not names.valid_name("my-pkg" + ending)
    assert names.valid_version("1.0.0")
    assert not names.valid_version("1.0.0" + ending)
    assert names.valid_version("v1.0rc1.post2.dev3+local.7")
    assert names.valid_file_name("my_pkg-1.0.0-py3-none-any.whl")
    assert not names.valid_file_name("my_pkg-1.0.0-py3-none-any.whl" + ending)
    digest = "0" * 64
    assert names.SHA256.fullmatch(digest)
    assert not names.SHA256.fullmatch(digest + ending)
    assert names.MD5.fullmatch("0" * 32)
    assert not names.MD5.fullmatch("0" * 32 + ending)


@pytest.mark.parametrize("ending", ENDINGS)
def test_deploy_token_usernames(ending: str) -> None:
    assert deploy.USERNAME_RE.fullmatch("gitlab+deploy-token-1")
    assert not deploy.USERNAME_RE.fullmatch("gitlab+deploy-token-1" + ending)
