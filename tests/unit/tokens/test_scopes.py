"""Rule: what each scope allows: ``api`` every request, ``read_api`` (and ``read_user`` where a route
takes it) GET and HEAD only; each scope's abilities on repositories, images and packages, for
personal and deploy tokens; which kinds of token may hold which scopes (keycrew/tokens/scopes.py)."""

from __future__ import annotations

import pytest

from keycrew.tokens.scopes import (
    ADMIN_SCOPES,
    ALL_SCOPES,
    DEPLOY_SCOPES,
    READS,
    RESOURCE_BOT_SCOPES,
    SCOPE_DESCRIPTIONS,
    Ability,
    Scope,
    api_scopes,
    scopes_allow,
)

A = Ability


@pytest.mark.parametrize("method", ["GET", "HEAD", "get", "head"])
def test_reads_accept_api_and_read_api(method: str) -> None:
    assert api_scopes(method) == ["api", "read_api"]
    assert api_scopes(method, read_user=True) == ["api", "read_api", "read_user"]


@pytest.mark.parametrize("method", ["POST", "PUT", "PATCH", "DELETE", "OPTIONS", "post"])
def test_everything_else_needs_api(method: str) -> None:
    assert api_scopes(method) == ["api"]
    assert api_scopes(method, read_user=True) == ["api"]


@pytest.mark.parametrize(
    ("scope", "abilities"),
    [
        (Scope.API, set(Ability)),
        (Scope.READ_API, {A.DOWNLOAD_CODE, A.READ_CONTAINER_IMAGE, A.READ_PACKAGE}),
        (Scope.READ_REPOSITORY, {A.DOWNLOAD_CODE}),
        (Scope.WRITE_REPOSITORY, {A.DOWNLOAD_CODE, A.PUSH_CODE}),
        (Scope.READ_REGISTRY, {A.READ_CONTAINER_IMAGE}),
        # Pushing images needs read_registry beside write_registry (GitLab's docs).
        (Scope.WRITE_REGISTRY, {A.CREATE_CONTAINER_IMAGE}),
        (Scope.READ_PACKAGE_REGISTRY, {A.READ_PACKAGE}),
        (Scope.WRITE_PACKAGE_REGISTRY, {A.READ_PACKAGE, A.CREATE_PACKAGE}),
        (Scope.READ_USER, set()),
        (Scope.SUDO, set()),
        (Scope.SELF_ROTATE, set()),
    ],
)
def test_abilities_of_a_personal_tokens_scope(scope: Scope, abilities: set[Ability]) -> None:
    assert scope.abilities() == abilities


@pytest.mark.parametrize(
    ("scope", "abilities"),
    [
        (Scope.READ_REPOSITORY, {A.DOWNLOAD_CODE}),
        (Scope.READ_REGISTRY, {A.READ_CONTAINER_IMAGE}),
        (Scope.WRITE_REGISTRY, {A.CREATE_CONTAINER_IMAGE}),
        (Scope.READ_PACKAGE_REGISTRY, {A.READ_PACKAGE}),
        (Scope.WRITE_PACKAGE_REGISTRY, {A.READ_PACKAGE, A.CREATE_PACKAGE}),
        # Scopes a deploy token cannot hold give it nothing.
        (Scope.API, set()),
        (Scope.READ_API, set()),
        (Scope.WRITE_REPOSITORY, set()),
    ],
)
def test_abilities_of_a_deploy_tokens_scope(scope: Scope, abilities: set[Ability]) -> None:
    assert scope.abilities(deploy_token=True) == abilities


def test_read_api_reads_and_never_writes() -> None:
    assert Scope.READ_API.abilities() == READS
    for ability in (A.PUSH_CODE, A.CREATE_CONTAINER_IMAGE, A.ADMIN_CONTAINER_IMAGE, A.CREATE_PACKAGE):
        assert not scopes_allow(["read_api"], ability, deploy_token=False)


def test_only_api_administers_container_images() -> None:
    holders = [s for s in Scope if A.ADMIN_CONTAINER_IMAGE in s.abilities()]
    assert holders == [Scope.API]


@pytest.mark.parametrize(
    ("scopes", "ability", "deploy_token", "allowed"),
    [
        (["read_repository"], A.DOWNLOAD_CODE, False, True),
        (["read_repository"], A.PUSH_CODE, False, False),
        (["read_repository", "write_repository"], A.PUSH_CODE, False, True),
        (["not-a-scope", "read_api"], A.READ_PACKAGE, False, True),
        (["not-a-scope"], A.DOWNLOAD_CODE, False, False),
        ([], A.DOWNLOAD_CODE, False, False),
        (("api",), A.CREATE_PACKAGE, False, True),
        (frozenset({"api"}), A.CREATE_PACKAGE, True, False),
        (["write_registry"], A.READ_CONTAINER_IMAGE, True, False),
        (["read_registry", "write_registry"], A.READ_CONTAINER_IMAGE, True, True),
    ],
)
def test_scopes_allow(scopes: list[str], ability: Ability, deploy_token: bool, allowed: bool) -> None:
    assert scopes_allow(scopes, ability, deploy_token=deploy_token) is allowed


def test_admin_scopes_are_for_administrators_only() -> None:
    assert [s for s in Scope if s.admin_only] == ["sudo", "admin_mode", "read_service_ping"]
    assert ADMIN_SCOPES == ("sudo", "admin_mode", "read_service_ping")


def test_resource_bots_hold_every_non_admin_scope_but_read_user() -> None:
    assert "read_user" not in RESOURCE_BOT_SCOPES
    assert not set(RESOURCE_BOT_SCOPES) & set(ADMIN_SCOPES)
    assert set(RESOURCE_BOT_SCOPES) | {"read_user"} | set(ADMIN_SCOPES) == set(ALL_SCOPES)


def test_deploy_scopes_in_gitlabs_order() -> None:
    assert DEPLOY_SCOPES == (
        "read_repository",
        "read_registry",
        "write_registry",
        "read_package_registry",
        "write_package_registry",
        "read_virtual_registry",
        "write_virtual_registry",
    )
    assert not set(DEPLOY_SCOPES) & {"api", "read_api", "write_repository"}


def test_every_scope_is_described() -> None:
    assert set(SCOPE_DESCRIPTIONS) == {s.value for s in Scope}
    assert all(Scope(s).description for s in SCOPE_DESCRIPTIONS)
