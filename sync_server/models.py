"""SQLAlchemy 2.0 typed models. Every row that belongs to a person carries `user_id`, and every query
a route makes filters on it (tests/sync_server/test_accounts_and_isolation.py walks every route as another user)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from .core.clock import utcnow


class Base(DeclarativeBase):
    pass


def _uuid() -> str:
    return uuid.uuid4().hex


class User(Base):
    __tablename__ = "users"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=_uuid)
    email: Mapped[str] = mapped_column(String(320), unique=True)
    password_hash: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    # The last server version stamped on one of this user's records (the pull cursor's space).
    version: Mapped[int] = mapped_column(BigInteger, default=0)


class Token(Base):
    __tablename__ = "tokens"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    digest: Mapped[str] = mapped_column(String(64), unique=True)  # sha256 of the token
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(DateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)


class LoginFailure(Base):
    __tablename__ = "login_failures"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    email: Mapped[str] = mapped_column(String(320), index=True)
    ip: Mapped[str] = mapped_column(String(64), index=True)
    at: Mapped[datetime] = mapped_column(DateTime, default=utcnow, index=True)


class SignupAttempt(Base):
    """One sign-up request from a client address (new email or taken alike): the per-address limit counts them."""

    __tablename__ = "signup_attempts"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    ip: Mapped[str] = mapped_column(String(64), index=True)
    at: Mapped[datetime] = mapped_column(DateTime, default=utcnow, index=True)


class KnownAddress(Base):
    """A client address this account signed in from: it still signs in while strangers' guesses lock the email."""

    __tablename__ = "known_addresses"

    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), primary_key=True)
    ip: Mapped[str] = mapped_column(String(64), primary_key=True)
    last_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


class Device(Base):
    """The highest mutation id applied per (user, device): pushes are idempotent by it."""

    __tablename__ = "devices"

    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), primary_key=True)
    device_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    last_mutation: Mapped[int] = mapped_column(BigInteger, default=0)
    last_seen: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


class Record(Base):
    """The latest state (or tombstone) of one synced record, with the server version it got."""

    __tablename__ = "records"
    __table_args__ = (
        UniqueConstraint("user_id", "version", name="uq_records_user_version"),
        Index("ix_records_user_project", "user_id", "project_id"),
        Index("ix_records_user_blob", "user_id", "blob"),
    )

    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), primary_key=True)
    kind: Mapped[str] = mapped_column(String(16), primary_key=True)
    record_id: Mapped[str] = mapped_column(String(200), primary_key=True)
    project_id: Mapped[str] = mapped_column(String(200))
    rev: Mapped[str] = mapped_column(String(100))
    deleted: Mapped[bool] = mapped_column(Boolean, default=False)
    data: Mapped[Any] = mapped_column(JSON, nullable=True)
    version: Mapped[int] = mapped_column(BigInteger)
    # The blob a live record refers to (a sample's image, a model's parameters): who may read it.
    blob: Mapped[str | None] = mapped_column(String(64), nullable=True)
    updated_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


class Blob(Base):
    """A stored blob (content-addressed, kept once whoever uploads it). `kind` is the first upload's and
    decides nothing: each user's upload sets their own (UserBlob.kind)."""

    __tablename__ = "blobs"

    sha256: Mapped[str] = mapped_column(String(64), primary_key=True)
    size: Mapped[int] = mapped_column(BigInteger)
    kind: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


class UserBlob(Base):
    """This user uploaded that blob (so asking "which are missing?" never reveals another user's), as
    `kind`: what a record of theirs may use it as is decided by their own upload, never by another user's."""

    __tablename__ = "user_blobs"
    # the storage quota sums a user's sizes from this index alone (measured: docs/sync.md, "Quotas")
    __table_args__ = (Index("ix_user_blobs_user_size", "user_id", "size"),)

    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), primary_key=True)
    sha256: Mapped[str] = mapped_column(ForeignKey("blobs.sha256", ondelete="CASCADE"), primary_key=True, index=True)
    kind: Mapped[str] = mapped_column(String(16), default="image", server_default="image")  # image | text | model
    size: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")  # the blob's, copied here
    # the user's last upload of it: an unreferenced hold expires TEJAS_UNREFERENCED_BLOB_HOURS after it
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


class PurgedProject(Base):
    """A project the retention timer deleted: the app is told, turns its sync off and says so."""

    __tablename__ = "purged_projects"

    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), primary_key=True)
    project_id: Mapped[str] = mapped_column(String(200), primary_key=True)
    purged_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


class Job(Base):
    """A training job (docs/jobs.md). The row, not the queue, is the truth: `attempt` fences workers (a
    worker presumed dead that wakes up cannot finish a job another worker took over), `heartbeat_at`
    tells a live worker from a dead one."""

    __tablename__ = "jobs"
    __table_args__ = (Index("ix_jobs_status_heartbeat", "status", "heartbeat_at"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=_uuid)
    kind: Mapped[str] = mapped_column(String(16), default="train", server_default="train")  # train | predict
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    project_id: Mapped[str | None] = mapped_column(String(200), nullable=True)
    name: Mapped[str] = mapped_column(String(200), default="")
    source: Mapped[str] = mapped_column(String(16))  # project | upload
    upload_sha256: Mapped[str | None] = mapped_column(String(64), nullable=True)
    upload_bytes: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")  # counts in the quota
    status: Mapped[str] = mapped_column(String(16), default="queued")  # queued running done failed cancelled
    options: Mapped[Any] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow, index=True)
    started_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    expires_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True, index=True)
    device: Mapped[str | None] = mapped_column(String(16), nullable=True)
    device_name: Mapped[str | None] = mapped_column(String(200), nullable=True)
    epoch: Mapped[int] = mapped_column(Integer, default=0)
    epochs: Mapped[int] = mapped_column(Integer, default=0)
    images: Mapped[int | None] = mapped_column(Integer, nullable=True)
    classes: Mapped[Any] = mapped_column(JSON, nullable=True)
    error: Mapped[str | None] = mapped_column(String(2000), nullable=True)
    cancel_requested: Mapped[bool] = mapped_column(Boolean, default=False)
    attempt: Mapped[int] = mapped_column(Integer, default=0)
    worker: Mapped[str | None] = mapped_column(String(200), nullable=True)
    heartbeat_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    checkpoint_sha256: Mapped[str | None] = mapped_column(String(64), nullable=True)
    result: Mapped[Any] = mapped_column(JSON, nullable=True)
    last_event: Mapped[int] = mapped_column(Integer, default=0)


