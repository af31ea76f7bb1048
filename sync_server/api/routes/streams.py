"""Prediction streams (docs/predictions.md, "Streams"): create one with a model, append images to it (each
goes through Redis to `tejas stream-worker` processes), read its results, their events and its dead
letters. Every query filters on the signed-in user: another user's stream name answers 404 like an
unknown one, and is checked before Redis is asked anything. Routes that need Redis answer 503 saying so
when it does not answer; results and their events are read from the database only.

Image bytes go to the "streams" area of the blob store under a random name of their own; the worker
deletes them once the image's entry is done (result written, dead-lettered, or its stream deleted).
An image named by `?blob=` stays the user's blob and is never deleted here. What a stream still owes and
its dead letters are rows in the database (prediction/ledger.py), written before the bytes and the Redis
entry: the counts and dead letters are read from there, and survive a Redis that restarts empty.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
import secrets
from datetime import datetime, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Path, Query, Request, Response, status
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import delete, func, select
from sqlalchemy.exc import IntegrityError
from sse_starlette.sse import EventSourceResponse
from starlette.concurrency import run_in_threadpool

from ... import quotas
from ...core.clock import iso, utcnow
from ...core.config import Settings
from ...core.db import session_scope
from ...jobs import live_workers
from ...models import Job, Prediction, Record, Stream, StreamImage, UserBlob
from ...prediction import ledger
from ...prediction.models import REFERENCE, ModelUnusable, check_synced_model, parse_reference
from ...prediction.streams import RedisUnavailable, StreamQueue, unavailable
from ...schemas import SHA256
from ...storage import make_store
from ..bodies import raw_body, received_body
from ..deps import CurrentUser, LastEventId, ReadSessionDep, SettingsDep

router = APIRouter(prefix="/api/streams", tags=["streams"])
log = logging.getLogger("tejas.streams")

NAME = r"^[A-Za-z0-9_-][A-Za-z0-9_.-]{0,99}$"
KEY = r"^[^\x00-\x1f\x7f]{1,300}$"  # any printable text up to 300 characters (a file name, a frame id)
NOT_FOUND = "No such stream among yours."
RATE_WINDOW_S = 10
LATENCY_ROWS = 1000

Name = Annotated[str, Path(pattern=NAME, description="the stream's name, one of yours")]
REDIS_503 = {503: {"description": "Redis (TEJAS_REDIS_URL) does not answer: streams need it."}}
NOT_FOUND_404 = {404: {"description": NOT_FOUND}}


class StreamIn(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, json_schema_extra={"examples": [{"model": "job:…"}]})

    model: str = Field(pattern=REFERENCE, description="job:<id>, model:<id> or project:<id>")
    top_k: int = Field(3, ge=1, le=100, description="classes kept per image")


class StreamSummary(BaseModel):
    name: str
    model: str
    top_k: int
    created: str | None
    appended: int
    predicted: int
    dead: int
    pending: int


class StreamOut(StreamSummary):
    images_per_second: float
    latency_p50_ms: float | None
    latency_p95_ms: float | None
    workers: int


class StreamsOut(BaseModel):
    streams: list[StreamSummary]


class AppendOut(BaseModel):
    key: str
    entry: str | None = Field(description="the Redis entry of this image; for a duplicate, the one in flight")
    duplicate: bool = Field(description="the key was already in this stream: nothing was added")


class ResultOut(BaseModel):
    model_config = ConfigDict(populate_by_name=True)

    id: int
    key: str
    class_: str = Field(alias="class")
    confidence: float
    top: list[dict[str, Any]]
    worker: str
    appended: str
    predicted: str
    latency_ms: float


class ResultsOut(BaseModel):
    results: list[ResultOut]
    next: int = Field(description="pass as `after` for the results that follow")
    more: bool = Field(description="the page was full: more results follow now")


class DeadLetter(BaseModel):
    key: str
    error: str
    deliveries: int
    at: str | None


class DeadOut(BaseModel):
    entries: list[DeadLetter]


# ---------------------------------------------------------------------------------------------- helpers


def _queue(request: Request) -> StreamQueue:
    state = request.app.state
    if getattr(state, "stream_queue", None) is None:
        state.stream_queue = StreamQueue(state.settings)
    return state.stream_queue


@contextlib.contextmanager
def _redis(settings: Settings):
    """Redis not answering → 503 with the sentence saying where it was looked for."""
    import redis

    try:
        yield
    except (redis.ConnectionError, redis.TimeoutError) as exc:
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, str(unavailable(settings, exc))) from None
    except RedisUnavailable as exc:
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, str(exc)) from None


def _owned(db, user_id: str, name: str) -> Stream:
    stream = db.scalar(select(Stream).where(Stream.user_id == user_id, Stream.name == name))
    if stream is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, NOT_FOUND)
    return stream


def _ms(moment: datetime) -> str:
    return moment.isoformat(timespec="milliseconds") + "Z"


def _check_model(db, user_id: str, ref: str, settings: Settings) -> None:
    """The reference names a model of the user's (404), made on this server's artifacts (422); the ONNX
    itself is written by the first worker that needs it (a failure then shows in the dead letters)."""
    kind, ident = parse_reference(ref)
    missing = HTTPException(404, f"No such model among yours ({kind}:…); GET /api/models lists yours.")
    if kind == "job":
        found = db.scalar(
            select(Job.id).where(Job.id == ident, Job.user_id == user_id, Job.kind == "train", Job.status == "done")
        )
        if found is None:
            raise missing
        return

    def record(record_kind: str, record_id: str) -> dict | None:
        row = db.execute(
            select(Record.data).where(
                Record.user_id == user_id,
                Record.kind == record_kind,
                Record.record_id == record_id,
                Record.deleted.is_(False),
            )
        ).first()
        return None if row is None else (row[0] or {})

    if kind == "project":
        head = record("head", ident)
        if not head or not isinstance(head.get("modelId"), str):
            raise missing
        ident = head["modelId"]
    model = record("model", ident)
    if model is None:
        raise missing
    try:
        check_synced_model(model, kind, settings)
    except ModelUnusable as exc:
        raise HTTPException(422, f"{str(exc)[0].upper()}{str(exc)[1:]}.") from None
    artifacts = model.get("artifacts") or {}
    wanted = artifacts.get("backbone_sha256")
    if wanted and artifacts.get("kind") != "job":
        from tejas.artifacts import ArtifactError, read_manifest

        try:
            have = read_manifest(settings.artifacts_dir / settings.artifacts_name)["files"]["backbone.onnx"]["sha256"]
        except (ArtifactError, KeyError, TypeError):
            return
        if wanted != have:
            raise HTTPException(
                422, "That model was trained with other artifacts than this server has; retrain it in the app and sync."
            )


def _percentile(sorted_values: list[float], q: float) -> float | None:
    if not sorted_values:
        return None
    return round(sorted_values[min(len(sorted_values) - 1, max(0, math.ceil(q * len(sorted_values)) - 1))], 1)


def _summaries(request: Request, db, streams: list[Stream]) -> list[StreamSummary]:
    ids = [s.id for s in streams]
    predicted: dict[str, int] = {}
    if ids:
        query = select(Prediction.stream_id, func.count()).where(Prediction.stream_id.in_(ids))
        predicted = {sid: n for sid, n in db.execute(query.group_by(Prediction.stream_id))}
    counts = ledger.counts(db, ids)
    return [
        StreamSummary(
            name=s.name,
            model=s.model,
            top_k=s.top_k,
            created=iso(s.created_at),
            appended=s.appended,
            predicted=predicted.get(s.id, 0),
            pending=counts[s.id][0],
            dead=counts[s.id][1],
        )
        for s in streams
    ]


def _stats(request: Request, db, stream: Stream) -> dict:
    """The stream's counts, images/s over the last RATE_WINDOW_S seconds and latency percentiles (from
    appended to written) over its last LATENCY_ROWS results."""
    settings: Settings = request.app.state.settings
    now = utcnow()
    predicted = db.scalar(select(func.count()).where(Prediction.stream_id == stream.id)) or 0
    recent = db.scalar(
        select(func.count()).where(
            Prediction.stream_id == stream.id, Prediction.created_at >= now - timedelta(seconds=RATE_WINDOW_S)
        )
    )
    rows = db.execute(
        select(Prediction.appended_at, Prediction.created_at)
        .where(Prediction.stream_id == stream.id)
        .order_by(Prediction.id.desc())
        .limit(LATENCY_ROWS)
    ).all()
    latencies = sorted(max(0.0, (created - appended).total_seconds() * 1000) for appended, created in rows)
    pending, dead = ledger.counts(db, [stream.id])[stream.id]
    workers = live_workers(db, max(30.0, settings.job_heartbeat_seconds * 6))
    return {
        "name": stream.name,
        "model": stream.model,
        "top_k": stream.top_k,
        "created": iso(stream.created_at),
        "appended": stream.appended,
        "predicted": predicted,
        "dead": dead,
        "pending": pending,
        "images_per_second": round((recent or 0) / RATE_WINDOW_S, 2),
        "latency_p50_ms": _percentile(latencies, 0.50),
        "latency_p95_ms": _percentile(latencies, 0.95),
        "workers": sum(1 for w in workers if w.queue == "stream"),
    }


def _result(row: Prediction) -> ResultOut:
    return ResultOut(
        id=row.id,
        key=row.image_key,
        class_=row.label,
        confidence=row.confidence,
        top=row.top,
        worker=row.worker,
        appended=_ms(row.appended_at),
        predicted=_ms(row.created_at),
        latency_ms=round(max(0.0, (row.created_at - row.appended_at).total_seconds() * 1000), 1),
    )


# ---------------------------------------------------------------------------------------------- routes


@router.put(
    "/{name}",
    responses={
        200: {"description": "Changed."},
        201: {"description": "Created.", "model": StreamOut},
        404: {"description": "No such model among yours."},
        422: {"description": "A model this server cannot run, or an invalid body."},
        429: {"description": "Creating one more than TEJAS_MAX_STREAMS streams."},
        **REDIS_503,
    },
)
def put_stream(
    name: Name,
    body: StreamIn,
    request: Request,
    response: Response,
    user: CurrentUser,
    db: ReadSessionDep,
    settings: SettingsDep,
) -> StreamOut:
    """Create a stream or change its model and top_k (images already appended use the model a worker
    finds when it takes them)."""
    _check_model(db, user.id, body.model, settings)
    db.rollback()  # no read transaction held while Redis is asked
    queue = _queue(request)
    with _redis(settings):
        queue.ensure_group()
    for attempt in range(2):  # the same name created twice at once: the loser changes the winner's
        try:
            with session_scope(request.app.state.sessions) as writer:
                stream = writer.scalar(select(Stream).where(Stream.user_id == user.id, Stream.name == name))
                if stream is None:
                    quotas.lock_user(writer, user.id)  # two creations at once cannot both take the last one
                    quotas.check_streams(writer, user.id, settings)
                    stream = Stream(user_id=user.id, name=name, model=body.model, top_k=body.top_k, appended=0)
                    writer.add(stream)
                    response.status_code = status.HTTP_201_CREATED
                else:
                    stream.model, stream.top_k = body.model, body.top_k
            break
        except IntegrityError:
            if attempt:
                raise
    return StreamOut(**_stats(request, db, stream))


@router.get("", responses=REDIS_503)
def list_streams(request: Request, user: CurrentUser, db: ReadSessionDep, settings: SettingsDep) -> StreamsOut:
    """Your streams (by name) with their counts."""
    streams = list(db.scalars(select(Stream).where(Stream.user_id == user.id).order_by(Stream.name)))
    with _redis(settings):
        _queue(request).ping()
        return StreamsOut(streams=_summaries(request, db, streams))


@router.get("/{name}", responses=NOT_FOUND_404)
def get_stream(name: Name, request: Request, user: CurrentUser, db: ReadSessionDep) -> StreamOut:
    """Counts, images/s over the last 10 s, latency from append to result (p50/p95 of the last 1000) and
    the stream workers alive (read from the database: Redis not needed)."""
    stream = _owned(db, user.id, name)
    return StreamOut(**_stats(request, db, stream))


@router.delete("/{name}", status_code=204, responses=NOT_FOUND_404)
def delete_stream(name: Name, request: Request, user: CurrentUser, db: ReadSessionDep) -> Response:
    """The stream, its results and dead letters; its images still queued are dropped by the workers (and
    their bytes, should Redis have lost their entries, by the purge)."""
    stream_id = _owned(db, user.id, name).id
    db.rollback()
    with session_scope(request.app.state.sessions) as writer:
        writer.execute(delete(Prediction).where(Prediction.stream_id == stream_id))
        writer.execute(delete(StreamImage).where(StreamImage.stream_id == stream_id))
        writer.execute(delete(Stream).where(Stream.id == stream_id))
    return Response(status_code=204)


def _streams_store(request: Request):
    state = request.app.state
    if getattr(state, "streams_store", None) is None:
        state.streams_store = make_store(state.settings, "streams")
    return state.streams_store


def _check_image(path, max_pixels: int) -> None:
    from tejas.images import ImageError, sniff_image

    with open(path, "rb") as f:
        data = f.read()
    try:
        sniff_image(data, max_pixels)
    except ImageError as exc:
        raise HTTPException(400, f"Not accepted as an image: {exc}.") from None


def _holds_image(readers, user_id: str, sha: str) -> bool:
    with session_scope(readers) as db:
        return (
            db.scalar(
                select(func.count())
                .select_from(UserBlob)
                .where(UserBlob.user_id == user_id, UserBlob.sha256 == sha, UserBlob.kind == "image")
            )
            > 0
        )


def _check_pending(readers, user_id: str, settings: Settings) -> None:
    """429 when the user's streams hold TEJAS_MAX_STREAM_PENDING images not done yet (checked before each
    append: appends of one user sent at the same moment can pass it together)."""
    with session_scope(readers) as db:
        quotas.check_stream_pending(quotas.stream_images_pending(db, user_id), settings)


def _lookup(readers, user_id: str, name: str, key: str | None) -> tuple[Stream, bool]:
    """The user's stream (404) and whether `key` already has a result in it."""
    with session_scope(readers) as db:
        stream = _owned(db, user_id, name)
        done = (
            key is not None
            and db.scalar(select(func.count()).where(Prediction.stream_id == stream.id, Prediction.image_key == key))
            > 0
        )
        return stream, done


