"""Training jobs (docs/jobs.md): start one on a synced project or an uploaded ImageFolder zip, list,
look at, cancel or delete it, follow its events (SSE, resumable with Last-Event-ID), download results.
Every query filters on the signed-in user: another user's job id answers 404 like an unknown one."""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import re
from pathlib import Path as FilePath
from typing import Annotated, Literal

from fastapi import APIRouter, HTTPException, Path, Query, Request, Response, status
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sse_starlette.sse import EventSourceResponse
from starlette.concurrency import run_in_threadpool

from tejas_ml.training.data import DataError, check_project, check_trainable
from tejas_ml.training.text_data import MAX_CSV_BYTES

from ... import quotas
from ...core.clock import utcnow
from ...core.db import session_scope
from ...jobs import live_workers, state
from ...models import IdempotencyKey, Job, JobEvent, JobFile
from ...records import project_records
from ...schemas import ID
from ...uploads import received
from ..deps import CurrentUser, LastEventId, ReadSessionDep, SessionDep, SettingsDep

router = APIRouter(prefix="/api/jobs", tags=["jobs"])
log = logging.getLogger("tejas.jobs")

JobId = Annotated[str, Path(pattern=r"^[0-9a-f]{32}$")]
NOT_FOUND = "No such job among yours."
MODES = ("head", "last_block", "full")
TEXT_MODES = ("full",)  # training.text.TEXT_MODES (not imported: torch stays out of the server)
BACKBONES = ("auto", "resnet18", "mobilenet_v2")


class Options(BaseModel):
    model_config = ConfigDict(extra="forbid")

    mode: Literal["head", "last_block", "full"] = "full"
    backbone: Literal["auto", "resnet18", "mobilenet_v2"] = "auto"
    epochs: int = Field(10, ge=1, le=500, description="at most TEJAS_MAX_EPOCHS (500)")
    learning_rate: float | None = Field(None, gt=0, le=1, description="null: the mode's default")
    batch_size: int = Field(32, ge=2, le=1024)
    augment: bool = True
    seed: int = Field(0, ge=0, le=2**53 - 1)
    validation_share: float = Field(0.2, ge=0, le=0.9)
    patience: int = Field(5, ge=0, le=500, description="epochs without improvement before stopping; 0: never")
    max_length: int = Field(
        128, ge=8, le=128, description="text jobs: tokens per text while training (validation and the app use 128)"
    )


class UploadOptions(Options):
    name: str = Field("", max_length=200, description="a label for the job")
    modality: Literal["image", "text"] = Field(
        "image", description="image: the body is an ImageFolder zip; text: a CSV of text,label rows (docs/jobs.md)"
    )


class JobIn(Options):
    project: str = Field(pattern=ID, description="a synced project's id")
    name: str = Field("", max_length=200)

    # strict: JSON `false` is no integer, `"5"` no number (query parameters of /upload stay lax: all text)
    model_config = ConfigDict(
        extra="forbid", strict=True, json_schema_extra={"examples": [{"project": "p1", "mode": "full", "epochs": 5}]}
    )


class JobOut(BaseModel):
    id: str
    kind: str = Field(description="train, or predict (a batch from POST /api/batches)")
    project: str | None
    name: str
    source: str
    status: str
    options: dict
    created: str
    started: str | None
    finished: str | None
    expires: str | None
    device: str | None
    device_name: str | None
    epoch: int
    epochs: int
    images: int | None
    classes: list[str] | None
    error: str | None
    cancel_requested: bool
    result: dict | None


class JobsOut(BaseModel):
    jobs: list[JobOut]


class WorkerOut(BaseModel):
    device: str
    device_name: str
    queue: str


class CapabilitiesOut(BaseModel):
    device: str | None
    device_name: str | None
    workers: list[WorkerOut]
    queue: str
    max_upload_bytes: int
    max_epochs: int
    modes: list[str]
    text_modes: list[str]
    backbones: list[str]
    throughput: dict[str, float]


def _owned(db, user_id: str, job_id: str) -> Job:
    job = db.scalar(select(Job).where(Job.id == job_id, Job.user_id == user_id))
    if job is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, NOT_FOUND)
    return job


