"""GitLab's token scopes: what each one lets a token do, in one place.

One ``Scope`` enum carries every rule about a scope that an adapter needs:
- the API rule (``api_scopes``): ``api`` for every request, ``read_api`` (and ``read_user`` where a
  route accepts it) for GET and HEAD only;
- the abilities on a project's repository, container images and packages (``abilities``), the
  same for git over HTTP, the registry token service and the package registry;
- which token kinds may carry it (personal, resource bot, deploy, root's initial token) and
  whether it is for administrators only;
- the one line a token form shows beside its checkbox.
"""

from __future__ import annotations

from enum import StrEnum


class Ability(StrEnum):
    """What a credential may do to a project's repository, container images and packages."""

    DOWNLOAD_CODE = "download_code"
    PUSH_CODE = "push_code"
    READ_CONTAINER_IMAGE = "read_container_image"
    CREATE_CONTAINER_IMAGE = "create_container_image"
    # Deleting images and tags (the registry's delete and * actions): Maintainer, api scope only.
    ADMIN_CONTAINER_IMAGE = "admin_container_image"
    READ_PACKAGE = "read_package"
    CREATE_PACKAGE = "create_package"


READS = frozenset({Ability.DOWNLOAD_CODE, Ability.READ_CONTAINER_IMAGE, Ability.READ_PACKAGE})
# HTTP methods a read-only scope (read_api, read_user) may use.
READ_METHODS = frozenset({"GET", "HEAD"})


class Scope(StrEnum):
    API = "api"
    READ_API = "read_api"
    READ_USER = "read_user"
    CREATE_RUNNER = "create_runner"
    MANAGE_RUNNER = "manage_runner"
    K8S_PROXY = "k8s_proxy"
    SELF_ROTATE = "self_rotate"
    READ_REPOSITORY = "read_repository"
    WRITE_REPOSITORY = "write_repository"
    READ_REGISTRY = "read_registry"
    WRITE_REGISTRY = "write_registry"
    READ_VIRTUAL_REGISTRY = "read_virtual_registry"
    WRITE_VIRTUAL_REGISTRY = "write_virtual_registry"
    AI_FEATURES = "ai_features"
    SUDO = "sudo"
    ADMIN_MODE = "admin_mode"
    READ_SERVICE_PING = "read_service_ping"
    # Deploy tokens only.
    READ_PACKAGE_REGISTRY = "read_package_registry"
    WRITE_PACKAGE_REGISTRY = "write_package_registry"

    @property
    def admin_only(self) -> bool:
        return self in _ADMIN

    @property
    def description(self) -> str:
        return SCOPE_DESCRIPTIONS[self.value]

    def abilities(self, *, deploy_token: bool = False) -> frozenset[Ability]:
        """What this scope allows on a project (before the owner's access level bounds it)."""
        table = _DEPLOY_ABILITIES if deploy_token else _ABILITIES
        return table.get(self, frozenset())


_ADMIN = frozenset({Scope.SUDO, Scope.ADMIN_MODE, Scope.READ_SERVICE_PING})

_ABILITIES: dict[Scope, frozenset[Ability]] = {
    Scope.API: frozenset(Ability),
    Scope.READ_API: READS,
    Scope.READ_REPOSITORY: frozenset({Ability.DOWNLOAD_CODE}),
    Scope.WRITE_REPOSITORY: frozenset({Ability.DOWNLOAD_CODE, Ability.PUSH_CODE}),
    Scope.READ_REGISTRY: frozenset({Ability.READ_CONTAINER_IMAGE}),
    # Push only: GitLab's docs say "You need both read and write access to push images".
    Scope.WRITE_REGISTRY: frozenset({Ability.CREATE_CONTAINER_IMAGE}),
    Scope.READ_PACKAGE_REGISTRY: frozenset({Ability.READ_PACKAGE}),
    Scope.WRITE_PACKAGE_REGISTRY: frozenset({Ability.READ_PACKAGE, Ability.CREATE_PACKAGE}),
}
# Deploy tokens: write_registry does not imply pull, but write_package_registry does imply
# read_package (GitLab's ProjectPolicy/GroupPolicy deploy token rules).
_DEPLOY_ABILITIES: dict[Scope, frozenset[Ability]] = {
    Scope.READ_REPOSITORY: frozenset({Ability.DOWNLOAD_CODE}),
    Scope.READ_REGISTRY: frozenset({Ability.READ_CONTAINER_IMAGE}),
    Scope.WRITE_REGISTRY: frozenset({Ability.CREATE_CONTAINER_IMAGE}),
    Scope.READ_PACKAGE_REGISTRY: frozenset({Ability.READ_PACKAGE}),
    Scope.WRITE_PACKAGE_REGISTRY: frozenset({Ability.READ_PACKAGE, Ability.CREATE_PACKAGE}),
}


