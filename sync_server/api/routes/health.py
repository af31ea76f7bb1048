"""Health: `/api/health/live` (the process answers), `/api/health/ready` (its dependencies answer too),
and `/api/health` (the app's check: the version and the artifacts it can serve, once the database answers)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from ...readiness import RETRY_AFTER_S, database_problem, redis_problem, store_problem

router = APIRouter()

UNAVAILABLE = {503: {"description": "A dependency does not answer; `detail` says which."}}


def _unavailable(body: dict) -> JSONResponse:
    return JSONResponse(body, status_code=503, headers={"Retry-After": str(RETRY_AFTER_S)})


@router.get("/api/health", responses=UNAVAILABLE)
def health(request: Request):
    """200 {"status": "ok", version, artifacts}; 503 JSON with a sentence while the database is unreachable."""
    import tejas

    state = request.app.state
    artifacts_dir = state.settings.artifacts_dir
    names = sorted(p.parent.name for p in artifacts_dir.glob("*/manifest.json")) if artifacts_dir.is_dir() else []
    body = {"status": "ok", "version": tejas.__version__, "artifacts": names}
    problem = database_problem(state.read_engine)
    if problem:
        return _unavailable({**body, "status": "unavailable", "detail": problem})
    return body


@router.get("/api/health/live")
def live() -> dict:
    """Liveness: the process answers (restart it if this fails); says nothing about its dependencies."""
    return {"status": "ok"}


@router.get("/api/health/ready", responses=UNAVAILABLE)
async def ready(request: Request):
    """Readiness: the database, Redis (when used: TEJAS_QUEUE=celery or TEJAS_REDIS_URL set) and the blob store
    answer. 503 JSON whose `detail` names each dependency that does not (send no traffic here meanwhile)."""
    state = request.app.state
    checks = {
        # the readers' engine: on SQLite the writers' one takes the write lock for every probe
        "database": await run_in_threadpool(database_problem, state.read_engine),
        "redis": await run_in_threadpool(redis_problem, state.settings),
        "blob_store": await run_in_threadpool(store_problem, state.store, state.settings),
    }
    problems = [problem for problem in checks.values() if problem]
    body = {"status": "ok" if not problems else "unavailable", "checks": {k: v or "ok" for k, v in checks.items()}}
    if problems:
        return _unavailable({**body, "detail": " ".join(problems)})
    return body
