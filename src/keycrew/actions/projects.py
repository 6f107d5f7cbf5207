"""Use cases on projects: create (with its repository), update (moving HEAD too) and delete; the
purge itself (repositories, packages, memberships, resource bots) is keycrew.actions.deletion's."""

from __future__ import annotations

from sqlalchemy import func, select

from keycrew.access.compliance import apply_default_framework
from keycrew.access.groups import lock_chain
from keycrew.access.levels import AccessLevel
from keycrew.access.models import Member
from keycrew.access.policy import (
    can_read_group,
    effective_group_level,
    effective_project_level,
    group_level,
)
from keycrew.access.projects import lock_project, personal_namespace, project_entity
from keycrew.access.resources import Resource
from keycrew.actions.deletion import purge_projects
from keycrew.activity.kinds import Action
from keycrew.activity.service import record_event
from keycrew.audit.events import Event
from keycrew.audit.service import Changes, Target, record, record_update
from keycrew.context import Ctx
from keycrew.db.base import MAX_ID
from keycrew.errors import Forbidden, Invalid, MissingParameter, NotFound, Unauthenticated
from keycrew.identity import validation
from keycrew.identity.models import User
from keycrew.infra.transactions import after_commit
from keycrew.namespaces import paths
from keycrew.namespaces.kinds import SourceType, Visibility
from keycrew.namespaces.models import Namespace, Project
from keycrew.repos import storage as repos


def _target_namespace(ctx: Ctx, creator: User, namespace_id: int | None) -> Namespace:
    """Where a new project goes: the creator's own namespace, or a group they may create in."""
    if namespace_id is None:
        return personal_namespace(ctx, creator.id)
    found = ctx.db.get(Namespace, namespace_id) if 0 < namespace_id <= MAX_ID else None
    if found is None:
        raise NotFound("Namespace")
    if found.kind == "user":
        if found.owner_id != creator.id and not ctx.actor.is_admin:
            raise NotFound("Namespace")
        return found
    if not can_read_group(ctx.reads, ctx.actor, found, ctx.today()):
        raise NotFound("Namespace")
    if effective_group_level(ctx.reads, ctx.actor, found, ctx.today()) < AccessLevel.DEVELOPER:
        raise Forbidden()
    return found


def _visibility_fits(visibility: Visibility, namespace: Namespace) -> None:
    if namespace.kind == "group" and visibility.level > namespace.visibility_level:
        raise Invalid.field(
            "visibility_level",
            f"{visibility.value} is not allowed in a "
            f"{Visibility.from_level(namespace.visibility_level).value} group.",
        )


def _name_taken(ctx: Ctx, namespace_id: int, name: str, except_id: int | None = None) -> bool:
    query = select(Project.id).where(Project.namespace_id == namespace_id, Project.name == name)
    if except_id is not None:
        query = query.where(Project.id != except_id)
    return ctx.db.scalar(query) is not None


def _personal_limit_errors(ctx: Ctx, creator: User) -> list[str]:
    """GitLab's personal projects limit: a user holds at most ``projects_limit`` projects in their
    own namespace (new users get the instance's ``default_projects_limit``); 0 allows none."""
    limit = creator.projects_limit
    held = ctx.db.scalar(
        select(func.count(Project.id))
        .join(Namespace, Namespace.id == Project.namespace_id)
        .where(Namespace.kind == "user", Namespace.owner_id == creator.id)
    )
    if int(held or 0) < limit:
        return []
    if limit == 0:
        return ["Personal project creation is not allowed. Please contact your administrator with questions"]
    return [f"Your project limit is {limit} projects! Please contact your administrator to increase it"]


