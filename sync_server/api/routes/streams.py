"""Prediction streams (docs/predictions.md, "Streams"): create one with a model, append images to it (each
goes through Redis to `tejas stream-worker` processes), read its results, their events and its dead
letters. HTTP only: the operations are prediction/stream_service.py's (changes) and
prediction/stream_reads.py's (reads, and the answers' shapes). Every query filters on the signed-in user:
another user's stream name answers 404 like an unknown one, and is checked before Redis is asked
anything. Routes that need Redis answer 503 saying so when it does not answer; results and their events
are read from the database only.
"""

from __future__ import annotations

import contextlib
from typing import Annotated

from fastapi import APIRouter, HTTPException, Path, Query, Request, Response, status
from pydantic import BaseModel, ConfigDict, Field
from sse_starlette.sse import EventSourceResponse
from starlette.concurrency import run_in_threadpool

from ...core.config import Settings
from ...prediction import stream_reads as reads
from ...prediction.models import REFERENCE, ModelNotFound, ModelUnusable
from ...prediction.stream_reads import NOT_FOUND, DeadOut, ResultsOut, StreamNotFound, StreamOut, StreamsOut
from ...prediction.stream_service import AppendOut, ImageNotHeld, ImageRefused, StreamService
from ...prediction.streams import RedisUnavailable, unavailable
from ...schemas import SHA256
from ..bodies import raw_body, received_body
from ..deps import CurrentUser, LastEventId, ReadSessionDep, SettingsDep

router = APIRouter(prefix="/api/streams", tags=["streams"])

NAME = r"^[A-Za-z0-9_-][A-Za-z0-9_.-]{0,99}$"
KEY = r"^[^\x00-\x1f\x7f]{1,300}$"  # any printable text up to 300 characters (a file name, a frame id)

Name = Annotated[str, Path(pattern=NAME, description="the stream's name, one of yours")]
REDIS_503 = {503: {"description": "Redis (TEJAS_REDIS_URL) does not answer: streams need it."}}
NOT_FOUND_404 = {404: {"description": NOT_FOUND}}


class StreamIn(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, json_schema_extra={"examples": [{"model": "job:…"}]})

    model: str = Field(pattern=REFERENCE, description="job:<id>, model:<id> or project:<id>")
    top_k: int = Field(3, ge=1, le=100, description="classes kept per image")


@contextlib.contextmanager
def _answers(settings: Settings):
    """The services' refusals as status codes with their sentences; Redis not answering → 503 with the
    sentence saying where it was looked for."""
    import redis

    try:
        yield
    except (StreamNotFound, ImageNotHeld) as exc:
        raise HTTPException(status.HTTP_404_NOT_FOUND, str(exc)) from None
    except ModelUnusable as exc:
        raise HTTPException(422, str(exc)) from None
    except ModelNotFound as exc:
        raise HTTPException(404, str(exc)) from None
    except ImageRefused as exc:
        raise HTTPException(400, str(exc)) from None
    except (redis.ConnectionError, redis.TimeoutError) as exc:
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, str(unavailable(settings, exc))) from None
    except RedisUnavailable as exc:
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, str(exc)) from None


def _owned(db, user_id: str, name: str):
    try:
        return reads.owned(db, user_id, name)
    except StreamNotFound as exc:
        raise HTTPException(status.HTTP_404_NOT_FOUND, str(exc)) from None


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
    with _answers(settings):
        stream, created = StreamService(request.app.state).put(db, user.id, name, body.model, body.top_k)
    if created:
        response.status_code = status.HTTP_201_CREATED
    return StreamOut(**reads.stats(db, stream, settings))


@router.get("", responses=REDIS_503)
def list_streams(request: Request, user: CurrentUser, db: ReadSessionDep, settings: SettingsDep) -> StreamsOut:
    """Your streams (by name) with their counts."""
    streams = reads.user_streams(db, user.id)
    with _answers(settings):
        StreamService(request.app.state).queue.ping()
        return StreamsOut(streams=reads.summaries(db, streams))


@router.get("/{name}", responses=NOT_FOUND_404)
def get_stream(name: Name, request: Request, user: CurrentUser, db: ReadSessionDep) -> StreamOut:
    """Counts, images/s over the last 10 s, latency from append to result (p50/p95 of the last 1000) and
    the stream workers alive (read from the database: Redis not needed)."""
    stream = _owned(db, user.id, name)
    return StreamOut(**reads.stats(db, stream, request.app.state.settings))


@router.delete("/{name}", status_code=204, responses=NOT_FOUND_404)
def delete_stream(name: Name, request: Request, user: CurrentUser, db: ReadSessionDep) -> Response:
    """The stream, its results and dead letters; its images still queued are dropped by the workers (and
    their bytes, should Redis have lost their entries, by the purge)."""
    with _answers(request.app.state.settings):
        StreamService(request.app.state).delete(db, user.id, name)
    return Response(status_code=204)


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
    service = StreamService(request.app.state)
    with _answers(settings):
        stream, done = await run_in_threadpool(service.lookup, user.id, name, key)
        if blob is not None:
            async for chunk in request.stream():  # the first chunk tells; the rest is never read
                if chunk:
                    raise HTTPException(
                        400, "Send either the image's bytes or ?blob=<sha256> with an empty body, not both."
                    )
            return await run_in_threadpool(service.append_blob, stream, user.id, key, blob)
        await run_in_threadpool(service.check_room, user.id)  # before the bytes are read
        async with received_body(request, settings, settings.max_image_bytes, "an image") as (path, sha, _):
            return await run_in_threadpool(service.append_upload, stream, done, user.id, name, key, path, sha)


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
    return reads.results(db, stream, after, limit, newest)


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
        cursor = reads.latest_result(db, stream)
    stream_id = stream.id
    db.close()
    state = request.app.state
    feed = reads.follow(state.readers, state.settings, user.id, name, stream_id, cursor, request.is_disconnected)
    return EventSourceResponse(feed, ping=15, headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"})


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
    return reads.dead_letters(db, stream, limit)
