"""Real service processes for tests and benchmarks: a throwaway Postgres cluster, an S3 API (moto) and Redis.

Plain functions and classes, no pytest: `start_postgres()`, `start_s3()`, `start_redis()` each return an
object with `.stop()`; `create_database`/`drop_database` make and drop one database on a cluster. The
pytest fixtures built on them live in tests/services.py.

Facts these rely on (../shared/NOTES.md): Debian's `postgresql` package does not start a cluster;
initdb/pg_ctl refuse to run as root, so as root they run as the `postgres` user (`runuser`) on a
directory under /tmp owned by it (one under /root is not readable by that user); en_US.UTF-8 is not
generated here, C.UTF-8 is. Nothing waits by sleeping alone: each start polls for the service answering,
with a deadline.
"""

from __future__ import annotations

import os
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

REDIS_SERVER = Path("/usr/bin/redis-server")
REDIS_INSTALL_HINT = (
    "redis-server missing (/usr/bin/redis-server): run the README's test command "
    "(bash tools/dev.sh test installs Debian redis-server), or `apt-get install redis-server`"
)
POSTGRES_INSTALL_HINT = (
    "Postgres server binaries missing (/usr/lib/postgresql/*/bin/initdb): run the README's test command "
    "(bash tools/dev.sh test installs Debian postgresql), or `apt-get install postgresql`"
)
MOTO_SERVER = Path(sys.executable).parent / "moto_server"
START_TIMEOUT_S = 60


class ServiceError(RuntimeError):
    """A service did not start; the message carries its log."""


def stop_process(process: subprocess.Popen, timeout: float = 10) -> None:
    """SIGTERM, then SIGKILL if it has not exited within `timeout` seconds; waits for it either way."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(condition, timeout: float, what: str, every: float = 0.25):
    """Poll `condition()` until it returns something truthy (returned), or fail naming `what`."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout:g} s: {what}")
        time.sleep(every)  # a poll interval, not a stand-in for the condition


def poll(check, deadline_s: float, what: str, alive=lambda: True, log: Path | None = None):
    """Call `check()` until it returns without raising OSError-like errors, or fail after `deadline_s`."""
    deadline = time.monotonic() + deadline_s
    delay = 0.02
    last: Exception | None = None
    while True:
        try:
            return check()
        except Exception as error:  # noqa: BLE001 - any failure means "not ready yet"
            last = error
        if not alive():
            raise ServiceError(f"{what} exited while starting: {last}\n{log_tail(log)}")
        if time.monotonic() > deadline:
            raise ServiceError(f"{what} not ready after {deadline_s:g} s: {last}\n{log_tail(log)}")
        time.sleep(delay)  # a poll interval, not a stand-in for the condition
        delay = min(delay * 2, 0.25)


def log_tail(log: Path | None, lines: int = 30) -> str:
    if log is None or not log.exists():
        return ""
    return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])


# ---------------------------------------------------------------------------------------------- Postgres


def postgres_bin() -> Path | None:
    """The newest /usr/lib/postgresql/<major>/bin that has initdb, or None."""
    found = [p.parent for p in Path("/usr/lib/postgresql").glob("*/bin/initdb")]
    if not found:
        return None
    return max(found, key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 0)


def psycopg_dsn(url: str) -> str:
    """A SQLAlchemy URL (postgresql+psycopg://...) as the libpq URI psycopg connects with."""
    return url.replace("postgresql+psycopg://", "postgresql://", 1)


def _as_root() -> bool:
    return hasattr(os, "geteuid") and os.geteuid() == 0


class PostgresCluster:
    """A throwaway cluster: its own data directory under /tmp, its own port, fsync off, trust auth."""

    def __init__(self):
        self.bin = postgres_bin()
        if self.bin is None:
            raise ServiceError(POSTGRES_INSTALL_HINT)
        self.root = Path(tempfile.mkdtemp(prefix="tejas-pg-", dir="/tmp"))
        self.data = self.root / "data"
        self.log = self.root / "postgres.log"
        self.port: int | None = None
        self.started = False
        if _as_root():
            shutil.chown(self.root, "postgres", "postgres")
        try:
            self._run(
                "initdb",
                "-D",
                str(self.data),
                "-U",
                "postgres",
                "--auth=trust",
                "--no-sync",
                "-E",
                "UTF8",
                "--locale=C.UTF-8",
            )
            self._start()
        except BaseException:
            self.stop()
            raise

    @property
    def url(self) -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, tool: str, *args: str) -> subprocess.CompletedProcess:
        command = [str(self.bin / tool), *args]
        if _as_root():
            command = ["runuser", "-u", "postgres", "--", *command]
        done = subprocess.run(command, capture_output=True, text=True, timeout=START_TIMEOUT_S)
        if done.returncode != 0:
            raise ServiceError(f"{tool} failed ({done.returncode}): {done.stderr.strip()}\n{log_tail(self.log)}")
        return done

    def _start(self):
        import psycopg

        # A free port can be taken by someone else before the postmaster binds it: try a few.
        for attempt in range(3):
            self.port = free_port()
            options = f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c fsync=off"
            try:
                # -w: pg_ctl itself waits until the server accepts connections (or gives up)
                self._run(
                    "pg_ctl",
                    "-D",
                    str(self.data),
                    "-l",
                    str(self.log),
                    "-w",
                    "-t",
                    str(START_TIMEOUT_S),
                    "-o",
                    options,
                    "start",
                )
            except ServiceError:
                if attempt == 2 or "could not bind" not in log_tail(self.log, 10):
                    raise
                continue
            self.started = True
            break

        def connect():
            with psycopg.connect(psycopg_dsn(self.url), connect_timeout=2) as connection:
                connection.execute("SELECT 1")

        poll(connect, START_TIMEOUT_S, "postgres", log=self.log)

    def stop(self):
        """Stop at once (no checkpoint: the data is thrown away) and remove the directory."""
        if self.started:
            try:
                self._run("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop")
            except (ServiceError, subprocess.TimeoutExpired):
                pass
            self.started = False
        shutil.rmtree(self.root, ignore_errors=True)


