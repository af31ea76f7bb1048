"""Alembic: the migrations build exactly the schema models.py describes, on SQLite and on Postgres, and
`tejas server migrate` applies them (again: a no-op)."""

from __future__ import annotations

import subprocess

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine, inspect

from sync_server.core.config import Settings
from sync_server.core.db import head_revision, make_engine, migrate
from sync_server.models import Base

from ..conftest import TEJAS
from ..services import fresh_postgres_db, postgres_url  # noqa: F401 (fixtures)


@pytest.fixture(params=["sqlite", "postgres"])
def database_url(request, tmp_path):
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'tejas.db'}"
    return request.getfixturevalue("fresh_postgres_db")


def test_migrations_match_the_models(database_url, tmp_path):
    engine = make_engine(Settings(database_url=database_url, data_dir=tmp_path))
    assert migrate(engine) == head_revision()
    with engine.connect() as connection:
        diff = compare_metadata(MigrationContext.configure(connection), Base.metadata)
    assert diff == [], f"models.py and alembic/versions disagree (write a migration): {diff}"
    engine.dispose()


def test_tejas_server_migrate(database_url, tmp_path):
    env = {"TEJAS_DATABASE_URL": database_url, "TEJAS_DATA_DIR": str(tmp_path), "PATH": "/usr/bin:/bin"}
    for _ in range(2):  # the second run finds nothing to do
        result = subprocess.run([TEJAS, "server", "migrate"], env=env, capture_output=True, text=True, timeout=120)
        assert result.returncode == 0, result.stderr
        assert f"database at revision {head_revision()}" in result.stdout
    tables = set(inspect(create_engine(database_url)).get_table_names())
    assert {"users", "tokens", "records", "blobs", "user_blobs", "devices", "alembic_version"} <= tables