def _enqueue(request: Request, stream_id: str, user_id: str, key: str, blob: str, store: str) -> str | None:
    """Put an image already in the ledger into Redis: its entry id, or None when Redis stopped answering
    meanwhile (the image stays owed: the server or a worker enqueues it once Redis answers again)."""
    import redis

    try:
        entry = _queue(request).append(stream_id, user_id, key, blob, store)
    except redis.RedisError as exc:  # down, or answering an error (out of memory, a read-only replica)
        log.warning("stream %s: image %r kept for later, Redis failed: %s", stream_id, key, exc)
        return None
    ledger.attach_entry(request.app.state.sessions, stream_id, key, blob, entry)
    return entry


@router.post(
    "/{name}/images",
    status_code=202,
    openapi_extra=raw_body(
        "one image's bytes (PNG, JPEG, WebP, GIF or BMP; checked by content); empty with ?blob=", required=False
    ),
    responses={
        400: {"description": "Not an image, or both a body and ?blob=."},
        404: {"description": "No such stream (or ?blob= image) among yours."},
        413: {"description": "Over TEJAS_MAX_IMAGE_BYTES."},
        429: {"description": "TEJAS_MAX_STREAM_PENDING of your images are waiting in your streams."},
        **REDIS_503,
    },
)
async def append_image(
    name: Name,
    request: Request,
    user: CurrentUser,
    settings: SettingsDep,
    key: Annotated[
        str | None, Query(pattern=KEY, description="the image's key in the stream; default its sha256")
    ] = None,
    blob: Annotated[
        str | None, Query(pattern=SHA256, description="an image you uploaded with PUT /api/blobs (send no body)")
    ] = None,
) -> AppendOut:
    """Append one image; a worker classifies it and writes its result once per key (a key appended again
    adds nothing: `duplicate`)."""
    from tejas.limits import DEFAULT_LIMITS

    state = request.app.state
    stream, done = await run_in_threadpool(_lookup, state.readers, user.id, name, key)
    queue = _queue(request)
    if blob is not None:
        async for chunk in request.stream():  # the first chunk tells; the rest is never read
            if chunk:
                raise HTTPException(
                    400, "Send either the image's bytes or ?blob=<sha256> with an empty body, not both."
                )
        if not await run_in_threadpool(_holds_image, state.readers, user.id, blob):
            raise HTTPException(404, "No such image among the blobs you uploaded (PUT /api/blobs/{sha256}?kind=image).")
        key = key or blob
        await run_in_threadpool(_check_pending, state.readers, user.id, settings)
        with _redis(settings):
            await run_in_threadpool(queue.ping)
        new, entry = await run_in_threadpool(ledger.admit, state.sessions, stream.id, key, blob, "blobs")
        if not new:
            return AppendOut(key=key, entry=entry, duplicate=True)
        entry = await run_in_threadpool(_enqueue, request, stream.id, user.id, key, blob, "blobs")
        return AppendOut(key=key, entry=entry, duplicate=False)

    await run_in_threadpool(_check_pending, state.readers, user.id, settings)  # before the bytes are read
    with _redis(settings):
        await run_in_threadpool(queue.ping)  # before the bytes are stored: nothing to clean up after a 503
    async with received_body(request, settings, settings.max_image_bytes, "an image") as (path, sha, _size):
        await run_in_threadpool(_check_image, path, DEFAULT_LIMITS.max_pixels)
        if key is None:
            key = sha
            stream, done = await run_in_threadpool(_lookup, state.readers, user.id, name, key)
        if done:
            return AppendOut(key=key, entry=None, duplicate=True)
        store = _streams_store(request)
        name_in_store = secrets.token_hex(32)  # its own name: the worker deletes it when its entry is done
        # the ledger's row before the bytes: bytes no row names are orphans (the purge deletes them)
        new, entry = await run_in_threadpool(ledger.admit, state.sessions, stream.id, key, name_in_store, "streams")
        if not new:
            return AppendOut(key=key, entry=entry, duplicate=True)
        try:
            await run_in_threadpool(store.put_file, name_in_store, path)
        except BaseException:
            await run_in_threadpool(ledger.withdraw, state.sessions, stream.id, key, name_in_store)
            raise
    entry = await run_in_threadpool(_enqueue, request, stream.id, user.id, key, name_in_store, "streams")
    return AppendOut(key=key, entry=entry, duplicate=False)


