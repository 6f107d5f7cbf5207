"""Who may fetch from and push to a project's repository over git, and the record of a push.

``authorize_git`` is GitLab's git access check for HTTP: Basic credentials (tokens/basic.py),
then the project's visibility, the credential's scopes and the holder's role
(access/abilities.py). Its outcome is the domain's usual errors: Unauthenticated (no or bad
credentials where credentials would help: 401), NotFound (the caller may not know the project:
404), Forbidden (403, with GitLab's message). Who may push to the protected default branch is
decided here too, and enforced per ref by the pre-receive hook (repos/hooks.py).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from sqlalchemy import or_, update

from keycrew.access.levels import AccessLevel
from keycrew.access.policy import project_level
from keycrew.activity.kinds import Action, PushAction, RefType
from keycrew.activity.service import PushData, commit_title, record_event
from keycrew.audit.events import Event
from keycrew.audit.service import Entity, Target, record
from keycrew.context import Actor, Ctx
from keycrew.errors import Forbidden, NotFound, Unauthenticated
from keycrew.identity.models import User
from keycrew.instance.settings import instance_settings
from keycrew.namespaces import paths
from keycrew.namespaces.kinds import SourceType
from keycrew.namespaces.models import Project
from keycrew.repos import storage
from keycrew.tokens.abilities import Decision, decide, scope_allows
from keycrew.tokens.basic import Credential, authenticate_basic
from keycrew.tokens.models import DeployToken
from keycrew.tokens.scopes import Ability, Scope

# A deploy token's last use is written at most this often (GitLab's last_used_at rule for tokens).
DEPLOY_TOKEN_USE_EVERY = dt.timedelta(minutes=10)

ACCESS_DENIED = (
    "HTTP Basic: Access denied. If a password was provided for Git authentication, the password was "
    "incorrect or you're required to use a token instead of a password. If a token was provided, it "
    "was either incorrect, expired, or improperly scoped."
)
PROJECT_NOT_FOUND = (
    "The project you were looking for could not be found or you don't have permission to view it."
)
# GitLab's Gitlab::GitAccess messages.
AUTH_DOWNLOAD = "You are not allowed to download code."
AUTH_UPLOAD = "You are not allowed to upload code."
DOWNLOAD = "You are not allowed to download code from this project."
PUSH_CODE = "You are not allowed to push code to this project."
ARCHIVED = "You are not allowed to push code to an archived project."


class GitService(StrEnum):
    UPLOAD_PACK = "git-upload-pack"  # clone, fetch, pull
    RECEIVE_PACK = "git-receive-pack"  # push

    @property
    def ability(self) -> Ability:
        return Ability.PUSH_CODE if self is GitService.RECEIVE_PACK else Ability.DOWNLOAD_CODE

    @property
    def least_scope(self) -> str:
        """The least scope that allows this service (what the token-hygiene report records)."""
        return Scope.WRITE_REPOSITORY if self is GitService.RECEIVE_PACK else Scope.READ_REPOSITORY


@dataclass(frozen=True)
class GitAccess:
    """A granted git request: what the bridge needs to run it and to record it afterwards."""

    project_id: int
    full_path: str
    repository: Path
    default_branch: str
    service: GitService
    actor: Actor
    # The name git sees as REMOTE_USER: the user's, the deploy token's, or None (anonymous).
    remote_user: str | None
    # The personal/bot/service-account token used, if any (for its last-use record).
    personal_token_id: int | None
    may_push_protected: bool
    # A deploy token whose last use is due to be written (note_deploy_token_use).
    deploy_token_use_due: int | None = None
    # The deploy token used, if any (the git throttle counts it apart from any user).
    deploy_token_id: int | None = None
    # A user signed in with a password whose last_activity_on is not today yet
    # (note_user_activity); token users' activity is the usage writer's.
    activity_due: int | None = None


def _project_by_path(ctx: Ctx, full_path: str) -> Project | None:
    # A repository path names a project inside a namespace: at least two segments.
    if "/" not in full_path.strip("/"):
        return None
    route = paths.find_source(ctx.db, full_path)
    if route is None or route.source_type != SourceType.PROJECT:
        return None
    return ctx.db.get(Project, route.source_id)


def _actor(credential: Credential, ip: str | None) -> Actor:
    token_id = credential.token.id if credential.token is not None else None
    return Actor(user=credential.user, token_id=token_id, ip=ip, scopes=credential.scopes, via="git")


def _refuse(credential: Credential, project: Project, service: GitService, decision: Decision) -> None:
    if decision is Decision.UNAUTHENTICATED:
        raise Unauthenticated(ACCESS_DENIED)
    if decision is Decision.NOT_FOUND:
        raise NotFound("Project")
    if decision is Decision.FORBIDDEN:
        push = service is GitService.RECEIVE_PACK
        if not scope_allows(credential, service.ability):
            raise Forbidden(AUTH_UPLOAD if push else AUTH_DOWNLOAD)
        if push and project.archived:
            raise Forbidden(ARCHIVED)
        raise Forbidden(PUSH_CODE if push else DOWNLOAD)


def authorize_git(
    ctx: Ctx, root: Path, username: str | None, password: str | None, full_path: str, service: GitService
) -> GitAccess:
    """Resolve the credentials and decide whether they may run ``service`` on ``full_path``.

    ``ctx.actor`` carries the client's IP. Returns the GitAccess (and makes the repository if an
    older project has none yet). Raises Unauthenticated, NotFound, Forbidden.
    """
    settings = instance_settings(ctx)
    credential = authenticate_basic(
        ctx.db,
        ctx.instance.secret_key,
        username,
        password,
        ctx.today(),
        password_auth_enabled=settings.password_authentication_enabled_for_git,
        instance_prefix=ctx.instance.token_prefix,
        now=ctx.now(),
    )
    actor = _actor(credential, ctx.actor.ip)
    project = _project_by_path(ctx, full_path)
    if project is None:
        # Without credentials git is asked for some (the project may exist for someone); with
        # them, 404, as for a project the caller may not see.
        raise Unauthenticated(ACCESS_DENIED) if credential.is_anonymous else NotFound("Project")
    decision = decide(ctx.reads, credential, project, service.ability, ctx.today())
    _refuse(credential, project, service, decision)
    may_push_protected = False
    if service is GitService.RECEIVE_PACK and credential.user is not None:
        level = (
            AccessLevel.OWNER
            if credential.user.admin
            else project_level(ctx.reads, credential.user, project, ctx.today())
        )
        may_push_protected = level >= AccessLevel.MAINTAINER
    use_due = None
    if credential.deploy_token is not None and _use_due(credential.deploy_token.last_used_at, ctx.now()):
        use_due = credential.deploy_token.id
    activity_due = None
    if (
        credential.user is not None
        and credential.token is None
        and credential.user.last_activity_on != ctx.today()
    ):
        activity_due = credential.user.id
    remote_user = credential.user.username if credential.user is not None else None
    if credential.deploy_token is not None:
        remote_user = credential.deploy_token.username
    return GitAccess(
        project_id=project.id,
        full_path=project.full_path,
        repository=storage.ensure(root, project.id, project.default_branch),
        default_branch=project.default_branch,
        service=service,
        actor=actor,
        remote_user=remote_user,
        personal_token_id=actor.token_id,
        may_push_protected=may_push_protected,
        deploy_token_use_due=use_due,
        deploy_token_id=None if credential.deploy_token is None else credential.deploy_token.id,
        activity_due=activity_due,
    )


def note_user_activity(ctx: Ctx, user_id: int) -> None:
    """Set a user's last_activity_on to today (GitLab's activity of a git client signed in with a
    password: at most once a day), in its own short transaction."""
    today = ctx.today()
    ctx.db.execute(
        update(User)
        .where(User.id == user_id, or_(User.last_activity_on.is_(None), User.last_activity_on != today))
        .values(last_activity_on=today)
        .execution_options(synchronize_session=False)
    )


def _use_due(last_used_at: dt.datetime | None, now: dt.datetime) -> bool:
    return last_used_at is None or now - last_used_at >= DEPLOY_TOKEN_USE_EVERY


def note_deploy_token_use(ctx: Ctx, deploy_token_id: int) -> None:
    """Set a deploy token's last_used_at (at most every 10 minutes), in its own short transaction."""
    token = ctx.db.get(DeployToken, deploy_token_id)
    if token is not None and _use_due(token.last_used_at, ctx.now()):
        token.last_used_at = ctx.now()


