"""What the job routes do, apart from HTTP (docs/jobs.md): a job's options checked and shaped, the user's
quota, idempotent creation with one outcome (the row is the truth; a queue that cannot be reached leaves
the job queued with a notice), uploads checked by the core's rules before a job is made of them, cancel
or delete, the event stream read, the server's capabilities. Refusals are HTTPExceptions with a sentence,
as quotas.py raises them."""

from __future__ import annotations

import hashlib
import json
import logging
import re
from pathlib import Path as FilePath

from fastapi import HTTPException, Request, Response
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from tejas import job_events
from tejas.catalog import MODES, TEXT_MODES
from tejas_ml.training.data import DataError, check_project, check_trainable

from .. import quotas
from ..core.clock import utcnow
from ..core.db import session_scope
from ..models import IdempotencyKey, Job, JobEvent
from ..records import project_records
from . import state
from .schemas import BACKBONES, CapabilitiesOut, JobIn, JobOut, Options, WorkerOut
from .workers import live_workers

log = logging.getLogger("tejas.jobs")

NOT_FOUND = "No such job among yours."


def owned(db, user_id: str, job_id: str) -> Job:
    """The user's job (404 for another user's or an unknown one alike)."""
    job = db.scalar(select(Job).where(Job.id == job_id, Job.user_id == user_id))
    if job is None:
        raise HTTPException(404, NOT_FOUND)
    return job


def capabilities(db, user_id: str, settings) -> CapabilitiesOut:
    """The devices the server's workers have, and images/s measured by the user's finished jobs per mode."""
    # stream workers (`tejas stream-worker`) classify; they train nothing
    workers = [w for w in live_workers(db, max(30.0, settings.job_heartbeat_seconds * 6)) if w.queue != "stream"]
    best = next((w for w in workers if w.device == "cuda"), workers[0] if workers else None)
    throughput = {}
    for job in db.scalars(
        select(Job)
        .where(Job.user_id == user_id, Job.kind == "train", Job.status == "done")
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


def check_options(options: Options, settings) -> None:
    if options.epochs > settings.max_epochs:
        raise HTTPException(422, f"Invalid request: epochs: at most {settings.max_epochs} on this server.")
    if options.backbone != "auto" and options.mode != "full":
        raise HTTPException(
            422, f"Invalid request: backbone {options.backbone} needs mode full (head and last_block keep the app's)."
        )


def text_options(options: Options) -> dict:
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


def image_options(options: Options) -> dict:
    return options.model_dump(exclude={"project", "name", "max_length", "modality"})


def check_quota(db, user_id: str, settings, adding: int = 0) -> None:
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


def create(request: Request, db, user_id: str, idempotency=None, **fields) -> JobOut:
    """A queued job, and its delivery to the queue. One outcome: the row is the truth, so a queue that
    cannot be reached (Redis down) leaves the job queued with a notice (201): the queue's reaper delivers it
    once the queue is back. `idempotency` = (key, fingerprint, response) records the key with the job in
    the same transaction; the loser of two requests racing with one key gets the winner's job."""
    quotas.lock_user(db, user_id)  # the quota's last word: two requests at once cannot both take the last room
    check_quota(db, user_id, request.app.state.settings, fields.get("upload_bytes", 0))
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
    state.emit(db, job, job_events.queued(state.queue_position(db, job)))
    db.commit()
    try:
        request.app.state.queue.submit(job.id)
    except Exception as exc:  # the broker is down: the reaper sends it when it is back
        log.warning("job %s: not delivered to the queue (%s); it waits for the reaper", job.id, exc)
        state.record_notice(request.app.state.sessions, job.id, QUEUE_DOWN)
    return JobOut(**state.job_out(job))


def zip_refused(path: FilePath, exc: Exception) -> HTTPException:
    """The 400 for an uploaded zip the core's archive rules refuse, with their reason."""
    reason = str(exc).removeprefix(f"{path.name}: ")  # the temporary file's name means nothing to anyone
    return HTTPException(400, f"The zip cannot be used: {reason}")


def create_from_project(request: Request, response: Response, db, user_id: str, body: JobIn, settings) -> JobOut:
    """A job on one of the user's synced projects (404 when it is not synced; 422 when it cannot train)."""
    key = idempotency_key(request)
    print_ = fingerprint(request.url.path, body.model_dump())
    if (earlier := replayed(db, user_id, key, print_, response)) is not None:
        return earlier
    check_options(body, settings)
    records = project_records(db, user_id, body.project)
    project = next((r for r in records if r["kind"] == "project"), None)
    if project is None:
        raise HTTPException(404, "No synced project with that id: switch sync on for it in the app and sync first.")
    try:
        check_project(records)
    except DataError as exc:
        raise HTTPException(422, str(exc)) from None
    text = (project["data"] or {}).get("kind") == "text"
    options = text_options(body) if text else image_options(body)
    name = body.name or (project["data"] or {}).get("name") or body.project
    return create(
        request,
        db,
        user_id,
        idempotency=(key, print_, response) if key else None,
        project_id=body.project,
        name=name[:200],
        source="project",
        options=options,
        epochs=body.epochs,
    )


def check_archive(path: FilePath) -> list[str]:
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


def check_text_csv(path: FilePath) -> dict:
    """Read an uploaded CSV by the core's rules before a job is made of it: 400 when it cannot be read as
    texts, 422 when it cannot train (fewer than 2 classes with 2 texts); returns the job's classes."""
    from tejas_ml.training.text_data import CsvError, check_csv

    try:
        return {"classes": check_csv(path, "the CSV")}
    except CsvError as exc:
        raise HTTPException(400, f"The CSV cannot be used: {exc}") from None
    except DataError as exc:
        raise HTTPException(422, str(exc)) from None


def check_room(request: Request, user_id: str, settings, size: int) -> None:
    with session_scope(request.app.state.readers) as db:
        check_quota(db, user_id, settings, size)


def cancel_or_delete(request: Request, db, job: Job) -> dict | None:
    """Cancel a queued or running job (a running one stops within seconds): the job as it is now; delete a
    finished one with its results: None."""
    if job.status in state.ACTIVE:
        job.cancel_requested = True
        if job.status == "queued":
            job.status = "cancelled"
            job.finished_at = utcnow()
            state.emit(db, job, job_events.cancelled())
        db.commit()
        request.app.state.queue.submit(job.id)
        return state.job_out(job)
    job_id = job.id  # read before the rollback: reading it after would start a transaction that holds the lock
    db.rollback()
    state.delete_jobs(request.app.state.sessions, request.app.state.jobs_store, [job_id])
    return None


def events_after(readers, user_id: str, job_id: str, after: int) -> tuple[list[tuple[int, str, dict]], str | None]:
    """The user's job's events after `after` (at most 500) and its status; ([], None) when it is gone."""
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
