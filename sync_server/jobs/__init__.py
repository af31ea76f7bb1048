"""Where training jobs run, chosen by TEJAS_QUEUE (never by code changes):

- `inprocess` (default): the server runs one job at a time in a worker *process* it starts
  (`python -m sync_server.jobs.runner`), so the API stays responsive and CUDA is never initialised in
  the server. Queued and running jobs outlive a restart: the next server resumes a running job from
  its last checkpoint.
- `celery`: jobs go through Redis (TEJAS_REDIS_URL) to Celery workers (`tejas worker`: a `train`
  queue, solo pool, one job per worker). Messages are acknowledged on receipt and the job row owns
  recovery: a worker heartbeats its job; the server's reaper sends a job whose heartbeat stopped (a
  killed worker) to the queue again, where another worker claims it and resumes from the checkpoint.
  The claim is fenced by the row's attempt number, so a long job is never run twice and a job
  finishes once (jobs/state.py). This is the "equivalent" of a visibility timeout longer than any job.

Here: state.py (job rows and their events, fenced by attempt), queues.py (the JobQueue interface and both
queues), workers.py (worker rows, the device probe), runner.py (one job in a process) with attempt.py (its
heartbeat, stop signal and work folder), celery_app.py (the Celery task), service.py and schemas.py (what
the job routes do, and their shapes). Events are made by tejas.job_events (pwa/py/tejas/job_events.py).
"""

from .queues import MAX_ATTEMPTS, CeleryQueue, InProcessQueue, JobQueue, make_queue
from .workers import forget_worker, live_workers, probe_device, register_worker

__all__ = [
    "MAX_ATTEMPTS",
    "CeleryQueue",
    "InProcessQueue",
    "JobQueue",
    "forget_worker",
    "live_workers",
    "make_queue",
    "probe_device",
    "register_worker",
]
