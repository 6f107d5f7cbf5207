"""/api/v4/groups/:id/placeholder_reassignments: GitLab's placeholder reassignment sheet (CSV),
downloaded and uploaded by the top-level group's Owners (keycrew.imports.reassignment)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Response
from fastapi.responses import JSONResponse

from keycrew.access.lookup import find_group
from keycrew.api.deps import Params, api_ctx, params_dep
from keycrew.context import Ctx
from keycrew.errors import MissingParameter
from keycrew.imports import reassignment

router = APIRouter()

PATH = "/groups/{group_id}/placeholder_reassignments"
PROCESSING = "The file is being processed and you will receive an email when completed."


@router.get(PATH)
def download(group_id: str, ctx: Ctx = api_ctx()) -> Any:
    group = find_group(ctx, group_id)
    sheet = reassignment.csv_rows(ctx, group)
    filename = f"placeholder_reassignments_for_group_{group.id}_{int(ctx.now().timestamp())}.csv"
    return Response(
        content=sheet.encode(),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )


@router.post(PATH, status_code=201, responses={422: {"description": "Not a .csv file"}})
def upload(group_id: str, ctx: Ctx = api_ctx(), params: Params = params_dep()) -> Any:
    group = find_group(ctx, group_id)
    reassignment.check_owner_of_top_level(ctx, group)
    sent = params.file("file")
    if sent is None:
        raise MissingParameter("file is missing")
    filename, data = sent
    if not reassignment.is_csv_filename(filename):
        # GitLab's unprocessable_entity! with a message: the message alone.
        return JSONResponse({"message": reassignment.NOT_CSV}, status_code=422)
    reassignment.reassign_from_csv(ctx, group, data)
    return JSONResponse({"message": PROCESSING}, status_code=201)