@dataclass(frozen=True)
class RefUpdate:
    ref: str
    before: str
    after: str

    @property
    def change(self) -> str:
        if not self.before.strip("0"):
            return "created"
        return "deleted" if not self.after.strip("0") else "updated"


def parse_push_log(text: str) -> list[RefUpdate]:
    """The post-receive hook's "old new ref" lines."""
    updates = []
    for line in text.splitlines():
        parts = line.split()
        if len(parts) == 3:
            updates.append(RefUpdate(ref=parts[2], before=parts[0], after=parts[1]))
    return updates


# GitLab's push_event_activities_limit: more refs of one kind and action than this in one push
# make one bulk event (with ref_count) instead of one event per ref.
PUSH_EVENT_ACTIVITIES_LIMIT = 3
_ZERO = "0"
_KINDS = {"refs/heads/": RefType.BRANCH, "refs/tags/": RefType.TAG}


def _commit_message(repository: Path, sha: str) -> str | None:
    try:
        return storage.git("log", "-1", "--format=%B", sha, "--", cwd=repository).decode(errors="replace")
    except storage.GitFailed:
        return None


def _exists(repository: Path, ref: str) -> bool:
    try:
        storage.git("rev-parse", "--verify", "--quiet", ref, cwd=repository)
    except storage.GitFailed:
        return False
    return True


