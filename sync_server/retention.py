"""Deleting what the server holds: a project after the retention period, a project on request, an
account. Blobs go when no user holds them any more (a blob is stored once, whoever uploaded it)."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, exists, func, select
from sqlalchemy.orm import Session, sessionmaker

from .core.db import session_scope
from .models import Blob, Job, Prediction, PurgedProject, Record, Stream, StreamImage, User, UserBlob
from .prediction import ledger
from .storage import BlobStore

log = logging.getLogger("tejas.retention")


@dataclass
class PurgeReport:
    projects: int = 0
    records: int = 0
    blobs: int = 0
    predictions: int = 0
    dead_letters: int = 0
    stream_images: int = 0
    uploads: int = 0  # holds on uploaded blobs no record of their uploader referred to, dropped


def forget_project(session: Session, user_id: str, project_id: str) -> int:
    """Delete a project's records and the user's hold on blobs no other live record of theirs uses."""
    blobs = set(
        session.scalars(
            select(Record.blob).where(
                Record.user_id == user_id, Record.project_id == project_id, Record.blob.is_not(None)
            )
        )
    )
    count = session.execute(delete(Record).where(Record.user_id == user_id, Record.project_id == project_id)).rowcount
    release_blobs(session, user_id, blobs)
    return count


def release_blobs(session: Session, user_id: str, blobs: set[str]) -> None:
    """Drop the user's hold on those blobs that no live record of theirs refers to any more."""
    for sha in blobs:
        used = session.scalar(select(exists().where(Record.user_id == user_id, Record.blob == sha)))
        if not used:
            session.execute(delete(UserBlob).where(UserBlob.user_id == user_id, UserBlob.sha256 == sha))


def collect_blobs(sessions: sessionmaker[Session], store: BlobStore, older_than: datetime) -> int:
    """Delete stored blobs nobody holds (created before `older_than`, so an upload in flight stays)."""
    with session_scope(sessions) as session:
        orphans = list(
            session.scalars(
                select(Blob.sha256).where(Blob.created_at < older_than, ~exists().where(UserBlob.sha256 == Blob.sha256))
            )
        )
        if orphans:
            session.execute(delete(Blob).where(Blob.sha256.in_(orphans)))
    for (
        sha
    ) in orphans:  # after the commit: a crash here leaves files the next run would not see, never a row without bytes
        store.delete(sha)
    return len(orphans)


def drop_unreferenced_uploads(sessions: sessionmaker[Session], older_than: datetime) -> int:
    """Drop users' holds on blobs they uploaded before `older_than` that no record of theirs refers to (a
    sync cut between upload and push, bytes sent for nothing). Each user's holds go under that user's row
    lock, which a push takes too: a push that refers to one either committed first (the hold stays) or
    finds it gone and answers 409 (the app uploads it again)."""
    unreferenced = (
        (UserBlob.created_at < older_than)
        & ~exists().where(Record.user_id == UserBlob.user_id, Record.blob == UserBlob.sha256)
        # an image appended to a stream by ?blob= and not predicted yet still needs its bytes
        & ~exists().where(
            StreamImage.store == "blobs",
            StreamImage.blob == UserBlob.sha256,
            StreamImage.stream_id == Stream.id,
            Stream.user_id == UserBlob.user_id,
        )
    )
    with session_scope(sessions) as session:
        users = list(session.scalars(select(UserBlob.user_id).where(unreferenced).distinct()))
    dropped = 0
    for user_id in users:
        with session_scope(sessions) as session:
            session.get(User, user_id, with_for_update=True)
            dropped += session.execute(delete(UserBlob).where(UserBlob.user_id == user_id, unreferenced)).rowcount
    return dropped


def purge(
    sessions: sessionmaker[Session],
    store: BlobStore,
    now: datetime,
    retention_days: float,
    streams_store: BlobStore | None = None,
    unreferenced_blob_hours: float = 24,
) -> PurgeReport:
    """Delete every project whose last change is older than the retention period; record that it was. With
    `streams_store`: also stream images no stream owes any more (prediction/ledger.py). Blobs uploaded and
    referred to by no record of their uploader go after `unreferenced_blob_hours`."""
    report = PurgeReport()
    cutoff = now - timedelta(days=retention_days)
    with session_scope(sessions) as session:
        stale = session.execute(
            select(Record.user_id, Record.project_id)
            .group_by(Record.user_id, Record.project_id)
            .having(func.max(Record.updated_at) < cutoff)
        ).all()
        for user_id, project_id in stale:
            report.records += forget_project(session, user_id, project_id)
            report.projects += 1
            if session.get(PurgedProject, (user_id, project_id)) is None:
                session.add(PurgedProject(user_id=user_id, project_id=project_id, purged_at=now))
        # stream results and dead letters are kept as long as a project's copy
        report.predictions = session.execute(delete(Prediction).where(Prediction.created_at < cutoff)).rowcount
    report.uploads = drop_unreferenced_uploads(sessions, now - timedelta(hours=unreferenced_blob_hours))
    report.blobs = collect_blobs(sessions, store, now)
    report.dead_letters = ledger.trim_dead(sessions, cutoff)
    if streams_store is not None:
        report.stream_images = ledger.purge_orphans(sessions, streams_store)
    if report.projects or report.blobs or report.predictions or report.dead_letters:
        log.warning(
            "retention: deleted %d project(s), %d record(s), %d blob(s), %d stream result(s), %d dead letter(s)",
            report.projects,
            report.records,
            report.blobs,
            report.predictions,
            report.dead_letters,
        )
    return report


def delete_account(
    sessions: sessionmaker[Session], store: BlobStore, user_id: str, now: datetime, job_store: BlobStore | None = None
) -> None:
    if job_store is not None:  # training jobs and their files (a running one loses its row and stops)
        from .jobs.state import delete_jobs

        with session_scope(sessions) as session:
            job_ids = list(session.scalars(select(Job.id).where(Job.user_id == user_id)))
        delete_jobs(sessions, job_store, job_ids)
    with session_scope(sessions) as session:
        session.execute(delete(User).where(User.id == user_id))  # tokens, records, holds: ON DELETE CASCADE
    collect_blobs(sessions, store, now + timedelta(seconds=1))
