"""Start-up and sharing (issue 24 §7): replicas migrating one fresh Postgres together, a second server on a
shared data dir, workers facing a missing, empty or foreign database, and health while Postgres is down.
Everything real: `tejas serve` / `tejas worker` / `tejas stream-worker` processes, Postgres clusters and
redis-server (tests/services.py), Postgres killed with `pg_ctl stop -m immediate`."""

from __future__ import annotations

import os
import subprocess
import threading
import time
import urllib.request
import uuid
from pathlib import Path

import httpx
import pytest
from sqlalchemy import create_engine, text

from sync_server.core.db import head_revision
from sync_server.readiness import DATABASE_DOWN

from ..conftest import TEJAS, Server, free_port
from ..services import redis_server, start_postgres, stop_process, wait_for  # noqa: F401 (fixtures)
from .conftest import PASSWORD, Account, png_bytes, sha

FAST_ARGON = {"TEJAS_ARGON2_TIME_COST": "1", "TEJAS_ARGON2_MEMORY_KIB": "8", "TEJAS_ARGON2_PARALLELISM": "1"}


def _env(tmp: Path, **extra: str) -> dict:
    (tmp / "artifacts").mkdir(parents=True, exist_ok=True)
    return {
        **os.environ,
        **FAST_ARGON,
        "TEJAS_ARTIFACTS_DIR": str(tmp / "artifacts"),
        "TEJAS_DATA_DIR": str(tmp / "data"),
        **extra,
    }


def _account(url: str) -> Account:
    """A new signed-in account (sign-up may answer without a token: sign in after it)."""
    email = f"{uuid.uuid4().hex[:10]}@example.org"
    assert httpx.post(url + "/api/auth/signup", json={"email": email, "password": PASSWORD}).status_code < 300
    return Account(url, email=email, signup=False)


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return response.status == 200
    except OSError:
        return False


@pytest.fixture
def cluster():
    """A Postgres cluster of this test's own (the test stops and restarts it)."""
    pg = start_postgres()
    yield pg
    pg.stop()


@pytest.mark.parametrize("database", ["postgres", "sqlite"])
def test_three_replicas_migrate_one_fresh_database_together(database, request, tmp_path):
    """Three `tejas serve` started at once on an empty database: all three become ready, and the schema is
    at head with one alembic_version row and one deployment id (on Postgres the second used to crash in the
    migration with UniqueViolation on alembic_version). SQLite: one file the three share."""
    if database == "postgres":
        url = request.getfixturevalue("cluster").url
    else:
        url = f"sqlite:///{tmp_path / 'shared.db'}"
    replicas = []
    started = time.monotonic()
    for i in range(3):
        folder = tmp_path / f"replica{i}"
        folder.mkdir()
        port = free_port()
        env = _env(folder, TEJAS_DATABASE_URL=url)
        log = open(folder / "server.log", "w")  # noqa: SIM115 - closed below
        process = subprocess.Popen([TEJAS, "serve", "--port", str(port)], env=env, stdout=log, stderr=subprocess.STDOUT)
        replicas.append((process, port, log, folder / "server.log"))
    try:
        for process, port, _, log_path in replicas:

            def up(process=process, port=port, log_path=log_path):
                if process.poll() is not None:
                    raise AssertionError(f"a replica exited ({process.returncode}): {log_path.read_text()[-3000:]}")
                return _answers(f"http://127.0.0.1:{port}/api/health")

            wait_for(up, 120, f"replica on port {port} ready")
        elapsed = time.monotonic() - started
        print(f"3 replicas ready on a fresh {database} database in {elapsed:.1f} s")
        engine = create_engine(url)
        with engine.connect() as connection:
            assert connection.execute(text("SELECT version_num FROM alembic_version")).scalars().all() == [
                head_revision()
            ]
            assert len(connection.execute(text("SELECT id FROM deployment")).all()) == 1
        engine.dispose()
    finally:
        for process, _, log, _ in replicas:
            stop_process(process)
            log.close()