def create_project(
    ctx: Ctx,
    *,
    name: str | None,
    path: str | None = None,
    namespace_id: int | None = None,
    visibility: Visibility | None = None,
    description: str = "",
    default_branch: str | None = None,
    for_user: User | None = None,
    initialize_with_readme: bool = False,
) -> Project:
    """Create a project in a group (Developer+ there, GitLab's default) or a personal namespace.

    ``for_user`` (admins only) creates the project on that user's behalf, by default in their own
    namespace. The holder of a personal namespace becomes the project's Owner; a creator with less
    than Maintainer in the group becomes the project's Maintainer. The project's bare repository
    is made with it (HEAD → ``default_branch``, ``main`` unless given), with a first commit
    holding README.md by the creator if ``initialize_with_readme``. Raises MissingParameter,
    Invalid, NotFound (namespace not visible), Forbidden.
    """
    user = ctx.actor.user
    if user is None:
        raise Unauthenticated()
    if for_user is not None and not ctx.actor.is_admin:
        raise Forbidden()
    creator = for_user or user
    if not name and not path:
        raise MissingParameter("name, path are missing, at least one parameter must be provided")
    name = name or path or ""
    path = path or validation.parameterize(name)
    namespace = _target_namespace(ctx, creator, namespace_id)
    if not lock_chain(ctx, namespace, "share"):
        raise NotFound("Namespace")  # deleted meanwhile
    visibility = visibility or Visibility.PRIVATE
    errors: dict[str, list[str]] = {}
    if e := validation.name_errors(name, project=True):
        errors["name"] = e
    if e := validation.project_path_errors(path):
        errors["path"] = e
    full_path = f"{namespace.full_path}/{path}"
    if "path" not in errors and paths.route_taken(ctx.db, full_path):
        errors["path"] = ["has already been taken"]
    if "name" not in errors and _name_taken(ctx, namespace.id, name):
        errors["name"] = ["has already been taken"]
    if namespace.kind == "user" and (e := _personal_limit_errors(ctx, creator)):
        errors["limit_reached"] = e
    if errors:
        raise Invalid("", errors)
    _visibility_fits(visibility, namespace)
    _check_branch_name(default_branch)
    now = ctx.now()
    project = Project(
        name=name,
        path=path,
        full_path=full_path,
        namespace_id=namespace.id,
        creator_id=creator.id,
        description=description or "",
        visibility_level=visibility.level,
        default_branch=default_branch or "main",
        created_at=now,
        updated_at=now,
        last_activity_at=now,
    )
    project.namespace = namespace
    ctx.db.add(project)
    ctx.db.flush()
    paths.claim(ctx.db, SourceType.PROJECT, project.id, full_path, f"{namespace.full_name} / {name}")
    _add_creator_membership(ctx, project, namespace, creator)
    _create_repository(ctx, project, creator, initialize_with_readme)
    record_event(ctx, Action.CREATED, project.id, author_id=creator.id)
    record(
        ctx,
        Event.PROJECT_CREATED,
        project_entity(project),
        target=Target("Project", project.id, full_path),
        visibility=visibility.value,
        for_user_id=None if for_user is None else for_user.id,
    )
    # The default compliance framework of the top-level group, applied by GitLab Admin Bot.
    apply_default_framework(ctx, project)
    return project


def _check_branch_name(branch: str | None) -> None:
    if branch is None:
        return
    if not branch.strip():
        raise Invalid.field("default_branch", "can't be blank")
    if not repos.valid_branch_name(branch):
        raise Invalid.field("default_branch", "is invalid")


def _readme(project: Project) -> bytes:
    text = f"# {project.name}\n"
    if project.description:
        text += f"\n{project.description}\n"
    return text.encode()


def _create_repository(ctx: Ctx, project: Project, creator: User, initialize_with_readme: bool) -> None:
    root = ctx.instance.repositories_dir
    if root is None:
        return
    initial = None
    if initialize_with_readme:
        initial = repos.InitialCommit(
            author_name=creator.name or creator.username,
            author_email=creator.email,
            when=ctx.now(),
            files={"README.md": _readme(project)},
        )
    repos.create_in_transaction(ctx.db, root, project.id, project.default_branch, initial)


def _add_creator_membership(ctx: Ctx, project: Project, namespace: Namespace, creator: User) -> None:
    if namespace.kind == "user":
        member_id, level = namespace.owner_id, AccessLevel.OWNER
    elif creator.admin or group_level(ctx.reads, creator, namespace, ctx.today()) >= AccessLevel.MAINTAINER:
        return
    else:
        member_id, level = creator.id, AccessLevel.MAINTAINER
    if member_id is None:
        return
    now = ctx.now()
    ctx.db.add(
        Member(
            source_type=SourceType.PROJECT.value,
            source_id=project.id,
            user_id=member_id,
            access_level=int(level),
            created_by_id=ctx.actor.user_id,
            created_at=now,
            updated_at=now,
        )
    )
    if namespace.kind != "user":  # GitLab's "joined", written for members other than the holder
        record_event(ctx, Action.JOINED, project.id, author_id=member_id)


PROJECT_UPDATABLE = ("name", "path", "description", "visibility", "default_branch")


