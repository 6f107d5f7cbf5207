"""Git over smart HTTP with the real `git` client: every kind of credential, the rules, the records."""

from __future__ import annotations

import gzip
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from keycrew.context import Actor
from keycrew.identity.internal import internal_user
from keycrew.identity.types import UserType
from keycrew.namespaces.models import Project
from keycrew.repos import storage
from keycrew.tokens.issuing import issue_token
from keycrew.tokens.models import DeployToken, PersonalAccessToken
from tests.support.git import Git, basic, info_refs, repo_url
from tests.support.live import Factory, LiveServer, uid

MAIN_REFUSED = "You are not allowed to push code to protected branches on this project."
FORCE_REFUSED = "You are not allowed to force push code to a protected branch on this project."


# --- fixtures and helpers of this module ---------------------------------------------------------


@pytest.fixture
def git(tmp_path: Path) -> Git:
    return Git(tmp_path)


@pytest.fixture(autouse=True)
def _fresh_throttle(server: LiveServer) -> Iterator[None]:
    """Failed authentications here must not ban 127.0.0.1 for the tests that follow."""
    server.runtime.auth_throttle.reset()
    yield
    server.runtime.auth_throttle.reset()


def project_with_readme(factory: Factory, token: str | None = None, **attrs: Any) -> dict[str, Any]:
    return factory.project(token=token, initialize_with_readme=True, **attrs)


# --- repositories made with their projects -------------------------------------------------------


def test_initialize_with_readme_clones_with_readme_on_main(
    server: LiveServer, factory: Factory, git: Git
) -> None:
    user, token = factory.user_with_token(["api"])
    project = project_with_readme(factory, token, description="What it is for")
    assert project["default_branch"] == "main"
    assert project["empty_repo"] is False
    assert project["http_url_to_repo"] == f"{server.url}/{project['path_with_namespace']}.git"
    clone, _ = git.clone(repo_url(server, project["path_with_namespace"], "anything", token))
    assert (clone / "README.md").read_text() == f"# {project['name']}\n\nWhat it is for\n"
    assert git.run("symbolic-ref", "--short", "HEAD", cwd=clone).stdout.strip() == "main"
    author = git.run("log", "-1", "--format=%an <%ae>", cwd=clone).stdout.strip()
    assert author == f"{user['name']} <{user['email']}>"
    assert git.run("ls-remote", "--symref", "origin", "HEAD", cwd=clone).stdout.startswith(
        "ref: refs/heads/main\tHEAD"
    )


def test_default_branch_is_the_repository_head(server: LiveServer, factory: Factory, git: Git) -> None:
    project = project_with_readme(factory, default_branch="trunk")
    assert project["default_branch"] == "trunk"
    clone, _ = git.clone(repo_url(server, project["path_with_namespace"], "root", server.root_token))
    assert git.run("symbolic-ref", "--short", "HEAD", cwd=clone).stdout.strip() == "trunk"
    assert (clone / "README.md").exists()


def test_invalid_default_branch_is_refused(server: LiveServer) -> None:
    for bad in ("a..b", "-x", "with space", "x.lock", "HEAD"):
        response = server.root("POST", "/projects", json={"name": uid("p"), "default_branch": bad})
        assert response.status_code == 400, bad
        assert response.json() == {"message": {"default_branch": ["is invalid"]}}


def test_empty_repo_until_the_first_push(server: LiveServer, factory: Factory, git: Git) -> None:
    project = factory.project()
    assert project["empty_repo"] is True
    clone, done = git.clone(repo_url(server, project["path_with_namespace"], "root", server.root_token))
    assert "empty repository" in done.stderr
    git.commit(clone)
    assert git.push(clone, "origin", "HEAD:main").returncode == 0
    detail = server.root("GET", f"/projects/{project['id']}").json()
    assert detail["empty_repo"] is False
    listed = server.root("GET", "/projects", params={"search": project["name"]}).json()
    assert [p["empty_repo"] for p in listed] == [False]


