"""Job rows and their events: every change of a job's state goes through here, in the database, so the
API, the in-process worker and Celery workers on other machines agree on what happened.

Fencing: a worker claims a job by raising its `attempt`; every later write of that worker names the
attempt it holds and changes nothing once another worker has taken the job over (after the first one's
heartbeat stopped). A job therefore finishes once, with one `done` event, however often it was started.
"""

from __future__ import annotations

import functools
import json
import logging
import os
import re
from datetime import timedelta

from sqlalchemy import delete, func, select, update
from sqlalchemy.orm import Session, sessionmaker

from tejas import job_events
from tejas.job_events import Event

from ..core.clock import iso, utcnow
from ..core.db import session_scope
from ..models import IdempotencyKey, Job, JobEvent, JobFile
from ..storage import BlobStore

log = logging.getLogger("tejas.jobs")

ACTIVE = ("queued", "running")
TERMINAL = job_events.TERMINAL

# an absolute path (POSIX or Windows) of at least two parts; group 1 is its last part, the file's name
_ABSOLUTE_PATH = re.compile(r"""(?<![\w.~-])(?:[A-Za-z]:\\|/)(?:[^\s'"():,;<>|/\\]+[/\\])+([^\s'"():,;<>|/\\]*)""")


def public_reason(reason: str) -> str:
    """A failure's reason as its user sees it: a traceback cut to its last line and every absolute path cut
    to its file's name (`…/work/<job>/images/x.png` → `x.png`); the server's log keeps the detail."""
    lines = [line.strip() for line in reason.strip().splitlines() if line.strip()]
    if any("Traceback (most recent call last)" in line or line.startswith('File "') for line in lines):
        lines = lines[-1:]
    return _ABSOLUTE_PATH.sub(lambda m: m.group(1) or "a server folder", " ".join(lines))


class InvalidEvent(ValueError):
    """An event that schemas/job_events.json refuses (raised only with TEJAS_VALIDATE_EVENTS=1: the tests)."""


@functools.cache
def _validator():
    import jsonschema  # a development dependency: only the tests ask for this check

    return jsonschema.Draft202012Validator(json.loads(job_events.SCHEMA_PATH.read_text()))


def _check(kind: str, data: dict) -> None:
    import jsonschema

    error = jsonschema.exceptions.best_match(_validator().iter_errors({"kind": kind, "data": data}))
    if error is not None:
        log.error("job event %s %s does not match the schema: %s", kind, data, error.message)
        raise InvalidEvent(f"job event {kind} {data}: {error.message} (pwa/py/tejas/schemas/job_events.json)")


def emit(session: Session, job: Job, event: Event) -> int:
    """Append an event (made by tejas.job_events) to the job's stream, in the caller's transaction; returns
    its id. With TEJAS_VALIDATE_EVENTS=1 (the tests) an event the schema refuses raises instead."""
    kind, data = event
    if os.environ.get("TEJAS_VALIDATE_EVENTS") == "1":
        _check(kind, data)
    job.last_event += 1
    session.add(JobEvent(job_id=job.id, seq=job.last_event, kind=kind, data=data))
    return job.last_event


def job_out(job: Job) -> dict:
    return {
        "id": job.id,
        "kind": job.kind,
        "project": job.project_id,
        "name": job.name,
        "source": job.source,
        "status": job.status,
        "options": job.options,
        "created": iso(job.created_at),
        "started": iso(job.started_at) if job.started_at else None,
        "finished": iso(job.finished_at) if job.finished_at else None,
        "expires": iso(job.expires_at) if job.expires_at else None,
        "device": job.device,
        "device_name": job.device_name,
        "epoch": job.epoch,
        "epochs": job.epochs,
        "images": job.images,
        "classes": job.classes,
        "error": job.error,
        "cancel_requested": job.cancel_requested,
        "result": job.result,
    }


def claim(sessions: sessionmaker[Session], job_id: str, worker: str, stale_seconds: float) -> int | None:
    """Take the job if it is queued, or running with a heartbeat older than `stale_seconds` (its worker
    died); returns the attempt now held, or None when it is someone else's or finished."""
    now = utcnow()
    with session_scope(sessions) as session:
        job = session.get(Job, job_id, with_for_update=True)
        if job is None or job.status in TERMINAL:
            return None
        if job.status == "running" and job.heartbeat_at and job.heartbeat_at > now - timedelta(seconds=stale_seconds):
            return None
        if job.cancel_requested:
            job.status, job.finished_at = "cancelled", now
            emit(session, job, job_events.cancelled())
            return None
        job.attempt += 1
        job.status, job.worker, job.heartbeat_at = "running", worker, now
        job.started_at = job.started_at or now
        return job.attempt


def heartbeat(sessions: sessionmaker[Session], job_id: str, attempt: int) -> tuple[bool, bool]:
    """Renew the worker's hold; returns (still ours, cancel requested)."""
    with session_scope(sessions) as session:
        held = session.execute(
            update(Job)
            .where(Job.id == job_id, Job.attempt == attempt, Job.status == "running")
            .values(heartbeat_at=utcnow())
        ).rowcount
        cancel = session.scalar(select(Job.cancel_requested).where(Job.id == job_id))
    return bool(held), bool(cancel)


