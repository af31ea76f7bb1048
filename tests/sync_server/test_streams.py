"""Prediction streams (docs/predictions.md, "Streams") against real processes: a redis-server, a `tejas
serve` and `tejas stream-worker` processes sharing its data dir, database (SQLite, or Postgres) and Redis.

The acceptance: 2,000 images appended through the API while two workers classify them, one worker
`kill -9`ed midway; every image key ends with exactly one row (the database and GET /results agree), both
workers wrote rows, the results equal the classifier run locally, a poisoned image lands in the
dead-letter stream with its error and no row, and nothing is left behind (no entries, no image bytes).
Everything waits on conditions with generous deadlines: two workers and the server share two slow cores.
"""

from __future__ import annotations

import json
import os
import signal
import struct
import subprocess
import threading
import time
import zlib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import numpy as np
import pytest
from sqlalchemy import create_engine, text

from ..conftest import ROOT, TEJAS, Server
from ..services import (  # noqa: F401 (fixtures)
    free_port,
    fresh_postgres_db,
    postgres_url,
    redis_server,
    stop_process,
    wait_for,
)
from .conftest import Account
from .predict_support import image_bytes, synced_model

pytestmark = pytest.mark.slow

CLASSES = ["cat", "dog", "bird"]
IMAGES = 2000
CLAIM_IDLE_S = 3
MAX_DELIVERIES = 3
START_S = 120
RUN_S = 900  # 2,000 MobileNetV2 predictions on two slow shared cores, with a worker lost midway


# ------------------------------------------------------------------------------------------- helpers


def poisoned_png() -> bytes:
    """A PNG whose signature, IHDR and IEND are valid (the content check passes) but whose IDAT is garbage."""
    png = image_bytes(424242)
    ihdr = png[8:33]  # length, "IHDR", 13 bytes, CRC

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    return png[:8] + ihdr + chunk(b"IDAT", b"\x13\x37 not a zlib stream at all") + chunk(b"IEND", b"")


def _tail(path: Path, lines: int = 40) -> str:
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:]) if path.exists() else ""


class Stack:
    """`tejas serve` + `tejas stream-worker` processes on one Redis, one data dir, one database."""

    def __init__(self, tmp: Path, redis_url: str, database_url: str | None):
        self.tmp = tmp
        env = {
            "TEJAS_REDIS_URL": redis_url,
            "TEJAS_STREAM_CLAIM_IDLE_SECONDS": str(CLAIM_IDLE_S),
            "TEJAS_STREAM_MAX_DELIVERIES": str(MAX_DELIVERIES),
            "TEJAS_STREAM_BATCH_SIZE": "16",
            "TEJAS_JOB_HEARTBEAT_SECONDS": "1",
            "TEJAS_PREDICTION_THREADS": "1",  # two workers share two cores
            "OMP_NUM_THREADS": "1",
            "PYTHONWARNINGS": "ignore",
        }
        if database_url:
            env["TEJAS_DATABASE_URL"] = database_url
        self.data = tmp / "data"
        self.database_url = database_url or f"sqlite:///{self.data / 'tejas.db'}"
        self.redis_url = redis_url
        self.workers: dict[str, subprocess.Popen] = {}
        self.logs: dict[str, Path] = {}
        self.engine = None
        self.server = Server(ROOT / "artifacts", data_dir=self.data, env=env)
        self.engine = create_engine(self.database_url)

    def start_worker(self, name: str) -> subprocess.Popen:
        log = self.tmp / f"{name}.log"
        with open(log, "a") as out:  # a file, not a pipe nobody reads
            process = subprocess.Popen(
                [TEJAS, "stream-worker", "--name", name],
                env=self.server.env,
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=self.tmp,
            )
        self.workers[name], self.logs[name] = process, log
        return process

    def sql(self, query: str, **params) -> list:
        with self.engine.connect() as connection:
            return connection.execute(text(query), params).all()

    def redis(self):
        import redis

        return redis.Redis.from_url(self.redis_url, socket_connect_timeout=2, socket_timeout=10, decode_responses=True)

    def diagnostics(self) -> str:
        parts = [f"--- server log\n{_tail(self.server.log)}"]
        parts += [f"--- {name} log\n{_tail(log)}" for name, log in self.logs.items()]
        return "\n".join(parts)

    def stop(self) -> None:
        for process in self.workers.values():
            stop_process(process, timeout=30)
        self.server.stop()
        if self.engine is not None:
            self.engine.dispose()