def test_changing_the_default_branch_moves_head(server: LiveServer, factory: Factory, git: Git) -> None:
    project = project_with_readme(factory)
    url = repo_url(server, project["path_with_namespace"], "root", server.root_token)
    clone, _ = git.clone(url)
    git.run("checkout", "--quiet", "-b", "stable", cwd=clone)
    assert git.push(clone, "origin", "stable").returncode == 0
    missing = server.root("PUT", f"/projects/{project['id']}", json={"default_branch": "nope"})
    assert missing.status_code == 400
    moved = server.root("PUT", f"/projects/{project['id']}", json={"default_branch": "stable"})
    assert moved.status_code == 200, moved.text
    assert git.run("ls-remote", "--symref", url, "HEAD").stdout.startswith("ref: refs/heads/stable\tHEAD")


def test_deleting_projects_removes_their_repositories(server: LiveServer, factory: Factory) -> None:
    root = server.runtime.instance.repositories_dir
    assert root is not None
    alone = project_with_readme(factory)
    group = factory.group()
    inside = factory.project(namespace_id=group["id"])
    owner, owner_token = factory.user_with_token(["api"])
    owned = factory.project(token=owner_token)
    paths = {p["id"]: storage.repository_path(root, p["id"]) for p in (alone, inside, owned)}
    assert all((path / "HEAD").is_file() for path in paths.values())

    assert server.root("DELETE", f"/projects/{alone['id']}").status_code == 202
    assert not paths[alone["id"]].exists()
    assert server.root("DELETE", f"/groups/{group['id']}").status_code == 202
    assert not paths[inside["id"]].exists()
    assert server.root("DELETE", f"/users/{owner['id']}").status_code == 204
    assert not paths[owned["id"]].exists()
    assert not any(p.name.startswith(("new-", "deleted-")) for p in (root / storage.TMP_DIR).iterdir())


def test_a_project_that_is_not_created_leaves_no_repository(server: LiveServer, factory: Factory) -> None:
    root = server.runtime.instance.repositories_dir
    assert root is not None
    staging = root / ".tmp"

    def staged() -> set[str]:
        return {p.name for p in staging.iterdir()} if staging.exists() else set()

    before, staged_before = {p.name for p in root.iterdir()}, staged()
    group = factory.group()
    name = uid("p")
    assert (
        server.root("POST", "/projects", json={"name": name, "namespace_id": group["id"]}).status_code == 201
    )
    taken = server.root("POST", "/projects", json={"name": name, "namespace_id": group["id"]})
    assert taken.status_code == 400
    # One repository more (the first project's); the staging directory, made on first need,
    # keeps nothing of the refused one.
    assert len({p.name for p in root.iterdir() if p.name.endswith(".git")} - before) == 1
    assert staged() <= staged_before


# --- credentials ------------------------------------------------------------------------------


def test_personal_access_token_clones_fetches_and_pushes(
    server: LiveServer, factory: Factory, git: Git
) -> None:
    user, token = factory.user_with_token(["write_repository"])
    project = project_with_readme(factory, token=server.root_token)
    factory.member("projects", project["id"], user["id"], 40)
    url = repo_url(server, project["path_with_namespace"], "any-name-at-all", token)
    clone, _ = git.clone(url)
    sha = git.commit(clone)
    assert git.push(clone, "origin", "main").returncode == 0
    second, _ = git.clone(url)
    assert git.run("rev-parse", "HEAD", cwd=second).stdout.strip() == sha
    git.commit(clone, "again.txt")
    assert git.push(clone, "origin", "main").returncode == 0
    git.run("fetch", "--quiet", cwd=second)
    assert git.run("rev-parse", "origin/main", cwd=second).stdout.strip() != sha


