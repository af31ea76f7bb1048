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
    return create_engine(url, pool_pre_ping=True, pool_size=20, max_overflow=30, pool_timeout=120)


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


def migrate(engine: Engine) -> str:
    """Bring the schema to the newest revision; returns that revision."""
    from alembic import command
    from alembic.script import ScriptDirectory

    config = alembic_config(engine)
    command.upgrade(config, "head")
    return ScriptDirectory.from_config(config).get_current_head()