@router.get("/capabilities")
def capabilities(user: CurrentUser, db: ReadSessionDep, settings: SettingsDep) -> CapabilitiesOut:
    """The devices the server's workers have, and images/s measured by your own finished jobs per mode."""
    # stream workers (`tejas stream-worker`) classify; they train nothing
    workers = [w for w in live_workers(db, max(30.0, settings.job_heartbeat_seconds * 6)) if w.queue != "stream"]
    best = next((w for w in workers if w.device == "cuda"), workers[0] if workers else None)
    throughput = {}
    for job in db.scalars(
        select(Job)
        .where(Job.user_id == user.id, Job.kind == "train", Job.status == "done")
        .order_by(Job.finished_at.desc())
        .limit(50)
    ):
        rate = (job.result or {}).get("images_per_second")
        mode = job.options.get("mode")
        if rate and mode not in throughput:
            throughput[mode] = rate
    return CapabilitiesOut(
        device=best.device if best else None,
        device_name=best.device_name if best else None,
        workers=[WorkerOut(device=w.device, device_name=w.device_name, queue=w.queue) for w in workers],
        queue=settings.queue,
        max_upload_bytes=settings.max_upload_bytes,
        max_epochs=settings.max_epochs,
        modes=list(MODES),
        text_modes=list(TEXT_MODES),
        backbones=list(BACKBONES),
        throughput=throughput,
    )


def _check_options(options: Options, settings) -> None:
    if options.epochs > settings.max_epochs:
        raise HTTPException(422, f"Invalid request: epochs: at most {settings.max_epochs} on this server.")
    if options.backbone != "auto" and options.mode != "full":
        raise HTTPException(
            422, f"Invalid request: backbone {options.backbone} needs mode full (head and last_block keep the app's)."
        )


def _text_options(options: Options) -> dict:
    """A text job's options (422 for what a text classifier cannot do); the image fields it ignores dropped."""
    if options.mode not in TEXT_MODES:
        raise HTTPException(
            422,
            f"Invalid request: mode {options.mode}: a text project trains on the server in mode full (the whole "
            "encoder with its classifier); the app trains the classifier alone on the device.",
        )
    if options.backbone != "auto":
        raise HTTPException(422, "Invalid request: backbone: a text project's encoder is all-MiniLM-L6-v2 (auto).")
    dumped = options.model_dump(exclude={"project", "name", "backbone", "augment", "modality"})
    return {**dumped, "modality": "text"}


def _image_options(options: Options) -> dict:
    return options.model_dump(exclude={"project", "name", "max_length", "modality"})


def _check_quota(db, user_id: str, settings, adding: int = 0) -> None:
    """429 at TEJAS_MAX_JOBS_QUEUED jobs queued or running; 413 when the user's storage is full, or an
    upload of `adding` bytes would not fit (quotas.py)."""
    quotas.check_jobs(db, user_id, settings)
    quotas.check_storage(db, user_id, settings, adding, "this upload")


IDEMPOTENCY_KEY = re.compile(r"^[\x21-\x7e]{1,200}$")  # printable ASCII, no spaces (a UUID is usual)
QUEUE_DOWN = "The job queue cannot be reached just now; the job waits and starts once it is back."


def idempotency_key(request: Request) -> str | None:
    """The request's `Idempotency-Key` header (400 when malformed), or None."""
    key = request.headers.get("idempotency-key")
    if key is None:
        return None
    if not IDEMPOTENCY_KEY.match(key):
        raise HTTPException(
            400, "Invalid Idempotency-Key: 1 to 200 printable ASCII characters without spaces (a UUID, say)."
        )
    return key


def fingerprint(*parts) -> str:
    """What a request asked for (route, options, body digest): a retry has the same, another request not."""
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()


def replayed(db, user_id: str, key: str | None, print_: str, response: Response) -> JobOut | None:
    """The job an earlier request with this key made (the same request: 201 again, header
    `Idempotent-Replayed: true`); 422 when the key came with a different request; None when new."""
    if key is None:
        return None
    row = db.get(IdempotencyKey, (user_id, key))
    if row is None:
        return None
    if row.fingerprint != print_:
        raise HTTPException(
            422,
            "This Idempotency-Key was already used for a different request (another body, route or options); "
            "send a new key for a new job.",
        )
    job = db.get(Job, row.job_id)
    response.headers["Idempotent-Replayed"] = "true"
    return JobOut(**state.job_out(job))


