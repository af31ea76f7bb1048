"""What `/api/health/ready` checks: the database, Redis (when this deployment uses it) and the blob store.

Each check answers None (fine) or one sentence naming the dependency and what it said. They are quick
(short timeouts) because load balancers call them every few seconds."""

from __future__ import annotations

import logging
import os

from sqlalchemy import Engine, text

from .core.config import Settings
from .deployment import uses_redis
from .prediction.streams import redacted

DATABASE_DOWN = "The database is unreachable; try again shortly."
log = logging.getLogger("tejas")
RETRY_AFTER_S = 5  # what 503 answers put in Retry-After: a restarting database is usually back within seconds


def database_problem(engine: Engine) -> str | None:
    try:
        with engine.connect() as connection:
            connection.execute(text("SELECT 1"))
    except Exception as exc:  # noqa: BLE001 - whatever the driver raises, the database is not usable
        return f"The database ({engine.dialect.name}) does not answer: {type(exc).__name__}."
    return None


def redis_problem(settings: Settings) -> str | None:
    if not uses_redis(settings):
        return None
    import redis

    try:
        with redis.Redis.from_url(settings.redis_url, socket_connect_timeout=2, socket_timeout=2) as client:
            client.ping()
    except Exception as exc:  # noqa: BLE001
        # anyone may ask for readiness: the answer names no host or port, the log does
        log.warning("readiness: Redis at %s does not answer: %r", redacted(settings.redis_url), exc)
        return f"Redis does not answer: {type(exc).__name__}."
    return None


def store_problem(store, settings: Settings) -> str | None:
    root = getattr(store, "root", None)
    try:
        if root is not None:  # a local folder: it must be there and writable
            if not (root.is_dir() and os.access(root, os.W_OK)):
                log.warning("readiness: the blob folder %s is missing or not writable", root)
                return "The blob folder is missing or not writable."
        else:
            store.exists("0" * 64)  # one request to the S3 API: answers False, or raises when it is down
    except Exception as exc:  # noqa: BLE001
        return f"The blob store ({settings.blob_store}) does not answer: {type(exc).__name__}."
    return None