@router.get("/{name}/results", responses=NOT_FOUND_404)
def results(
    name: Name,
    user: CurrentUser,
    db: ReadSessionDep,
    after: Annotated[int, Query(ge=0, le=2**62, description="results after this id (the previous page's next)")] = 0,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    newest: Annotated[
        bool, Query(description="the `limit` newest results after `after`, newest first (`next`: the newest id)")
    ] = False,
) -> ResultsOut:
    """The stream's results, oldest first, or the newest ones first (read from the database: Redis not
    needed). A view that shows the latest results and then follows /events passes `next` as `after`."""
    stream = _owned(db, user.id, name)
    order = Prediction.id.desc() if newest else Prediction.id
    rows = list(
        db.scalars(
            select(Prediction)
            .where(Prediction.stream_id == stream.id, Prediction.id > after)
            .order_by(order)
            .limit(limit)
        )
    )
    last = max((r.id for r in rows), default=after)
    return ResultsOut(results=[_result(r) for r in rows], next=last, more=len(rows) == limit)


def _events_after(request: Request, user_id: str, name: str, stream_id: str, after: int, stats: bool):
    """(results after `after`, stats or None); (None, None) when the stream is gone."""
    with session_scope(request.app.state.readers) as db:
        stream = db.scalar(select(Stream).where(Stream.user_id == user_id, Stream.name == name, Stream.id == stream_id))
        if stream is None:
            return None, None
        rows = list(
            db.scalars(
                select(Prediction)
                .where(Prediction.stream_id == stream_id, Prediction.id > after)
                .order_by(Prediction.id)
                .limit(500)
            )
        )
        out = _stats(request, db, stream) if stats else None
        return [_result(r) for r in rows], out


