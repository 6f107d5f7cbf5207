"""The created, rotated and revoked e-mails about a person's own token, as GitLab sends them.

``on_audit_event`` is an audit listener (installed by keycrew.bootstrap): it reacts to the
token.created, token.rotated and token.revoked events inside the transaction that records them,
so the e-mail commits or rolls back with the change. Only tokens of people who may receive e-mail
are announced (not bots', as GitLab's bots never receive notifications, nor impersonation tokens,
which GitLab creates and revokes without a word to the user). These are security notices: the
notification level does not silence them, as in GitLab.
"""

from __future__ import annotations

from keycrew.audit.events import Event
from keycrew.audit.models import AuditEvent
from keycrew.context import Ctx
from keycrew.identity.models import User
from keycrew.notifications.mails import send_lifecycle
from keycrew.notifications.recipients import has_mailbox
from keycrew.tokens.models import PersonalAccessToken

_WHAT = {
    Event.TOKEN_CREATED.value: "created",
    Event.TOKEN_ROTATED.value: "rotated",
    Event.TOKEN_REVOKED.value: "revoked",
}


def on_audit_event(ctx: Ctx, event: AuditEvent) -> None:
    what = _WHAT.get(event.event_name)
    if what is None or event.target_type != "PersonalAccessToken" or event.target_id is None:
        return
    # Both rows are in the session already (the use case just wrote them): no query.
    token = ctx.db.get(PersonalAccessToken, event.target_id)
    if token is None or token.impersonation:
        return
    owner = ctx.db.get(User, token.user_id)
    if owner is None or not has_mailbox(ctx, owner):
        return
    send_lifecycle(ctx, owner, token, what)
