"""Python package names, versions and file names: normalising and validating them.

Every pattern is used with ``fullmatch`` (a ``$`` would also match before a final newline)."""

from __future__ import annotations

import re

MAX_LENGTH = 255

# PEP 508: letters, digits, ".", "_" and "-", starting and ending with a letter or digit.
NAME = re.compile(r"[A-Z0-9]|[A-Z0-9][A-Z0-9._-]*[A-Z0-9]", re.IGNORECASE)
# PEP 440's public and local versions (the pattern PEP 440 gives in its appendix, as pip reads them).
VERSION = re.compile(
    r"""v?
    (?:(?:[0-9]+)!)?                                   # epoch
    [0-9]+(?:\.[0-9]+)*                                # release segment
    (?:[-_.]?(?:a|b|c|rc|alpha|beta|pre|preview)[-_.]?[0-9]*)?  # pre-release
    (?:-[0-9]+|[-_.]?(?:post|rev|r)[-_.]?[0-9]*)?     # post release
    (?:[-_.]?dev[-_.]?[0-9]*)?                         # dev release
    (?:\+[a-z0-9]+(?:[-_.][a-z0-9]+)*)?                # local version
    """,
    re.IGNORECASE | re.VERBOSE,
)
# A distribution file name: one path segment of characters safe in URLs and HTML.
FILE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+!~-]*")
SHA256 = re.compile(r"[0-9a-f]{64}", re.IGNORECASE)
MD5 = re.compile(r"[0-9a-f]{32}", re.IGNORECASE)
_SEPARATORS = re.compile(r"[-_.]+")


def normalize(name: str) -> str:
    """PEP 503: lower case, every run of "-", "_" and "." becomes one "-"."""
    return _SEPARATORS.sub("-", name).lower()


def valid_name(name: str) -> bool:
    return len(name) <= MAX_LENGTH and NAME.fullmatch(name) is not None


def valid_version(version: str) -> bool:
    return len(version) <= MAX_LENGTH and VERSION.fullmatch(version) is not None


def valid_file_name(file_name: str) -> bool:
    return len(file_name) <= MAX_LENGTH and FILE_NAME.fullmatch(file_name) is not None
