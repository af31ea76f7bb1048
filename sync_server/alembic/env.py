"""Alembic environment: the engine comes from the caller (sync_server.core.db.migrate) or the settings."""

from __future__ import annotations

from alembic import context

from sync_server.models import Base

config = context.config
target_metadata = Base.metadata


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:  # the caller's transaction, which holds the migration lock (core.db.migrate)
        context.configure(connection=connection, target_metadata=target_metadata, render_as_batch=True)
        with context.begin_transaction():
            context.run_migrations()
        return
    engine = config.attributes.get("engine")
    if engine is None:
        from sync_server.core.config import Settings
        from sync_server.core.db import make_engine

        engine = make_engine(Settings())
    with engine.connect() as connection:
        context.configure(connection=connection, target_metadata=target_metadata, render_as_batch=True)
        with context.begin_transaction():
            context.run_migrations()


run_migrations_online()
