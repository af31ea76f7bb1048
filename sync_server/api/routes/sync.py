"""Push and pull (docs/sync.md)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, HTTPException, Query

from ...core.clock import utcnow
from ...records import PushRefused, pull, push
from ...schemas import PullOut, PushIn, PushOut
from ..deps import CurrentUser, ReadSessionDep, SessionDep, SettingsDep

router = APIRouter(prefix="/api/sync", tags=["sync"])


@router.post(
    "/push",
    response_model=PushOut,
    responses={
        409: {"description": "Records refer to blobs not uploaded yet."},
        413: {"description": "Push too large."},
    },
)
def push_changes(body: PushIn, user: CurrentUser, db: SessionDep) -> PushOut:
    try:
        result = push(db, user.id, body, utcnow())
    except PushRefused as refused:
        db.rollback()
        raise HTTPException(refused.status, str(refused)) from None
    db.commit()
    return result


@router.get("/pull", response_model=PullOut)
def pull_changes(
    user: CurrentUser,
    db: ReadSessionDep,
    settings: SettingsDep,
    since: Annotated[str, Query(pattern=r"^[0-9]{1,18}$")] = "0",
    limit: Annotated[int, Query(ge=1, le=1000)] = 500,
) -> PullOut:
    return pull(db, user.id, int(since), limit, settings.retention_days)