def test_project_access_token(server: LiveServer, factory: Factory, git: Git) -> None:
    project = project_with_readme(factory)
    created = server.root(
        "POST",
        f"/projects/{project['id']}/access_tokens",
        json={"name": "ci", "scopes": ["write_repository"], "access_level": 40},
    ).json()
    url = repo_url(server, project["path_with_namespace"], "ci-bot", created["token"])
    clone, _ = git.clone(url)
    git.commit(clone)
    assert git.push(clone, "origin", "main").returncode == 0
    other = project_with_readme(factory)
    _, done = git.clone(
        repo_url(server, other["path_with_namespace"], "ci-bot", created["token"]), check=False
    )
    assert done.returncode != 0
    assert "not found" in done.stderr


def test_group_access_token_developer(server: LiveServer, factory: Factory, git: Git) -> None:
    group = factory.group()
    project = project_with_readme(factory, namespace_id=group["id"])
    created = server.root(
        "POST",
        f"/groups/{group['id']}/access_tokens",
        json={"name": "deployer", "scopes": ["write_repository"], "access_level": 30},
    )
    assert created.status_code == 201, created.text
    url = repo_url(server, project["path_with_namespace"], "group-bot", created.json()["token"])
    clone, _ = git.clone(url)
    git.run("checkout", "--quiet", "-b", "feature", cwd=clone)
    git.commit(clone)
    assert git.push(clone, "origin", "feature").returncode == 0
    refused = git.push(clone, "origin", "feature:main")
    assert refused.returncode != 0
    assert MAIN_REFUSED in refused.stderr
    assert "[remote rejected]" in refused.stdout


def test_service_account_token(server: LiveServer, factory: Factory, git: Git) -> None:
    account = server.root("POST", "/service_accounts", json={}).json()
    token = factory.token(account["id"], ["read_repository", "write_repository"])
    project = project_with_readme(factory)
    url = repo_url(server, project["path_with_namespace"], account["username"], token)
    _, denied = git.clone(url, check=False)
    assert "not found" in denied.stderr  # starts without access
    factory.member("projects", project["id"], account["id"], 30)
    clone, _ = git.clone(url)
    git.run("checkout", "--quiet", "-b", "sa-branch", cwd=clone)
    git.commit(clone)
    assert git.push(clone, "origin", "sa-branch").returncode == 0


def test_deploy_token_fetches_only(server: LiveServer, factory: Factory, git: Git) -> None:
    project = project_with_readme(factory)
    made = server.root(
        "POST",
        f"/projects/{project['id']}/deploy_tokens",
        json={"name": "deploy", "scopes": ["read_repository"], "username": "deployer"},
    ).json()
    full = project["path_with_namespace"]
    clone, _ = git.clone(repo_url(server, full, "deployer", made["token"]))
    assert (clone / "README.md").exists()
    _, wrong_user = git.clone(repo_url(server, full, "someone-else", made["token"]), check=False)
    assert wrong_user.returncode != 0
    assert "Authentication failed" in wrong_user.stderr
    git.run("checkout", "--quiet", "-b", "from-deploy", cwd=clone)
    git.commit(clone)
    refused = git.push(clone, "origin", "from-deploy")
    assert refused.returncode != 0
    assert "You are not allowed to upload code." in refused.stderr
    assert "403" in refused.stderr
    # Not another project's repository.
    other = project_with_readme(factory)
    response = info_refs(server, other["path_with_namespace"], headers=basic("deployer", made["token"]))
    assert response.status_code == 404
    # A registry-only deploy token may not fetch.
    registry = server.root(
        "POST", f"/projects/{project['id']}/deploy_tokens", json={"name": "r", "scopes": ["read_registry"]}
    ).json()
    response = info_refs(server, full, headers=basic(registry["username"], registry["token"]))
    assert response.status_code == 403
    assert response.text == "You are not allowed to download code.\n"
    # Its use is recorded.
    with server.runtime.sessions() as db:
        row = db.get(DeployToken, made["id"])
        assert row is not None
        assert row.last_used_at is not None


