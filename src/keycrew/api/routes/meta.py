"""/version, /metadata, /user.

/version and /metadata need a token, as GitLab's (a read_user token will do); no session is opened.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response

from keycrew import GITLAB_COMPAT_VERSION, __version__
from keycrew.api.deps import api_ctx, principal_dep
from keycrew.api.entities import JSON, base_url
from keycrew.api.entities.users import user_detail
from keycrew.context import Ctx
from keycrew.errors import Unauthenticated
from keycrew.tokens.principal import Principal

router = APIRouter()

REVISION = f"keycrew-{__version__}"


VERSION = {
    "version": GITLAB_COMPAT_VERSION,
    "revision": REVISION,
    "kas": {"enabled": False},
    "enterprise": True,
}


METADATA = {
    "version": GITLAB_COMPAT_VERSION,
    "revision": REVISION,
    "kas": {"enabled": False, "externalUrl": None, "externalK8sProxyUrl": None, "version": None},
    "enterprise": True,
}


@router.get("/version")
async def version(_principal: Principal = principal_dep(read_user=True)) -> Response:
    return JSON(VERSION)


@router.get("/metadata")
async def metadata(_principal: Principal = principal_dep(read_user=True)) -> Response:
    return JSON(METADATA)


@router.get("/user")
def current_user(request: Request, ctx: Ctx = api_ctx(read_user=True)) -> dict[str, Any]:
    user = ctx.actor.user_to_render  # as the principal cache holds it: no query
    if user is None:
        raise Unauthenticated()
    return user_detail(user, base_url(request), admin_view=ctx.actor.is_admin)
