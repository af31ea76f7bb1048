"""Scale-out with TEJAS_QUEUE=celery: a real redis-server, a real `tejas serve` and two real `tejas worker`
processes sharing one data dir (blob store; SQLite, or Postgres once).

The issue's acceptance: two workers, three jobs; `kill -9` one worker mid-job → the job completes exactly
once on the other (one result, one `done` event, resumed from its checkpoint); a cancelled job stops within
seconds; and a job running longer than 2 × TEJAS_JOB_STALE_SECONDS on a live (heartbeating) worker is
not run twice. Everything waits on conditions (the API, the event stream, the job row) with generous
deadlines: the machine may have two slow cores and both workers train at once.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from sqlalchemy import create_engine, text

from ..conftest import ROOT, TEJAS, Server
from ..services import (  # noqa: F401 (fixtures)
    fresh_postgres_db,
    postgres_url,
    redis_server,
    stop_process,
    wait_for,
)
from ..training.animals import animal_pngs, write_zip
from .conftest import Account

pytestmark = pytest.mark.slow

HEARTBEAT_S = 1
STALE_S = 6
START_S = 180  # server + a worker probing its device, on a busy 2-core machine
JOB_S = 900  # a whole scenario's jobs, one worker left, on 2 slow cores


# ------------------------------------------------------------------------------------------- helpers


@dataclass
class Event:
    id: int
    kind: str
    data: dict


def _sse(lines):
    """Server-sent events from text lines; None for a keep-alive comment (so callers can look at a clock)."""
    fields: dict[str, str] = {}
    for line in lines:
        if line == "":
            if "event" in fields:
                yield Event(int(fields["id"]), fields["event"], json.loads(fields.get("data") or "null"))
            else:
                yield None
            fields = {}
        elif line.startswith(":"):
            continue
        else:
            name, _, value = line.partition(":")
            fields[name] = value[1:] if value.startswith(" ") else value


def follow(account: Account, job_id: str, until=None, timeout: float = JOB_S, after: int = 0) -> list[Event]:
    """The job's events after `after` from GET /api/jobs/{id}/events, read until `until(event)` holds or
    the stream ends (after a terminal event); fails after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    seen: list[Event] = []
    with account.http.stream(
        "GET",
        f"/api/jobs/{job_id}/events",
        params={"after": after},
        timeout=httpx.Timeout(30, read=40),  # keep-alive comments come every 15 s
    ) as response:
        assert response.status_code == 200, response.read()
        for event in _sse(response.iter_lines()):
            if event is not None:
                seen.append(event)
                if until is not None and until(event):
                    return seen
            if time.monotonic() > deadline:
                break
    if until is None and seen and seen[-1].kind in ("done", "failed", "cancelled"):
        return seen
    raise AssertionError(f"job {job_id}: condition not met in {timeout:g} s; events: {[e.kind for e in seen]}")


def _tail(path: Path, lines: int = 40) -> str:
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:]) if path.exists() else ""