def test_group_deploy_token_reaches_subgroup_projects(server: LiveServer, factory: Factory, git: Git) -> None:
    group = factory.group()
    sub = factory.group(parent_id=group["id"])
    project = project_with_readme(factory, namespace_id=sub["id"])
    made = server.root(
        "POST", f"/groups/{group['id']}/deploy_tokens", json={"name": "d", "scopes": ["read_repository"]}
    ).json()
    clone, _ = git.clone(repo_url(server, project["path_with_namespace"], made["username"], made["token"]))
    assert (clone / "README.md").exists()


def test_password_unless_disabled_for_git(server: LiveServer, factory: Factory, git: Git) -> None:
    user = factory.user(password="a-long-password-1")
    project = project_with_readme(factory)
    factory.member("projects", project["id"], user["id"], 30)
    url = repo_url(server, project["path_with_namespace"], user["username"], "a-long-password-1")
    clone, _ = git.clone(url)
    assert (clone / "README.md").exists()
    _, wrong = git.clone(
        repo_url(server, project["path_with_namespace"], user["username"], "wrong"), check=False
    )
    assert "Authentication failed" in wrong.stderr
    assert server.root(
        "PUT", "/application/settings", json={"password_authentication_enabled_for_git": False}
    ).ok
    try:
        _, refused = git.clone(url, check=False)
        assert refused.returncode != 0
        assert "Authentication failed" in refused.stderr
        token = factory.token(user["id"], ["read_repository"])
        git.clone(repo_url(server, project["path_with_namespace"], user["username"], token))
    finally:
        restored = server.root(
            "PUT", "/application/settings", json={"password_authentication_enabled_for_git": True}
        )
        assert restored.ok


# --- visibility and the answers git gets --------------------------------------------------------


def test_anonymous_clone_of_a_public_project_only(server: LiveServer, factory: Factory, git: Git) -> None:
    public = project_with_readme(factory, visibility="public")
    clone, _ = git.clone(repo_url(server, public["path_with_namespace"]))
    assert (clone / "README.md").exists()
    git.commit(clone)
    refused = git.push(clone, "origin", "main")
    assert refused.returncode != 0
    assert "Authentication failed" in refused.stderr
    private = project_with_readme(factory)
    response = info_refs(server, private["path_with_namespace"])
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == 'Basic realm="keycrew"'
    _, done = git.clone(repo_url(server, private["path_with_namespace"]), check=False)
    assert "Authentication failed" in done.stderr
    # No such project: also 401 without credentials, so existence does not leak.
    assert info_refs(server, f"{uid('nobody')}/{uid('nothing')}").status_code == 401


def test_internal_projects_for_signed_in_non_external_users(
    server: LiveServer, factory: Factory, git: Git
) -> None:
    project = project_with_readme(factory, visibility="internal")
    _, token = factory.user_with_token(["read_repository"])
    clone, _ = git.clone(repo_url(server, project["path_with_namespace"], "u", token))
    assert (clone / "README.md").exists()
    assert info_refs(server, project["path_with_namespace"]).status_code == 401
    _, external_token = factory.user_with_token(["read_repository"], external=True)
    response = info_refs(server, project["path_with_namespace"], headers=basic("u", external_token))
    assert response.status_code == 404
    # Signed in, but pushing needs Developer.
    response = info_refs(
        server, project["path_with_namespace"], "git-receive-pack", headers=basic("u", token)
    )
    assert response.status_code == 403