def update_project(
    ctx: Ctx,
    project: Project,
    *,
    name: str | None = None,
    path: str | None = None,
    description: str | None = None,
    visibility: Visibility | None = None,
    default_branch: str | None = None,
) -> Project:
    """Change a project's settings: Maintainer+ (GitLab's admin_project); visibility needs Owner.

    Raises MissingParameter (nothing to change), Forbidden, Invalid, NotFound("Project") when a
    concurrent request deleted it (the project row is locked first: docs/development.md).
    """
    given = (name, path, description, visibility, default_branch)
    if all(v is None for v in given):
        raise MissingParameter(
            f"{', '.join(PROJECT_UPDATABLE)} are missing, at least one parameter must be provided"
        )
    project = lock_project(ctx, project)
    level = effective_project_level(ctx.reads, ctx.actor, project, ctx.today())
    if level < Resource(project).admin_level:
        raise Forbidden()
    namespace = project.namespace
    changing_visibility = visibility is not None and visibility.level != project.visibility_level
    if changing_visibility and level < AccessLevel.OWNER:
        raise Forbidden()
    errors: dict[str, list[str]] = {}
    if name is not None:
        if e := validation.name_errors(name, project=True):
            errors["name"] = e
        elif _name_taken(ctx, namespace.id, name, except_id=project.id):
            errors["name"] = ["has already been taken"]
    new_full = project.full_path
    if path is not None:
        if e := validation.project_path_errors(path):
            errors["path"] = e
        else:
            new_full = f"{namespace.full_path}/{path}"
            if paths.route_taken(ctx.db, new_full, except_source=(SourceType.PROJECT, project.id)):
                errors["path"] = ["has already been taken"]
    if default_branch is not None and not default_branch.strip():
        errors["default_branch"] = ["can't be blank"]
    elif default_branch is not None and not repos.valid_branch_name(default_branch):
        errors["default_branch"] = ["is invalid"]
    if errors:
        raise Invalid("", errors)
    if changing_visibility:
        assert visibility is not None
        _visibility_fits(visibility, namespace)

    changes = Changes()
    change = changes.note
    if change("name", project.name, name):
        assert name is not None
        project.name = name
    if change("path", project.full_path, new_full if path is not None else None):
        assert path is not None
        project.path, project.full_path = path, new_full
    if "name" in changes or "path" in changes:
        route = paths.route_of(ctx.db, SourceType.PROJECT, project.id)
        if route is not None:
            route.path, route.path_lower = project.full_path, project.full_path.lower()
            route.name = f"{namespace.full_name} / {project.name}"
    if change("description", project.description, description):
        project.description = description or ""
    if changing_visibility:
        assert visibility is not None
        change("visibility", Visibility.from_level(project.visibility_level).value, visibility.value)
        project.visibility_level = visibility.level
    if change("default_branch", project.default_branch, default_branch):
        assert default_branch is not None
        _change_head(ctx, project, default_branch)
        project.default_branch = default_branch
    if changes:
        project.updated_at = ctx.now()
        record_update(ctx, Event.PROJECT_UPDATED, project_entity(project), changes)
        ctx.db.flush()
    return project


def _change_head(ctx: Ctx, project: Project, branch: str) -> None:
    """Point the repository's HEAD at the new default branch once the change commits.

    A repository with branches must have that branch (GitLab's "Could not set the default
    branch"); an empty one simply starts on it.
    """
    root = ctx.instance.repositories_dir
    if root is None:
        return
    path = repos.repository_path(root, project.id)
    if not repos.is_empty(path) and not repos.branch_exists(path, branch):
        raise Invalid("Could not set the default branch")
    after_commit(ctx.db, lambda: repos.set_head(path, branch))


def delete_project(ctx: Ctx, project: Project) -> None:
    """Delete a project with its issues, notes, route and memberships (Owner or admin).

    Raises Forbidden; NotFound("Project") when a concurrent request deleted it first.
    """
    if effective_project_level(ctx.reads, ctx.actor, project, ctx.today()) < AccessLevel.OWNER:
        raise Forbidden()
    lock_project(ctx, project, deleting=True)
    record(
        ctx,
        Event.PROJECT_DELETED,
        project_entity(project),
        target=Target("Project", project.id, project.full_path),
        name=project.name,
        visibility=Visibility.from_level(project.visibility_level).value,
    )
    purge_projects(ctx, [project.id])
