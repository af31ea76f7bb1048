"""Which deployment a database and a Redis belong to, so that a worker never serves the wrong one.

The first migration that creates the `deployment` table stores a random id in it (alembic 0008). Whoever
reaches a Redis first (the server, or a worker) records that id there (`SET tejas:deployment <id> NX`);
everyone else compares. A worker (`tejas worker`, `tejas stream-worker`) checks before it takes anything:

- the database exists (a worker never creates one: SQLite would make an empty file on connect),
- it carries the Tejas schema at the revision this code knows,
- its id is the one Redis records.

Any failure is a `WrongDatabase` whose message is one sentence with the fix; the CLI prints it and exits 1.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

from sqlalchemy import Engine, select

from .core.config import Settings

log = logging.getLogger("tejas.deployment")

REDIS_KEY = "tejas:deployment"


class WrongDatabase(RuntimeError):
    """A worker would run against a missing, empty, outdated or foreign database; str() says which and the fix."""


def _where(settings: Settings) -> str:
    from .prediction.streams import redacted

    return redacted(settings.sqlalchemy_url)


def deployment_id(engine: Engine) -> str | None:
    """This database's deployment id (None before migration 0008)."""
    from .models import Deployment

    with engine.connect() as connection:
        return connection.execute(select(Deployment.id).limit(1)).scalar()


def uses_redis(settings: Settings) -> bool:
    """Whether this deployment has a Redis: the Celery queue, or TEJAS_REDIS_URL set (prediction streams)."""
    return settings.queue == "celery" or "redis_url" in settings.model_fields_set


def claim_redis(client, ours: str) -> str:
    """Record our id in Redis unless one is there already; the id Redis records (ours or another's)."""
    client.set(REDIS_KEY, ours, nx=True)
    theirs = client.get(REDIS_KEY)
    return theirs.decode() if isinstance(theirs, bytes) else theirs


def check_worker_database(settings: Settings, what: str, redis_wait_s: float = float("inf")) -> Engine:
    """The engine of the deployment's database, once it is known to be this deployment's; WrongDatabase if not.

    Redis not answering is waited for (`redis_wait_s`): a worker has nothing to do without it anyway."""
    from .core.db import head_revision, make_engine, schema_revision

    url = settings.sqlalchemy_url
    if url.startswith("sqlite"):
        from sqlalchemy.engine import make_url

        path = Path(make_url(url).database or "")
        if not path.is_file():
            raise WrongDatabase(
                f"{what}: there is no Tejas database at {path}; a worker uses the server's database: set "
                "TEJAS_DATABASE_URL (or TEJAS_DATA_DIR for the embedded SQLite) as the server has it."
            )
    engine = make_engine(settings)
    try:
        with engine.connect() as connection:
            revision = schema_revision(connection)
        head = head_revision()
        if revision is None:
            raise WrongDatabase(
                f"{what}: the database at {_where(settings)} has no Tejas schema; start `tejas serve` (or run "
                "`tejas server migrate`) on it first, or set TEJAS_DATABASE_URL to the server's database."
            )
        if revision != head:
            raise WrongDatabase(
                f"{what}: the database at {_where(settings)} is at revision {revision}, this worker's code needs "
                f"{head}; run `tejas server migrate` with the same version of Tejas as the server, or update it."
            )
        ours = deployment_id(engine)
        if ours is None:  # migration 0008 always writes one; someone emptied the table
            raise WrongDatabase(
                f"{what}: the database at {_where(settings)} has no deployment id; run `tejas serve` once."
            )
        _compare_with_redis(settings, ours, what, redis_wait_s)  # both workers take their work from Redis
        return engine
    except BaseException:
        engine.dispose()
        raise


def _compare_with_redis(settings: Settings, ours: str, what: str, wait_s: float) -> None:
    import redis

    from .prediction.streams import redacted

    client = redis.Redis.from_url(settings.redis_url, socket_connect_timeout=2, socket_timeout=5)
    deadline = time.monotonic() + wait_s
    warned = False
    try:
        while True:
            try:
                theirs = claim_redis(client, ours)
                break
            except redis.AuthenticationError as exc:  # a ConnectionError too, but waiting will not fix it
                raise WrongDatabase(
                    f"{what}: Redis at TEJAS_REDIS_URL ({redacted(settings.redis_url)}) refused us: {exc}."
                ) from None
            except (redis.ConnectionError, redis.TimeoutError) as exc:
                if time.monotonic() > deadline:
                    raise WrongDatabase(
                        f"{what}: Redis at TEJAS_REDIS_URL ({redacted(settings.redis_url)}) does not answer "
                        f"({type(exc).__name__}); start redis-server there or set TEJAS_REDIS_URL."
                    ) from None
                if not warned:
                    log.warning("%s: Redis at %s does not answer yet (retrying)", what, redacted(settings.redis_url))
                    warned = True
                time.sleep(1)  # a retry interval while Redis is away
            except redis.RedisError as exc:  # answering, but refusing us (a password, a read-only replica)
                raise WrongDatabase(
                    f"{what}: Redis at TEJAS_REDIS_URL ({redacted(settings.redis_url)}) refused us: {exc}."
                ) from None
    finally:
        client.close()
    if theirs != ours:
        raise WrongDatabase(
            f"{what}: Redis at {redacted(settings.redis_url)} belongs to another Tejas deployment (id {theirs}) "
            f"than the database at {_where(settings)} (id {ours}); set TEJAS_DATABASE_URL and TEJAS_REDIS_URL "
            "as the server has them."
        )


def claim_redis_for_server(settings: Settings, engine: Engine) -> None:
    """At the server's start: record this deployment in its Redis (when it has one). Redis down is not an
    error here (routes that need it answer 503); Redis recording another deployment stops the start."""
    if not uses_redis(settings):
        return
    import redis

    from .prediction.streams import redacted

    ours = deployment_id(engine)
    client = redis.Redis.from_url(settings.redis_url, socket_connect_timeout=2, socket_timeout=5)
    try:
        theirs = claim_redis(client, ours)
    except redis.RedisError as exc:  # down, or refusing us (auth): the routes that need it say so
        log.warning(
            "Redis at %s does not answer (%s); deployment id not recorded yet", redacted(settings.redis_url), exc
        )
        return
    finally:
        client.close()
    if theirs != ours:
        raise WrongDatabase(
            f"tejas serve: Redis at {redacted(settings.redis_url)} belongs to another Tejas deployment (id {theirs}) "
            f"than the database at {_where(settings)} (id {ours}); give each deployment its own Redis (or database "
            "number in TEJAS_REDIS_URL)."
        )
