"""The database engine and sessions; Alembic migrations applied on start and by `tejas server migrate`.

SQLite (the embedded default) gets WAL and a busy timeout, and two engines: writers' transactions
start with `BEGIN IMMEDIATE` (they queue for the one write lock instead of failing with "database is
locked" when a read upgrades to a write), readers' with a plain `BEGIN` (WAL lets them run beside a
writer). Postgres needs one engine: pushes of one user serialize on that user's row (FOR UPDATE).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.orm import Session, sessionmaker

from .config import Settings

ALEMBIC_DIR = Path(__file__).resolve().parent.parent / "alembic"


def make_engine(settings: Settings, readonly: bool = False) -> Engine:
    """The engine for writes, or (`readonly`) for sessions that only read; the same one on Postgres."""
    url = settings.sqlalchemy_url
    if url.startswith("sqlite"):
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        # as many connections as request threads (anyio's 40): a writer waiting for the lock holds one
        engine = create_engine(
            url,
            connect_args={"check_same_thread": False, "timeout": 60},
            pool_size=40,
            max_overflow=10,
            pool_timeout=120,
        )

        @event.listens_for(engine, "connect")
        def _connect(dbapi_connection, _record):
            dbapi_connection.isolation_level = None  # the driver's implicit BEGIN off: we send our own
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.execute("PRAGMA busy_timeout=60000")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.close()

        @event.listens_for(engine, "begin")
        def _begin(connection):
            connection.exec_driver_sql("BEGIN" if readonly else "BEGIN IMMEDIATE")

        return engine
    # connect_timeout: a database host that stopped answering fails a request (503) in seconds instead of hanging
    return create_engine(
        url,
        pool_pre_ping=True,
        pool_size=20,
        max_overflow=30,
        pool_timeout=120,
        connect_args={"connect_timeout": 10} if url.startswith("postgresql") else {},
    )


def make_sessionmaker(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(engine, expire_on_commit=False)


@contextmanager
def session_scope(factory: sessionmaker[Session]) -> Iterator[Session]:
    """A session that commits when the block ends and rolls back on an exception."""
    with factory() as session, session.begin():
        yield session


def alembic_config(engine: Engine):
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(ALEMBIC_DIR))
    config.attributes["engine"] = engine
    return config


# pg_advisory_xact_lock's key for "a migration is running" (any 64-bit number no other code uses)
MIGRATION_LOCK_KEY = 0x7E1A5_3161


def migrate(engine: Engine) -> str:
    """Bring the schema to the newest revision; returns that revision.

    Replicas started together migrate one after the other, in one transaction each: on Postgres under a
    transaction-scoped advisory lock, on SQLite under the write lock `BEGIN IMMEDIATE` takes. The first
    applies the revisions; the others wait, then find the schema at head and do nothing (without the
    lock the second crashed with UniqueViolation on alembic_version)."""
    from alembic import command
    from alembic.script import ScriptDirectory
    from sqlalchemy import text

    config = alembic_config(engine)
    with engine.begin() as connection:  # SQLite: the writer engine's BEGIN IMMEDIATE
        if connection.dialect.name == "postgresql":
            connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK_KEY})
        config.attributes["connection"] = connection
        command.upgrade(config, "head")
    return ScriptDirectory.from_config(config).get_current_head()


def schema_revision(connection) -> str | None:
    """The revision the database is at (None: no Tejas schema at all)."""
    from alembic.migration import MigrationContext

    return MigrationContext.configure(connection).get_current_revision()


def head_revision() -> str:
    """The newest revision this code knows."""
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    config = Config()
    config.set_main_option("script_location", str(ALEMBIC_DIR))
    return ScriptDirectory.from_config(config).get_current_head()
