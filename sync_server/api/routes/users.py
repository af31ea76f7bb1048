"""The signed-in user: who am I, and delete my account with everything the server holds of it."""

from __future__ import annotations

from fastapi import APIRouter, Request, status
from fastapi.concurrency import run_in_threadpool

from ...core.clock import utcnow
from ...retention import delete_account
from ...schemas import Me
from ..deps import CurrentUser, SettingsDep

router = APIRouter(prefix="/api", tags=["accounts"])


@router.get("/me", response_model=Me)
def me(user: CurrentUser, settings: SettingsDep) -> Me:
    return Me(id=user.id, email=user.email, retention_days=settings.retention_days)


@router.delete("/me", status_code=status.HTTP_204_NO_CONTENT)
async def delete_me(request: Request, user: CurrentUser) -> None:
    state = request.app.state
    await run_in_threadpool(delete_account, state.sessions, state.store, user.id, utcnow(), state.jobs_store)
