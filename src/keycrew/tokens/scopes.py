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