class JobEvent(Base):
    """The job's event stream, numbered 1, 2, … (the SSE ids a reconnecting client resumes after)."""

    __tablename__ = "job_events"

    job_id: Mapped[str] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), primary_key=True)
    seq: Mapped[int] = mapped_column(Integer, primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))
    data: Mapped[Any] = mapped_column(JSON)
    at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


class JobFile(Base):
    """A result file of a job, stored in the jobs area of the blob store by sha256."""

    __tablename__ = "job_files"

    job_id: Mapped[str] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), primary_key=True)
    name: Mapped[str] = mapped_column(String(300), primary_key=True)
    sha256: Mapped[str] = mapped_column(String(64), index=True)
    size: Mapped[int] = mapped_column(BigInteger)


class IdempotencyKey(Base):
    """An `Idempotency-Key` a user sent with a request that made a job: the same key again gets that job
    back (never a second one); `fingerprint` (sha256 of the route, its options and the body) tells a
    retry from a different request reusing the key. Deleted with its job."""

    __tablename__ = "idempotency_keys"

    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), primary_key=True)
    key: Mapped[str] = mapped_column(String(200), primary_key=True)
    fingerprint: Mapped[str] = mapped_column(String(64))
    job_id: Mapped[str] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), index=True)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


class Worker(Base):
    """A process that runs jobs, with the device it has (what GET /api/jobs/capabilities reports)."""

    __tablename__ = "workers"

    name: Mapped[str] = mapped_column(String(200), primary_key=True)
    queue: Mapped[str] = mapped_column(String(16))
    device: Mapped[str] = mapped_column(String(16))
    device_name: Mapped[str] = mapped_column(String(200))
    heartbeat_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


class Stream(Base):
    """A named prediction stream of one user: images appended to it are classified by `tejas
    stream-worker` processes (Redis Streams consumer group) with `model`, results land in `predictions`."""

    __tablename__ = "streams"
    __table_args__ = (UniqueConstraint("user_id", "name", name="uq_streams_user_name"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=_uuid)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(100))
    model: Mapped[str] = mapped_column(String(300))  # job:<id> | model:<id> | project:<id>
    top_k: Mapped[int] = mapped_column(Integer, default=3)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    appended: Mapped[int] = mapped_column(BigInteger, default=0)  # images accepted into the stream


class StreamImage(Base):
    """An image appended to a stream and not yet classified ("pending") or given up on ("dead", with its
    error): the database, not Redis, is the truth for what a stream still owes. The row is deleted in the
    transaction that writes the image's result; a pending row whose Redis entry is gone (Redis restarted
    without persistence) is enqueued again (sync_server/prediction/ledger.py)."""

    __tablename__ = "stream_images"
    __table_args__ = (Index("ix_stream_images_state_enqueued", "state", "enqueued_at"),)

    stream_id: Mapped[str] = mapped_column(ForeignKey("streams.id", ondelete="CASCADE"), primary_key=True)
    image_key: Mapped[str] = mapped_column(String(300), primary_key=True)
    state: Mapped[str] = mapped_column(String(8), default="pending")  # pending | dead
    blob: Mapped[str] = mapped_column(String(64))  # its name in the store
    store: Mapped[str] = mapped_column(String(8))  # "streams" (bytes of its own) or "blobs" (the user's blob)
    entry: Mapped[str | None] = mapped_column(String(40), nullable=True)  # its Redis entry id, once added
    appended_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    enqueued_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)  # last put into Redis (or tried)
    error: Mapped[str | None] = mapped_column(String(2000), nullable=True)  # a dead letter's reason
    deliveries: Mapped[int] = mapped_column(Integer, default=0)
    dead_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)


class Prediction(Base):
    """One image's result in a stream, written once per (stream, image key) whoever delivers it again."""

    __tablename__ = "predictions"
    __table_args__ = (
        UniqueConstraint("stream_id", "image_key", name="uq_predictions_stream_key"),
        Index("ix_predictions_stream_id", "stream_id", "id"),
    )

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True)
    stream_id: Mapped[str] = mapped_column(ForeignKey("streams.id", ondelete="CASCADE"))
    image_key: Mapped[str] = mapped_column(String(300))
    label: Mapped[str] = mapped_column(String(200))  # the top class
    confidence: Mapped[float] = mapped_column(Float)
    top: Mapped[Any] = mapped_column(JSON)  # [{class, probability}]
    worker: Mapped[str] = mapped_column(String(200))
    appended_at: Mapped[datetime] = mapped_column(DateTime)  # when the image entered the stream
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow, index=True)


class Deployment(Base):
    """One row, written by the first migration that creates it: this database's identity. Workers compare it
    with the one recorded in Redis so that none serves another deployment's queue (sync_server.deployment)."""

    __tablename__ = "deployment"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    created_at: Mapped[datetime] = mapped_column(DateTime)
