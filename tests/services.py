"""pytest fixtures over testkit.services (real Postgres, S3 API and Redis processes; the processes
themselves, usable from scripts too, live in testkit/services.py).

Import the fixtures into a conftest (`from tests.services import backend, postgres_url, ...`):

    postgres_url        session: a temporary Postgres cluster; "postgresql+psycopg://postgres@127.0.0.1:P/postgres"
    fresh_postgres_db   function: a new empty database on that cluster (dropped afterwards); its URL
    s3_server           session: `moto_server` on a free port; the env the Tejas server reads (one bucket)
    s3_env(s3_server)   the same env with a bucket name of its own (the server creates missing buckets)
    backend             function, params "embedded" / "postgres+s3": TEJAS_* env for `tejas serve`
    redis_server        function: `redis-server` on a free port, nothing saved; `.url` = "redis://127.0.0.1:P/0"
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from testkit.services import (  # noqa: F401 (the names tests import from here)
    POSTGRES_INSTALL_HINT,
    REDIS_INSTALL_HINT,
    REDIS_SERVER,
    RedisServer,
    ServiceError,
    create_database,
    drop_database,
    free_port,
    postgres_bin,
    psycopg_dsn,
    s3_client,
    s3_env,
    start_postgres,
    start_redis,
    start_s3,
    stop_process,
    wait_for,
)

BACKENDS = ["embedded", "postgres+s3"]


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A temporary Postgres cluster for the session; its `postgres` database's SQLAlchemy URL."""
    if postgres_bin() is None:
        pytest.fail(POSTGRES_INSTALL_HINT)
    cluster = start_postgres()
    try:
        yield cluster.url
    finally:
        cluster.stop()


@pytest.fixture
def fresh_postgres_db(postgres_url) -> Iterator[str]:
    """A new, empty database for one test (dropped afterwards); its SQLAlchemy URL."""
    url = create_database(postgres_url)
    try:
        yield url
    finally:
        drop_database(url)


@pytest.fixture(scope="session")
def s3_server() -> Iterator[dict[str, str]]:
    """moto's S3 API for the session: the env settings `tejas serve` reads (with one bucket name)."""
    server = start_s3()
    try:
        yield server.env()
    finally:
        server.stop()


@pytest.fixture
def redis_server() -> Iterator[RedisServer]:
    """A throwaway `redis-server` for one test; `.url` is what TEJAS_REDIS_URL takes."""
    if not REDIS_SERVER.exists():
        pytest.fail(REDIS_INSTALL_HINT)
    server = start_redis()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(params=BACKENDS)
def backend(request) -> dict[str, str]:
    """Env for `tejas serve`: "embedded" = {} (SQLite + a local folder, the defaults), "postgres+s3" = a fresh
    Postgres database and a fresh bucket on moto. Postgres and moto start only when a test asks for them."""
    if request.param == "embedded":
        return {}
    database = request.getfixturevalue("fresh_postgres_db")
    return {"TEJAS_DATABASE_URL": database, **s3_env(request.getfixturevalue("s3_server"))}