def test_404_403_and_what_git_prints(server: LiveServer, factory: Factory, git: Git) -> None:
    project = project_with_readme(factory)
    full = project["path_with_namespace"]
    stranger, stranger_token = factory.user_with_token(["api"])
    response = info_refs(server, full, headers=basic("s", stranger_token))
    assert response.status_code == 404
    assert "could not be found" in response.text
    _, done = git.clone(repo_url(server, full, "s", stranger_token), check=False)
    assert f"repository '{server.url}/{full}.git/' not found" in done.stderr
    assert "remote: The project you were looking for could not be found" in done.stderr
    missing = info_refs(server, f"{uid('no')}/{uid('pe')}", headers=basic("s", stranger_token))
    assert missing.status_code == 404

    factory.member("projects", project["id"], stranger["id"], 10)  # Guest: sees it, cannot read code
    response = info_refs(server, full, headers=basic("s", stranger_token))
    assert response.status_code == 403
    assert response.text == "You are not allowed to download code from this project.\n"
    _, done = git.clone(repo_url(server, full, "s", stranger_token), check=False)
    assert "You are not allowed to download code from this project." in done.stderr
    assert "403" in done.stderr

    reporter, reporter_token = factory.user_with_token(["api"])
    factory.member("projects", project["id"], reporter["id"], 20)
    clone, _ = git.clone(repo_url(server, full, "r", reporter_token))
    git.run("checkout", "--quiet", "-b", "reporter", cwd=clone)
    git.commit(clone)
    refused = git.push(clone, "origin", "reporter")
    assert "You are not allowed to push code to this project." in refused.stderr
    # Bad credentials: 401 whatever the project.
    assert info_refs(server, full, headers=basic("s", "glpat-not-a-real-token")).status_code == 401
    assert info_refs(server, full, headers={"Authorization": "Basic !!!"}).status_code == 401


def test_scope_matrix(server: LiveServer, factory: Factory, git: Git) -> None:
    project = project_with_readme(factory)
    full = project["path_with_namespace"]
    user = factory.user()
    factory.member("projects", project["id"], user["id"], 40)
    tokens = {s: factory.token(user["id"], [s]) for s in ("read_api", "read_repository", "write_repository")}
    tokens["read_user"] = factory.token(user["id"], ["read_user"])
    for scope in ("read_api", "read_repository", "write_repository"):
        clone, _ = git.clone(repo_url(server, full, "u", tokens[scope]))
        assert (clone / "README.md").exists(), scope
    response = info_refs(server, full, headers=basic("u", tokens["read_user"]))
    assert response.status_code == 403
    assert response.text == "You are not allowed to download code.\n"
    for scope in ("read_api", "read_repository"):
        response = info_refs(server, full, "git-receive-pack", headers=basic("u", tokens[scope]))
        assert response.status_code == 403, scope
        assert response.text == "You are not allowed to upload code.\n"
    clone, _ = git.clone(repo_url(server, full, "u", tokens["read_repository"]))
    git.commit(clone)
    refused = git.push(clone, "origin", "main")
    assert "You are not allowed to upload code." in refused.stderr
    pusher, _ = git.clone(repo_url(server, full, "u", tokens["write_repository"]))
    git.commit(pusher)
    assert git.push(pusher, "origin", "main").returncode == 0
    # write_repository is for git only, not the API.
    api = server.request("GET", f"/projects/{project['id']}", token=tokens["write_repository"])
    assert api.status_code == 403
    assert api.json()["error"] == "insufficient_scope"


# --- the protected default branch ----------------------------------------------------------------


def test_protected_default_branch(server: LiveServer, factory: Factory, git: Git) -> None:
    project = project_with_readme(factory)
    full = project["path_with_namespace"]
    developer, dev_token = factory.user_with_token(["write_repository"])
    maintainer, main_token = factory.user_with_token(["write_repository"])
    factory.member("projects", project["id"], developer["id"], 30)
    factory.member("projects", project["id"], maintainer["id"], 40)

    dev, _ = git.clone(repo_url(server, full, "d", dev_token))
    git.run("checkout", "--quiet", "-b", "feature", cwd=dev)
    git.commit(dev)
    assert git.push(dev, "origin", "feature").returncode == 0
    refused = git.push(dev, "origin", "feature:main")
    assert refused.returncode != 0
    assert MAIN_REFUSED in refused.stderr
    # Developers may delete their own branches; nobody deletes the default one.
    assert git.push(dev, "origin", ":feature").returncode == 0

    mnt, _ = git.clone(repo_url(server, full, "m", main_token))
    first = git.commit(mnt)
    assert git.push(mnt, "origin", "main").returncode == 0
    git.run("reset", "--quiet", "--hard", "HEAD~1", cwd=mnt)
    git.commit(mnt, "rewritten.txt")
    forced = git.push(mnt, "origin", "+main")
    assert forced.returncode != 0
    assert FORCE_REFUSED in forced.stderr
    deleted = git.push(mnt, "origin", ":main")
    assert deleted.returncode != 0
    assert "The default branch of a project cannot be deleted." in deleted.stderr
    heads = git.run("ls-remote", repo_url(server, full, "m", main_token), "refs/heads/main").stdout
    assert heads.split()[0] == first
    # Other branches are not protected: force pushes and deletions are fine there.
    git.run("checkout", "--quiet", "-b", "topic", cwd=mnt)
    assert git.push(mnt, "origin", "topic").returncode == 0
    git.run("commit", "--quiet", "--amend", "-m", "amended", cwd=mnt)
    assert git.push(mnt, "origin", "+topic").returncode == 0
    assert git.push(mnt, "origin", ":topic").returncode == 0
    hex_name = "a" * 40
    refused_hex = git.push(mnt, "origin", f"HEAD:refs/heads/{hex_name}")
    assert "40-character hexadecimal branch name" in refused_hex.stderr


