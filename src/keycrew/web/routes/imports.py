"""Web UI: the page a reassignment e-mail links to (GitLab's /import/source_users/<id>), where the
chosen person sees whose contributions an Owner wants to give them and accepts or rejects.

Accepting and rejecting are the use cases of keycrew.imports.reassignment; only the chosen person
sees the page (anyone else gets 404)."""

from __future__ import annotations

from fastapi import APIRouter, Response

from keycrew.errors import BadParameter, KeycrewError
from keycrew.imports import reassignment
from keycrew.web.deps import Page, form_dep, page_dep
from keycrew.web.errors import describe
from keycrew.web.security import Flash

router = APIRouter()

URL = "/import/source_users"


def _id(raw: str) -> int:
    if not raw.isdigit() or len(raw) > 18:
        raise BadParameter("id is invalid")
    return int(raw)


def _url(source_user_id: int) -> str:
    return f"{URL}/{source_user_id}"


@router.get(URL + "/{source_user_id}")
def review(source_user_id: str, page: Page = page_dep()) -> Response:
    page.require_user()
    found = reassignment.for_review(page.ctx, _id(source_user_id))
    return page.render(
        "imports/review.html",
        title="Reassignment of contributions",
        review=found,
        status_name=found.source_user.status,
    )


def _decide(page: Page, raw_id: str, accept: bool) -> Response:
    page.require_user()
    source_user_id = _id(raw_id)
    try:
        with page.savepoint():
            if accept:
                reassignment.accept(page.ctx, source_user_id)
            else:
                reassignment.reject(page.ctx, source_user_id)
    except KeycrewError as exc:
        return page.redirect(_url(source_user_id), Flash("alert", describe(exc)))
    message = (
        "Reassignment accepted: the contributions and memberships are being moved to you."
        if accept
        else "Reassignment rejected: the group's Owners will be told."
    )
    return page.redirect(_url(source_user_id), Flash("notice", message))


@router.post(URL + "/{source_user_id}/accept")
def accept(source_user_id: str, page: Page = form_dep()) -> Response:
    return _decide(page, source_user_id, True)


@router.post(URL + "/{source_user_id}/reject")
def reject(source_user_id: str, page: Page = form_dep()) -> Response:
    return _decide(page, source_user_id, False)