def start_postgres() -> PostgresCluster:
    return PostgresCluster()


def create_database(server_url: str, prefix: str = "tejas") -> str:
    """CREATE DATABASE <prefix>_<random> on the cluster of `server_url`; the new database's URL."""
    import psycopg

    name = f"{prefix}_{secrets.token_hex(6)}"
    with psycopg.connect(psycopg_dsn(server_url), autocommit=True) as connection:
        connection.execute(f'CREATE DATABASE "{name}"')
    return server_url.rsplit("/", 1)[0] + "/" + name


def drop_database(url: str) -> None:
    """DROP DATABASE ... WITH (FORCE): ends sessions a server under test may still hold."""
    import psycopg

    base, name = url.rsplit("/", 1)
    with psycopg.connect(psycopg_dsn(base + "/postgres"), autocommit=True) as connection:
        connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


# ---------------------------------------------------------------------------------------------- S3 (moto)


def new_bucket_name() -> str:
    return f"tejas-test-{secrets.token_hex(6)}"


class MotoServer:
    """`moto_server` (an in-memory S3 API) as a subprocess on a free port of 127.0.0.1."""

    def __init__(self):
        if not MOTO_SERVER.exists():
            raise ServiceError(f"{MOTO_SERVER} missing: install moto[server] into this environment")
        self.root = Path(tempfile.mkdtemp(prefix="tejas-moto-"))
        self.log = self.root / "moto.log"
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        with open(self.log, "w") as log:  # a file, not a pipe: nobody reads a pipe, and a full one blocks
            self.process = subprocess.Popen(
                [str(MOTO_SERVER), "-H", "127.0.0.1", "-p", str(self.port)],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )

        def answers():
            try:
                urllib.request.urlopen(self.url + "/", timeout=1).close()
            except urllib.error.HTTPError:
                pass  # any HTTP answer means it is up

        try:
            poll(answers, START_TIMEOUT_S, "moto_server", alive=lambda: self.process.poll() is None, log=self.log)
        except BaseException:
            self.stop()
            raise

    def env(self, bucket: str | None = None) -> dict[str, str]:
        """What `tejas serve` reads to keep blobs in this S3 API (a new bucket unless one is named)."""
        return {
            "TEJAS_BLOB_STORE": "s3",
            "TEJAS_S3_ENDPOINT_URL": self.url,
            "TEJAS_S3_BUCKET": bucket or new_bucket_name(),
            "TEJAS_S3_REGION": "us-east-1",
            "AWS_ACCESS_KEY_ID": "test",
            "AWS_SECRET_ACCESS_KEY": "test",
        }

    def stop(self):
        stop_process(self.process)
        shutil.rmtree(self.root, ignore_errors=True)


def start_s3() -> MotoServer:
    return MotoServer()


def s3_env(s3_server: dict) -> dict[str, str]:
    """`s3_server`'s env with a fresh bucket name (the Tejas server creates a missing bucket)."""
    return {**s3_server, "TEJAS_S3_BUCKET": new_bucket_name()}


def s3_client(env: dict):
    """A boto3 S3 client for the API an env from `s3_server`/`s3_env` points at."""
    import boto3

    return boto3.client(
        "s3",
        endpoint_url=env["TEJAS_S3_ENDPOINT_URL"],
        region_name=env["TEJAS_S3_REGION"],
        aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"],
    )


# ---------------------------------------------------------------------------------------------- Redis


class RedisServer:
    """`redis-server` as a subprocess on a free port of 127.0.0.1: no RDB snapshots, no AOF, so nothing
    outlives `.stop()`. Ready when redis-py's PING answers."""

    def __init__(self):
        if not REDIS_SERVER.exists():
            raise ServiceError(REDIS_INSTALL_HINT)
        self.root = Path(tempfile.mkdtemp(prefix="tejas-redis-"))
        self.log = self.root / "redis.log"
        self.process: subprocess.Popen | None = None
        try:
            # A free port can be taken by someone else before redis binds it: try a few.
            for attempt in range(3):
                self.port = free_port()
                self.url = f"redis://127.0.0.1:{self.port}/0"
                with open(self.log, "w") as log:
                    self.process = subprocess.Popen(
                        [
                            str(REDIS_SERVER),
                            "--port",
                            str(self.port),
                            "--bind",
                            "127.0.0.1",
                            "--save",
                            "",
                            "--appendonly",
                            "no",
                            "--daemonize",
                            "no",
                            "--dir",
                            str(self.root),
                        ],
                        stdout=log,
                        stderr=subprocess.STDOUT,
                        stdin=subprocess.DEVNULL,
                        cwd=self.root,
                    )
                try:
                    poll(self.ping, START_TIMEOUT_S, "redis-server", alive=self.alive, log=self.log)
                    break
                except ServiceError:
                    if attempt == 2 or self.alive() or "Address already in use" not in log_tail(self.log, 10):
                        raise
        except BaseException:
            self.stop()
            raise

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def client(self):
        import redis

        return redis.Redis.from_url(self.url, socket_connect_timeout=2, socket_timeout=5)

    def ping(self) -> bool:
        with self.client() as client:
            if not client.ping():
                raise ConnectionError("redis-server did not answer PING")
        return True

    def stop(self):
        if self.process is not None:
            stop_process(self.process)
        shutil.rmtree(self.root, ignore_errors=True)


def start_redis() -> RedisServer:
    return RedisServer()
