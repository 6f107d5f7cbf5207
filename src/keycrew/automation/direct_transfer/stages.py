"""The stages that copy records through keycrew's use cases: the group (queueing its subgroups and
projects), the project, memberships, issues and notes.

Each reads the source outside any transaction, then writes one batch per transaction with the
``BulkImportRecord`` of every source record it copied: a stage run again (after a crash, a
transient error, a kill -9) asks the source again and skips what is recorded, so nothing is
copied twice. A record that cannot be copied without stopping the rest (an issue whose title
keycrew refuses) is recorded as a failure and skipped, as GitLab does.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterable, Mapping
from typing import Any

from sqlalchemy import select

from keycrew.access.groups import create_group
from keycrew.access.levels import AccessLevel
from keycrew.access.members import create_membership
from keycrew.access.models import Member
from keycrew.access.resources import Resource
from keycrew.actions.projects import create_project
from keycrew.automation.direct_transfer.work import (
    Step,
    Work,
    add_failure,
    as_source_author,
    describe,
    imported_count,
    load_cursor,
    parse_time,
    recorded,
    remember,
    set_stats,
)
from keycrew.context import Ctx
from keycrew.errors import Invalid, KeycrewError, NotFound
from keycrew.imports.bulk import BulkImportEntity, BulkImportRecord, BulkImportStatus, EntityType, Stage
from keycrew.imports.placeholders import AuthorReason, author_for
from keycrew.imports.source import JSONObject, SourceProtocolError
from keycrew.namespaces.kinds import Visibility
from keycrew.namespaces.models import Namespace, Project
from keycrew.records.imported import import_issue, import_note
from keycrew.records.models import Issue

# Authors GitLab gives to Migration Bot: no membership is made for them.
UNAVAILABLE = frozenset(
    {AuthorReason.SOURCE_GHOST_USER, AuthorReason.SOURCE_USER_DELETED, AuthorReason.SOURCE_USER_BLOCKED}
)
# Who gets a membership: a placeholder (moved at reassignment), or the user it was reassigned to.
MEMBER_REASONS = frozenset({AuthorReason.PLACEHOLDER, AuthorReason.REASSIGNED})
LEVELS = frozenset(int(level) for level in AccessLevel if level >= AccessLevel.GUEST)


def _visibility(value: Any, cap: int | None) -> Visibility:
    """The source's visibility, no more visible than ``cap`` (the destination parent's level)."""
    try:
        visibility = Visibility(str(value))
    except ValueError:
        visibility = Visibility.PRIVATE
    if cap is not None and visibility.level > cap:
        return Visibility.from_level(max(level for level in (0, 10, 20) if level <= cap))
    return visibility


def _source_id(item: Mapping[str, Any], what: str) -> int:
    value = item.get("id")
    if isinstance(value, bool) or not isinstance(value, int):
        raise SourceProtocolError(f"the source gave {what} without an id")
    return value


def _destination_parent(ctx: Ctx, full_path: str) -> Namespace | None:
    """The destination group named by ``full_path`` ("" = top level)."""
    if not full_path:
        return None
    found = ctx.db.scalars(
        select(Namespace).where(Namespace.kind == "group", Namespace.full_path == full_path)
    ).first()
    if found is None:
        raise NotFound("Destination namespace")
    return found


def _project_of(step: Step) -> Project:
    project = step.ctx.db.get(Project, step.entity.project_id) if step.entity.project_id else None
    if project is None:
        raise Invalid("the destination project no longer exists")
    return project


def _group_of(step: Step) -> Namespace:
    group = step.ctx.db.get(Namespace, step.entity.namespace_id) if step.entity.namespace_id else None
    if group is None:
        raise Invalid("the destination group no longer exists")
    return group


def _queue(step: Step, entity_type: EntityType, source_full_path: str, slug: str, namespace: str) -> bool:
    """A child entity of ``step.entity`` (a subgroup or a project found in its group); False if the
    import already has one for that source path (the user asked for it too)."""
    parent = step.entity
    db = step.ctx.db
    taken = db.scalars(
        select(BulkImportEntity.id).where(
            BulkImportEntity.bulk_import_id == parent.bulk_import_id,
            BulkImportEntity.source_full_path == source_full_path,
            BulkImportEntity.entity_type == entity_type.value,
        )
    ).first()
    if taken is not None:
        return False
    now = step.ctx.now()
    db.add(
        BulkImportEntity(
            bulk_import_id=parent.bulk_import_id,
            parent_id=parent.id,
            status=BulkImportStatus.CREATED.value,
            entity_type=entity_type.value,
            source_full_path=source_full_path,
            destination_slug=slug,
            destination_namespace=namespace,
            migrate_projects=parent.migrate_projects,
            migrate_memberships=parent.migrate_memberships,
            stage=(Stage.GROUP if entity_type is EntityType.GROUP else Stage.PROJECT).value,
            has_failures=False,
            attempts=0,
            created_at=now,
            updated_at=now,
        )
    )
    return True


# -- group ------------------------------------------------------------------------------------------


def copy_group(work: Work, source_full_path: str) -> None:
    """Create the destination group from the source group and queue an entity for each direct
    subgroup and (with ``migrate_projects``) each project directly in it: one transaction."""
    source = work.source.group(source_full_path)
    source_id = _source_id(source, "the group")
    subgroups = [g for g in work.source.descendant_groups(source_id) if g.get("parent_id") == source_id]
    with work.batch() as step:
        migrate_projects = step.entity.migrate_projects
    projects = list(work.source.group_projects(source_id)) if migrate_projects else []
    with work.batch() as step:
        entity, ctx = step.entity, step.ctx
        if entity.namespace_id is None:
            parent = _destination_parent(ctx, entity.destination_namespace)
            group = create_group(
                ctx,
                name=str(source.get("name") or entity.destination_slug),
                path=entity.destination_slug,
                parent_id=None if parent is None else parent.id,
                visibility=_visibility(
                    source.get("visibility"), None if parent is None else parent.visibility_level
                ),
                description=str(source.get("description") or ""),
            )
            entity.namespace_id = group.id
            entity.source_xid = source_id
            remember(ctx, entity.id, "group", str(source_id), group.id)
        group = _group_of(step)
        queued = 0
        for sub in subgroups:
            path = sub.get("full_path")
            if isinstance(path, str) and path and isinstance(sub.get("path"), str):
                queued += _queue(step, EntityType.GROUP, path, str(sub["path"]), group.full_path)
        for project in projects:
            path = project.get("path_with_namespace")
            if isinstance(path, str) and path and isinstance(project.get("path"), str):
                queued += _queue(step, EntityType.PROJECT, path, str(project["path"]), group.full_path)
        set_stats(entity, "group", source=1, fetched=1, imported=1)
        work.run.count("groups created")


# -- project ----------------------------------------------------------------------------------------


def copy_project(work: Work, source_full_path: str) -> None:
    """Create the destination project (no README; the source's default branch) in one transaction."""
    source = work.source.project(source_full_path)
    source_id = _source_id(source, "the project")
    with work.batch() as step:
        entity, ctx = step.entity, step.ctx
        if entity.project_id is None:
            parent = _destination_parent(ctx, entity.destination_namespace)
            if parent is None:
                raise Invalid("a project needs a destination group")
            branch = source.get("default_branch")
            project = create_project(
                ctx,
                name=str(source.get("name") or entity.destination_slug),
                path=entity.destination_slug,
                namespace_id=parent.id,
                visibility=_visibility(source.get("visibility"), parent.visibility_level),
                description=str(source.get("description") or ""),
                default_branch=branch if isinstance(branch, str) and branch else None,
                initialize_with_readme=False,
            )
            entity.project_id = project.id
            entity.source_xid = source_id
            remember(ctx, entity.id, "project", str(source_id), project.id)
        set_stats(entity, "project", source=1, fetched=1, imported=1)
        work.run.count("projects created")


# -- members ----------------------------------------------------------------------------------------


def _inherited_level(ctx: Ctx, resource: Resource, user_id: int) -> int:
    groups = resource.inherited_from()
    if not groups:
        return 0
    level = ctx.db.scalar(
        select(Member.access_level)
        .where(
            Member.source_type == "Namespace",
            Member.source_id.in_([g.id for g in groups]),
            Member.user_id == user_id,
        )
        .order_by(Member.access_level.desc())
        .limit(1)
    )
    return int(level or 0)


def copy_members(work: Work, source_xid: int, entity_type: str) -> None:
    """The source's direct members as memberships of their placeholders, at the source's level.

    Unavailable source users (the Ghost User, blocked, deleted) get none: Migration Bot is never
    made a member; nor does the Import User (beyond the placeholder limit) stand in for them. A
    project membership below one the placeholder inherits is refused by keycrew, so it is skipped."""
    if entity_type == EntityType.GROUP.value:
        members = list(work.source.group_members(source_xid))
    else:
        members = list(work.source.project_members(source_xid))
    for start in range(0, len(members), work.batch_size):
        _members_batch(work, members[start : start + work.batch_size])
    with work.batch() as step:
        imported = imported_count(step.ctx, step.entity.id, "member")
        set_stats(step.entity, "members", source=len(members), fetched=len(members), imported=imported)


def _members_batch(work: Work, members: list[JSONObject]) -> None:
    with work.batch() as step:
        ctx, entity = step.ctx, step.entity
        holder: Project | Namespace = _project_of(step) if entity.project_id else _group_of(step)
        resource = Resource.of(holder)
        namespace = holder.namespace if isinstance(holder, Project) else holder
        done = recorded(ctx, entity.id, "member", (str(m.get("id")) for m in members))
        for member in members:
            key = str(member.get("id"))
            if key in done or _person_id_missing(member):
                continue
            level = member.get("access_level")
            if not isinstance(level, int) or level not in LEVELS:
                remember(ctx, entity.id, "member", key, None)
                work.run.count("members skipped")
                continue
            attribution = author_for(
                ctx, namespace, as_source_author(member), source_hostname=work.source_url
            )
            if attribution.reason not in MEMBER_REASONS:
                remember(ctx, entity.id, "member", key, None)
                work.run.count("members skipped")
                continue
            user = attribution.user
            existing = ctx.db.scalars(
                select(Member).where(
                    Member.source_type == resource.source_type.value,
                    Member.source_id == holder.id,
                    Member.user_id == user.id,
                )
            ).first()
            if existing is not None:
                remember(ctx, entity.id, "member", key, None)
                work.run.count("members skipped")
                continue
            if _inherited_level(ctx, resource, user.id) > level:
                # keycrew (as GitLab) refuses a membership below one inherited from a group above.
                remember(ctx, entity.id, "member", key, None)
                work.run.count("members below an inherited level")
                continue
            row = create_membership(ctx, resource, user, level, _expiry(member.get("expires_at")))
            remember(ctx, entity.id, "member", key, row.id)
            work.run.count("members added")


def _expiry(value: Any) -> dt.date | None:
    """A membership's expiry as the source gives it ("2030-01-31", or a timestamp)."""
    if not isinstance(value, str) or len(value) < 10:
        return None
    try:
        return dt.date.fromisoformat(value[:10])
    except ValueError:
        return None


def _person_id_missing(member: Mapping[str, Any]) -> bool:
    value = member.get("id")
    return isinstance(value, bool) or not isinstance(value, int)


# -- issues -----------------------------------------------------------------------------------------


def copy_issues(work: Work, source_xid: int) -> None:
    """Every source issue, oldest first, ``batch_size`` a transaction; those recorded are skipped."""
    with work.batch() as step:
        entity_id = step.entity.id
        done = set(
            step.ctx.db.scalars(
                select(BulkImportRecord.source_id).where(
                    BulkImportRecord.entity_id == entity_id, BulkImportRecord.relation == "issue"
                )
            )
        )
    seen = 0
    pending: list[JSONObject] = []
    for issue in work.source.issues(source_xid):
        seen += 1
        if str(issue.get("id")) in done:
            continue
        pending.append(issue)
        if len(pending) >= work.batch_size:
            _issues_batch(work, pending, seen)
            pending = []
    if pending:
        _issues_batch(work, pending, seen)
    with work.batch() as step:
        imported = imported_count(step.ctx, step.entity.id, "issue")
        set_stats(step.entity, "issues", source=seen, fetched=seen, imported=imported)


def _issues_batch(work: Work, issues: list[JSONObject], seen: int) -> None:
    """One transaction of issues, and the stage's stats so far (``seen``: the source issues read
    until now), so that ``GET /bulk_imports/:id/entities`` shows the progress as it goes."""
    work.prefetch_users(issue.get("author") for issue in issues)
    with work.batch() as step:
        ctx, entity = step.ctx, step.entity
        project = _project_of(step)
        done = recorded(ctx, entity.id, "issue", (str(i.get("id")) for i in issues))
        for issue in issues:
            key = str(issue.get("id"))
            if key in done:
                continue
            title = issue.get("title")
            try:
                with ctx.db.begin_nested():
                    attribution = author_for(
                        ctx,
                        project.namespace,
                        work.author(issue.get("author")),
                        source_hostname=work.source_url,
                    )
                    iid = issue.get("iid")
                    created = parse_time(issue.get("created_at")) or ctx.now()
                    made = import_issue(
                        ctx,
                        project,
                        author=attribution.user,
                        iid=iid if isinstance(iid, int) and not isinstance(iid, bool) else 0,
                        title=str(title or ""),
                        description=issue.get("description")
                        if isinstance(issue.get("description"), str)
                        else None,
                        closed=issue.get("state") == "closed",
                        confidential=bool(issue.get("confidential")),
                        issue_type=issue.get("issue_type")
                        if isinstance(issue.get("issue_type"), str)
                        else None,
                        created_at=created,
                        updated_at=parse_time(issue.get("updated_at")),
                        closed_at=parse_time(issue.get("closed_at")),
                    )
            except KeycrewError as exc:
                _skip(work, step, "issues", "issue", key, exc, issue.get("web_url"), title)
                continue
            remember(ctx, entity.id, "issue", key, made.id)
            work.run.count("issues copied")
        ctx.db.flush()
        imported = imported_count(ctx, entity.id, "issue")
        set_stats(entity, "issues", source=seen, fetched=seen, imported=imported)


def _skip(
    work: Work, step: Step, relation: str, record: str, key: str, exc: KeycrewError, url: Any, title: Any
) -> None:
    """A record keycrew refuses: a failure saying why, and a record so that no rerun tries again."""
    add_failure(
        step.ctx,
        step.entity,
        relation=relation,
        step="loader",
        exception_class=type(exc).__name__,
        message=describe(exc),
        source_url=url if isinstance(url, str) else None,
        source_title=title if isinstance(title, str) else None,
    )
    remember(step.ctx, step.entity.id, record, key, None)
    work.run.count(f"{relation} skipped")


# -- notes ------------------------------------------------------------------------------------------


def _copied_issues(work: Work, after: int) -> list[tuple[int, int, int]]:
    """(record id, local issue id, iid) of the issues copied, after the record ``after``."""
    with work.batch() as step:
        rows = step.ctx.db.execute(
            select(BulkImportRecord.id, Issue.id, Issue.iid)
            .join(Issue, Issue.id == BulkImportRecord.local_id)
            .where(
                BulkImportRecord.entity_id == step.entity.id,
                BulkImportRecord.relation == "issue",
                BulkImportRecord.id > after,
            )
            .order_by(BulkImportRecord.id)
        ).all()
    return [(int(a), int(b), int(c)) for a, b, c in rows]


def copy_notes(work: Work, source_xid: int) -> None:
    """The comments (not system notes) of each copied issue; the cursor remembers the last issue
    whose comments are all copied, so that a rerun goes on from the next."""
    with work.batch() as step:
        after = load_cursor(step.entity).get("after_issue_record", 0)
        counts = load_cursor(step.entity).get("notes", {"source": 0})
    after = after if isinstance(after, int) else 0
    seen = int(counts.get("source", 0)) if isinstance(counts, dict) else 0
    for record_id, issue_id, iid in _copied_issues(work, after):
        # The local issue has the source's iid (copied with it).
        notes = [n for n in work.source.notes(source_xid, iid) if not n.get("system")]
        seen += len(notes)
        for start in range(0, len(notes), work.batch_size):
            _notes_batch(work, issue_id, notes[start : start + work.batch_size])
        with work.batch() as step:
            step.entity.cursor = json.dumps({"after_issue_record": record_id, "notes": {"source": seen}})
    with work.batch() as step:
        imported = imported_count(step.ctx, step.entity.id, "note")
        set_stats(step.entity, "notes", source=seen, fetched=seen, imported=imported)


def _notes_batch(work: Work, issue_id: int, notes: Iterable[JSONObject]) -> None:
    notes = list(notes)
    work.prefetch_users(note.get("author") for note in notes)
    with work.batch() as step:
        ctx, entity = step.ctx, step.entity
        project = _project_of(step)
        issue = ctx.db.get(Issue, issue_id)
        if issue is None:
            return
        done = recorded(ctx, entity.id, "note", (str(n.get("id")) for n in notes))
        for note in notes:
            key = str(note.get("id"))
            if key in done:
                continue
            try:
                with ctx.db.begin_nested():
                    attribution = author_for(
                        ctx,
                        project.namespace,
                        work.author(note.get("author")),
                        source_hostname=work.source_url,
                    )
                    made = import_note(
                        ctx,
                        project,
                        issue,
                        author=attribution.user,
                        body=str(note.get("body") or ""),
                        internal=bool(note.get("internal") or note.get("confidential")),
                        created_at=parse_time(note.get("created_at")) or ctx.now(),
                        updated_at=parse_time(note.get("updated_at")),
                    )
            except KeycrewError as exc:
                _skip(work, step, "notes", "note", key, exc, None, None)
                continue
            remember(ctx, entity.id, "note", key, made.id)
            work.run.count("notes copied")