@pytest.fixture
def stack(tmp_path, redis_server):  # noqa: F811
    stacks: list[Stack] = []

    def start(database_url: str | None = None) -> Stack:
        stacks.append(Stack(tmp_path, redis_server.url, database_url))
        return stacks[-1]

    yield start
    for s in stacks:
        s.stop()


@pytest.fixture(params=["sqlite", "postgres"])
def database(request):
    return None if request.param == "sqlite" else request.getfixturevalue("fresh_postgres_db")


def append_all(account: Account, name: str, images: dict[str, bytes], threads: int = 4) -> None:
    """POST every image to the stream through the API (a few clients at once)."""
    local = threading.local()

    def one(item):
        key, data = item
        if not hasattr(local, "http"):
            local.http = httpx.Client(base_url=str(account.http.base_url), headers=account.http.headers, timeout=60)
        response = local.http.post(f"/api/streams/{name}/images", params={"key": key}, content=data)
        assert response.status_code == 202, response.text
        assert response.json() == {"key": key, "entry": response.json()["entry"], "duplicate": False}

    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(one, images.items()))


def all_results(account: Account, name: str) -> list[dict]:
    out, after = [], 0
    while True:
        page = account.get(f"/api/streams/{name}/results", params={"after": after, "limit": 1000})
        assert page.status_code == 200, page.text
        body = page.json()
        out += body["results"]
        after = body["next"]
        if not body["more"]:
            return out


# ------------------------------------------------------------------------------------------- acceptance


def test_two_workers_one_killed_every_image_once(stack, tmp_path, database):
    s = stack(database)
    try:
        _scenario(s, tmp_path)
    except BaseException:
        print(s.diagnostics())
        raise


