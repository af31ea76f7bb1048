"""Prediction streams survive a Redis that loses everything (docs/predictions.md, "When Redis loses its
data"): the database's ledger of appended images is the truth for what a stream still owes.

A real redis-server without AOF or RDB, a real `tejas serve` and `tejas stream-worker`: a dead letter made,
20 images appended with no worker running, redis-server `kill -9`ed and a new one started on the same port
(empty). The counts still say what is owed; a worker started afterwards writes exactly one result per
image; the image bytes of a stream deleted while its entries were lost are purged by the server's timer,
and a stray object by `tejas server purge`.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from ..conftest import ROOT, TEJAS, Server
from ..services import (  # noqa: F401 (fixtures)
    REDIS_SERVER,
    free_port,
    fresh_postgres_db,
    postgres_url,
    stop_process,
    wait_for,
)
from .conftest import Account
from .predict_support import image_bytes, synced_model

pytestmark = pytest.mark.slow

CLASSES = ["cat", "dog"]
IMAGES = 20
START_S = 120
RUN_S = 300


def poisoned_png() -> bytes:
    """A PNG whose header passes the content check but whose pixels cannot be decoded."""
    import struct
    import zlib

    png = image_bytes(777)

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    return png[:33] + chunk(b"IDAT", b"not a zlib stream") + chunk(b"IEND", b"")


class Redis:
    """redis-server on a fixed port with nothing saved (no RDB, no AOF): a restart starts it empty."""

    def __init__(self, port: int):
        self.port, self.url = port, f"redis://127.0.0.1:{port}/0"
        self.root = Path(tempfile.mkdtemp(prefix="tejas-redis-"))
        self.process: subprocess.Popen | None = None

    def start(self) -> None:
        with open(self.root / "redis.log", "a") as log:
            self.process = subprocess.Popen(
                [str(REDIS_SERVER), "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
                 "--appendonly", "no", "--daemonize", "no", "--dir", str(self.root)],
                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, cwd=self.root,
            )  # fmt: skip
        wait_for(self.answers, 30, f"redis-server on port {self.port}")

    def answers(self) -> bool:
        import redis

        if self.process.poll() is not None:
            raise AssertionError((self.root / "redis.log").read_text())
        try:
            with redis.Redis.from_url(self.url, socket_connect_timeout=1, socket_timeout=2) as client:
                return bool(client.ping())
        except redis.ConnectionError:
            return False

    def kill(self) -> None:
        os.kill(self.process.pid, signal.SIGKILL)
        self.process.wait(10)

    def stop(self) -> None:
        if self.process is not None:
            stop_process(self.process)
        shutil.rmtree(self.root, ignore_errors=True)


@pytest.fixture
def redis_on_a_port():
    server = Redis(free_port())
    server.start()
    yield server
    server.stop()


def counts(account: Account, name: str) -> tuple[int, int, int, int]:
    """(appended, predicted, pending, dead) of a stream."""
    body = account.get(f"/api/streams/{name}").json()
    return body["appended"], body["predicted"], body["pending"], body["dead"]


def stored_images(data: Path) -> list[Path]:
    return [p for p in (data / "streams").rglob("*") if p.is_file() and not p.name.startswith(".")]


def test_images_queued_when_redis_lost_everything_get_one_result_each(tmp_path, redis_on_a_port):
    redis_server = redis_on_a_port
    data = tmp_path / "data"
    env = {
        "TEJAS_REDIS_URL": redis_server.url,
        "TEJAS_STREAM_CLAIM_IDLE_SECONDS": "1",
        "TEJAS_STREAM_MAX_DELIVERIES": "2",
        "TEJAS_STREAM_REQUEUE_SECONDS": "1",
        "TEJAS_PURGE_INTERVAL_SECONDS": "1",
        "TEJAS_JOB_HEARTBEAT_SECONDS": "1",
        "TEJAS_PREDICTION_THREADS": "1",
        "OMP_NUM_THREADS": "1",
        "PYTHONWARNINGS": "ignore",
    }
    server = Server(ROOT / "artifacts", data_dir=data, env=env)
    engine = create_engine(f"sqlite:///{data / 'tejas.db'}")
    workers: list[subprocess.Popen] = []

    def start_worker(name: str) -> subprocess.Popen:
        with open(tmp_path / f"{name}.log", "a") as out:
            workers.append(
                subprocess.Popen(
                    [TEJAS, "stream-worker", "--name", name], env=server.env, stdout=out, stderr=subprocess.STDOUT
                )
            )
        return workers[-1]

    def sql(query: str, **params) -> list:
        with engine.connect() as connection:
            return connection.execute(text(query), params).all()

    try:
        account = Account(server.url)
        ref, _ = synced_model(account, ROOT / "artifacts" / "default", CLASSES, tmp_path)
        for name in ("cam", "gone"):
            assert account.put(f"/api/streams/{name}", json={"model": ref}).status_code == 201

        # a dead letter, made by a worker that then stops
        poison = account.post("/api/streams/cam/images", params={"key": "poison.png"}, content=poisoned_png())
        assert poison.status_code == 202, poison.text
        first = start_worker("worker-1")
        wait_for(lambda: account.get("/api/streams/cam").json()["dead"] == 1, RUN_S, "the poisoned image dead")
        first.send_signal(signal.SIGTERM)
        assert first.wait(60) == 0

        # images appended while no worker runs
        images = {f"frame-{i:03d}.png": image_bytes(i) for i in range(IMAGES)}
        for key, body in images.items():
            assert account.post("/api/streams/cam/images", params={"key": key}, content=body).status_code == 202
        for i in range(3):
            assert account.post("/api/streams/gone/images", content=image_bytes(1000 + i)).status_code == 202
        assert counts(account, "cam") == (IMAGES + 1, 0, IMAGES, 1)
        assert len(stored_images(data)) == IMAGES + 3

        # Redis loses everything
        redis_server.kill()
        redis_server.start()
        back = time.monotonic()  # a new redis-server with nothing saved: every entry is gone

        # the counts still say what the stream owes; the dead letter is still there
        assert counts(account, "cam") == (IMAGES + 1, 0, IMAGES, 1)
        dead = account.get("/api/streams/cam/dead").json()["entries"]
        assert [d["key"] for d in dead] == ["poison.png"] and "cannot be decoded" in dead[0]["error"]

        # a stream deleted now: its entries are gone with Redis, so no worker will ever drop its images;
        # the server's purge timer removes them, and keeps every image still owed
        assert account.delete("/api/streams/gone").status_code == 204
        wait_for(lambda: len(stored_images(data)) == IMAGES, RUN_S, "the deleted stream's images purged")

        # a worker started after the restart gets every owed image (re-enqueued from the database)
        start_worker("worker-2")
        wait_for(lambda: counts(account, "cam")[1] == IMAGES, RUN_S, "a result per image", every=0.2)
        recovery_s = time.monotonic() - back
        rows = dict(sql("SELECT image_key, count(*) FROM predictions GROUP BY image_key"))
        assert rows == dict.fromkeys(images, 1)
        assert counts(account, "cam") == (IMAGES + 1, IMAGES, 0, 1)
        wait_for(lambda: not stored_images(data), RUN_S, "the image bytes deleted once classified")

        assert sql("SELECT count(*) FROM predictions")[0][0] == IMAGES
        print(f"\nrecovery: {IMAGES} images re-enqueued and classified {recovery_s:.1f} s after Redis came back")
    finally:
        for process in workers:
            stop_process(process, timeout=30)
        server.stop()

    # a stray object in the streams area (a crash between storing the bytes and forgetting them)
    stray = data / "streams" / "ab" / ("ab" + "0" * 62)
    stray.parent.mkdir(parents=True, exist_ok=True)
    stray.write_bytes(image_bytes(5))
    purge = subprocess.run([TEJAS, "server", "purge"], env=server.env, capture_output=True, text=True, timeout=120)
    assert purge.returncode == 0, purge.stderr
    assert not stray.exists()
    assert "1 stream image(s)" in purge.stdout, purge.stdout
    engine.dispose()


@pytest.fixture(params=["sqlite", "postgres"])
def database(request, tmp_path):
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'tejas.db'}"
    return request.getfixturevalue("fresh_postgres_db")


def test_two_recoverers_at_once_enqueue_each_lost_image_once(tmp_path, redis_on_a_port, database):
    """Several API replicas and workers re-enqueue at the same time: each owed image gets one new entry.
    A dead letter appended again is owed again, without counting the image twice."""
    from sync_server.core.config import Settings
    from sync_server.core.db import make_engine, make_sessionmaker, migrate, session_scope
    from sync_server.models import Stream, User
    from sync_server.prediction import ledger
    from sync_server.prediction.streams import StreamQueue

    settings = Settings(
        data_dir=tmp_path, database_url=database, redis_url=redis_on_a_port.url, stream_requeue_seconds=0
    )
    engine = make_engine(settings)
    migrate(engine)
    sessions = make_sessionmaker(engine)
    with session_scope(sessions) as db:
        db.add(User(id="u1", email="u1@example.org", password_hash="x"))
        db.flush()
        db.add(Stream(id="s1", user_id="u1", name="cam", model="model:x", top_k=1, appended=0))
    for i in range(30):
        assert ledger.admit(sessions, "s1", f"k{i}", f"blob{i}", "streams") == (True, None)
    queues = [StreamQueue(settings), StreamQueue(settings)]
    queues[0].ensure_group()
    barrier = threading.Barrier(2)
    done: list[int] = []

    def recover(queue):
        barrier.wait()
        done.append(ledger.requeue_lost(sessions, queue, grace_s=0))

    threads = [threading.Thread(target=recover, args=(q,)) for q in queues]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert sum(done) == 30, done
    entries = queues[0].client.xrange(settings.stream_key)
    assert sorted(f["key"] for _, f in entries) == sorted(f"k{i}" for i in range(30))
    # now every image has a live entry: another pass adds nothing
    assert ledger.requeue_lost(sessions, queues[1], grace_s=0) == 0
    assert queues[0].client.xlen(settings.stream_key) == 30

    # a dead letter survives in the database; the same key appended again is owed again
    with session_scope(sessions) as db:
        ledger.give_up(db, "s1", "k0", "k0: cannot be decoded", 3)
    with session_scope(sessions) as db:
        assert ledger.counts(db, ["s1"]) == {"s1": (29, 1)}
        assert [(d.image_key, d.error, d.deliveries) for d in ledger.dead_letters(db, "s1", 10)] == [
            ("k0", "k0: cannot be decoded", 3)
        ]
    assert ledger.admit(sessions, "s1", "k0", "blob-again", "streams") == (True, None)
    assert ledger.admit(sessions, "s1", "k0", "blob-third", "streams") == (False, None)  # owed: a duplicate
    with session_scope(sessions) as db:
        assert ledger.counts(db, ["s1"]) == {"s1": (30, 0)}
        assert db.get(Stream, "s1").appended == 30
    engine.dispose()


def test_entries_queued_before_the_ledger_are_adopted_not_purged(tmp_path, redis_on_a_port):
    """A server upgraded with images queued by the old code (entries with no ledger row): they become owed
    rows, so the purge keeps their bytes; bytes nothing names are deleted."""
    from sync_server.core.config import Settings
    from sync_server.core.db import make_engine, make_sessionmaker, migrate, session_scope
    from sync_server.models import Stream, User
    from sync_server.prediction import ledger
    from sync_server.prediction.streams import StreamQueue
    from sync_server.storage import make_store

    settings = Settings(data_dir=tmp_path, redis_url=redis_on_a_port.url)
    engine = make_engine(settings)
    migrate(engine)
    sessions = make_sessionmaker(engine)
    with session_scope(sessions) as db:
        db.add(User(id="u1", email="u1@example.org", password_hash="x"))
        db.flush()
        db.add(Stream(id="s1", user_id="u1", name="cam", model="model:x", top_k=1, appended=3))
    store, source = make_store(settings, "streams"), tmp_path / "image"
    source.write_bytes(image_bytes(1))
    queue = StreamQueue(settings)
    queue.ensure_group()
    names = [f"{i:02x}" * 32 for i in range(4)]
    for name in names:
        store.put_file(name, source)
    old = [queue.append("s1", "u1", f"old-{i}", names[i], "streams") for i in range(3)]  # no rows: the old code

    assert ledger.adopt_entries(sessions, queue) == 3
    assert ledger.adopt_entries(sessions, queue) == 0  # once
    with session_scope(sessions) as db:
        assert ledger.counts(db, ["s1"]) == {"s1": (3, 0)}
        assert db.get(Stream, "s1").appended == 3  # counted by the old code already
    assert ledger.requeue_lost(sessions, queue, grace_s=0) == 0  # their entries are live
    assert queue.client.xlen(settings.stream_key) == len(old)
    assert ledger.purge_orphans(sessions, store) == 1
    assert sorted(store.names()) == sorted(names[:3])
    engine.dispose()
