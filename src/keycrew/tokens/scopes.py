"""GitLab's token scopes and which token kinds may carry which."""

from __future__ import annotations

from enum import StrEnum


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


NON_ADMIN_SCOPES: tuple[str, ...] = (
    "api",
    "read_api",
    "read_user",
    "create_runner",
    "manage_runner",
    "k8s_proxy",
    "self_rotate",
    "read_repository",
    "write_repository",
    "read_registry",
    "write_registry",
    "read_virtual_registry",
    "write_virtual_registry",
    "ai_features",
)
ADMIN_SCOPES: tuple[str, ...] = ("sudo", "admin_mode", "read_service_ping")
ALL_SCOPES: tuple[str, ...] = NON_ADMIN_SCOPES + ADMIN_SCOPES
# Project and group bot tokens: every non-admin scope but read_user.
RESOURCE_BOT_SCOPES: tuple[str, ...] = tuple(s for s in NON_ADMIN_SCOPES if s != "read_user")
ROOT_TOKEN_SCOPES: tuple[str, ...] = (
    "api",
    "read_api",
    "read_user",
    "read_repository",
    "write_repository",
    "read_registry",
    "write_registry",
    "sudo",
    "admin_mode",
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