@router.get(
    "/{name}/events",
    response_class=EventSourceResponse,
    responses={200: {"content": {"text/event-stream": {}}}, **NOT_FOUND_404},
)
async def events(
    name: Name,
    request: Request,
    user: CurrentUser,
    db: ReadSessionDep,
    after: Annotated[
        int | None,
        Query(ge=0, le=2**62, description="replay results after this id (or Last-Event-ID); default: new ones"),
    ] = None,
    last_event_id: LastEventId = None,
) -> EventSourceResponse:
    """Server-sent events: `prediction` (id = the result's id) as results are written, `stats` every 2 s."""
    stream = _owned(db, user.id, name)
    if last_event_id is not None:
        cursor = last_event_id
    elif after is not None:
        cursor = after
    else:
        cursor = db.scalar(select(func.max(Prediction.id)).where(Prediction.stream_id == stream.id)) or 0
    stream_id = stream.id
    db.close()

    async def feed():
        nonlocal cursor
        loop = asyncio.get_running_loop()
        next_stats = 0.0
        while True:
            due = loop.time() >= next_stats
            rows, stats = await run_in_threadpool(_events_after, request, user.id, name, stream_id, cursor, due)
            if rows is None:
                return  # deleted meanwhile
            for row in rows:
                cursor = row.id
                yield {"id": str(row.id), "event": "prediction", "data": row.model_dump_json(by_alias=True)}
            if stats is not None:
                next_stats = loop.time() + 2.0
                yield {"event": "stats", "data": json.dumps(stats)}
            if len(rows) < 500:
                if await request.is_disconnected():
                    return
                await asyncio.sleep(0.5)

    return EventSourceResponse(feed(), ping=15, headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"})


@router.get("/{name}/dead", responses=NOT_FOUND_404)
def dead(
    name: Name,
    user: CurrentUser,
    db: ReadSessionDep,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> DeadOut:
    """Images that could not be classified after TEJAS_STREAM_MAX_DELIVERIES deliveries, with the reason,
    oldest first (kept until the stream is deleted or the retention period passes; read from the database)."""
    stream = _owned(db, user.id, name)
    letters = ledger.dead_letters(db, stream.id, limit)
    return DeadOut(
        entries=[
            DeadLetter(key=row.image_key, error=row.error or "", deliveries=row.deliveries, at=iso(row.dead_at))
            for row in letters
        ]
    )