def _range(repository: Path, *revisions: str) -> tuple[int, str | None]:
    """How many commits ``git rev-list revisions`` names, and the newest one."""
    try:
        listed = storage.git("rev-list", *revisions, "--", cwd=repository).decode().split()
    except storage.GitFailed:
        return 0, None
    return len(listed), (listed[0] if listed else None)


def _ref_push(repository: Path, default_branch: str, update: RefUpdate, kind: RefType) -> PushData:
    """GitLab's push payload of one ref: what it names and the commits it brought (for a new
    branch, those not on the default branch; a new default branch, all of its commits)."""
    prefix = "refs/heads/" if kind is RefType.BRANCH else "refs/tags/"
    name = update.ref.removeprefix(prefix)
    created, removed = not update.before.strip(_ZERO), not update.after.strip(_ZERO)
    action = PushAction.CREATED if created else PushAction.REMOVED if removed else PushAction.PUSHED
    count, newest = 0, None
    if removed:
        pass
    elif kind is RefType.TAG:
        count, newest = _range(repository, "-1", f"{update.after}^{{commit}}")
    elif created and name == default_branch:
        count, newest = _range(repository, update.after)
    elif created:
        base = f"refs/heads/{default_branch}"
        count, newest = _range(
            repository, update.after, *(("--not", base) if _exists(repository, base) else ())
        )
    else:
        count, newest = _range(repository, f"{update.before}..{update.after}")
    return PushData(
        action=action,
        ref_type=kind,
        commit_count=count,
        commit_from=None if created else update.before,
        commit_to=None if removed else update.after,
        ref=name,
        commit_title=None if newest is None else commit_title(_commit_message(repository, newest)),
    )


def describe_push(
    root: Path, project_id: int, default_branch: str, updates: list[RefUpdate]
) -> list[PushData]:
    """The push payloads of ``updates`` (branches and tags only), read from the repository: one
    per ref, or one bulk payload per kind and action of more than PUSH_EVENT_ACTIVITIES_LIMIT refs.
    Run before the transaction that records them (git is slower than the database)."""
    repository = storage.repository_path(root, project_id)
    groups: dict[tuple[RefType, PushAction], list[RefUpdate]] = {}
    for change in updates:
        kind = next((k for prefix, k in _KINDS.items() if change.ref.startswith(prefix)), None)
        if kind is None:
            continue
        created, removed = not change.before.strip(_ZERO), not change.after.strip(_ZERO)
        action = PushAction.CREATED if created else PushAction.REMOVED if removed else PushAction.PUSHED
        groups.setdefault((kind, action), []).append(change)
    payloads = []
    for (kind, action), changes in groups.items():
        if len(changes) > PUSH_EVENT_ACTIVITIES_LIMIT:
            payloads.append(PushData(action=action, ref_type=kind, ref_count=len(changes)))
        else:
            payloads += [_ref_push(repository, default_branch, one, kind) for one in changes]
    return payloads


def record_push(
    ctx: Ctx, project_id: int, updates: list[RefUpdate], payloads: list[PushData] | None = None
) -> None:
    """Write the audit event of a push that changed ``updates`` (actor: ctx.actor), its "pushed"
    contribution events (``payloads``, from ``describe_push``) and mark the project active. A
    project deleted meanwhile is skipped."""
    project = ctx.db.get(Project, project_id)
    if project is None or not updates:
        return
    project.last_activity_at = ctx.now()
    for payload in payloads or ():
        record_event(ctx, Action.PUSHED, project.id, push=payload)
    record(
        ctx,
        Event.GIT_PUSH,
        Entity("Project", project.id, project.full_path),
        target=Target("Project", project.id, project.full_path),
        protocol="http",
        refs=[{"ref": u.ref, "before": u.before, "after": u.after, "change": u.change} for u in updates],
    )
