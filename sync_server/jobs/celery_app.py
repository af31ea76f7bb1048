"""The Celery app of `TEJAS_QUEUE=celery`: one task, `tejas.train`, on the `train` queue.

`tejas worker` runs `celery worker -Q train --pool=solo --concurrency=1`: one job at a time, each in a
fresh child process (`python -m sync_server.jobs.runner`, spawned, not forked: CUDA is first touched by
the job itself), so the gigabytes a fine-tune takes go back to the system when it ends and the worker
stays an idle Celery process between jobs. Messages are acknowledged on receipt and prefetch is one: the
job row, with its heartbeat and fenced attempts (jobs/state.py), decides who runs what, and the server's
reaper re-sends jobs whose worker died.

SIGTERM (a deploy, `docker stop`): Celery's warm shutdown waits for the task, so the task's child is told
to stop (it checkpoints the epoch so far and hands the job back to the queue); a child still running
TEJAS_WORKER_STOP_SECONDS later is killed and the job handed back from its last stored checkpoint. The
job is sent to the queue again at once, for another worker to resume.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import subprocess
import sys
import threading

from celery import Celery
from celery.signals import worker_ready, worker_shutdown, worker_shutting_down

from ..core.config import Settings

settings = Settings()
app = Celery("tejas", broker=settings.redis_url)
app.conf.update(
    task_acks_late=False,
    worker_prefetch_multiplier=1,
    task_default_queue="train",
    task_ignore_result=True,
    broker_connection_retry_on_startup=True,
    worker_hijack_root_logger=False,
    worker_send_task_events=False,
)

_state: dict = {}


log = logging.getLogger("tejas.jobs")


@app.task(name="tejas.train")
def train(job_id: str) -> str | None:
    """Run the job in a child process and wait for it; hand the job back when this worker is stopping."""
    from . import state
    from .attempt import RELEASED

    if _state.get("stopping"):
        return None  # a message taken during shutdown: the reaper (or the releasing worker) sends it again
    name = f"{socket.gethostname()}:{os.getpid()}"  # what the job row's `worker` shows
    child = subprocess.Popen(
        [sys.executable, "-m", "sync_server.jobs.runner", job_id, str(os.getpid()), name], env=dict(os.environ)
    )
    _state["child"] = child
    try:
        code = child.wait()
    finally:
        _state.pop("child", None)
    from ..core.db import session_scope
    from ..models import Job

    with session_scope(_sessions()) as session:
        job = session.get(Job, job_id)
        status, attempt, holder = (job.status, job.attempt, job.worker) if job else (None, 0, None)
    if status == "running" and holder == name and _state.get("stopping"):
        # killed at the stop deadline before it could hand the job back: do it for it
        state.release(_sessions(), job_id, attempt, RELEASED)
        status = "queued"
    if status == "queued" and _state.get("stopping"):
        app.send_task("tejas.train", args=[job_id], queue="train")  # another worker resumes it now
    if code != 0:
        log.warning("job %s: its process exited with %s", job_id, code)
    return status


@worker_shutting_down.connect
def _stop_the_job(**_):
    """SIGTERM: ask the job's process to stop (checkpoint, release); kill it at TEJAS_WORKER_STOP_SECONDS."""
    _state["stopping"] = True
    child = _state.get("child")
    if child is None or child.poll() is not None:
        return
    child.send_signal(signal.SIGTERM)

    def deadline():
        try:
            child.wait(settings.worker_stop_seconds)
        except subprocess.TimeoutExpired:
            log.warning("the job's process did not stop in %g s: killed", settings.worker_stop_seconds)
            child.kill()

    threading.Thread(target=deadline, daemon=True, name="tejas-stop-deadline").start()


def _sessions():
    if "sessions" not in _state:
        from ..core.db import make_engine, make_sessionmaker

        _state["sessions"] = make_sessionmaker(make_engine(settings))
    return _state["sessions"]


@worker_ready.connect
def _announce(sender=None, **_):
    """Say which device this worker has (GET /api/jobs/capabilities), and keep saying it."""
    from .attempt import sweep_work
    from .workers import probe_device, register_worker

    try:
        sweep_work(settings, _sessions())  # folders of attempts killed with an earlier worker
    except Exception:
        log.warning("sweeping work folders failed", exc_info=True)
    name = f"{sender.hostname if sender else 'celery'}:{os.getpid()}"
    device = probe_device()
    stop = threading.Event()
    _state.update(name=name, stop=stop)

    def beat():
        while True:
            try:
                register_worker(_sessions(), name, "celery", device)
            except Exception:
                pass
            if stop.wait(max(1.0, settings.job_heartbeat_seconds)):
                return

    threading.Thread(target=beat, daemon=True, name="tejas-worker-beat").start()


@worker_shutdown.connect
def _farewell(**_):
    from .workers import forget_worker

    if "stop" in _state:
        _state["stop"].set()
        try:
            forget_worker(_sessions(), _state["name"])
        except Exception:
            pass