class Stack:
    """redis-server (fixture) + `tejas serve` + N `tejas worker` processes, one env, one data dir."""

    def __init__(self, tmp: Path, redis_url: str, database_url: str | None):
        self.tmp = tmp
        self.data = tmp / "data"
        self.redis_url = redis_url
        env = {
            "TEJAS_QUEUE": "celery",
            "TEJAS_REDIS_URL": redis_url,
            "TEJAS_JOB_HEARTBEAT_SECONDS": str(HEARTBEAT_S),
            "TEJAS_JOB_STALE_SECONDS": str(STALE_S),
            "TEJAS_JOB_CHECKPOINT_SECONDS": "1",
            "TEJAS_JOB_LOADER_WORKERS": "0",  # no DataLoader children: a kill -9 leaves no orphans
            "OMP_NUM_THREADS": "1",  # two workers share two cores
            "PYTHONWARNINGS": "ignore",
        }
        if database_url:
            env["TEJAS_DATABASE_URL"] = database_url
        self.database_url = database_url or f"sqlite:///{self.data / 'tejas.db'}"
        self.server: Server | None = None
        self.workers: dict[str, subprocess.Popen] = {}  # job row's `worker` (host:pid) -> process
        self.logs: dict[str, Path] = {}
        self.engine = None
        self.server = Server(ROOT / "artifacts", data_dir=self.data, env=env)
        self.engine = create_engine(self.database_url)

    def start_workers(self, count: int, account: Account) -> None:
        """Start `count` more workers; wait until GET /api/jobs/capabilities lists as many live workers
        as are running, and each new one has registered (its row in `workers`, named by its pid)."""
        started = []
        for _ in range(count):
            log = self.tmp / f"worker-{len(self.logs)}.log"
            with open(log, "w") as out:  # a file, not a pipe nobody reads
                process = subprocess.Popen(
                    [TEJAS, "worker"], env=self.server.env, stdout=out, stderr=subprocess.STDOUT, cwd=self.tmp
                )
            name = f"{socket.gethostname()}:{process.pid}"
            self.workers[name], self.logs[name] = process, log
            started.append((name, process))
        alive = sum(p.poll() is None for p in self.workers.values())

        def all_listed():
            for name, process in started:
                assert process.poll() is None, f"worker {name} exited:\n{_tail(self.logs[name])}"
            with self.engine.connect() as connection:
                registered = set(connection.execute(text("SELECT name FROM workers")).scalars())
            # Celery's worker name is tejas-<pid>@<host> (`tejas worker`), registered as "<that>:<pid>"
            if not all(f"tejas-{p.pid}@{socket.gethostname()}:{p.pid}" in registered for _, p in started):
                return False
            caps = account.get("/api/jobs/capabilities").json()
            return caps["queue"] == "celery" and len(caps["workers"]) >= alive

        wait_for(all_listed, START_S, f"{count} new worker(s) registered and listed in GET /api/jobs/capabilities")

    def row(self, job_id: str) -> dict:
        with self.engine.connect() as connection:
            found = connection.execute(
                text("SELECT status, worker, attempt, heartbeat_at FROM jobs WHERE id = :id"), {"id": job_id}
            ).one()
        return dict(found._mapping)

    def redis(self):
        import redis

        return redis.Redis.from_url(self.redis_url, socket_connect_timeout=2, socket_timeout=10)

    def running_on(self, job_id: str) -> str | None:
        """The worker (host:pid) holding the job, when it is running."""
        row = self.row(job_id)
        return row["worker"] if row["status"] == "running" else None

    def kill_worker(self, name: str) -> None:
        process = self.workers[name]
        os.kill(process.pid, signal.SIGKILL)
        process.wait(30)

    def diagnostics(self) -> str:
        parts = [f"--- server log\n{_tail(self.server.log)}"] if self.server else []
        parts += [f"--- worker {name} log\n{_tail(log)}" for name, log in self.logs.items()]
        return "\n".join(parts)

    def stop(self) -> None:
        for process in self.workers.values():
            stop_process(process, timeout=15)  # SIGTERM: Celery's warm shutdown, then SIGKILL
        if self.server:
            self.server.stop()
        if self.engine is not None:
            self.engine.dispose()


@pytest.fixture
def stack(tmp_path, redis_server, request):  # noqa: F811
    """stack(database_url=None) -> a running Stack (no workers yet); everything stopped afterwards, and the
    logs printed (pytest shows them for a failed test)."""
    stacks: list[Stack] = []

    def start(database_url: str | None = None) -> Stack:
        stacks.append(Stack(tmp_path, redis_server.url, database_url))
        return stacks[-1]

    yield start
    for one in stacks:
        print(one.diagnostics())
        one.stop()


@pytest.fixture(params=["sqlite", "postgres"])
def database(request) -> str | None:
    """None: SQLite in the shared data dir; else a fresh Postgres database's URL."""
    return None if request.param == "sqlite" else request.getfixturevalue("fresh_postgres_db")


_ZIPS: dict[int, bytes] = {}


def zip_bytes(tmp: Path, offset: int) -> bytes:
    """A small ImageFolder zip (5 Animal-MNIST classes × 8 images), different per offset."""
    if offset not in _ZIPS:
        _ZIPS[offset] = write_zip(tmp / f"animals-{offset}.zip", animal_pngs(5, 8, offset=offset)).read_bytes()
    return _ZIPS[offset]


def submit(account: Account, tmp: Path, name: str, offset: int = 0, **options) -> str:
    # `name` is left out: /upload answers 422 "query.name: Extra inputs are not permitted" (the Options
    # query model forbids extras), though docs/jobs.md documents it; reported, not this file's to fix.
    params = {"mode": "last_block", "epochs": 6, "batch_size": 8, "patience": 0, **options}
    response = account.post(
        "/api/jobs/upload", params=params, content=zip_bytes(tmp, offset), headers={"Content-Type": "application/zip"}
    )
    assert response.status_code == 201, response.text
    return response.json()["id"]


def kinds(events: list[Event], kind: str) -> list[Event]:
    return [e for e in events if e.kind == kind]


