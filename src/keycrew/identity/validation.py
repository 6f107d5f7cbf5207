"""GitLab's rules for usernames, namespace paths and e-mail addresses."""

from __future__ import annotations

import re

# Top-level routes a user or group may not take: GitLab's reserved names plus keycrew's own.
RESERVED_NAMES = frozenset(
    {
        "-",
        ".well-known",
        "404.html",
        "422.html",
        "500.html",
        "502.html",
        "503.html",
        "admin",
        "api",
        "apple-touch-icon.png",
        "assets",
        "dashboard",
        "deploy.html",
        "explore",
        "favicon.ico",
        "favicon.png",
        "files",
        "groups",
        "health_check",
        "help",
        "import",
        "jwt",
        "login",
        "oauth",
        "profile",
        "projects",
        "public",
        "robots.txt",
        "s",
        "search",
        "sitemap",
        "sitemap.xml",
        "sitemap.xml.gz",
        "slash-command-logo.png",
        "snippets",
        "unsubscribes",
        "uploads",
        "users",
        "v2",
        "static",
        "metrics",
        "readiness",
        "liveness",
        "sign_in",
        "sign_out",
        "root_token",
        "new",
        "edit",
    }
)

PATH_MESSAGE = (
    "can contain only letters, digits, '_', '-' and '.'. Cannot start with '-', "
    "end in '.git' or end in '.atom'"
)
PROJECT_PATH_MESSAGE = (
    "can contain only letters, digits, '_', '-' and '.'. Cannot start with '-', "
    "end in '.git' or end in '.atom'"
)
NAME_MESSAGE = (
    "can contain only letters, digits, emoji, '_', '.', dash, space, parenthesis. "
    "It must start with letter, digit, emoji or '_'."
)
PROJECT_NAME_MESSAGE = (
    "can contain only letters, digits, emoji, '_', '.', '+', dashes, or spaces. "
    "It must start with a letter, digit, emoji, or '_'."
)

_PATH_RE = re.compile(r"\A[A-Za-z0-9_.][A-Za-z0-9_.\-]*\Z")
_PROJECT_PATH_RE = re.compile(r"\A[A-Za-z0-9_][A-Za-z0-9_.\-]*\Z")
_EMAIL_RE = re.compile(r"\A[^@\s]+@[^@\s]+\.[^@\s]+\Z|\A[^@\s]+@localhost\Z")
_NAME_RE = re.compile(r"\A[\w\u00a9-\U0010ffff][\w\u00a9-\U0010ffff.\-() ]*\Z")
_PROJECT_NAME_RE = re.compile(r"\A[\w\u00a9-\U0010ffff][\w\u00a9-\U0010ffff.+\- ]*\Z")

MAX_PATH = 255
MAX_NAME = 255


def _path_errors(value: str, pattern: re.Pattern[str], message: str) -> list[str]:
    errors: list[str] = []
    if not value:
        return ["can't be blank"]
    if len(value) > MAX_PATH:
        errors.append(f"is too long (maximum is {MAX_PATH} characters)")
    if not pattern.match(value) or value.endswith((".git", ".atom", ".")):
        errors.append(message)
    return errors


def username_errors(username: str) -> list[str]:
    errors = _path_errors(username, _PATH_RE, PATH_MESSAGE)
    if username.lower() in RESERVED_NAMES:
        errors.append(f"{username} is a reserved name")
    return errors


def namespace_path_errors(path: str, *, top_level: bool) -> list[str]:
    errors = _path_errors(path, _PATH_RE, PATH_MESSAGE)
    if top_level and path.lower() in RESERVED_NAMES:
        errors.append(f"{path} is a reserved name")
    return errors


def project_path_errors(path: str) -> list[str]:
    return _path_errors(path, _PROJECT_PATH_RE, PROJECT_PATH_MESSAGE)


def name_errors(name: str, *, project: bool = False) -> list[str]:
    if not name or not name.strip():
        return ["can't be blank"]
    errors: list[str] = []
    if len(name) > MAX_NAME:
        errors.append(f"is too long (maximum is {MAX_NAME} characters)")
    pattern, message = (_PROJECT_NAME_RE, PROJECT_NAME_MESSAGE) if project else (_NAME_RE, NAME_MESSAGE)
    if not pattern.match(name):
        errors.append(message)
    return errors


def display_name_errors(name: str) -> list[str]:
    """A user's display name: anything printable, not blank, at most 255 characters."""
    if not name or not name.strip():
        return ["can't be blank"]
    if len(name) > MAX_NAME:
        return [f"is too long (maximum is {MAX_NAME} characters)"]
    if any(ord(ch) < 32 for ch in name):
        return ["is invalid"]
    return []


def email_errors(email: str) -> list[str]:
    if not email:
        return ["can't be blank"]
    if len(email) > MAX_PATH:
        return [f"is too long (maximum is {MAX_PATH} characters)"]
    if not _EMAIL_RE.match(email):
        return ["is invalid"]
    return []


def parameterize(name: str) -> str:
    """A path from a name, as Rails' ``parameterize``: lower case, dashes for the rest."""
    slug = re.sub(r"[^a-z0-9_\-.]+", "-", name.lower()).strip("-.")
    return re.sub(r"-{2,}", "-", slug)
