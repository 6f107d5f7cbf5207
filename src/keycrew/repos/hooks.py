"""The server-side hooks every push through keycrew runs: the protected default branch, the push log.

They live once, in ``<repositories root>/.hooks``, and git finds them through ``core.hooksPath``
set in the environment of each ``git http-backend`` keycrew starts (``push_environment``), so a
repository's own ``hooks/`` directory is never used and a new version of the rules applies to
every repository at once. The decision who may push to the protected branch is made in keycrew
(repos/git_access.py) and handed to the hook in KEYCREW_MAY_PUSH_PROTECTED; the hook applies it
per ref, with git's own view of whether an update is a force push.

Without keycrew's variables (an operator pushing on the server itself) the hooks do nothing.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

from keycrew.repos.storage import HOOKS_DIR

DEFAULT_BRANCH_VAR = "KEYCREW_DEFAULT_BRANCH"
MAY_PUSH_PROTECTED_VAR = "KEYCREW_MAY_PUSH_PROTECTED"
PUSH_LOG_VAR = "KEYCREW_PUSH_LOG"

# GitLab's messages (lib/gitlab/checks/branch_check.rb), so that scripts matching them keep working.
DELETE_DEFAULT = "The default branch of a project cannot be deleted."
FORCE_PUSH = "You are not allowed to force push code to a protected branch on this project."
PUSH_PROTECTED = "You are not allowed to push code to protected branches on this project."
HEX_BRANCH = "You cannot create a branch with a 40-character hexadecimal branch name."

PRE_RECEIVE = f"""#!/bin/sh
# keycrew: the project's default branch is protected. Nobody deletes it or force-pushes it;
# only those keycrew marks with {MAY_PUSH_PROTECTED_VAR}=1 (Maintainers and above) push to it.
# One refused ref refuses the whole push, as GitLab does.
[ -n "${DEFAULT_BRANCH_VAR}" ] || exit 0
protected="refs/heads/${DEFAULT_BRANCH_VAR}"
status=0
while read -r old new ref; do
    case "$ref" in refs/heads/*) ;; *) continue ;; esac
    case "$new" in *[!0]*) deleting=0 ;; *) deleting=1 ;; esac
    case "$old" in *[!0]*) creating=0 ;; *) creating=1 ;; esac
    if [ "$creating" = 1 ] && printf '%s\\n' "${{ref#refs/heads/}}" | grep -Eqx '[0-9a-fA-F]{{40}}'; then
        echo "{HEX_BRANCH}" >&2
        status=1
        continue
    fi
    [ "$ref" = "$protected" ] || continue
    if [ "$deleting" = 1 ]; then
        echo "{DELETE_DEFAULT}" >&2
        status=1
    elif [ "$creating" = 0 ] && ! git merge-base --is-ancestor "$old" "$new" 2>/dev/null; then
        echo "{FORCE_PUSH}" >&2
        status=1
    elif [ "${MAY_PUSH_PROTECTED_VAR}" != 1 ]; then
        echo "{PUSH_PROTECTED}" >&2
        status=1
    fi
done
exit $status
"""

POST_RECEIVE = f"""#!/bin/sh
# keycrew: note the refs this push changed ("old new ref" lines) for its audit event.
if [ -n "${PUSH_LOG_VAR}" ]; then
    cat >> "${PUSH_LOG_VAR}"
else
    cat > /dev/null
fi
"""

HOOKS = {"pre-receive": PRE_RECEIVE, "post-receive": POST_RECEIVE}


def hooks_dir(root: Path) -> Path:
    return root / HOOKS_DIR


def install(root: Path) -> Path:
    """Write the hooks under ``root`` if they are missing or differ (safe with several processes)."""
    directory = hooks_dir(root)
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    for name, text in HOOKS.items():
        path = directory / name
        with contextlib.suppress(OSError):
            if path.read_text() == text and os.access(path, os.X_OK):
                continue
        scratch = directory / f".{name}.{os.getpid()}"
        scratch.write_text(text)
        scratch.chmod(0o700)
        scratch.replace(path)  # atomic: a concurrent push sees the old hook or the new one
    return directory


def config_environment(root: Path) -> dict[str, str]:
    """git configuration through the environment: keycrew's hooks, and partial clone allowed."""
    settings = {"core.hooksPath": str(hooks_dir(root)), "uploadpack.allowFilter": "true"}
    env = {"GIT_CONFIG_COUNT": str(len(settings))}
    for i, (key, value) in enumerate(settings.items()):
        env[f"GIT_CONFIG_KEY_{i}"] = key
        env[f"GIT_CONFIG_VALUE_{i}"] = value
    return env


def push_environment(default_branch: str, may_push_protected: bool, push_log: Path) -> dict[str, str]:
    return {
        DEFAULT_BRANCH_VAR: default_branch,
        MAY_PUSH_PROTECTED_VAR: "1" if may_push_protected else "0",
        PUSH_LOG_VAR: str(push_log),
    }