def test_developer_cannot_create_the_default_branch_of_an_empty_repository(
    server: LiveServer, factory: Factory, git: Git
) -> None:
    project = factory.project()
    developer, token = factory.user_with_token(["write_repository"])
    factory.member("projects", project["id"], developer["id"], 30)
    repo = git.new_repo()
    git.commit(repo)
    refused = git.push(repo, repo_url(server, project["path_with_namespace"], "d", token), "HEAD:main")
    assert MAIN_REFUSED in refused.stderr
    assert (
        git.push(repo, repo_url(server, project["path_with_namespace"], "d", token), "HEAD:dev").returncode
        == 0
    )


# --- who is refused --------------------------------------------------------------------------------


def test_blocked_deactivated_and_internal_users_are_refused(server: LiveServer, factory: Factory) -> None:
    project = project_with_readme(factory, visibility="public")
    full = project["path_with_namespace"]
    blocked, blocked_token = factory.user_with_token(["read_repository"])
    assert server.root("POST", f"/users/{blocked['id']}/block").ok
    response = info_refs(server, full, headers=basic("b", blocked_token))
    assert response.status_code == 403
    assert response.text == "Your account has been blocked.\n"
    response = info_refs(server, full, headers=basic(blocked["username"], "a-long-password-1"))
    assert response.status_code == 403

    inactive, inactive_token = factory.user_with_token(["read_repository"])
    assert server.root("POST", f"/users/{inactive['id']}/deactivate").ok
    response = info_refs(server, full, headers=basic("d", inactive_token))
    assert response.status_code == 403
    assert "deactivated" in response.text

    with server.runtime.sessions() as db, db.begin():
        ctx = server.runtime.ctx(db, Actor.system())
        bot = internal_user(ctx, UserType.ALERT_BOT)
        value = issue_token(ctx, bot, name=uid("t"), scopes=["api"], expires_at=None).value
    response = info_refs(server, full, headers=basic("alert", value))
    assert response.status_code == 403
    assert response.text == "This action cannot be performed by internal users\n"


def test_expired_and_revoked_tokens_are_401(server: LiveServer, factory: Factory) -> None:
    project = project_with_readme(factory, visibility="public")
    user, token = factory.user_with_token(["read_repository"])
    tokens = server.root("GET", f"/personal_access_tokens?user_id={user['id']}").json()
    assert server.root("DELETE", f"/personal_access_tokens/{tokens[0]['id']}").status_code == 204
    response = info_refs(server, project["path_with_namespace"], headers=basic("u", token))
    assert response.status_code == 401


# --- throttling, usage and audit --------------------------------------------------------------------