def _create(request: Request, db, user_id: str, idempotency=None, **fields) -> JobOut:
    """A queued job, and its delivery to the queue. One outcome: the row is the truth, so a queue that
    cannot be reached (Redis down) leaves the job queued with a notice (201): the queue's reaper delivers it
    once the queue is back. `idempotency` = (key, fingerprint, response) records the key with the job in
    the same transaction; the loser of two requests racing with one key gets the winner's job."""
    quotas.lock_user(db, user_id)  # the quota's last word: two requests at once cannot both take the last room
    _check_quota(db, user_id, request.app.state.settings, fields.get("upload_bytes", 0))
    job = Job(user_id=user_id, status="queued", **fields)
    db.add(job)
    db.flush()
    if idempotency is not None:
        key, print_, response = idempotency
        db.add(IdempotencyKey(user_id=user_id, key=key, fingerprint=print_, job_id=job.id))
        try:
            db.flush()
        except IntegrityError:
            db.rollback()
            return replayed(db, user_id, key, print_, response)
    state.emit(db, job, "queued", {"position": state.queue_position(db, job)})
    db.commit()
    try:
        request.app.state.queue.submit(job.id)
    except Exception as exc:  # the broker is down: the reaper sends it when it is back
        log.warning("job %s: not delivered to the queue (%s); it waits for the reaper", job.id, exc)
        state.record_notice(request.app.state.sessions, job.id, QUEUE_DOWN)
    return JobOut(**state.job_out(job))


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
    key = idempotency_key(request)
    print_ = fingerprint(request.url.path, body.model_dump())
    if (earlier := replayed(db, user.id, key, print_, response)) is not None:
        return earlier
    _check_options(body, settings)
    records = project_records(db, user.id, body.project)
    project = next((r for r in records if r["kind"] == "project"), None)
    if project is None:
        raise HTTPException(404, "No synced project with that id: switch sync on for it in the app and sync first.")
    try:
        check_project(records)
    except DataError as exc:
        raise HTTPException(422, str(exc)) from None
    text = (project["data"] or {}).get("kind") == "text"
    options = _text_options(body) if text else _image_options(body)
    name = body.name or (project["data"] or {}).get("name") or body.project
    return _create(
        request,
        db,
        user.id,
        idempotency=(key, print_, response) if key else None,
        project_id=body.project,
        name=name[:200],
        source="project",
        options=options,
        epochs=body.epochs,
    )


def zip_refused(path: FilePath, exc: Exception) -> HTTPException:
    """The 400 for an uploaded zip the core's archive rules refuse, with their reason."""
    reason = str(exc).removeprefix(f"{path.name}: ")  # the temporary file's name means nothing to anyone
    return HTTPException(400, f"The zip cannot be used: {reason}")


def _check_archive(path: FilePath) -> list[str]:
    """Read the whole archive by the core's rules (one image in memory at a time) before a job is made
    of it: a hostile archive is refused (400), one that cannot train (fewer than 2 classes with 2 usable
    images) too (422); returns the classes."""
    from tejas.archive_source import ArchiveError
    from tejas.dataset import Sample, iter_archive

    counts: dict[str, int] = {}
    try:
        events = iter_archive(path)
        header = next(events)
        for event in events:
            if isinstance(event, Sample):
                counts[event.label] = counts.get(event.label, 0) + 1
    except ArchiveError as exc:
        raise zip_refused(path, exc) from None
    classes = [c for c in header["classes"] if c in counts]
    if not counts:
        raise HTTPException(400, "The zip cannot be used: no usable images (expected <class>/<image> folders)")
    try:
        check_trainable(classes, [counts[c] for c in classes], "this zip")
    except DataError as exc:
        raise HTTPException(422, str(exc)) from None
    return classes


@router.post(
    "/upload",
    status_code=201,
    openapi_extra={
        "requestBody": {
            "description": "an ImageFolder zip (<class>/<image>); any Content-Type (application/zip is usual)",
            "content": {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}},
        }
    },
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
    _check_options(options, settings)
    if options.modality == "text":
        return await create_from_upload(
            request,
            response,
            user.id,
            settings,
            "a text CSV",
            _check_text_csv,
            limit=MAX_CSV_BYTES,
            name=(options.name or "uploaded CSV")[:200],
            options=_text_options(options),
            epochs=options.epochs,
        )
    return await create_from_upload(
        request,
        response,
        user.id,
        settings,
        "a training zip",
        lambda path: {"classes": _check_archive(path)},
        name=(options.name or "uploaded zip")[:200],
        options=_image_options(options),
        epochs=options.epochs,
    )


def _check_text_csv(path: FilePath) -> dict:
    """Read an uploaded CSV by the core's rules before a job is made of it: 400 when it cannot be read as
    texts, 422 when it cannot train (fewer than 2 classes with 2 texts); returns the job's classes."""
    from tejas_ml.training.text_data import CsvError, check_csv

    try:
        return {"classes": check_csv(path, "the CSV")}
    except CsvError as exc:
        raise HTTPException(400, f"The CSV cannot be used: {exc}") from None
    except DataError as exc:
        raise HTTPException(422, str(exc)) from None