def test_an_upload_in_flight_survives_a_second_server_on_the_same_data_dir(serve, tmp_path):
    """Server 1 is receiving an image (half sent, its `.part` file in data/uploads) when server 2 starts on
    the same data dir: server 2 leaves the file alone (its writer holds a lock), the upload ends 201."""
    (tmp_path / "artifacts").mkdir()
    first = serve(tmp_path / "artifacts", data_dir=tmp_path / "data")
    alice = _account(first.url)
    image = png_bytes(7, size=256)
    half = len(image) // 2
    second_started = threading.Event()
    result: dict = {}

    def body():
        yield image[:half]
        second_started.wait(120)
        yield image[half:]

    def upload():
        try:
            result["response"] = alice.put(
                f"/api/blobs/{sha(image)}",
                params={"kind": "image"},
                content=body(),
                headers={"Content-Type": "application/octet-stream"},
            )
        except Exception as exc:  # noqa: BLE001 - reported by the assertion below
            result["error"] = exc

    uploader = threading.Thread(target=upload)
    uploader.start()
    try:
        uploads = tmp_path / "data" / "uploads"
        wait_for(lambda: uploads.is_dir() and list(uploads.glob("*.part")), 60, "server 1 receiving into a .part")
        second = serve(tmp_path / "artifacts", data_dir=tmp_path / "data")  # its start sweeps data/uploads
        assert _answers(second.url + "/api/health")
        assert list(uploads.glob("*.part")), "server 2 deleted server 1's upload in flight"
    finally:
        second_started.set()
        uploader.join(120)
    assert "error" not in result, result
    assert result["response"].status_code == 201, result["response"].text
    digest = sha(image)
    assert (tmp_path / "data" / "blobs" / digest[:2] / digest).read_bytes() == image


def test_an_abandoned_upload_is_swept_at_start(serve, tmp_path):
    """A `.part` file nobody holds (its server was killed mid-upload) goes at the next start."""
    (tmp_path / "artifacts").mkdir()
    uploads = tmp_path / "data" / "uploads"
    uploads.mkdir(parents=True)
    (uploads / "tmpcut.part").write_bytes(b"half an image")
    serve(tmp_path / "artifacts", data_dir=tmp_path / "data")
    assert not list(uploads.glob("*.part"))


