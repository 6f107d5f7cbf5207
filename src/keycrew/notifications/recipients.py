"""Who receives an e-mail about a token, by GitLab's rules.

- A person's token (a human, a service user, a service account with an address of its own):
  its owner.
- A project bot's token: the project's Owners and Maintainers (direct members, and the holder of a
  personal namespace the project lives in); a group bot's token: the group's Owners. With the
  instance setting ``resource_access_token_notify_inherited``, also those inherited from the
  groups above.
- Never a bot, an internal user, a blocked, banned or deactivated user, a service account whose
  address is the instance's generated no-reply one, nor, for expiry e-mail, a user whose
  effective notification level for the project or group (or globally) is "disabled".
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import ColumnElement, and_, or_, select

from keycrew.access.levels import AccessLevel
from keycrew.access.models import Member
from keycrew.context import Ctx
from keycrew.identity.models import User
from keycrew.identity.types import UserType
from keycrew.instance.settings import instance_settings
from keycrew.namespaces.kinds import SourceType
from keycrew.namespaces.models import Namespace, Project, chain
from keycrew.notifications.settings import Level, effective_levels

# The people a token's owner may be for it to be e-mailed about its own tokens.
_PERSON_TYPES = frozenset({UserType.HUMAN, UserType.SERVICE_USER, UserType.SERVICE_ACCOUNT})


def has_mailbox(ctx: Ctx, user: User) -> bool:
    """Whether ``user`` may receive e-mail at all (GitLab's ``can?(:receive_notifications)``):
    an active person; a service account only with an address of its own."""
    if not user.is_active or user.type not in _PERSON_TYPES:
        return False
    if user.type is UserType.SERVICE_ACCOUNT:
        return not user.email.lower().endswith(f"@noreply.{ctx.instance.host}".lower())
    return True


def wants_mail(ctx: Ctx, users: list[User], source: Project | Namespace | None = None) -> list[User]:
    """``users`` that may receive e-mail and have not disabled it for ``source`` (or globally)."""
    able = [u for u in users if has_mailbox(ctx, u)]
    levels = effective_levels(ctx, [u.id for u in able], source)
    return [u for u in able if levels.get(u.id) is not Level.DISABLED]


def bot_resource(ctx: Ctx, bot: User) -> Project | Namespace | None:
    """The project or group a project/group bot belongs to (None when it is gone)."""
    if bot.bot_resource_id is None:
        return None
    if bot.bot_resource_type == SourceType.PROJECT.value:
        return ctx.db.get(Project, bot.bot_resource_id)
    if bot.bot_resource_type == SourceType.NAMESPACE.value:
        group = ctx.db.get(Namespace, bot.bot_resource_id)
        return group if group is not None and group.is_group else None
    return None


def resource_managers(ctx: Ctx, resource: Project | Namespace, *, inherited: bool = False) -> list[User]:
    """Who hears about a bot's token of ``resource``: a project's Owners and Maintainers, a
    group's Owners (live memberships), before the mailbox and level checks. Direct members only,
    unless ``inherited`` (the instance's ``resource_access_token_notify_inherited``): then also
    those of the groups above."""
    today = ctx.today()
    if isinstance(resource, Project):
        least, above = AccessLevel.MAINTAINER, chain(resource.namespace)
        sources = [and_(Member.source_type == SourceType.PROJECT.value, Member.source_id == resource.id)]
    else:
        least, above = AccessLevel.OWNER, chain(resource)[1:]
        sources = [and_(Member.source_type == SourceType.NAMESPACE.value, Member.source_id == resource.id)]
    groups = [ns.id for ns in above if ns.is_group]
    if inherited and groups:
        sources.append(and_(Member.source_type == SourceType.NAMESPACE.value, Member.source_id.in_(groups)))
    member_ids = select(Member.user_id).where(
        or_(*sources),
        Member.access_level >= int(least),
        or_(Member.expires_at.is_(None), Member.expires_at > today),
    )
    condition: ColumnElement[bool] = User.id.in_(member_ids)
    if isinstance(resource, Project) and not resource.namespace.is_group and resource.namespace.owner_id:
        condition = or_(condition, User.id == resource.namespace.owner_id)
    return list(ctx.db.scalars(select(User).where(condition).order_by(User.id)).all())


@dataclass(frozen=True)
class BotRecipients:
    resource: Project | Namespace
    users: list[User]


def bot_token_recipients(ctx: Ctx, bot: User) -> BotRecipients | None:
    """The resource of ``bot`` and who is told about its token; None when the resource is gone."""
    resource = bot_resource(ctx, bot)
    if resource is None:
        return None
    inherited = instance_settings(ctx).resource_access_token_notify_inherited
    managers = resource_managers(ctx, resource, inherited=inherited)
    return BotRecipients(resource, wants_mail(ctx, managers, resource))


def owner_recipients(ctx: Ctx, owner: User) -> list[User]:
    """A person's own token: the owner, if they may and want to receive e-mail."""
    return wants_mail(ctx, [owner])