def api_scopes(method: str, *, read_user: bool = False) -> list[str]:
    """The scopes any one of which lets a token make an API request with ``method``.

    ``api`` allows everything; ``read_api`` only GET and HEAD; ``read_user`` only GET and HEAD on
    the routes that accept it (``read_user=True``).
    """
    if method.upper() in READ_METHODS:
        return [Scope.API, Scope.READ_API, Scope.READ_USER] if read_user else [Scope.API, Scope.READ_API]
    return [Scope.API]


def scopes_allow(
    scopes: frozenset[str] | tuple[str, ...] | list[str], ability: Ability, *, deploy_token: bool
) -> bool:
    """Whether any of ``scopes`` (unknown names ignored) grants ``ability``."""
    known = (Scope(s) for s in scopes if s in _VALUES)
    return any(ability in scope.abilities(deploy_token=deploy_token) for scope in known)


_VALUES = frozenset(s.value for s in Scope)

# Which scopes each token kind may carry, in GitLab's order (the API lists scopes in this order).
NON_ADMIN_SCOPES: tuple[str, ...] = (
    Scope.API,
    Scope.READ_API,
    Scope.READ_USER,
    Scope.CREATE_RUNNER,
    Scope.MANAGE_RUNNER,
    Scope.K8S_PROXY,
    Scope.SELF_ROTATE,
    Scope.READ_REPOSITORY,
    Scope.WRITE_REPOSITORY,
    Scope.READ_REGISTRY,
    Scope.WRITE_REGISTRY,
    Scope.READ_VIRTUAL_REGISTRY,
    Scope.WRITE_VIRTUAL_REGISTRY,
    Scope.AI_FEATURES,
)
ADMIN_SCOPES: tuple[str, ...] = (Scope.SUDO, Scope.ADMIN_MODE, Scope.READ_SERVICE_PING)
ALL_SCOPES: tuple[str, ...] = NON_ADMIN_SCOPES + ADMIN_SCOPES
# Project and group bot tokens: every non-admin scope but read_user.
RESOURCE_BOT_SCOPES: tuple[str, ...] = tuple(s for s in NON_ADMIN_SCOPES if s != Scope.READ_USER)
# GitLab's DeployToken::AVAILABLE_SCOPES, in its order.
DEPLOY_SCOPES: tuple[str, ...] = (
    Scope.READ_REPOSITORY,
    Scope.READ_REGISTRY,
    Scope.WRITE_REGISTRY,
    Scope.READ_PACKAGE_REGISTRY,
    Scope.WRITE_PACKAGE_REGISTRY,
    Scope.READ_VIRTUAL_REGISTRY,
    Scope.WRITE_VIRTUAL_REGISTRY,
)
ROOT_TOKEN_SCOPES: tuple[str, ...] = (
    Scope.API,
    Scope.READ_API,
    Scope.READ_USER,
    Scope.READ_REPOSITORY,
    Scope.WRITE_REPOSITORY,
    Scope.READ_REGISTRY,
    Scope.WRITE_REGISTRY,
    Scope.SUDO,
    Scope.ADMIN_MODE,
)

# One line each, as the token forms show them beside their checkboxes.
SCOPE_DESCRIPTIONS: dict[str, str] = {
    "api": "Full read and write access to the API, repositories and registries the account can reach.",
    "read_api": "Read-only access to the API (GET and HEAD requests only).",
    "read_user": "Read the account's own profile and other users' public profiles.",
    "create_runner": "Create CI runners.",
    "manage_runner": "Manage CI runners.",
    "k8s_proxy": "Call the Kubernetes API through the agent for Kubernetes.",
    "self_rotate": "Rotate this token itself, and nothing else.",
    "read_repository": "Clone and fetch repositories over Git HTTP.",
    "write_repository": "Clone, fetch and push repositories over Git HTTP.",
    "read_registry": "Pull container images from the container registry.",
    "write_registry": "Push container images to the container registry.",
    "read_virtual_registry": "Pull from virtual registries.",
    "write_virtual_registry": "Push to virtual registries.",
    "ai_features": "Use AI features.",
    "sudo": "Act as any user of the instance (administrators only).",
    "admin_mode": "Perform administrator actions through the API (administrators only).",
    "read_service_ping": "Read Service Ping data (administrators only).",
    "read_package_registry": "Download packages from the package registry.",
    "write_package_registry": "Upload packages to the package registry.",
}


def described(scopes: tuple[str, ...] | list[str]) -> list[tuple[str, str]]:
    """(scope, description) pairs for a form's checkboxes, in the order given."""
    return [(scope, SCOPE_DESCRIPTIONS.get(scope, "")) for scope in scopes]


def grantable_scopes(*, creator_admin: bool, owner_admin: bool) -> tuple[str, ...]:
    """The scopes a personal, impersonation or service-account token may be given: the admin-only
    ones (sudo, admin_mode, read_service_ping) only by an administrator (or the system) to a token
    of an administrator. So a group Owner or project Maintainer never mints them for a service
    account, and no form offers them to a non-admin. The one rule every creation path applies."""
    return ALL_SCOPES if creator_admin and owner_admin else NON_ADMIN_SCOPES
