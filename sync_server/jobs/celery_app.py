"""The Celery app of `TEJAS_QUEUE=celery`: one task, `tejas.train`, on the `train` queue.

`tejas worker` runs `celery worker -Q train --pool=solo --concurrency=1`: one job per worker process,
run in that process (no forked pool child; CUDA is first touched by the job itself). Messages are
acknowledged on receipt and prefetch is one: the job row, with its heartbeat and fenced attempts
(jobs/state.py), decides who runs what, and the server's reaper re-sends jobs whose worker died.
"""

from __future__ import annotations

import os
import threading

from celery import Celery
from celery.signals import worker_ready, worker_shutdown

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


@app.task(name="tejas.train")
def train(job_id: str) -> str | None:
    from .runner import run_job

    return run_job(settings, job_id, sessions=_sessions())


def _sessions():
    if "sessions" not in _state:
        from ..core.db import make_engine, make_sessionmaker

        _state["sessions"] = make_sessionmaker(make_engine(settings))
    return _state["sessions"]


@worker_ready.connect
def _announce(sender=None, **_):
    """Say which device this worker has (GET /api/jobs/capabilities), and keep saying it."""
    from . import probe_device, register_worker

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
    from . import forget_worker

    if "stop" in _state:
        _state["stop"].set()
        try:
            forget_worker(_sessions(), _state["name"])
        except Exception:
            pass
