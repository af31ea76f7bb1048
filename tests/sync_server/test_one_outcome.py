"""One outcome per request (issue 24 §7): a job-making request either makes one job and says so, or
makes nothing; an `Idempotency-Key` makes a retry give the same job back, never a second one.

- With TEJAS_QUEUE=celery and redis-server killed, an upload answers 201 with the queued job (the row is
  the truth) instead of a 500 that made a job anyway; the same request retried with its key gets that job;
  once Redis is back the job is delivered and runs exactly once (real redis-server, real `tejas worker`).
- On the embedded defaults: the same key and body → the same job; the key with another body → 422 with a
  sentence; another user's identical key is theirs alone; the same for POST /api/jobs (a synced project).
"""

from __future__ import annotations

import subprocess
import time

import pytest
from sqlalchemy import text

from ..services import REDIS_SERVER, redis_server, stop_process, wait_for  # noqa: F401 (fixture)
from ..training.animals import animal_pngs, write_zip
from .conftest import Account, project_changes, sample_change
from .test_jobs import job_server  # noqa: F401 (fixture)
from .test_jobs_celery import JOB_S, START_S, follow, kinds, stack, zip_bytes  # noqa: F401 (fixture)

pytestmark = pytest.mark.slow

PARAMS = {"mode": "last_block", "epochs": 2, "batch_size": 8, "patience": 0}


def _upload(account: Account, body: bytes, key: str | None, **params):
    headers = {"Content-Type": "application/zip"}
    if key is not None:
        headers["Idempotency-Key"] = key
    return account.post("/api/jobs/upload", params={**PARAMS, **params}, content=body, headers=headers)


def _restart_redis(server) -> None:
    """A fresh redis-server on the same port (no persistence: nothing of the old one survives)."""
    server.process = subprocess.Popen(
        [str(REDIS_SERVER), "--port", str(server.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
         "--daemonize", "no", "--dir", str(server.root)],
        stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, cwd=server.root,
    )  # fmt: skip

    def answers() -> bool:
        try:
            return server.ping()
        except Exception:  # not listening yet
            return False

    wait_for(answers, 30, "redis-server answering again")


def test_an_upload_while_redis_is_down_makes_one_job_that_runs_once_when_it_is_back(stack, redis_server, tmp_path):  # noqa: F811 (fixtures)
    s = stack()
    alice = Account(s.server.url)
    stop_process(redis_server.process)  # SIGTERM, then SIGKILL: the broker is gone
    body = zip_bytes(tmp_path, 0)
    started = time.monotonic()
    first = _upload(alice, body, "upload-1")
    print(f"upload with Redis down answered {first.status_code} in {time.monotonic() - started:.1f} s")
    assert first.status_code == 201, first.text
    job = first.json()
    assert job["status"] == "queued", job
    again = _upload(alice, body, "upload-1")  # the client's retry (say its connection dropped)
    assert again.status_code == 201, again.text
    assert again.json()["id"] == job["id"]
    assert again.headers.get("idempotent-replayed") == "true"
    assert [j["id"] for j in alice.get("/api/jobs").json()["jobs"]] == [job["id"]]

    _restart_redis(redis_server)
    s.start_workers(1, alice)
    events = follow(alice, job["id"], timeout=JOB_S)
    assert events[-1].kind == "done", [e.kind for e in events]
    assert len(kinds(events, "started")) == 1 and len(kinds(events, "done")) == 1, [e.kind for e in events]
    assert s.row(job["id"])["attempt"] == 1, s.row(job["id"])
    # and a retry after all that still gets the same job, finished
    late = _upload(alice, body, "upload-1")
    assert late.status_code == 201 and late.json()["id"] == job["id"] and late.json()["status"] == "done"
    with s.engine.connect() as connection:
        assert connection.execute(text("SELECT count(*) FROM jobs")).scalar() == 1


def test_an_idempotency_key_gives_the_same_job_back_and_refuses_another_body(job_server, tmp_path):  # noqa: F811 (fixtures)
    server = job_server()
    alice, bob = Account(server.url), Account(server.url)
    zip_a = write_zip(tmp_path / "a.zip", animal_pngs(2, 3)).read_bytes()
    zip_b = write_zip(tmp_path / "b.zip", animal_pngs(2, 3, offset=5)).read_bytes()

    first = _upload(alice, zip_a, "k-1", epochs=1, mode="head")
    assert first.status_code == 201, first.text
    assert "idempotent-replayed" not in first.headers
    again = _upload(alice, zip_a, "k-1", epochs=1, mode="head")
    assert again.status_code == 201 and again.json()["id"] == first.json()["id"], again.text
    assert again.headers["idempotent-replayed"] == "true"

    other_body = _upload(alice, zip_b, "k-1", epochs=1, mode="head")
    assert other_body.status_code == 422, other_body.text
    assert "Idempotency-Key" in other_body.json()["detail"] and "different request" in other_body.json()["detail"]
    other_options = _upload(alice, zip_a, "k-1", epochs=2, mode="head")
    assert other_options.status_code == 422, other_options.text

    # the key is alice's: bob's identical request is his own job
    theirs = _upload(bob, zip_a, "k-1", epochs=1, mode="head")
    assert theirs.status_code == 201 and theirs.json()["id"] != first.json()["id"]
    # without a key each request is its own job
    plain = _upload(alice, zip_a, None, epochs=1, mode="head")
    assert plain.status_code == 201 and plain.json()["id"] != first.json()["id"]
    assert len(alice.get("/api/jobs").json()["jobs"]) == 2

    bad = _upload(alice, zip_a, "x" * 300)
    assert bad.status_code == 400 and "Idempotency-Key" in bad.json()["detail"], bad.text

    # POST /api/jobs on a synced project
    device = alice.device()
    classes = {"bear": "c-bear", "bird": "c-bird"}
    changes = project_changes(device, "p1", "Animals", classes)
    for name, pngs in animal_pngs(2, 3).items():
        for png in pngs:
            alice.upload(png)
            changes.append(sample_change(device, "p1", png, classes[name]))
    device.push(changes)
    body = {"project": "p1", "mode": "head", "epochs": 1, "batch_size": 4}
    made = alice.post("/api/jobs", json=body, headers={"Idempotency-Key": "p-1"})
    assert made.status_code == 201, made.text
    retried = alice.post("/api/jobs", json=body, headers={"Idempotency-Key": "p-1"})
    assert retried.status_code == 201 and retried.json()["id"] == made.json()["id"], retried.text
    changed = alice.post("/api/jobs", json={**body, "epochs": 2}, headers={"Idempotency-Key": "p-1"})
    assert changed.status_code == 422 and "different request" in changed.json()["detail"], changed.text
    # a key used for an upload is not a project job's
    crossed = alice.post("/api/jobs", json=body, headers={"Idempotency-Key": "k-1"})
    assert crossed.status_code == 422, crossed.text
    assert len(alice.get("/api/jobs").json()["jobs"]) == 3

    # deleting the job frees its key
    job_id = made.json()["id"]
    alice.delete(f"/api/jobs/{job_id}")  # cancels it (queued or running)
    wait_for(
        lambda: alice.get(f"/api/jobs/{job_id}").json()["status"] in ("done", "failed", "cancelled"),
        START_S,
        "the job ended",
    )
    assert alice.delete(f"/api/jobs/{job_id}").status_code == 204
    fresh = alice.post("/api/jobs", json=body, headers={"Idempotency-Key": "p-1"})
    assert fresh.status_code == 201 and fresh.json()["id"] != job_id, fresh.text
