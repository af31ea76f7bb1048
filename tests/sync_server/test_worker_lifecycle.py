"""Celery workers that stay lean and stop on time (issue 24 §7), with a real redis-server, `tejas serve` and
two `tejas worker` processes:

- a job runs in a child process of its worker: killing that child (`kill -9`, as the kernel's OOM killer
  would) leaves a work folder that the next attempt removes; the job resumes from its checkpoint;
- SIGTERM to a worker mid-job: it checkpoints, hands the job back to the queue and exits within
  TEJAS_WORKER_STOP_SECONDS (+ a few seconds of Celery's own shutdown); the other worker resumes the job;
- between jobs a worker holds no torch: its memory stays that of an idle Celery process;
- when it is all over no work folder is left behind;
- (in-process queue) the job's process, sent SIGTERM, checkpoints, hands the job back and exits.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest

from ..services import redis_server, wait_for  # noqa: F401 (fixture)
from .conftest import Account
from .test_jobs import job_server  # noqa: F401 (fixture)
from .test_jobs_celery import JOB_S, START_S, Stack, follow, kinds, stack, submit  # noqa: F401 (fixture)

pytestmark = pytest.mark.slow

STOP_S = 10  # TEJAS_WORKER_STOP_SECONDS in this test
CELERY_SHUTDOWN_S = 10  # what Celery's warm shutdown itself may take on a busy machine
IDLE_RSS_BOUND_MB = 400  # an idle worker (Celery + SQLAlchemy, no torch); one that trained held ~2.4 GB


def _children(pid: int) -> list[int]:
    """The process's children, whichever of its threads started them."""
    found = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            found += [int(c) for c in (task / "children").read_text().split()]
        except OSError:
            continue
    return found


def _rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def _maps_torch(pid: int) -> bool:
    return "libtorch" in Path(f"/proc/{pid}/maps").read_text()


def _work_folders(s: Stack, job_id: str) -> list[str]:
    work = s.data / "work"
    return sorted(p.name for p in work.glob(f"{job_id}-*")) if work.exists() else []


def _holder(s: Stack, job_id: str, attempt: int) -> str | None:
    row = s.row(job_id)
    return row["worker"] if row["status"] == "running" and row["attempt"] == attempt else None