def check_result(account: Account, job_id: str) -> dict:
    """The finished job's result files: listed once, each downloadable with its size and sha256."""
    job = account.get(f"/api/jobs/{job_id}").json()
    assert job["status"] == "done", job
    files = job["result"]["files"]
    assert {"model.onnx", "model.pt", "metrics.json", "app_model.json", "parameters.bin"} <= set(files), files
    for name, info in files.items():
        response = account.get(f"/api/jobs/{job_id}/files/{name}")
        assert response.status_code == 200, (name, response.text)
        assert len(response.content) == info["size"], name
        assert hashlib.sha256(response.content).hexdigest() == info["sha256"], name
    return job


# --------------------------------------------------------------------------------------------- tests


def test_killed_worker_job_completes_once_on_the_other(stack, tmp_path, database):
    """Two workers, three jobs; `kill -9` the worker of job A after its first epoch's checkpoint: A resumes
    on the other worker from that checkpoint and ends once (one result, one done); B and C finish too,
    C having waited in the queue while A and B ran."""
    s = stack(database)
    alice = Account(s.server.url)
    s.start_workers(2, alice)
    t0 = time.monotonic()
    a = submit(alice, tmp_path, "A", offset=0)
    b = submit(alice, tmp_path, "B", offset=10)
    c = submit(alice, tmp_path, "C", offset=20)

    # A and B run on the two workers, one each; C waits.
    holders = wait_for(
        lambda: (s.running_on(a), s.running_on(b)) if s.running_on(a) and s.running_on(b) else None,
        START_S,
        "jobs A and B running",
    )
    assert holders[0] != holders[1], f"A and B on the same worker {holders[0]}"
    assert set(holders) == set(s.workers), (holders, list(s.workers))
    assert alice.get(f"/api/jobs/{c}").json()["status"] == "queued"

    # Kill A's worker once A's end-of-epoch checkpoint is stored (something to resume from).
    before = follow(alice, a, until=lambda e: e.kind == "checkpoint" and e.data["epoch"] >= 1, timeout=JOB_S)
    assert alice.get(f"/api/jobs/{c}").json()["status"] == "queued", "C ran while both workers were busy"
    victim = s.row(a)
    assert victim["status"] == "running" and victim["attempt"] == 1, victim
    killed_at = time.monotonic()
    s.kill_worker(victim["worker"])
    survivor = next(name for name in s.workers if name != victim["worker"])
    print(f"killed {victim['worker']} after {killed_at - t0:.1f} s (A at epoch {before[-1].data['epoch']})")

    # Every job ends done (one worker left).
    streams = {job: follow(alice, job, timeout=JOB_S) for job in (a, b, c)}
    print(f"all done {time.monotonic() - t0:.1f} s after the first submit")
    for job, events in streams.items():
        assert events[-1].kind == "done", (job, [e.kind for e in events])

    # A: started twice (the second resumed from epoch >= 1), one done, one result set, on the survivor.
    events = streams[a]
    ids = [e.id for e in events]
    assert ids == list(range(1, len(ids) + 1)), ids  # one gap-free stream, each event once
    started = kinds(events, "started")
    assert len(started) == 2, [e.kind for e in events]
    assert started[0].data["resumed_from_epoch"] is None
    assert started[1].data["resumed_from_epoch"] >= 1, started[1].data
    assert len(kinds(events, "done")) == 1
    assert not kinds(events, "failed") and not kinds(events, "cancelled")
    epochs_after_resume = [e.data["epoch"] for e in events if e.kind == "epoch" and e.id > started[1].id]
    assert epochs_after_resume and epochs_after_resume[0] == started[1].data["resumed_from_epoch"] + 1
    assert epochs_after_resume[-1] == 6
    row = s.row(a)
    assert row["worker"] == survivor and row["attempt"] == 2 and row["status"] == "done", row
    job_a = check_result(alice, a)
    assert sorted(kinds(events, "done")[0].data["files"]) == sorted(job_a["result"]["files"])
    with s.engine.connect() as connection:
        stored = connection.execute(text("SELECT count(*) FROM job_files WHERE job_id = :id"), {"id": a}).scalar()
    assert stored == len(job_a["result"]["files"])

    # B and C: each started once and done once; C ran on the survivor after waiting.
    for job in (b, c):
        assert len(kinds(streams[job], "started")) == 1, (job, [e.kind for e in streams[job]])
        assert len(kinds(streams[job], "done")) == 1
        assert s.row(job)["attempt"] == 1 and s.row(job)["worker"] == survivor, s.row(job)
        check_result(alice, job)
    resumed_after = time.monotonic() - killed_at
    print(f"A resumed and finished {resumed_after:.1f} s after the kill")