def _worker(command: str, env: dict, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([TEJAS, command], env=env, capture_output=True, text=True, timeout=timeout)


@pytest.mark.parametrize("command", ["stream-worker", "worker"])
def test_workers_refuse_a_missing_or_empty_database(command, cluster, redis_server, tmp_path):  # noqa: F811
    """With only TEJAS_REDIS_URL a worker used to make its own SQLite database and take queued work; now it
    exits 1 with one sentence and creates nothing. An empty Postgres database is refused the same way."""
    env = _env(tmp_path, TEJAS_REDIS_URL=redis_server.url, TEJAS_QUEUE="celery")
    done = _worker(command, env)
    assert done.returncode == 1, done.stderr[-2000:]
    message = done.stderr.strip().splitlines()[-1]
    assert f"tejas {command}: there is no Tejas database at {tmp_path / 'data' / 'tejas.db'}" in message
    assert "TEJAS_DATABASE_URL" in message
    assert not (tmp_path / "data" / "tejas.db").exists()

    done = _worker(command, {**env, "TEJAS_DATABASE_URL": cluster.url})
    assert done.returncode == 1, done.stderr[-2000:]
    assert "has no Tejas schema" in done.stderr.strip().splitlines()[-1]
    engine = create_engine(cluster.url)
    with engine.connect() as connection:  # nothing was created in it either
        assert connection.execute(text("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'")).scalar() == 0
    engine.dispose()
    with redis_server.client() as client:
        assert client.keys("*") == []  # no work taken, nothing claimed


def test_a_stream_worker_refuses_another_deployments_database(serve, redis_server, tmp_path):  # noqa: F811
    """The server records its database's deployment id in its Redis; a stream worker on another (migrated)
    database but the same Redis exits 1 naming both; one on the server's database starts and registers."""
    (tmp_path / "artifacts").mkdir()
    serve(tmp_path / "artifacts", data_dir=tmp_path / "ours", env={"TEJAS_REDIS_URL": redis_server.url})
    other = serve(tmp_path / "artifacts", data_dir=tmp_path / "theirs")  # a second deployment, no Redis
    other.stop()
    env = _env(tmp_path, TEJAS_REDIS_URL=redis_server.url, TEJAS_DATA_DIR=str(tmp_path / "theirs"))
    done = _worker("stream-worker", env)
    assert done.returncode == 1, done.stderr[-2000:]
    message = done.stderr.strip().splitlines()[-1]
    assert "belongs to another Tejas deployment" in message and "TEJAS_DATABASE_URL" in message

    env["TEJAS_DATA_DIR"] = str(tmp_path / "ours")
    log = open(tmp_path / "worker.log", "w")  # noqa: SIM115 - closed below
    worker = subprocess.Popen(
        [TEJAS, "stream-worker", "--name", "ours-1"], env=env, stdout=log, stderr=subprocess.STDOUT
    )
    try:
        engine = create_engine(f"sqlite:///{tmp_path / 'ours' / 'tejas.db'}")

        def registered():
            assert worker.poll() is None, (tmp_path / "worker.log").read_text()
            with engine.connect() as connection:
                return connection.execute(text("SELECT count(*) FROM workers WHERE name = 'ours-1'")).scalar()

        wait_for(registered, 120, "the stream worker on the server's database registered")
        engine.dispose()
    finally:
        stop_process(worker, timeout=30)
        log.close()


def test_ready_names_redis_when_it_does_not_answer(serve, tmp_path):
    """TEJAS_REDIS_URL set but nothing listening: live and /api/health 200, ready 503 naming Redis."""
    (tmp_path / "artifacts").mkdir()
    port = free_port()
    closed = f"redis://127.0.0.1:{port}/0"
    server = serve(tmp_path / "artifacts", data_dir=tmp_path / "data", env={"TEJAS_REDIS_URL": closed})
    assert httpx.get(server.url + "/api/health/live").status_code == 200
    assert httpx.get(server.url + "/api/health").status_code == 200
    ready = httpx.get(server.url + "/api/health/ready")
    assert ready.status_code == 503 and ready.headers["content-type"] == "application/json"
    body = ready.json()
    assert body["checks"]["database"] == "ok" and body["checks"]["blob_store"] == "ok"
    assert "Redis does not answer" in body["detail"]
    assert str(port) not in ready.text and "127.0.0.1" not in ready.text  # nothing internal: the log has it


def _restart(pg) -> None:
    """Start the stopped cluster again on its port (tests/services.py picks a new one on a first start)."""
    options = f"-p {pg.port} -k {pg.root} -c listen_addresses=127.0.0.1 -c fsync=off"
    pg._run("pg_ctl", "-D", str(pg.data), "-l", str(pg.log), "-w", "-o", options, "start")


def test_postgres_killed_under_a_running_server_then_back(cluster, tmp_path):
    """Postgres stopped with `-m immediate` under a running server: live stays 200; ready, /api/health and
    an ordinary route answer JSON 503 with a sentence and Retry-After (routes used to answer a plain-text 500,
    /api/health 200 "ok"); once Postgres is back, all recover without restarting the server."""
    (tmp_path / "artifacts").mkdir()
    server = Server(tmp_path / "artifacts", data_dir=tmp_path / "data", env={"TEJAS_DATABASE_URL": cluster.url})
    try:
        alice = _account(server.url)
        assert alice.get("/api/me").status_code == 200
        assert httpx.get(server.url + "/api/health/ready").status_code == 200

        cluster._run("pg_ctl", "-D", str(cluster.data), "-m", "immediate", "-w", "stop")
        assert httpx.get(server.url + "/api/health/live").status_code == 200
        ready = httpx.get(server.url + "/api/health/ready")
        assert ready.status_code == 503 and ready.headers["content-type"] == "application/json", ready.text
        assert ready.json()["detail"].startswith("The database (postgresql) does not answer")
        assert ready.headers["retry-after"].isdigit()
        assert httpx.get(server.url + "/api/health").status_code == 503
        me = alice.get("/api/me")
        assert me.status_code == 503 and me.headers["content-type"] == "application/json", me.text
        assert me.json() == {"detail": DATABASE_DOWN} and me.headers["retry-after"].isdigit()
        pushed = alice.post("/api/sync/push", json={"device": "d1", "changes": []})
        assert pushed.status_code == 503 and pushed.json() == {"detail": DATABASE_DOWN}

        _restart(cluster)
        back = time.monotonic()
        wait_for(lambda: httpx.get(server.url + "/api/health/ready").status_code == 200, 60, "ready again")
        wait_for(lambda: alice.get("/api/me").status_code == 200, 60, "a route answering again")
        print(f"recovered {time.monotonic() - back:.2f} s after Postgres accepted connections again")
        assert server.process.poll() is None  # the same server process throughout
    finally:
        server.stop()
