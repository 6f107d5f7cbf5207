"""keycrew: identity, tokens and access for the machines of a software forge."""

__version__ = "0.1.0"
# The GitLab release whose REST API v4 keycrew follows; clients read it from /version.
GITLAB_COMPAT_VERSION = "18.9.0"
