"""What a worker holds while it runs one attempt at a job: the heartbeat that keeps its claim and hears a
cancel, the stop signal the trainer asks between batches (SIGTERM: release the job), its work folder
(`work/<job>-<attempt>`, swept when no live attempt owns it), and the job's files fetched from the store."""

from __future__ import annotations

import logging
import os
import re
import shutil
import socket
import threading
from pathlib import Path

from sqlalchemy import select

from tejas import job_events

from ..core.config import Settings
from ..core.db import session_scope
from ..models import Job
from ..storage import BlobStore
from . import state

log = logging.getLogger("tejas.jobs")

# set by SIGTERM (main): stop between batches, keep the progress, hand the job back to the queue
RELEASE = threading.Event()
RELEASED = "The worker running this job was stopped; the job goes on from its last checkpoint on another worker."
WORK_FOLDER = re.compile(r"^([0-9a-f]{32})-(\d+)$")


def worker_name() -> str:
    return os.environ.get("TEJAS_JOB_WORKER_NAME") or f"{socket.gethostname()}:{os.getpid()}"


def sweep_work(settings: Settings, sessions) -> int:
    """Remove work folders no live attempt owns (an attempt killed before it could clean up): every
    `work/<job>-<attempt>` but those of jobs running *that* attempt. Returns how many went."""
    root = settings.data_dir / "work"
    if not root.is_dir():
        return 0
    folders = {}
    for path in root.iterdir():
        match = WORK_FOLDER.match(path.name)
        if match and path.is_dir():
            folders[path] = (match[1], int(match[2]))
    if not folders:
        return 0
    with session_scope(sessions) as session:
        live = set(
            session.execute(
                select(Job.id, Job.attempt).where(
                    Job.id.in_({job for job, _ in folders.values()}), Job.status == "running"
                )
            ).all()
        )
    removed = 0
    for path, owner in folders.items():
        if owner not in live:
            shutil.rmtree(path, ignore_errors=True)
            removed += 1
    return removed


class Heartbeat(threading.Thread):
    """Renews the job's heartbeat and reads `cancel_requested`; stops the run when the job was cancelled
    or taken over, or when `parent` (the server that started this process) is gone."""

    def __init__(self, sessions, job_id: str, attempt: int, every: float, parent: int | None, releasable=True):
        super().__init__(daemon=True)
        self.sessions, self.job_id, self.attempt, self.every, self.parent = sessions, job_id, attempt, every, parent
        # a prediction job has no checkpoint to stop at: SIGTERM leaves it to the parent (it kills, then releases)
        self.releasable = releasable
        self.cancelled = threading.Event()
        self.lost = threading.Event()
        self.done = threading.Event()

    def run(self) -> None:
        while not self.done.wait(self.every):
            if self.parent is not None and os.getppid() != self.parent:
                self.lost.set()  # the server died: leave the job running; the next server resumes it
                return
            try:
                held, cancel = state.heartbeat(self.sessions, self.job_id, self.attempt)
            except Exception:  # the database restarting: try again at the next beat
                log.warning("heartbeat of job %s failed", self.job_id, exc_info=True)
                continue
            if not held:
                self.lost.set()
                return
            if cancel:
                self.cancelled.set()

    def stop_requested(self) -> bool:
        return self.cancelled.is_set() or self.lost.is_set() or self.releasing()

    def releasing(self) -> bool:
        """Stopping because this worker was asked to stop (SIGTERM), not cancelled or taken over."""
        return self.releasable and RELEASE.is_set() and not self.cancelled.is_set() and not self.lost.is_set()


class StopWhen:
    """The trainer's `should_stop`: true when cancelled, taken over or released; `keep_progress` asks the
    trainer for a checkpoint of the epoch so far first (only when released: another worker resumes)."""

    def __init__(self, beat: Heartbeat):
        self.beat = beat

    def __call__(self) -> bool:
        return self.beat.stop_requested()

    @property
    def keep_progress(self) -> bool:
        return self.beat.releasing()


def download(store: BlobStore, sha: str, dest: Path) -> Path:
    with open(dest, "wb") as f:
        for chunk in store.open(sha):
            f.write(chunk)
    return dest


def fetch_checkpoint(sessions, store: BlobStore, job_id: str, attempt: int, sha: str | None, dest: Path) -> bool:
    """Download the job's checkpoint and check it against its sha256: True when it may be resumed from; a
    missing or changed one is refused with a `notice` event (the job starts over)."""
    if not sha:
        return False
    from tejas.artifacts import sha256_file

    try:
        download(store, sha, dest)
        ok = sha256_file(dest) == sha
        problem = "does not match its checksum (damaged or changed on the server)"
    except FileNotFoundError:
        ok, problem = False, "is no longer stored"
    if ok:
        return True
    log.warning("job %s: checkpoint %s %s; starting over", job_id, sha, problem)
    dest.unlink(missing_ok=True)
    state.record(sessions, job_id, attempt, job_events.notice(f"The stored checkpoint {problem}; the job starts over."))
    return False