def _scenario(s: Stack, tmp_path: Path) -> None:
    from tejas_ml.prediction.model import Classifier

    account = Account(s.server.url)
    ref, local = synced_model(account, ROOT / "artifacts" / "default", CLASSES, tmp_path)
    created = account.put("/api/streams/cam-1", json={"model": ref, "top_k": 2})
    assert created.status_code == 201, created.text
    assert created.json()["workers"] == 0

    s.start_worker("worker-a")
    s.start_worker("worker-b")
    wait_for(lambda: account.get("/api/streams/cam-1").json()["workers"] == 2, START_S, "both workers registered")

    images = {f"frame-{i:05d}.png": image_bytes(i) for i in range(IMAGES)}
    started = time.monotonic()
    failures: list[BaseException] = []
    appender = threading.Thread(target=_catching, args=(lambda: append_all(account, "cam-1", images), failures))
    appender.start()
    poison = account.post("/api/streams/cam-1/images", params={"key": "poison.png"}, content=poisoned_png())
    assert poison.status_code == 202, poison.text

    def rows_of(worker: str) -> int:
        return s.sql("SELECT count(*) FROM predictions WHERE worker = :w", w=worker)[0][0]

    # kill -9 worker-a once it has written some rows, well before the end
    wait_for(lambda: rows_of("worker-a") >= 32, RUN_S, "worker-a wrote its first rows")
    os.kill(s.workers["worker-a"].pid, signal.SIGKILL)
    s.workers["worker-a"].wait(30)
    at_kill = s.sql("SELECT count(*) FROM predictions")[0][0]
    assert at_kill < IMAGES
    r = s.redis()
    held = len(r.xpending_range("tejas:predict", "tejas-predict", "-", "+", 1000, consumername="worker-a"))
    appender.join(RUN_S)
    assert not appender.is_alive() and not failures, failures

    wait_for(
        lambda: s.sql("SELECT count(*) FROM predictions")[0][0] >= IMAGES,
        RUN_S,
        f"{IMAGES} rows (worker-b takes over worker-a's entries after {CLAIM_IDLE_S} s)",
        every=1,
    )
    elapsed = time.monotonic() - started
    dead = wait_for(
        lambda: account.get("/api/streams/cam-1/dead").json()["entries"], RUN_S, "the poisoned image dead-lettered"
    )

    # exactly one row per image key, in the database…
    counts = dict(s.sql("SELECT image_key, count(*) FROM predictions GROUP BY image_key"))
    assert set(counts) == set(images) and set(counts.values()) == {1}
    # …and through the API
    results = all_results(account, "cam-1")
    assert sorted(r["key"] for r in results) == sorted(images)
    assert [r["id"] for r in results] == sorted(r["id"] for r in results)
    # both workers wrote rows; worker-a's last entries were taken over
    writers = dict(s.sql("SELECT worker, count(*) FROM predictions GROUP BY worker"))
    assert set(writers) == {"worker-a", "worker-b"}, writers

    # the results are the classifier's, run here on the same model
    by_key = {r["key"]: r for r in results}
    sample = sorted(images)[:: IMAGES // 40]
    expected = Classifier(local).predict([images[k] for k in sample], 2)
    for key, want in zip(sample, expected, strict=True):
        got = by_key[key]
        assert [t["class"] for t in got["top"]] == [t["class"] for t in want["top"]], key
        assert np.allclose([t["probability"] for t in got["top"]], [t["probability"] for t in want["top"]], atol=1e-5)
        assert got["class"] == want["top"][0]["class"] and got["latency_ms"] >= 0

    # the poisoned image: a dead letter with its error, no row
    assert [d["key"] for d in dead] == ["poison.png"]
    assert "cannot be decoded" in dead[0]["error"] and dead[0]["deliveries"] == MAX_DELIVERIES
    assert s.sql("SELECT count(*) FROM predictions WHERE image_key = 'poison.png'")[0][0] == 0

    stats = wait_for(
        lambda: (body := account.get("/api/streams/cam-1").json())["pending"] == 0 and body,
        RUN_S,
        "nothing pending",
    )
    assert (stats["appended"], stats["predicted"], stats["dead"]) == (IMAGES + 1, IMAGES, 1)
    assert stats["latency_p50_ms"] <= stats["latency_p95_ms"]
    listed = account.get("/api/streams").json()["streams"]
    assert [(x["name"], x["predicted"], x["dead"], x["pending"]) for x in listed] == [("cam-1", IMAGES, 1, 0)]

    # nothing left behind: what worker-a held was taken over; acknowledged entries deleted, no errors
    # remembered, nothing owed in the ledger but the dead letter, no image bytes
    assert not r.xpending_range("tejas:predict", "tejas-predict", "-", "+", 1000, consumername="worker-a")
    assert r.xlen("tejas:predict") == 0
    assert not r.exists("tejas:predict:errors")
    assert s.sql("SELECT image_key, state FROM stream_images") == [("poison.png", "dead")]
    assert not [p for p in (s.data / "streams").rglob("*") if p.is_file()]

    # SIGTERM: the survivor finishes its batch, deregisters, exits 0
    survivor = s.workers["worker-b"]
    survivor.send_signal(signal.SIGTERM)
    assert survivor.wait(60) == 0, _tail(s.logs["worker-b"])
    assert not s.sql("SELECT name FROM workers WHERE name = 'worker-b'")
    print(
        f"\n{IMAGES} images through 2 workers (one killed after {at_kill} rows, holding {held}) in {elapsed:.1f} s "
        f"({IMAGES / elapsed:.1f} img/s); rows: {writers}; latency p50 {stats['latency_p50_ms']} ms, "
        f"p95 {stats['latency_p95_ms']} ms"
    )


def _catching(run, failures):
    try:
        run()
    except BaseException as exc:  # surfaced by the main thread
        failures.append(exc)


# ------------------------------------------------------------------------------------------- the worker


def test_restarted_worker_reads_its_own_pending_entries_first(tmp_path, redis_server):  # noqa: F811
    """A worker killed with entries in hand, restarted under its name, takes those entries first (its
    own pending ones, delivered again), before new entries, and never another consumer's."""
    from sync_server.core.config import Settings
    from sync_server.core.db import make_engine, migrate
    from sync_server.prediction.streams import StreamQueue
    from sync_server.prediction.worker import StreamWorker

    settings = Settings(data_dir=tmp_path, redis_url=redis_server.url, stream_claim_idle_seconds=3600)
    migrate(make_engine(settings))
    queue = StreamQueue(settings)
    queue.ensure_group()
    old = [queue.append("s", "u", f"old-{i}", "b", "streams") for i in range(5)]
    assert [e for e, _ in queue.read("worker-1", ">", 5)] == old  # given to worker-1, which then dies
    others = [queue.append("s", "u", f"other-{i}", "b", "streams") for i in range(3)]
    assert [e for e, _ in queue.read("worker-2", ">", 3)] == others  # another live worker's
    new = [queue.append("s", "u", f"new-{i}", "b", "streams") for i in range(4)]

    worker = StreamWorker(settings.model_copy(update={"stream_batch_size": 3}), "worker-1")
    batches: list[list[str]] = []

    def record(entries):
        batches.append([e for e, _ in entries])
        counts = worker.queue.deliveries("worker-1", batches[-1])
        batches[-1] = [(e, counts[e]) for e in batches[-1]]
        if sum(len(b) for b in batches) >= len(old) + len(new):
            worker.stop()

    worker.process = record
    assert worker.run() == 0
    seen = [e for batch in batches for e in batch]
    assert seen == [(e, 2) for e in old] + [(e, 1) for e in new]  # own pending first (delivered again), then new
    assert [len(b) for b in batches] == [3, 2, 3, 1]
    assert not any(e in others for e, _ in seen)


# ------------------------------------------------------------------------------------------- routes


def test_routes_refuse_what_they_must(stack, tmp_path):
    s = stack()
    alice, bob = Account(s.server.url), Account(s.server.url)
    ref, _ = synced_model(alice, ROOT / "artifacts" / "default", CLASSES, tmp_path)
    assert alice.put("/api/streams/door", json={"model": ref}).status_code == 201
    assert alice.put("/api/streams/door", json={"model": ref, "top_k": 1}).status_code == 200

    # names and keys
    for bad in (".hidden", "a b", "x" * 101, "caf\u00e9", "a;b"):
        assert alice.put(f"/api/streams/{bad}", json={"model": ref}).status_code == 422, bad
    for key in ("a\nb", "x" * 301, ""):
        response = alice.post("/api/streams/door/images", params={"key": key}, content=image_bytes(1))
        assert response.status_code == 422, (key, response.text)
    assert alice.put("/api/streams/door", json={"model": "job:../../etc"}).status_code == 422
    assert alice.put("/api/streams/door", json={"model": ref, "top_k": 0}).status_code == 422
    unknown = alice.put("/api/streams/door", json={"model": "job:" + "0" * 32})
    assert unknown.status_code == 404 and "0" * 32 not in unknown.text

    # bodies checked by content
    text_body = alice.post("/api/streams/door/images", params={"key": "notes"}, content=b"just some text")
    assert text_body.status_code == 400 and "not an image" in text_body.json()["detail"]
    empty = alice.post("/api/streams/door/images", params={"key": "empty"}, content=b"")
    assert empty.status_code == 400 and "empty" in empty.json()["detail"]
    assert alice.get("/api/streams/door").json()["appended"] == 0
    assert not [p for p in (s.data / "streams").rglob("*") if p.is_file()]

    # another user's stream is unknown to Bob, and so is Alice's model
    assert bob.get("/api/streams").json() == {"streams": []}
    for method, path, kwargs in [
        ("get", "/api/streams/door", {}),
        ("get", "/api/streams/door/results", {}),
        ("get", "/api/streams/door/events", {}),
        ("get", "/api/streams/door/dead", {}),
        ("post", "/api/streams/door/images", {"content": image_bytes(2)}),
        ("delete", "/api/streams/door", {}),
        ("put", "/api/streams/door", {"json": {"model": ref}}),
    ]:
        response = bob.request(method, path, **kwargs)
        assert response.status_code == 404, (method, path, response.text)
    assert alice.get("/api/streams/door").status_code == 200

    # a key appended twice (in flight, then done) makes one row; ?blob= names an image Alice uploaded
    first = alice.post("/api/streams/door/images", params={"key": "same"}, content=image_bytes(3)).json()
    again = alice.post("/api/streams/door/images", params={"key": "same"}, content=image_bytes(4)).json()
    assert first["duplicate"] is False and again == {"key": "same", "entry": first["entry"], "duplicate": True}
    photo = image_bytes(5)
    alice.upload(photo)
    import hashlib

    digest = hashlib.sha256(photo).hexdigest()
    by_blob = alice.post("/api/streams/door/images", params={"blob": digest})
    assert by_blob.status_code == 202 and by_blob.json()["key"] == digest
    bob.put(
        "/api/streams/mine", json={"model": synced_model(bob, ROOT / "artifacts" / "default", CLASSES, tmp_path)[0]}
    )
    assert bob.post("/api/streams/mine/images", params={"blob": digest}).status_code == 404
    both = alice.post("/api/streams/door/images", params={"blob": digest}, content=photo)
    assert both.status_code == 400
    unnamed = alice.post("/api/streams/door/images", content=image_bytes(6)).json()
    assert unnamed["key"] == hashlib.sha256(image_bytes(6)).hexdigest()

    s.start_worker("worker-a")
    wait_for(lambda: alice.get("/api/streams/door").json()["predicted"] == 3, START_S, "3 results")
    later = alice.post("/api/streams/door/images", params={"key": "same"}, content=image_bytes(3)).json()
    assert later == {"key": "same", "entry": None, "duplicate": True}
    assert s.sql("SELECT count(*) FROM predictions WHERE image_key = 'same'")[0][0] == 1
    stats = alice.get("/api/streams/door").json()
    assert (stats["appended"], stats["predicted"], stats["pending"], stats["top_k"]) == (3, 3, 0, 1)
    oldest_first = all_results(alice, "door")
    assert all(len(r["top"]) == 1 for r in oldest_first)
    newest = alice.get("/api/streams/door/results", params={"newest": "true", "limit": 2}).json()
    assert [r["id"] for r in newest["results"]] == [r["id"] for r in oldest_first[::-1][:2]]
    assert newest["next"] == oldest_first[-1]["id"] and newest["more"]
    assert s.sql("SELECT count(*) FROM user_blobs WHERE sha256 = :d", d=digest)[0][0] == 1

    # events: results replayed after an id, resumable with Last-Event-ID, and stats
    events = read_events(
        alice, "door", {"after": 0}, until=lambda seen: len([e for e in seen if e[0] == "prediction"]) >= 3
    )
    predictions = [e for e in events if e[0] == "prediction"]
    assert [json.loads(d)["key"] for _, _, d in predictions] == [r["key"] for r in all_results(alice, "door")]
    first_id = predictions[0][1]
    resumed = read_events(
        alice, "door", {}, headers={"Last-Event-ID": first_id}, until=lambda seen: any(e[0] == "stats" for e in seen)
    )
    assert [e[1] for e in resumed if e[0] == "prediction"] == [e[1] for e in predictions[1:]]
    stats_event = json.loads(next(d for kind, _, d in resumed if kind == "stats"))
    assert stats_event["predicted"] == 3 and stats_event["workers"] == 1

    # retention: results older than TEJAS_RETENTION_DAYS go with `tejas server purge`
    purge = subprocess.run(
        [TEJAS, "server", "purge", "--now", "2100-01-01T00:00:00Z"],
        env=s.server.env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert purge.returncode == 0, purge.stderr
    assert alice.get("/api/streams/door/results").json()["results"] == []

    # delete: the stream, its results and counters
    (stream_id,) = s.sql("SELECT id FROM streams WHERE name = 'door'")[0]
    assert alice.delete("/api/streams/door").status_code == 204
    assert alice.get("/api/streams/door").status_code == 404
    assert not s.sql("SELECT id FROM streams WHERE id = :i", i=stream_id)
    assert not s.sql("SELECT image_key FROM stream_images WHERE stream_id = :i", i=stream_id)


def read_events(account: Account, name: str, params: dict, until, headers: dict | None = None, timeout: float = 60):
    """(event, id, data) of GET /api/streams/{name}/events until `until(seen)` holds."""
    seen: list[tuple[str, str | None, str]] = []
    fields: dict[str, str] = {}
    deadline = time.monotonic() + timeout
    with account.http.stream(
        "GET", f"/api/streams/{name}/events", params=params, headers=headers or {}, timeout=httpx.Timeout(30, read=30)
    ) as response:
        assert response.status_code == 200
        for line in response.iter_lines():
            if line == "":
                if "event" in fields:
                    seen.append((fields["event"], fields.get("id"), fields.get("data", "")))
                    if until(seen):
                        return seen
                fields = {}
            elif not line.startswith(":"):
                field, _, value = line.partition(":")
                fields[field] = value[1:] if value.startswith(" ") else value
            if time.monotonic() > deadline:
                break
    raise AssertionError(f"events: condition not met in {timeout:g} s: {seen}")


def test_without_redis_the_routes_say_so(serve, tmp_path):
    closed = f"redis://127.0.0.1:{free_port()}/0"
    (tmp_path / "artifacts").mkdir()
    server = serve(tmp_path / "artifacts", data_dir=tmp_path / "data", env={"TEJAS_REDIS_URL": closed})
    account = Account(server.url)
    ref, _ = synced_model(account, ROOT / "artifacts" / "default", CLASSES, tmp_path)
    for method, path, kwargs in [
        ("put", "/api/streams/s1", {"json": {"model": ref}}),
        ("get", "/api/streams", {}),
    ]:
        response = account.request(method, path, **kwargs)
        assert response.status_code == 503, (method, path, response.text)
        assert "needs Redis at TEJAS_REDIS_URL" in response.json()["detail"]
    # a name that is not the user's is 404 whether Redis answers or not
    assert account.get("/api/streams/s1").status_code == 404
    assert account.post("/api/streams/s1/images", content=image_bytes(1)).status_code == 404