def record(sessions: sessionmaker[Session], job_id: str, attempt: int, event: Event | None, **fields) -> bool:
    """Append the event (None: none) and set `fields` on the job, if the worker still holds `attempt`."""
    with session_scope(sessions) as session:
        job = session.get(Job, job_id, with_for_update=True)
        if job is None or job.attempt != attempt or job.status != "running":
            return False
        for name, value in fields.items():
            setattr(job, name, value)
        if event is not None:
            emit(session, job, event)
        return True


def finish(
    sessions: sessionmaker[Session], job_id: str, attempt: int, event: Event, retention_days: float, **fields
) -> bool:
    """End the job with its terminal event (done, failed or cancelled: the job's status), once."""
    status = event[0]
    assert status in TERMINAL, status
    now = utcnow()
    with session_scope(sessions) as session:
        job = session.get(Job, job_id, with_for_update=True)
        if job is None or job.attempt != attempt or job.status in TERMINAL:
            return False
        for name, value in fields.items():
            setattr(job, name, value)
        job.status, job.finished_at = status, now
        job.expires_at = now + timedelta(days=retention_days)
        emit(session, job, event)
        return True


def fail(sessions: sessionmaker[Session], job_id: str, attempt: int, reason: str, retention_days: float) -> bool:
    """End the job as failed: the `failed` event and the row's `error` carry the same sentence, with no
    server path or traceback in it (public_reason)."""
    reason = public_reason(reason)[:2000]  # the error column's size
    return finish(sessions, job_id, attempt, job_events.failed(reason), retention_days, error=reason)


def record_notice(sessions: sessionmaker[Session], job_id: str, message: str) -> None:
    """A `notice` event on a job whatever its state (what the user should know, e.g. it waits for the queue)."""
    with session_scope(sessions) as session:
        job = session.get(Job, job_id, with_for_update=True)
        if job is not None:
            emit(session, job, job_events.notice(message))


def release(sessions: sessionmaker[Session], job_id: str, attempt: int, message: str) -> bool:
    """Hand a running job back to the queue (its worker is stopping): `queued` again with a `released`
    event; the next worker that claims it resumes from its last checkpoint. Fenced by `attempt`."""
    with session_scope(sessions) as session:
        job = session.get(Job, job_id, with_for_update=True)
        if job is None or job.attempt != attempt or job.status != "running":
            return False
        job.status, job.worker, job.heartbeat_at = "queued", None, None
        emit(session, job, job_events.released(message))
        return True


def stale_jobs(sessions: sessionmaker[Session], stale_seconds: float) -> list[str]:
    """Running jobs whose worker stopped saying it is alive."""
    cutoff = utcnow() - timedelta(seconds=stale_seconds)
    with session_scope(sessions) as session:
        return list(session.scalars(select(Job.id).where(Job.status == "running", Job.heartbeat_at < cutoff)))


def next_queued(sessions: sessionmaker[Session], stale_seconds: float) -> str | None:
    """The job to run next: a running one whose worker died first (it resumes), else the oldest queued."""
    stale = stale_jobs(sessions, stale_seconds)
    if stale:
        return stale[0]
    with session_scope(sessions) as session:
        return session.scalar(select(Job.id).where(Job.status == "queued").order_by(Job.created_at).limit(1))


def queue_position(session: Session, job: Job) -> int:
    return session.scalar(select(func.count()).where(Job.status == "queued", Job.created_at < job.created_at)) or 0


def delete_jobs(sessions: sessionmaker[Session], store: BlobStore, job_ids: list[str]) -> int:
    """Delete jobs, their events and files; a stored file goes when no other job refers to it."""
    if not job_ids:
        return 0
    with session_scope(sessions) as session:
        shas = set(session.scalars(select(JobFile.sha256).where(JobFile.job_id.in_(job_ids))))
        for job in session.scalars(select(Job).where(Job.id.in_(job_ids))):
            shas.update(s for s in (job.upload_sha256, job.checkpoint_sha256) if s)
        session.execute(delete(JobEvent).where(JobEvent.job_id.in_(job_ids)))
        session.execute(delete(JobFile).where(JobFile.job_id.in_(job_ids)))
        session.execute(delete(IdempotencyKey).where(IdempotencyKey.job_id.in_(job_ids)))
        session.execute(delete(Job).where(Job.id.in_(job_ids)))
        still = set(session.scalars(select(JobFile.sha256).where(JobFile.sha256.in_(shas))))
        still |= set(session.scalars(select(Job.upload_sha256).where(Job.upload_sha256.in_(shas))))
        still |= set(session.scalars(select(Job.checkpoint_sha256).where(Job.checkpoint_sha256.in_(shas))))
    for sha in shas - still:  # after the commit: a crash leaves an unreferenced file, never a row without bytes
        store.delete(sha)
    return len(job_ids)


def delete_unused_upload(sessions: sessionmaker[Session], store: BlobStore, sha: str) -> None:
    """Delete an upload stored for a job that was then refused, unless a job refers to the same bytes."""
    with session_scope(sessions) as session:
        used = session.scalar(select(func.count()).where(Job.upload_sha256 == sha))
    if not used:
        store.delete(sha)


def purge_jobs(sessions: sessionmaker[Session], store: BlobStore, now) -> int:
    """Delete finished jobs whose results passed the retention period."""
    with session_scope(sessions) as session:
        expired = list(session.scalars(select(Job.id).where(Job.expires_at < now)))
    return delete_jobs(sessions, store, expired)
