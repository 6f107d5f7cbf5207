"""One router per resource; ``ROUTERS`` is mounted under /api/v4 by the app (which adds the
package registry's PyPI routes, an adapter of its own, after them)."""

from keycrew.api.routes import (
    admin,
    alerts,
    audit,
    billing,
    deploy_tokens,
    events,
    groups,
    hooks,
    issues,
    members,
    meta,
    namespaces,
    notification_settings,
    projects,
    resource_tokens,
    service_accounts,
    sharing,
    tokens,
    transfers,
    users,
)

# Routes are tried in this order among those whose literal path prefix fits (app.IndexedRouting).
ROUTERS = [
    meta.router,
    notification_settings.router,
    tokens.router,
    users.router,
    transfers.router,
    groups.router,
    projects.router,
    members.router,
    billing.router,
    namespaces.router,
    issues.router,
    audit.router,
    events.router,
    resource_tokens.router,
    service_accounts.router,
    deploy_tokens.router,
    sharing.router,
    admin.router,
    hooks.router,
    alerts.router,
]
