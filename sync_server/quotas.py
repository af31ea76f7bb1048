"""Per-user quotas (docs/sync.md, "Quotas"): bytes stored, jobs queued or running, streams, and images
waiting in streams. What counts is read from the tables that hold it (no counter to drift); a check that
admits something takes the user's row lock first (FOR UPDATE on Postgres; SQLite's writers already queue
for its one write lock), so two requests of one user at once cannot both pass on the same room.

Bytes stored: every blob the user holds (in full, even when another user holds the same bytes: what each
uploaded is theirs to count), their jobs' uploads (training zips and CSVs, batches) and their jobs'
result files.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.orm import Session
from starlette.exceptions import HTTPException

from .core.config import Settings
from .models import Job, JobFile, Stream, StreamImage, User, UserBlob

__all__ = [
    "QuotaExceeded",
    "Usage",
    "check_jobs",
    "check_storage",
    "check_stream_pending",
    "check_streams",
    "lock_user",
    "size_text",
    "stored_bytes",
    "stream_images_pending",
    "usage",
]

ACTIVE_JOBS = ("queued", "running")  # jobs.state.ACTIVE (not imported: the jobs package imports the worker)


class QuotaExceeded(HTTPException):
    """413 (storage) or 429 (counts) with a sentence saying what is used and the limit."""


@dataclass(frozen=True)
class Usage:
    used: int
    limit: int


def size_text(n: int) -> str:
    """Bytes for people, in decimal units (1.2 GB, 350 MB, 12 kB, 80 bytes)."""
    for unit, scale in (("GB", 1000**3), ("MB", 1000**2), ("kB", 1000)):
        if n >= scale:
            value = n / scale
            digits = 2 if value < 10 else 1 if value < 100 else 0
            text = f"{value:,.{digits}f}"
            return f"{text.rstrip('0').rstrip('.') if digits else text} {unit}"
    return f"{n} byte{'s' if n != 1 else ''}"


def lock_user(session: Session, user_id: str) -> None:
    """Hold the user's row until the transaction ends (pushes and quota checks of one user queue on it)."""
    session.get(User, user_id, with_for_update=True)


def stored_bytes(session: Session, user_id: str) -> int:
    """What the user's blobs, job uploads and job result files take, in bytes."""
    # from the index (user_id, size) alone: a join to blobs cost 8 s for 100k blobs on a loaded machine
    blobs = select(func.coalesce(func.sum(UserBlob.size), 0)).where(UserBlob.user_id == user_id).scalar_subquery()
    uploads = select(func.coalesce(func.sum(Job.upload_bytes), 0)).where(Job.user_id == user_id).scalar_subquery()
    results = (
        select(func.coalesce(func.sum(JobFile.size), 0))
        .select_from(JobFile)
        .join(Job, Job.id == JobFile.job_id)
        .where(Job.user_id == user_id)
        .scalar_subquery()
    )
    return int(session.scalar(select(blobs + uploads + results)) or 0)


def check_storage(session: Session, user_id: str, settings: Settings, adding: int, what: str) -> None:
    """413 unless `adding` more bytes fit in the user's quota (`adding` 0: unless there is room left at all,
    for a job whose results are still to come)."""
    limit = settings.max_user_bytes
    used = stored_bytes(session, user_id)
    if used + adding > limit or (adding == 0 and used >= limit):
        after = f"; {what} ({size_text(adding)}) would not fit" if adding else ""
        raise QuotaExceeded(
            413,
            headers={"X-Tejas-Quota": "storage"},  # the app retries later instead of setting the record aside
            detail=f"Storage full: {size_text(used)} of your {size_text(limit)} used{after}. To make room, delete "
            f"projects or jobs you no longer need (a project deleted in the app frees its space within "
            f"{settings.unreferenced_blob_hours:g} hours).",
        )


def jobs_active(session: Session, user_id: str) -> int:
    return session.scalar(select(func.count()).where(Job.user_id == user_id, Job.status.in_(ACTIVE_JOBS))) or 0


def check_jobs(session: Session, user_id: str, settings: Settings) -> None:
    """429 when the user already has max_jobs_queued jobs queued or running."""
    active, limit = jobs_active(session, user_id), settings.max_jobs_queued
    if active >= limit:
        raise QuotaExceeded(
            429,
            f"Too many jobs: {active} of your {limit} queued or running; wait for one to finish or cancel one.",
        )


def streams_held(session: Session, user_id: str) -> int:
    return session.scalar(select(func.count()).select_from(Stream).where(Stream.user_id == user_id)) or 0


def check_streams(session: Session, user_id: str, settings: Settings) -> None:
    """429 when the user already has max_streams streams (before creating one)."""
    count, limit = streams_held(session, user_id), settings.max_streams
    if count >= limit:
        raise QuotaExceeded(
            429,
            f"Too many streams: {count} of your {limit}; delete one you no longer use (DELETE /api/streams/<name>).",
        )


def stream_images_pending(session: Session, user_id: str) -> int:
    """Images appended to the user's streams and not predicted (or dead-lettered) yet."""
    return (
        session.scalar(
            select(func.count())
            .select_from(StreamImage)
            .join(Stream, Stream.id == StreamImage.stream_id)
            .where(Stream.user_id == user_id, StreamImage.state == "pending")
        )
        or 0
    )


def check_stream_pending(pending: int, settings: Settings) -> None:
    """429 when the user's streams already hold max_stream_pending images not done yet."""
    limit = settings.max_stream_pending
    if pending >= limit:
        raise QuotaExceeded(
            429,
            f"Too many images waiting: {pending:,} of your {limit:,} appended to your streams and not predicted yet; "
            "wait for the stream workers to catch up, then send more.",
            headers={"Retry-After": "10"},
        )


def usage(session: Session, user_id: str, settings: Settings) -> dict[str, Usage]:
    """Each quota's use and limit (what GET /api/me shows)."""
    return {
        "storage_bytes": Usage(stored_bytes(session, user_id), settings.max_user_bytes),
        "jobs": Usage(jobs_active(session, user_id), settings.max_jobs_queued),
        "streams": Usage(streams_held(session, user_id), settings.max_streams),
        "stream_images_pending": Usage(stream_images_pending(session, user_id), settings.max_stream_pending),
    }
