"""/version, /metadata, /user."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response

from keycrew import GITLAB_COMPAT_VERSION, __version__
from keycrew.api.deps import api_ctx
from keycrew.api.entities import JSON, base_url
from keycrew.api.entities.users import user_detail
from keycrew.context import Ctx
from keycrew.errors import Unauthenticated

router = APIRouter()

REVISION = f"keycrew-{__version__}"


VERSION = {
    "version": GITLAB_COMPAT_VERSION,
    "revision": REVISION,
    "kas": {"enabled": False},
    "enterprise": True,
}


@router.get("/version")
async def version() -> Response:
    return JSON(VERSION)


@router.get("/metadata")
def metadata(ctx: Ctx = api_ctx()) -> dict[str, Any]:
    return {
        "version": GITLAB_COMPAT_VERSION,
        "revision": REVISION,
        "kas": {"enabled": False, "externalUrl": None, "externalK8sProxyUrl": None, "version": None},
        "enterprise": True,
    }


@router.get("/user")
def current_user(request: Request, ctx: Ctx = api_ctx(read_user=True)) -> dict[str, Any]:
    user = ctx.actor.user_to_render  # as the principal cache holds it: no query
    if user is None:
        raise Unauthenticated()
    return user_detail(user, base_url(request), admin_view=ctx.actor.is_admin)