def test_failed_authentications_are_throttled_per_address(server: LiveServer, factory: Factory) -> None:
    project = project_with_readme(factory)
    full = project["path_with_namespace"]
    good = basic("root", server.root_token)
    attacker = {"X-Forwarded-For": "203.0.113.7"}
    limit = server.runtime.auth_throttle.limit
    for _ in range(limit):
        response = info_refs(server, full, headers={**attacker, **basic("x", "glpat-wrong")})
        assert response.status_code == 401
    banned = info_refs(server, full, headers={**attacker, **basic("x", "glpat-wrong")})
    assert banned.status_code == 429
    assert int(banned.headers["Retry-After"]) > 0
    # Banned addresses are refused before any credential is checked (no oracle for guesses).
    assert info_refs(server, full, headers={**attacker, **good}).status_code == 429
    # Other addresses, and correct credentials, are not slowed.
    assert info_refs(server, full, headers={"X-Forwarded-For": "203.0.113.8", **good}).status_code == 200
    assert info_refs(server, full, headers=good).status_code == 200
    # Anonymous requests (git's first, credential-less try) never count as failures.
    for _ in range(limit + 1):
        assert info_refs(server, full, headers={"X-Forwarded-For": "203.0.113.9"}).status_code == 401
    assert info_refs(server, full, headers={"X-Forwarded-For": "203.0.113.9", **good}).status_code == 200


def test_push_is_audited_and_token_use_recorded(server: LiveServer, factory: Factory, git: Git) -> None:
    user, token = factory.user_with_token(["write_repository"])
    project = project_with_readme(factory)
    factory.member("projects", project["id"], user["id"], 40)
    tokens = server.root("GET", f"/personal_access_tokens?user_id={user['id']}").json()
    token_id = tokens[0]["id"]
    clone, _ = git.clone(repo_url(server, project["path_with_namespace"], "u", token))
    before = git.run("rev-parse", "HEAD", cwd=clone).stdout.strip()
    after = git.commit(clone)
    git.run("branch", "side", cwd=clone)
    assert git.push(clone, "origin", "main", "side").returncode == 0
    events = server.root("GET", f"/projects/{project['id']}/audit_events").json()
    pushes = [e for e in events if e["event_name"] == "repository.push"]
    assert len(pushes) == 1
    push = pushes[0]
    assert push["author_id"] == user["id"]
    assert push["details"]["token_id"] == token_id
    assert push["details"]["author_name"] == user["username"]
    assert push["details"]["ip_address"] == "127.0.0.1"
    assert push["details"]["target_details"] == project["path_with_namespace"]
    refs = sorted(push["details"]["refs"], key=lambda r: r["ref"])
    assert refs == [
        {"ref": "refs/heads/main", "before": before, "after": after, "change": "updated"},
        {"ref": "refs/heads/side", "before": "0" * 40, "after": after, "change": "created"},
    ]
    # A refused push writes nothing.
    git.commit(clone, "x.txt")
    git.run("reset", "--quiet", "--hard", "HEAD~2", cwd=clone)
    git.commit(clone, "y.txt")
    assert git.push(clone, "origin", "+main").returncode != 0
    events = server.root("GET", f"/projects/{project['id']}/audit_events").json()
    assert len([e for e in events if e["event_name"] == "repository.push"]) == 1
    assert server.runtime.usage is not None
    server.runtime.usage.flush()
    used = server.root("GET", f"/personal_access_tokens/{token_id}").json()
    assert used["last_used_at"] is not None


def test_fetch_notes_token_use(server: LiveServer, factory: Factory, git: Git) -> None:
    project = project_with_readme(factory, visibility="internal")
    user, token = factory.user_with_token(["read_repository"])
    token_id = server.root("GET", f"/personal_access_tokens?user_id={user['id']}").json()[0]["id"]
    git.clone(repo_url(server, project["path_with_namespace"], "u", token))
    assert server.runtime.usage is not None
    server.runtime.usage.flush()
    assert server.root("GET", f"/personal_access_tokens/{token_id}").json()["last_used_at"] is not None
    with server.runtime.sessions() as db:
        row = db.get(PersonalAccessToken, token_id)
        assert row is not None
        assert row.last_used_ips == ["127.0.0.1"]


