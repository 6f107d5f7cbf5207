"""One router per area of the UI; ``ROUTERS`` is mounted by web.app in this order.

Project pages (``/<namespace>/<project>/-/...``) match any path, so their router comes last.
"""

import keycrew.web.paths  # noqa: F401  (registers the webpath convertor before routes use it)
from keycrew.web.routes import (
    activity,
    admin,
    admin_sessions,
    dashboard,
    deploy_tokens,
    members,
    overview,
    personal_tokens,
    resource_tokens,
    sessions,
)

ROUTERS = [
    sessions.router,
    admin_sessions.router,
    dashboard.router,
    personal_tokens.router,
    admin.router,
    members.router,
    resource_tokens.router,
    deploy_tokens.router,
    activity.router,
    overview.router,
]