def test_sigterm_hands_the_job_back_in_time_and_workers_stay_lean(stack, tmp_path):  # noqa: F811 (fixtures)
    s = stack()
    s.server.env["TEJAS_WORKER_STOP_SECONDS"] = str(STOP_S)  # the workers read it (they share the env)
    alice = Account(s.server.url)
    s.start_workers(2, alice)
    # far more epochs than the test waits for: it ends the job by cancelling it, so no speed is assumed
    job = submit(alice, tmp_path, "L", offset=0, epochs=300)

    # 1. kill -9 the process that trains (a child of the worker), after a checkpoint
    follow(alice, job, until=lambda e: e.kind == "checkpoint" and e.data["epoch"] >= 1, timeout=JOB_S)
    first = wait_for(lambda: _holder(s, job, 1), START_S, "attempt 1 running")
    worker_pid = s.workers[first].pid
    trainers = _children(worker_pid)
    assert len(trainers) == 1, f"the job should train in one child process of its worker, found {trainers}"
    assert _work_folders(s, job) == [f"{job}-1"]
    os.kill(trainers[0], signal.SIGKILL)

    # the reaper sends it again once its heartbeat is stale; attempt 2 removes attempt 1's folder
    second = wait_for(lambda: _holder(s, job, 2), JOB_S, "attempt 2 running")
    restarted = follow(alice, job, until=lambda e: e.kind == "started" and e.data["resumed_from_epoch"] is not None)
    wait_for(lambda: _work_folders(s, job) == [f"{job}-2"], 60, "attempt 1's work folder removed")

    # 2. SIGTERM the worker of attempt 2 once it stored a checkpoint of its own
    seen = follow(alice, job, until=lambda e: e.kind == "checkpoint", after=restarted[-1].id)
    victim = s.workers[second]
    asked = time.monotonic()
    victim.send_signal(signal.SIGTERM)
    victim.wait(STOP_S + CELERY_SHUTDOWN_S + 30)
    took = time.monotonic() - asked
    print(f"SIGTERM: worker exited {took:.1f} s later (bound {STOP_S} + {CELERY_SHUTDOWN_S} s)")
    assert took < STOP_S + CELERY_SHUTDOWN_S, f"the worker took {took:.0f} s to stop"
    released = follow(alice, job, until=lambda e: e.kind == "released", after=seen[-1].id)
    assert "another worker" in released[-1].data["message"], released[-1].data
    assert not _work_folders(s, job) or _work_folders(s, job) == [f"{job}-3"]

    # 3. the other worker resumes it at once (from a checkpoint at least as late as the SIGTERM)
    survivor = next(name for name in s.workers if name != second and s.workers[name].poll() is None)
    wait_for(lambda: _holder(s, job, 3) == survivor, START_S, "attempt 3 running on the other worker")
    events = follow(alice, job, until=lambda e: e.kind == "epoch" and e.id > released[-1].id)
    resumed = [e for e in kinds(events, "started") if e.id > released[-1].id]
    assert resumed and resumed[0].data["resumed_from_epoch"] >= 1, [e.kind for e in events]

    # 4. end it; the worker that trained is lean again and no work folder is left
    assert alice.delete(f"/api/jobs/{job}").status_code == 202
    everything = follow(alice, job, timeout=120)
    assert everything[-1].kind == "cancelled", [e.kind for e in everything]
    assert not kinds(everything, "done") and not kinds(everything, "failed")
    survivor_pid = s.workers[survivor].pid
    wait_for(lambda: not _children(survivor_pid), 60, "the job's child process gone")
    wait_for(lambda: _work_folders(s, job) == [], 60, "no work folder left")
    rss = _rss_mb(survivor_pid)
    print(f"idle worker after a job: {rss:.0f} MB RSS")
    assert not _maps_torch(survivor_pid), "the idle worker still holds torch"
    assert rss < IDLE_RSS_BOUND_MB, f"idle worker at {rss:.0f} MB"
    row = s.row(job)
    assert row["attempt"] == 3 and row["status"] == "cancelled", row


def test_a_job_process_asked_to_stop_checkpoints_and_hands_the_job_back(job_server, tmp_path):  # noqa: F811 (fixtures)
    """SIGTERM to the process that trains (what a stopping worker or server sends it): it writes a
    checkpoint of the epoch so far, marks the job `released` (queued again) and exits 0; the in-process
    queue then resumes the job from that checkpoint."""
    from ..training.animals import animal_pngs, write_zip
    from .test_jobs import read_events, upload, wait_for_event

    server = job_server()
    alice = Account(server.url)
    zipped = write_zip(tmp_path / "d.zip", animal_pngs(2, 8)).read_bytes()
    job = upload(alice, zipped, mode="head", epochs=300, batch_size=2, patience=0).json()["id"]
    wait_for_event(alice, job, lambda e: e["event"] == "epoch")
    trainer = wait_for(lambda: _children(server.process.pid), 60, "the job's process")[0]
    asked = time.monotonic()
    os.kill(trainer, signal.SIGTERM)
    wait_for(lambda: not Path(f"/proc/{trainer}").exists() or _zombie(trainer), 120, "the job's process ended")
    print(f"the job's process stopped {time.monotonic() - asked:.1f} s after SIGTERM")
    events = list(
        read_events_until(alice, job, lambda e: e["event"] == "started" and e["data"]["resumed_from_epoch"] is not None)
    )
    kinds_ = [e["event"] for e in events]
    released = kinds_.index("released")
    assert kinds_[released - 1] == "checkpoint", kinds_  # the progress kept just before handing it back
    assert kinds_.count("started") == 2, kinds_
    assert alice.delete(f"/api/jobs/{job}").status_code == 202
    assert read_events(alice, job)[-1]["event"] == "cancelled"


def _zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ")[1].startswith("Z")
    except OSError:
        return True


def read_events_until(account, job_id, predicate):
    from .test_jobs import stream_events

    events = stream_events(account, job_id)
    try:
        for event in events:
            yield event
            if predicate(event):
                return
    finally:
        events.close()
