"""Server settings, read from TEJAS_* environment variables (the README lists them).

The defaults run on one machine with nothing else installed: SQLite and a blob folder under
`data_dir`. Postgres, an S3 API and (later) Celery + Redis are chosen here, never by code changes.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

ROOT = Path(__file__).resolve().parent.parent.parent


def _default_data_dir() -> Path:
    base = os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share"
    return Path(base) / "tejas"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="TEJAS_")

    host: str = "127.0.0.1"
    port: int = 8000
    pwa_dir: Path = ROOT / "pwa"
    artifacts_dir: Path = ROOT / "artifacts"

    # Where the embedded defaults keep their files (database, blobs, uploads in progress).
    data_dir: Path = Field(default_factory=_default_data_dir)
    # SQLAlchemy URL; empty: SQLite at data_dir/tejas.db. Postgres: postgresql+psycopg://user:pw@host/db
    database_url: str = ""

    # Blob store: "local" (data_dir/blobs) or "s3" (any S3 API: AWS, MinIO, moto).
    blob_store: Literal["local", "s3"] = "local"
    s3_bucket: str = "tejas"
    s3_endpoint_url: str | None = None
    s3_region: str = "us-east-1"
    s3_prefix: str = "blobs/"

    # Origins whose pages may call the API (an app served elsewhere syncing with this server). Tokens
    # travel in the Authorization header, never in cookies, so "*" lends nothing to other sites.
    cors_origins: list[str] = ["*"]

    # Accounts
    token_days: float = 30
    min_password_length: int = 8
    # Sign-in limits (docs/sync.md "Sign-in limits"): wrong passwords are counted per client address, so
    # a guesser is slowed and the owner, signing in from elsewhere, is not.
    login_max_failures: int = 10  # per (email, client address) within the window, then 429 for that pair
    login_max_failures_per_ip: int = 50  # per client address over all emails within the window, then 429
    # per email from all addresses (a guesser with many addresses): then 429 only for addresses this
    # account has not signed in from within known_address_days; its known addresses still sign in
    login_max_failures_per_email: int = 100
    login_window_seconds: int = 900
    known_address_days: float = 90  # an address this account signed in from stays known this long
    # Sign-up: requests per client address (a taken email counts like a new one) within the window, then 429
    signup_max_per_address: int = 10
    signup_window_seconds: int = 3600
    # Reverse proxies whose X-Forwarded-For names the client (uvicorn's forwarded_allow_ips, e.g.
    # ["10.0.0.5"]); empty: the connection's own address is the client and X-Forwarded-For is ignored, so
    # nobody picks the address the limits above count. Behind a proxy, without it, every client shares one.
    forwarded_allow_ips: list[str] = []
    argon2_time_cost: int = 3  # argon2-cffi's defaults; tests lower them (NOTES.md)
    argon2_memory_kib: int = 65536
    argon2_parallelism: int = 4

    # Sync limits
    max_push_changes: int = 1000
    max_push_bytes: int = 8 * 1024 * 1024
    max_record_bytes: int = 64 * 1024
    max_pull_changes: int = 1000
    max_image_bytes: int = 20 * 1024 * 1024
    max_model_bytes: int = 256 * 1024 * 1024

    # Retention: a project's copy on the server is deleted this many days after its last change.
    retention_days: float = 30
    purge_interval_seconds: float = 3600
    # An uploaded blob no record of its uploader refers to (a sync cut between upload and push, or bytes
    # sent for nothing) is dropped this many hours after its upload by the purge (docs/sync.md).
    unreferenced_blob_hours: float = 24

    # Per-user quotas (docs/sync.md, "Quotas"); GET /api/me shows each one's use. Bytes stored counts the
    # blobs the user holds (each in full, even when another user holds the same bytes), training and batch
    # uploads and job result files: an upload over it gets 413, and no job starts while it is full.
    max_user_bytes: int = 5 * 1000**3
    max_streams: int = 20  # prediction streams per user, then 429 on creating another
    max_stream_pending: int = 10_000  # images appended to a user's streams and not yet done, then 429

    # Training jobs (docs/jobs.md). "inprocess": one job at a time in a worker process the server starts;
    # "celery": jobs go to Celery workers (`tejas worker`) through Redis at redis_url.
    queue: Literal["inprocess", "celery"] = "inprocess"
    redis_url: str = "redis://127.0.0.1:6379/0"
    max_upload_bytes: int = 500 * 1024 * 1024  # an ImageFolder zip sent for training
    max_epochs: int = 500
    max_jobs_queued: int = 20  # per user, queued or running (training and batch jobs), then 429
    job_heartbeat_seconds: float = 5.0  # a running job's worker says it is alive this often
    job_stale_seconds: float = 60.0  # no heartbeat for this long: the worker died, the job is run again
    job_checkpoint_seconds: float = 120.0  # a checkpoint within an epoch at least this often
    job_loader_workers: int | None = None  # DataLoader worker processes; None: by the CPU count
    artifacts_name: str = "default"  # the artifact set (under artifacts_dir) the app uses and jobs start from
    # SIGTERM to a worker (or the server, in-process queue): its job checkpoints and goes back to the queue;
    # a job process still running this long after is killed (the job resumes from its last checkpoint)
    worker_stop_seconds: float = 30.0
    # a request body that stops arriving (no byte for this long) is answered 408 and its connection closed
    body_timeout_seconds: float = 60.0

    # Prediction (docs/predictions.md): POST /api/predictions answers directly for a few images; a zip goes
    # to POST /api/batches (≤ max_upload_bytes) as a job; streams go through Redis at redis_url.
    max_prediction_images: int = 32
    prediction_threads: int | None = None  # onnxruntime threads per model; None: up to 4
    stream_key: str = "tejas:predict"  # the Redis stream every prediction stream's images go through
    stream_group: str = "tejas-predict"  # the consumer group of `tejas stream-worker` processes
    stream_claim_idle_seconds: float = 30.0  # a pending entry idle this long (its worker died) is taken over
    stream_max_deliveries: int = 3  # then it becomes a dead letter (a row in the database) with its error
    stream_batch_size: int = 16  # entries a worker reads and classifies at once
    # The server and each stream worker look this often (and at start) for images a stream still owes whose
    # Redis entry is gone (a Redis restarted without persistence) and enqueue them again; an image enqueued
    # less than this long ago is left alone (its append may be between the database and Redis).
    stream_requeue_seconds: float = 60.0

    def as_env(self) -> dict[str, str]:
        """These settings as TEJAS_* variables, for the worker processes the server starts."""
        env = {}
        for name, value in self.model_dump().items():
            if value is not None:
                env[f"TEJAS_{name.upper()}"] = json.dumps(value) if isinstance(value, list | dict) else str(value)
        return env

    @property
    def sqlalchemy_url(self) -> str:
        return self.database_url or f"sqlite:///{self.data_dir / 'tejas.db'}"