def test_cancel_stops_within_seconds_and_a_long_job_runs_once(stack, tmp_path):
    """On two workers: job L runs well past 2 × TEJAS_JOB_STALE_SECONDS while its worker heartbeats (it
    must not be started a second time), and job X is cancelled after its first epoch (its stream ends
    with `cancelled`). L has far more epochs than that takes on any machine and is cancelled once it
    has run long enough, so the test depends on no training speed."""
    s = stack()
    alice = Account(s.server.url)
    s.start_workers(2, alice)
    long_job = submit(alice, tmp_path, "L", offset=0, epochs=500)
    x = submit(alice, tmp_path, "X", offset=10, epochs=50)

    follow(alice, x, until=lambda e: e.kind == "epoch", timeout=JOB_S)
    asked = time.monotonic()
    response = alice.delete(f"/api/jobs/{x}")
    assert response.status_code == 202, response.text
    assert response.json()["cancel_requested"] is True
    events = follow(alice, x, timeout=120)
    took = time.monotonic() - asked
    print(f"cancel: the stream ended with `cancelled` {took:.1f} s after DELETE")
    assert events[-1].kind == "cancelled", [e.kind for e in events]
    assert not kinds(events, "done")
    job = alice.get(f"/api/jobs/{x}").json()
    assert job["status"] == "cancelled" and job["result"] is None, job

    # X's worker is idle now: hand it L's message again, twice, while L runs (a redelivery, or the
    # reaper's re-send). The job row's fence must turn each copy away: L is started once.
    assert s.running_on(long_job), s.row(long_job)
    from celery import Celery

    sender = Celery("tejas-test", broker=s.redis_url)
    try:
        for _ in range(2):
            sender.send_task("tejas.train", args=[long_job], queue="train")
    finally:
        sender.close()
    with s.redis() as client:
        wait_for(lambda: client.llen("train") == 0, START_S, "the copies of L's message taken by the idle worker")
    row = s.row(long_job)
    assert row["status"] == "running" and row["attempt"] == 1, row

    from datetime import UTC, datetime

    def running_for() -> float:
        """Seconds L has been running, while it runs on its first attempt (anything else fails the test)."""
        job = alice.get(f"/api/jobs/{long_job}").json()
        row = s.row(long_job)
        assert job["status"] == "running" and row["attempt"] == 1, (job, row)
        started = datetime.fromisoformat(job["started"].rstrip("Z")).replace(tzinfo=UTC)
        return (datetime.now(UTC) - started).total_seconds()

    wait_for(lambda: running_for() > 2 * STALE_S + 1, JOB_S, "L running past twice the stale time")
    response = alice.delete(f"/api/jobs/{long_job}")
    assert response.status_code == 202, response.text
    events = follow(alice, long_job, timeout=JOB_S)
    assert events[-1].kind == "cancelled", [e.kind for e in events]
    assert len(kinds(events, "started")) == 1, [e.kind for e in events]
    row = s.row(long_job)
    assert row["attempt"] == 1, row


def test_a_job_that_keeps_killing_its_worker_is_failed_not_run_forever(stack, tmp_path):
    """A job whose worker dies every time (out of memory, say) is failed after MAX_ATTEMPTS starts, as the
    in-process queue does, instead of being handed to every worker in turn."""
    from sync_server.jobs import MAX_ATTEMPTS

    s = stack()
    alice = Account(s.server.url)
    job = submit(alice, tmp_path, "P", epochs=50)
    for attempt in range(1, MAX_ATTEMPTS + 1):
        s.start_workers(1, alice)
        worker = list(s.workers)[-1]
        wait_for(
            lambda attempt=attempt, worker=worker: (
                (r := s.row(job))["attempt"] == attempt and r["worker"] == worker and r["status"] == "running"
            ),
            JOB_S,
            f"attempt {attempt} of the job running on {worker}",
        )
        s.kill_worker(worker)
    s.start_workers(1, alice)  # a live worker: without the limit it would take the job a fourth time
    events = follow(alice, job, timeout=JOB_S)
    assert events[-1].kind == "failed", [e.kind for e in events]
    assert "ended unexpectedly" in events[-1].data["reason"], events[-1].data
    assert s.row(job)["attempt"] == MAX_ATTEMPTS, s.row(job)
