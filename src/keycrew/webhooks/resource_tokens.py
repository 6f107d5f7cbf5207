"""The resource access token hook: ``object_kind: access_token``, event ``expiring_access_token``.

Called by the token-expiry job (keycrew.automation) on the 7-day notification of a project or group
bot's token, in the job's transaction: it queues one delivery per hook of the resource (project
hooks of the project and group hooks of the groups above it; group hooks of the group and its
ancestors) that has ``resource_access_token_events``.
"""

from __future__ import annotations

from keycrew.context import Ctx
from keycrew.namespaces.models import Namespace, Project
from keycrew.tokens.models import PersonalAccessToken
from keycrew.webhooks import payloads, service

TRIGGER = "resource_access_token_hooks"
FLAG = "resource_access_token_events"


def fire_expiring(ctx: Ctx, token: PersonalAccessToken, resource: Project | Namespace) -> int:
    """Queue the expiring hook of ``token`` (a bot's) for ``resource``; returns the deliveries queued."""
    if isinstance(resource, Project):
        hooks = service.project_hooks(ctx, resource, FLAG) + service.group_hooks(
            ctx, resource.namespace, FLAG
        )
    else:
        hooks = service.group_hooks(ctx, resource, FLAG)
    payload = payloads.access_token_event(token, resource, ctx.instance.external_url)
    for hook in hooks:
        service.queue(ctx, hook, TRIGGER, payload)
    return len(hooks)
