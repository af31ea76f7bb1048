"""The FastAPI app: wires settings, database, blob store, routes, static files and headers together."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import mimetypes
from contextlib import asynccontextmanager

import sqlalchemy.exc
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import JSONResponse
from fastapi.staticfiles import StaticFiles
from starlette.concurrency import run_in_threadpool

from .api.routes import auth, batches, blobs, health, jobs, projects, streams, sync, users
from .core.clock import utcnow
from .core.config import Settings
from .core.db import make_engine, make_sessionmaker, migrate
from .core.partials import sweep_abandoned
from .core.security import dummy_hash, password_hasher
from .deployment import claim_redis_for_server
from .headers import IsolationHeaders
from .jobs import make_queue
from .jobs.state import purge_jobs
from .limits import BodyLimit, BodyTimeout
from .readiness import DATABASE_DOWN, RETRY_AFTER_S
from .retention import purge
from .storage import make_store

# Browsers refuse to compile wasm streamed with the wrong type, and ES modules need a JS type.
mimetypes.add_type("application/wasm", ".wasm")
mimetypes.add_type("text/javascript", ".mjs")
mimetypes.add_type("application/manifest+json", ".webmanifest")

log = logging.getLogger("tejas")


async def _purge_timer(app: FastAPI) -> None:
    settings: Settings = app.state.settings
    streams_store = await run_in_threadpool(make_store, settings, "streams")
    while True:
        try:
            # stream images no stream owes: only once entries queued before the ledger existed have their rows
            orphans = streams_store if getattr(app.state, "streams_adopted", False) else None
            await run_in_threadpool(
                purge,
                app.state.sessions,
                app.state.store,
                utcnow(),
                settings.retention_days,
                orphans,
                settings.unreferenced_blob_hours,
            )
            await run_in_threadpool(purge_jobs, app.state.sessions, app.state.jobs_store, utcnow())
        except Exception:  # a failed run (database restarting, …) is retried at the next tick
            log.exception("retention purge failed")
        await asyncio.sleep(settings.purge_interval_seconds)


def _has_streams(sessions) -> bool:
    from sqlalchemy import select

    from .models import Stream

    with sessions() as session:
        return session.scalar(select(Stream.id).limit(1)) is not None


async def _requeue_timer(app: FastAPI) -> None:
    """Images a stream owes whose Redis entries are gone (a Redis restarted empty) are enqueued again, at
    start and every TEJAS_STREAM_REQUEUE_SECONDS (prediction/ledger.py; stream workers do the same)."""
    from .prediction import ledger
    from .prediction.streams import StreamQueue

    settings: Settings = app.state.settings
    failing = False
    while True:
        try:
            if not await run_in_threadpool(_has_streams, app.state.sessions):
                # nothing can be owed: a server that never had a stream needs no Redis (and logs no warning)
                await asyncio.sleep(settings.stream_requeue_seconds)
                continue
            if getattr(app.state, "stream_queue", None) is None:
                app.state.stream_queue = StreamQueue(settings)
            if not getattr(app.state, "streams_adopted", False):
                await run_in_threadpool(ledger.adopt_entries, app.state.sessions, app.state.stream_queue)
                app.state.streams_adopted = True
            grace = settings.stream_requeue_seconds
            await run_in_threadpool(ledger.requeue_lost, app.state.sessions, app.state.stream_queue, grace)
            failing = False
        except Exception as exc:  # Redis or the database away (or no Redis: no streams): the next tick tries again
            if not failing:  # once per outage, not every tick
                log.warning("streams: looking for owed images failed (%s: %s); retrying", type(exc).__name__, exc)
            failing = True
        await asyncio.sleep(settings.stream_requeue_seconds)


@asynccontextmanager
async def lifespan(app: FastAPI):
    state = app.state
    # uploads cut by a crash (SIGKILL, power) left partial files; another server sharing the data dir may be
    # receiving some right now: only those no live process holds a lock on go (core/partials.py)
    await run_in_threadpool(sweep_abandoned, state.settings.data_dir / "uploads")
    await run_in_threadpool(migrate, state.engine)  # under a lock: replicas starting together take turns
    await run_in_threadpool(claim_redis_for_server, state.settings, state.engine)
    state.store = await run_in_threadpool(make_store, state.settings)
    state.jobs_store = await run_in_threadpool(make_store, state.settings, "jobs")
    # copies into the local blob folders cut by a crash (the S3 API has no partial objects)
    for store in (state.store, state.jobs_store, make_store(state.settings, "streams")):
        if hasattr(store, "sweep_partials"):
            await run_in_threadpool(store.sweep_partials)
    state.queue = make_queue(state.settings, state.sessions)
    state.queue.start()
    timers = [asyncio.create_task(_purge_timer(app)), asyncio.create_task(_requeue_timer(app))]
    try:
        yield
    finally:
        await run_in_threadpool(state.queue.stop)
        for timer in timers:
            timer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await timer
        state.engine.dispose()
        state.read_engine.dispose()


async def _validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
    """422 with one readable sentence in `detail` (and pydantic's list in `errors`)."""
    errors = exc.errors()
    parts = []
    for error in errors[:5]:
        where = ".".join(str(p) for p in error.get("loc", ()) if p != "body")
        parts.append(f"{where}: {error.get('msg')}" if where else str(error.get("msg")))
    more = f" (and {len(errors) - 5} more)" if len(errors) > 5 else ""
    safe = [{k: v for k, v in e.items() if k in ("loc", "msg", "type")} for e in errors[:20]]
    return JSONResponse({"detail": "Invalid request: " + "; ".join(parts) + more, "errors": safe}, status_code=422)


async def _database_unreachable(request: Request, exc: Exception) -> JSONResponse:
    """A route that hit a dead (or restarting) database: 503 JSON with a sentence and Retry-After, not a
    plain-text 500; the pool reconnects by itself once the database is back (pool_pre_ping)."""
    log.warning("database error on %s %s: %s", request.method, request.url.path, str(exc).splitlines()[0][:300])
    return JSONResponse({"detail": DATABASE_DOWN}, status_code=503, headers={"Retry-After": str(RETRY_AFTER_S)})


async def _value_refused(request: Request, exc: sqlalchemy.exc.DataError) -> JSONResponse:
    """A value the database will not store (a NUL character in text on Postgres, NaN in JSON, an integer out
    of range) came from the request: 422 with a sentence, not a 500; the database's words go to the log."""
    log.warning("value refused by the database on %s %s: %s", request.method, request.url.path, exc.orig)
    return JSONResponse({"detail": VALUE_REFUSED}, status_code=422)


VALUE_REFUSED = (
    "Invalid request: it holds a value the database cannot store (a NUL character, NaN or Infinity, or a "
    "number out of range); remove it and send the request again."
)


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()
    app = FastAPI(
        title="Tejas", docs_url="/api/docs", openapi_url="/api/openapi.json", redoc_url=None, lifespan=lifespan
    )
    app.state.settings = settings
    app.state.engine = make_engine(settings)
    app.state.sessions = make_sessionmaker(app.state.engine)
    app.state.read_engine = (
        make_engine(settings, readonly=True) if app.state.engine.dialect.name == "sqlite" else app.state.engine
    )
    app.state.readers = make_sessionmaker(app.state.read_engine)
    app.state.hasher = password_hasher(settings)
    app.state.dummy_hash = dummy_hash(app.state.hasher)
    app.add_exception_handler(RequestValidationError, _validation_error)
    for error in (sqlalchemy.exc.OperationalError, sqlalchemy.exc.InterfaceError):
        app.add_exception_handler(error, _database_unreachable)
    app.add_exception_handler(sqlalchemy.exc.DataError, _value_refused)
    for module in (health, auth, users, sync, blobs, projects, jobs, batches, streams):
        app.include_router(module.router)
    settings.artifacts_dir.mkdir(parents=True, exist_ok=True)
    app.mount("/artifacts", StaticFiles(directory=settings.artifacts_dir), name="artifacts")
    app.mount("/", StaticFiles(directory=settings.pwa_dir, html=True), name="pwa")
    app.add_middleware(BodyLimit, limit=settings.max_push_bytes)
    app.add_middleware(BodyTimeout, seconds=settings.body_timeout_seconds)
    app.add_middleware(
        CORSMiddleware,
        allow_origins=settings.cors_origins,
        allow_methods=["*"],
        allow_headers=["Authorization", "Content-Type", "Idempotency-Key"],
        expose_headers=["Retry-After", "Idempotent-Replayed", "X-Tejas-Quota"],
        max_age=600,
    )
    app.add_middleware(IsolationHeaders)
    return app


def serve(host: str | None = None, port: int | None = None) -> int:
    import uvicorn

    settings = Settings()
    host = host or settings.host
    port = port or settings.port
    print(f"Tejas on http://{host}:{port}  (Ctrl+C stops; data in {settings.data_dir})", flush=True)
    # uvicorn trusts X-Forwarded-For from 127.0.0.1 unless told otherwise: only the proxies named in
    # settings may name the client (the sign-in and sign-up limits count by client address)
    proxies = settings.forwarded_allow_ips
    uvicorn.run(
        create_app(settings),
        host=host,
        port=port,
        log_level="warning",
        proxy_headers=bool(proxies),
        forwarded_allow_ips=proxies or None,
    )
    return 0