def test_other_paths_are_left_to_the_application(server: LiveServer, factory: Factory) -> None:
    project = project_with_readme(factory, visibility="public")
    full = project["path_with_namespace"]
    # Dumb HTTP and unknown methods are not git's smart protocol: the application answers 404/405.
    assert requests.get(f"{server.url}/{full}.git/info/refs", timeout=10).status_code == 404
    assert requests.get(f"{server.url}/{full}.git/git-upload-pack", timeout=10).status_code == 404
    # The project's path itself is its page in the web UI (public: no sign-in needed).
    page = requests.get(f"{server.url}/{full}", timeout=10)
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert f"{server.url}/{full}.git" in page.text
    assert requests.get(f"{server.url}/-/health", timeout=10).status_code == 200
    # The same repository without .git.
    assert info_refs(server, full).status_code == 200
    plain = requests.get(f"{server.url}/{full}/info/refs", params={"service": "git-upload-pack"}, timeout=10)
    assert plain.status_code == 200
    assert plain.headers["Content-Type"] == "application/x-git-upload-pack-advertisement"


def test_archived_projects_are_read_only(server: LiveServer, factory: Factory, git: Git) -> None:
    project = project_with_readme(factory)
    full = project["path_with_namespace"]
    with server.runtime.sessions() as db, db.begin():
        row = db.get(Project, project["id"])
        assert row is not None
        row.archived = True
    clone, _ = git.clone(repo_url(server, full, "root", server.root_token))
    git.commit(clone)
    refused = git.push(clone, "origin", "main")
    assert refused.returncode != 0
    assert "You are not allowed to push code to an archived project." in refused.stderr


def test_git_sees_what_the_api_sees(server: LiveServer, factory: Factory) -> None:
    """Internal projects: any signed-in user, but not external ones (service accounts are external)
    nor another project's bot, exactly as the API decides."""
    internal = project_with_readme(factory, visibility="internal")
    _, human_token = factory.user_with_token(["read_api", "read_repository"])
    account = server.root("POST", "/service_accounts", json={}).json()
    account_token = factory.token(account["id"], ["read_api", "read_repository"])
    elsewhere = factory.project()
    bot = server.root(
        "POST",
        f"/projects/{elsewhere['id']}/access_tokens",
        json={"name": "b", "scopes": ["read_api", "read_repository"]},
    ).json()
    for token, status in ((human_token, 200), (account_token, 404), (bot["token"], 404)):
        api = server.request("GET", f"/projects/{internal['id']}", token=token)
        assert api.status_code == status
        assert (
            info_refs(server, internal["path_with_namespace"], headers=basic("x", token)).status_code
            == status
        )


def test_protocol_v2_and_gzip_request_bodies(server: LiveServer, factory: Factory, git: Git) -> None:
    project = project_with_readme(factory, visibility="public")
    full = project["path_with_namespace"]
    v2 = info_refs(server, full, headers={"Git-Protocol": "version=2"})
    assert v2.status_code == 200
    assert b"version 2" in v2.content
    v0 = info_refs(server, full)
    assert b"version 2" not in v0.content
    head = next(line for line in v0.content.split(b"\n") if b"refs/heads/main" in line)[8:48].decode()
    body = gzip.compress(f"0032want {head}\n00000009done\n".encode())
    response = requests.post(
        f"{server.url}/{full}.git/git-upload-pack",
        data=body,
        headers={"Content-Type": "application/x-git-upload-pack-request", "Content-Encoding": "gzip"},
        timeout=30,
    )
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "application/x-git-upload-pack-result"
    assert response.content.startswith(b"0008NAK\n")
    assert b"PACK" in response.content[:64]
    # Partial clone (uploadpack.allowFilter).
    partial = git.tmp / "partial"
    git.run("clone", "--quiet", "--filter=blob:none", repo_url(server, full), str(partial))
    assert git.run("config", "remote.origin.promisor", cwd=partial).stdout.strip() == "true"
    assert (partial / "README.md").exists()
