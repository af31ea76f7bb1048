"""The job queues behind one interface (JobQueue): InProcessQueue runs jobs in worker processes the
server starts, CeleryQueue sends them to Celery workers through Redis; make_queue picks by TEJAS_QUEUE
(the package's docstring says how each recovers a job whose worker died)."""

from __future__ import annotations

import logging
import os
import socket
import subprocess
import sys
import threading
import time
from datetime import timedelta
from typing import Protocol

from sqlalchemy import select

from ..core.clock import utcnow
from ..core.config import Settings
from ..core.db import session_scope
from ..models import Job
from . import state
from .workers import forget_worker, probe_device, register_worker

log = logging.getLogger("tejas.jobs")

MAX_ATTEMPTS = 3  # a job whose worker process dies this often is failed, not run again


class JobQueue(Protocol):
    """Where queued jobs go to run. The job row is the truth (jobs/state.py): `submit` only delivers a
    job already committed as queued, and may raise when the queue cannot be reached (the job waits)."""

    kind: str  # TEJAS_QUEUE's value: inprocess or celery

    def start(self) -> None:
        """Begin running (or reaping) jobs; called once when the server starts."""

    def stop(self) -> None:
        """Stop at shutdown; a running job checkpoints and goes back to the queue."""

    def submit(self, job_id: str) -> None:
        """Deliver a queued job (or a cancel request) to whatever runs it."""


