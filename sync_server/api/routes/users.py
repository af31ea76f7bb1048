"""The signed-in user: who am I, and delete my account with everything the server holds of it."""

from __future__ import annotations

from fastapi import APIRouter, Request, status
from fastapi.concurrency import run_in_threadpool

from ... import quotas
from ...core.clock import utcnow
from ...retention import delete_account
from ...schemas import Me, MeUsage, QuotaUse
from ..deps import CurrentUser, ReadSessionDep, SettingsDep

router = APIRouter(prefix="/api", tags=["accounts"])


@router.get("/me", response_model=Me)
def me(user: CurrentUser, settings: SettingsDep, db: ReadSessionDep) -> Me:
    """Who you are, how long the server keeps a project, and each quota's use and limit."""
    usage = {name: QuotaUse(used=u.used, limit=u.limit) for name, u in quotas.usage(db, user.id, settings).items()}
    return Me(id=user.id, email=user.email, retention_days=settings.retention_days, usage=MeUsage(**usage))


@router.delete("/me", status_code=status.HTTP_204_NO_CONTENT)
async def delete_me(request: Request, user: CurrentUser) -> None:
    state = request.app.state
    await run_in_threadpool(delete_account, state.sessions, state.store, user.id, utcnow(), state.jobs_store)
