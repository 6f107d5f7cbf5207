"""The resource access token hook: ``object_kind: access_token``, event ``expiring_access_token``.

Called by the token-expiry job (keycrew.automation) on the 7-day notification of a project or group
bot's token, in the job's transaction: it queues one delivery per enabled hook of the resource
(project hooks of the project; group hooks of the group and its ancestors) that has
``resource_access_token_events``.
"""

from __future__ import annotations

from keycrew.context import Ctx
from keycrew.namespaces.models import Namespace, Project
from keycrew.tokens.models import PersonalAccessToken


def fire_expiring(ctx: Ctx, token: PersonalAccessToken, resource: Project | Namespace) -> int:
    """Queue the expiring hook of ``token`` (a bot's) for ``resource``; returns the deliveries queued.

    STUB: the webhooks helper implements it (GitLab's payload, gitlab-automation.md §11)."""
    return 0
