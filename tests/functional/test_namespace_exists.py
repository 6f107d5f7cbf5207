"""GET /namespaces/:id by id or URL-encoded full path, and GET /namespaces/:id/exists (GitLab's
rule: a namespace under ``parent_id``, or at the top level, has that path; ``suggests`` a free one)."""

from __future__ import annotations

import json

import gitlab
import pytest

from tests.support.live import Factory, LiveServer, uid


def test_get_by_encoded_full_path_of_a_subgroup(server: LiveServer, factory: Factory) -> None:
    _, token = factory.user_with_token()
    top = factory.group(token=token)
    sub = factory.group(token=token, parent_id=top["id"], path="inner", name="inner")
    gl = server.gl(token)
    assert gl.namespaces.get(sub["full_path"]).id == sub["id"]
    assert server.request("GET", f"/namespaces/{top['path']}%2Finner", token=token).json()["id"] == sub["id"]
    result = server.gitlab_cli("-o", "json", "namespace", "get", "--id", sub["full_path"], token=token)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["full_path"] == sub["full_path"]
    # A private group of someone else: not found, by id and by path.
    _, stranger = factory.user_with_token()
    for ref in (str(sub["id"]), f"{top['path']}%2Finner"):
        response = server.request("GET", f"/namespaces/{ref}", token=stranger)
        assert response.status_code == 404
        assert response.json() == {"message": "404 Namespace Not Found"}


def test_exists_at_the_top_level_and_under_a_parent(server: LiveServer, factory: Factory) -> None:
    user, token = factory.user_with_token()
    gl = server.gl(token)
    tag = uid("ex")
    top = factory.group(token=token, path=tag, name=tag)
    factory.group(token=token, parent_id=top["id"], path="child", name="child")

    found = gl.namespaces.exists(tag)
    assert (found.exists, found.suggests) == (True, [f"{tag}1"])
    # Any case; a user's personal namespace is a top-level namespace too.
    upper = server.request("GET", f"/namespaces/{tag.upper()}/exists", token=token).json()
    assert upper["exists"] is True
    assert server.request("GET", f"/namespaces/{user['username']}/exists", token=token).json()["exists"]
    # Free paths suggest nothing.
    assert server.request("GET", f"/namespaces/{tag}-free/exists", token=token).json() == {
        "exists": False,
        "suggests": [],
    }
    # Under a parent: its children only; the top-level group is not a child of itself.
    under = server.request("GET", f"/namespaces/child/exists?parent_id={top['id']}", token=token).json()
    assert under == {"exists": True, "suggests": ["child1"]}
    assert server.request("GET", f"/namespaces/{tag}/exists?parent_id={top['id']}", token=token).json() == {
        "exists": False,
        "suggests": [],
    }
    # "child" is free at the top level (unless some other test took it; then it says so).
    # Taken suggestions are skipped: with "<tag>1" taken too, the next number.
    factory.group(token=token, path=f"{tag}1", name=f"{tag}1")
    assert gl.namespaces.exists(tag).suggests == [f"{tag}2"]
    # A sibling's name counts as well as its path (GitLab's find_by_path_or_name).
    factory.group(token=token, path=f"{tag}-named", name=f"{tag}2")
    assert gl.namespaces.exists(tag).suggests == [f"{tag}3"]
    # The CLI's custom action (it also asks for an --id it does not use).
    args = ("namespace", "exists", "--id", "0", "--namespace", "child", "--parent-id", str(top["id"]))
    result = server.gitlab_cli("-o", "json", *args, token=token)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == {"exists": True, "suggests": ["child1"]}


def test_exists_bad_input(server: LiveServer, factory: Factory) -> None:
    _, token = factory.user_with_token()
    assert server.request("GET", "/namespaces/anything/exists").status_code == 401
    bad = server.request("GET", "/namespaces/anything/exists?parent_id=abc", token=token)
    assert bad.status_code == 400
    assert bad.json() == {"error": "parent_id is invalid"}
    for parent in ("987654321", "99999999999999999999", "0", "-1"):
        response = server.request("GET", f"/namespaces/anything/exists?parent_id={parent}", token=token)
        assert response.status_code in (200, 400), response.text
        if response.status_code == 200:
            assert response.json() == {"exists": False, "suggests": []}
    with pytest.raises(gitlab.GitlabGetError):
        server.gl(token).namespaces.get(987654321)