async def create_from_upload(
    request: Request,
    response: Response,
    user_id: str,
    settings,
    what: str,
    check,
    limit: int | None = None,
    **fields,
) -> JobOut:
    """A job on the request's body (a zip): the user's quota first, then the body streamed to a file (at
    most TEJAS_MAX_UPLOAD_BYTES, never held in memory), `check(path)` (raises the 4xx, returns more of the
    job's fields), stored in the jobs area of the blob store, a queued job; the file goes however it ends.
    With an `Idempotency-Key` the same route, options and body again get the job the first request made."""
    key = idempotency_key(request)
    limit = min(limit or settings.max_upload_bytes, settings.max_upload_bytes)
    too_large = HTTPException(413, f"Too large: {what} may be at most {limit / 2**20:g} MiB.")
    with session_scope(request.app.state.readers) as db:
        known = key is not None and db.get(IdempotencyKey, (user_id, key)) is not None
        if not known:  # a retry of a job already made is answered even at the quota
            _check_quota(db, user_id, settings)
    async with received(request, settings.data_dir / "uploads", limit, too_large) as (path, sha, size):
        print_ = fingerprint(request.url.path, fields, sha)

        def earlier() -> JobOut | None:
            with session_scope(request.app.state.readers) as db:
                return replayed(db, user_id, key, print_, response)

        if known and (job := await run_in_threadpool(earlier)) is not None:
            return job
        checked = await run_in_threadpool(check, path)
        await run_in_threadpool(_check_room, request, user_id, settings, size)  # before the bytes are stored
        await run_in_threadpool(request.app.state.jobs_store.put_file, sha, path)

    def create_job() -> JobOut:
        with session_scope(request.app.state.sessions) as db:
            if (job := replayed(db, user_id, key, print_, response)) is not None:
                return job
            return _create(
                request,
                db,
                user_id,
                idempotency=(key, print_, response) if key else None,
                project_id=None,
                source="upload",
                upload_sha256=sha,
                upload_bytes=size,
                **fields,
                **checked,
            )

    try:
        return await run_in_threadpool(create_job)
    except quotas.QuotaExceeded:  # another request took the room meanwhile: its bytes go unless a job uses them
        await run_in_threadpool(
            state.delete_unused_upload, request.app.state.sessions, request.app.state.jobs_store, sha
        )
        raise


def _check_room(request: Request, user_id: str, settings, size: int) -> None:
    with session_scope(request.app.state.readers) as db:
        _check_quota(db, user_id, settings, size)


@router.get("")
def list_jobs(user: CurrentUser, db: ReadSessionDep) -> JobsOut:
    """Your jobs, newest first (the last 100)."""
    jobs = db.scalars(select(Job).where(Job.user_id == user.id).order_by(Job.created_at.desc()).limit(100))
    return JobsOut(jobs=[JobOut(**state.job_out(j)) for j in jobs])


@router.get("/{job_id}", responses={404: {"description": NOT_FOUND}})
def get_job(job_id: JobId, user: CurrentUser, db: ReadSessionDep) -> JobOut:
    return JobOut(**state.job_out(_owned(db, user.id, job_id)))


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
    job = _owned(db, user.id, job_id)
    if job.status in state.ACTIVE:
        job.cancel_requested = True
        if job.status == "queued":
            job.status = "cancelled"
            job.finished_at = utcnow()
            state.emit(db, job, "cancelled", {})
        db.commit()
        request.app.state.queue.submit(job.id)
        return Response(json.dumps(state.job_out(job)), status_code=202, media_type="application/json")
    db.rollback()
    state.delete_jobs(request.app.state.sessions, request.app.state.jobs_store, [job_id])
    return Response(status_code=204)


def _events_after(readers, user_id: str, job_id: str, after: int) -> tuple[list[tuple[int, str, dict]], str | None]:
    with session_scope(readers) as db:
        job = db.scalar(select(Job).where(Job.id == job_id, Job.user_id == user_id))
        if job is None:
            return [], None
        rows = db.execute(
            select(JobEvent.seq, JobEvent.kind, JobEvent.data)
            .where(JobEvent.job_id == job_id, JobEvent.seq > after)
            .order_by(JobEvent.seq)
            .limit(500)
        ).all()
        return [tuple(r) for r in rows], job.status


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
    _owned(db, user.id, job_id)
    db.close()
    cursor = last_event_id if last_event_id is not None else (after or 0)
    readers = request.app.state.readers

    async def stream():
        nonlocal cursor
        while True:
            rows, status_now = await run_in_threadpool(_events_after, readers, user.id, job_id, cursor)
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
    job = _owned(db, user.id, job_id)
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
