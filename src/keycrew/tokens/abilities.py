"""What a credential may do to a project's repository, container images and packages.

A token's scopes bound what it may do at all (GitLab's scope → ability map); the owner's access
level on the project bounds it further. Deploy tokens act by their scopes alone, on their own
project or on every project under their group.
"""

from __future__ import annotations

import datetime as dt
from enum import Enum

from keycrew.access.levels import AccessLevel
from keycrew.access.policy import project_level, sees_internal
from keycrew.db.reads import Reader
from keycrew.namespaces.kinds import Visibility
from keycrew.namespaces.models import Namespace, Project
from keycrew.tokens.basic import Credential
from keycrew.tokens.scopes import READS, Ability, scopes_allow

# The access level each ability needs when it is not granted by the project's visibility.
LEVEL_NEEDED: dict[Ability, int] = {
    Ability.DOWNLOAD_CODE: AccessLevel.REPORTER,
    Ability.PUSH_CODE: AccessLevel.DEVELOPER,
    Ability.READ_CONTAINER_IMAGE: AccessLevel.REPORTER,
    Ability.CREATE_CONTAINER_IMAGE: AccessLevel.DEVELOPER,
    Ability.ADMIN_CONTAINER_IMAGE: AccessLevel.MAINTAINER,
    Ability.READ_PACKAGE: AccessLevel.REPORTER,
    Ability.CREATE_PACKAGE: AccessLevel.DEVELOPER,
}


class Decision(Enum):
    ALLOWED = "allowed"
    FORBIDDEN = "forbidden"  # the caller may see the project but not do this: 403
    NOT_FOUND = "not_found"  # the caller may not know the project exists: 404
    UNAUTHENTICATED = "unauthenticated"  # nobody signed in, and signing in might help: 401


def _deploy_token_reaches(credential: Credential, project: Project) -> bool:
    token = credential.deploy_token
    assert token is not None
    if token.project_id is not None:
        return token.project_id == project.id
    node: Namespace | None = project.namespace
    while node is not None:
        if node.id == token.group_id:
            return True
        node = node.parent
    return False


def scope_allows(credential: Credential, ability: Ability) -> bool:
    if credential.scopes is None:
        return True
    return scopes_allow(credential.scopes, ability, deploy_token=credential.deploy_token is not None)


def decide(
    reads: Reader, credential: Credential, project: Project, ability: Ability, today: dt.date
) -> Decision:
    """May ``credential`` do ``ability`` on ``project``? (see Decision for what each answer means)."""
    public = project.visibility_level >= Visibility.PUBLIC.level
    internal = project.visibility_level >= Visibility.INTERNAL.level
    # An archived project is read-only for everyone (GitLab's ArchivedAbilities).
    read_only = project.archived and ability not in READS
    if credential.deploy_token is not None:
        if not _deploy_token_reaches(credential, project):
            return Decision.NOT_FOUND
        allowed = scope_allows(credential, ability) and not read_only
        return Decision.ALLOWED if allowed else Decision.FORBIDDEN
    user = credential.user
    if user is None:
        if public and ability in READS:
            return Decision.ALLOWED
        return Decision.UNAUTHENTICATED
    level = AccessLevel.OWNER if user.admin else project_level(reads, user, project, today)
    # The same line as the API's visibility rules (policy.sees_internal): external users and
    # project bots see internal projects only where they are members.
    by_visibility = public or (internal and sees_internal(user))
    sees = level >= AccessLevel.GUEST or by_visibility
    if not sees:
        return Decision.NOT_FOUND
    if not scope_allows(credential, ability) or read_only:
        return Decision.FORBIDDEN
    needed = LEVEL_NEEDED[ability]
    if ability in READS and by_visibility:
        return Decision.ALLOWED
    return Decision.ALLOWED if level >= needed else Decision.FORBIDDEN
