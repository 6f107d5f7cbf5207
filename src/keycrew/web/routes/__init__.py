"""One router per area of the UI; ``ROUTERS`` is mounted by web.app in this order.

Project pages (``/<namespace>/<project>/-/...``) match any path, so their router comes last.
"""

import keycrew.web.paths  # noqa: F401  (registers the webpath convertor before routes use it)
from keycrew.web.routes import (
    activity,
    admin,
    admin_credentials,
    admin_hygiene,
    admin_jobs,
    admin_outbox,
    admin_sessions,
    admin_users,
    alerts,
    bulk_imports,
    compliance,
    dashboard,
    deploy_tokens,
    hooks,
    imports,
    manage,
    members,
    notifications,
    overview,
    personal_tokens,
    placeholders,
    profile,
    resource_tokens,
    sessions,
)

ROUTERS = [
    sessions.router,
    admin_sessions.router,
    dashboard.router,
    personal_tokens.router,
    profile.router,
    notifications.router,
    admin_users.router,  # before admin: its /users/{username} would take /users/new
    admin.router,
    admin_credentials.router,
    admin_hygiene.router,
    admin_jobs.router,
    admin_outbox.router,
    placeholders.router,  # before members: its pages are under .../-/group_members/
    members.router,
    resource_tokens.router,
    deploy_tokens.router,
    hooks.router,
    alerts.router,
    imports.router,
    bulk_imports.router,
    compliance.router,
    activity.router,
    manage.router,
    overview.router,
]