class InProcessQueue:
    """One job at a time, each in a fresh worker process started by the server."""

    kind = "inprocess"

    def __init__(self, settings: Settings, sessions):
        self.settings, self.sessions = settings, sessions
        self.wake = threading.Event()
        self.stopping = threading.Event()
        self.thread: threading.Thread | None = None
        self.process: subprocess.Popen | None = None
        self.probe: subprocess.Popen | None = None
        self.name = f"{socket.gethostname()}:{os.getpid()}:inprocess"
        self.device: dict | None = None

    def start(self) -> None:
        self.thread = threading.Thread(target=self._loop, name="tejas-jobs", daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.stopping.set()
        self.wake.set()
        if self.probe and self.probe.poll() is None:
            self.probe.kill()  # a server stopping before the device probe answered: no job ran yet
        if self.process and self.process.poll() is None:
            # The job checkpoints and goes back to the queue (runner.py); the next server resumes it.
            self.process.terminate()
            try:
                self.process.wait(self.settings.worker_stop_seconds)
            except subprocess.TimeoutExpired:
                self.process.kill()
        if self.thread:
            self.thread.join(15)
        try:
            forget_worker(self.sessions, self.name)
        except Exception:
            pass

    def submit(self, job_id: str) -> None:
        self.wake.set()

    def _probe_started(self, process: subprocess.Popen) -> None:
        self.probe = process
        if self.stopping.is_set():  # stop() ran before the probe was known to it
            process.kill()

    def _beat(self) -> None:
        if self.device is not None:
            register_worker(self.sessions, self.name, self.kind, self.device)

    def _loop(self) -> None:
        self.device = probe_device(self._probe_started)
        if self.stopping.is_set():
            return
        # Jobs left `running` by an earlier server ran in its child processes, which end with it: resume them now.
        with session_scope(self.sessions) as session:
            orphans = list(session.scalars(select(Job.id).where(Job.status == "running").order_by(Job.started_at)))
        while not self.stopping.is_set():
            try:
                self._beat()
                job_id = (
                    orphans.pop(0) if orphans else state.next_queued(self.sessions, self.settings.job_stale_seconds)
                )
                if job_id is None:
                    self.wake.wait(min(5.0, self.settings.job_heartbeat_seconds))
                    self.wake.clear()
                    continue
                if self._run(job_id):
                    orphans.insert(0, job_id)
            except Exception:
                log.exception("job queue loop")
                time.sleep(1)

    def _run(self, job_id: str) -> bool:
        """Run the job in a worker process; True when it should be run again (its process crashed)."""
        env = dict(os.environ)
        env.update(self.settings.as_env())
        # The runner claims the job; an orphan from the previous server has a fresh-looking heartbeat,
        # so it is claimable at once here (nothing else runs jobs in this mode).
        env["TEJAS_JOB_STALE_SECONDS"] = "0"
        self.process = subprocess.Popen(
            [sys.executable, "-m", "sync_server.jobs.runner", job_id, str(os.getpid())], env=env
        )
        while self.process.poll() is None:
            if self.stopping.wait(min(2.0, self.settings.job_heartbeat_seconds)):
                return False
            self._beat()
        code = self.process.returncode
        self.process = None
        if code == 0:
            return False
        # The worker process died (killed, out of memory) before it could say so: run it again from its
        # checkpoint, up to MAX_ATTEMPTS times, then end it with the reason.
        with session_scope(self.sessions) as session:
            job = session.get(Job, job_id)
            if job is None or job.status != "running":
                return False
            attempt = job.attempt
        if attempt < MAX_ATTEMPTS:
            log.warning("job %s: worker process exited with %s; resuming it", job_id, code)
            return True
        reason = f"The training process ended unexpectedly {attempt} times (exit status {code}); start the job again."
        state.fail(self.sessions, job_id, attempt, reason, self.settings.retention_days)
        return False


class CeleryQueue:
    """Jobs to Celery workers through Redis; the server's reaper re-sends jobs whose worker died."""

    kind = "celery"

    def __init__(self, settings: Settings, sessions):
        self.settings, self.sessions = settings, sessions
        self.stopping = threading.Event()
        self.thread: threading.Thread | None = None
        self.sent: dict[str, tuple[int, float]] = {}

    def start(self) -> None:
        self.thread = threading.Thread(target=self._reap, name="tejas-jobs-reaper", daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.stopping.set()
        if self.thread:
            self.thread.join(15)

    def submit(self, job_id: str) -> None:
        from .celery_app import app

        app.send_task("tejas.train", args=[job_id], queue="train")

    def _reap(self) -> None:
        every = max(0.5, self.settings.job_heartbeat_seconds)
        while not self.stopping.wait(every):
            try:
                self._reap_once()
            except Exception:
                log.warning("job reaper", exc_info=True)

    def _waiting(self) -> int:
        """Messages waiting in the broker's `train` queue (kombu's Redis transport keeps them in a list)."""
        import redis

        try:
            return int(redis.Redis.from_url(self.settings.redis_url, socket_timeout=5).llen("train"))
        except Exception:
            return 0

    def _reap_once(self) -> None:
        now = time.monotonic()
        stale = self.settings.job_stale_seconds
        cutoff = utcnow() - timedelta(seconds=stale)
        with session_scope(self.sessions) as session:
            rows = session.execute(
                select(Job.id, Job.attempt, Job.status).where(
                    ((Job.status == "running") & (Job.heartbeat_at < cutoff))
                    | ((Job.status == "queued") & (Job.created_at < cutoff))
                )
            ).all()
        waiting = None  # the broker's queue length, asked once per tick when a queued job needs it
        for job_id, attempt, status in rows:
            if status == "running" and attempt >= MAX_ATTEMPTS:
                # Its worker died this often (a job that runs the machine out of memory would take every
                # worker down in turn): end it with the reason, as the in-process queue does.
                reason = f"The training process ended unexpectedly {attempt} times; start the job again."
                log.warning("job %s: worker died on attempt %d; failed", job_id, attempt)
                # fenced by `attempt`: a worker that claimed it meanwhile keeps it
                state.fail(self.sessions, job_id, attempt, reason, self.settings.retention_days)
                self.sent.pop(job_id, None)
                continue
            previous = self.sent.get(job_id)
            if previous and previous[0] == attempt and now - previous[1] < stale:
                continue
            if status == "queued":
                waiting = self._waiting() if waiting is None else waiting
            if status == "queued" and waiting > 0:
                continue  # its message is most likely still in the queue behind busy workers: no copies
            try:
                self.submit(job_id)
            except Exception as exc:  # the broker is down: every job waits (the rows keep them) until it is back
                log.warning("job queue unreachable (%s); %s waits", exc, job_id)
                return
            log.warning("job %s (%s, attempt %d): no live worker; sent to the queue again", job_id, status, attempt)
            self.sent[job_id] = (attempt, now)


def make_queue(settings: Settings, sessions) -> JobQueue:
    return CeleryQueue(settings, sessions) if settings.queue == "celery" else InProcessQueue(settings, sessions)
