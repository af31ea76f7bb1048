"""Training jobs (docs/jobs.md): start one on a synced project or an uploaded ImageFolder zip, list,
look at, cancel or delete it, follow its events (SSE, resumable with Last-Event-ID), download results.
Every query filters on the signed-in user: another user's job id answers 404 like an unknown one.
HTTP only: what a job route does lives in jobs/service.py (uploads: api/job_uploads.py)."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path as FilePath
from typing import Annotated

from fastapi import APIRouter, HTTPException, Path, Query, Request, Response
from fastapi.responses import StreamingResponse
from sqlalchemy import select
from sse_starlette.sse import EventSourceResponse
from starlette.concurrency import run_in_threadpool

from tejas_ml.training.text_data import MAX_CSV_BYTES

from ...jobs import service, state
from ...jobs.schemas import CapabilitiesOut, JobIn, JobOut, JobsOut, UploadOptions
from ...jobs.service import NOT_FOUND
from ...models import Job, JobFile
from ..bodies import raw_body
from ..deps import CurrentUser, LastEventId, ReadSessionDep, SessionDep, SettingsDep
from ..job_uploads import create_from_upload

router = APIRouter(prefix="/api/jobs", tags=["jobs"])

JobId = Annotated[str, Path(pattern=r"^[0-9a-f]{32}$")]


@router.get("/capabilities")
def capabilities(user: CurrentUser, db: ReadSessionDep, settings: SettingsDep) -> CapabilitiesOut:
    """The devices the server's workers have, and images/s measured by your own finished jobs per mode."""
    return service.capabilities(db, user.id, settings)


@router.post(
    "",
    status_code=201,
    responses={
        404: {"description": "No such synced project."},
        413: {"description": "Your storage quota is full."},
        429: {"description": "Too many jobs queued."},
    },
)
def create(
    body: JobIn, request: Request, response: Response, user: CurrentUser, db: SessionDep, settings: SettingsDep
) -> JobOut:
    """Train on one of your synced projects (switch sync on for it in the app and sync first). With an
    `Idempotency-Key` header, the same request again gets the same job back (docs/jobs.md)."""
    return service.create_from_project(request, response, db, user.id, body, settings)


@router.post(
    "/upload",
    status_code=201,
    openapi_extra=raw_body("an ImageFolder zip (<class>/<image>); any Content-Type (application/zip is usual)"),
    responses={
        400: {"description": "Not a usable zip."},
        413: {"description": "Over TEJAS_MAX_UPLOAD_BYTES, or over your storage quota."},
        429: {"description": "Too many jobs queued."},
    },
)
async def upload(
    request: Request,
    response: Response,
    user: CurrentUser,
    settings: SettingsDep,
    options: Annotated[UploadOptions, Query()],
) -> JobOut:
    """Train on an ImageFolder zip (<class>/<image>), streamed to the blob store, never held in memory; or
    with modality=text on a CSV of text,label rows (read like the app's import, at most 20 MB)."""
    service.check_options(options, settings)
    if options.modality == "text":
        return await create_from_upload(
            request,
            response,
            user.id,
            settings,
            "a text CSV",
            service.check_text_csv,
            limit=MAX_CSV_BYTES,
            name=(options.name or "uploaded CSV")[:200],
            options=service.text_options(options),
            epochs=options.epochs,
        )
    return await create_from_upload(
        request,
        response,
        user.id,
        settings,
        "a training zip",
        lambda path: {"classes": service.check_archive(path)},
        name=(options.name or "uploaded zip")[:200],
        options=service.image_options(options),
        epochs=options.epochs,
    )


@router.get("")
def list_jobs(user: CurrentUser, db: ReadSessionDep) -> JobsOut:
    """Your jobs, newest first (the last 100)."""
    jobs = db.scalars(select(Job).where(Job.user_id == user.id).order_by(Job.created_at.desc()).limit(100))
    return JobsOut(jobs=[JobOut(**state.job_out(j)) for j in jobs])


@router.get("/{job_id}", responses={404: {"description": NOT_FOUND}})
def get_job(job_id: JobId, user: CurrentUser, db: ReadSessionDep) -> JobOut:
    return JobOut(**state.job_out(service.owned(db, user.id, job_id)))


@router.delete(
    "/{job_id}",
    status_code=202,
    responses={
        202: {"description": "Cancel requested."},
        204: {"description": "Deleted."},
        404: {"description": NOT_FOUND},
    },
)
def cancel_or_delete(job_id: JobId, request: Request, user: CurrentUser, db: SessionDep) -> Response:
    """A queued or running job is cancelled (a running one stops within seconds); a finished one is
    deleted with its results."""
    job = service.owned(db, user.id, job_id)
    if (now := service.cancel_or_delete(request, db, job)) is not None:
        return Response(json.dumps(now), status_code=202, media_type="application/json")
    return Response(status_code=204)


@router.get(
    "/{job_id}/events",
    response_class=EventSourceResponse,
    responses={200: {"content": {"text/event-stream": {}}}, 404: {"description": NOT_FOUND}},
)
async def events(
    job_id: JobId,
    request: Request,
    user: CurrentUser,
    db: ReadSessionDep,
    after: Annotated[
        int | None, Query(ge=0, le=2**62, description="resume after this event id (or Last-Event-ID)")
    ] = None,
    last_event_id: LastEventId = None,
) -> EventSourceResponse:
    """The job's events as server-sent events; ends after done, failed or cancelled."""
    service.owned(db, user.id, job_id)
    db.close()
    cursor = last_event_id if last_event_id is not None else (after or 0)
    readers = request.app.state.readers

    async def stream():
        nonlocal cursor
        while True:
            rows, status_now = await run_in_threadpool(service.events_after, readers, user.id, job_id, cursor)
            if status_now is None:
                return  # deleted meanwhile
            for seq, kind, data in rows:
                cursor = seq
                yield {"id": str(seq), "event": kind, "data": json.dumps(data)}
                if kind in state.TERMINAL:
                    return
            if not rows:
                if await request.is_disconnected():
                    return
                await asyncio.sleep(0.5)

    return EventSourceResponse(stream(), ping=15, headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"})


@router.get(
    "/{job_id}/files/{name:path}",
    response_class=StreamingResponse,
    responses={200: {"content": {"application/octet-stream": {}}}, 404: {"description": NOT_FOUND}},
)
def download(job_id: JobId, name: str, request: Request, user: CurrentUser, db: ReadSessionDep) -> StreamingResponse:
    """A result file of a finished job (names: the job's result.files)."""
    job = service.owned(db, user.id, job_id)
    row = db.get(JobFile, (job.id, name))
    if row is None:
        raise HTTPException(404, f"Job {job_id} has no result file {name!r}.")
    try:
        chunks = request.app.state.jobs_store.open(row.sha256)
    except FileNotFoundError:
        raise HTTPException(404, f"Result file {name!r} is no longer stored (past the retention period?).") from None
    filename = FilePath(name).name
    return StreamingResponse(
        chunks,
        media_type="application/octet-stream",
        headers={"Content-Length": str(row.size), "Content-Disposition": f'attachment; filename="{filename}"'},
    )
