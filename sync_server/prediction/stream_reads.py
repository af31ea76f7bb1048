"""What the stream routes read (docs/predictions.md, "Streams"), from the database only (Redis is not
needed): a user's stream by name, its counts, images/s and latency, its results (a page, or those after an
event's cursor) and its dead letters, in the shapes the API answers with. Every query filters on the user:
another user's stream is not found like an unknown one."""

from __future__ import annotations

import asyncio
import json
import math
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import datetime, timedelta
from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker
from starlette.concurrency import run_in_threadpool

from ..core.clock import iso, utcnow
from ..core.config import Settings
from ..core.db import session_scope
from ..jobs import live_workers
from ..models import Prediction, Stream
from . import ledger

NOT_FOUND = "No such stream among yours."
RATE_WINDOW_S = 10
LATENCY_ROWS = 1000
EVENTS_PAGE = 500


class StreamNotFound(LookupError):
    """No such stream among the user's; str() is the sentence for the user."""

    def __init__(self, message: str = NOT_FOUND):
        super().__init__(message)


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


def owned(db: Session, user_id: str, name: str) -> Stream:
    """The user's stream of that name (StreamNotFound)."""
    stream = db.scalar(select(Stream).where(Stream.user_id == user_id, Stream.name == name))
    if stream is None:
        raise StreamNotFound()
    return stream


def _ms(moment: datetime) -> str:
    return moment.isoformat(timespec="milliseconds") + "Z"


def _percentile(sorted_values: list[float], q: float) -> float | None:
    if not sorted_values:
        return None
    return round(sorted_values[min(len(sorted_values) - 1, max(0, math.ceil(q * len(sorted_values)) - 1))], 1)


def summaries(db: Session, streams: list[Stream]) -> list[StreamSummary]:
    """The streams with their counts (for the list of a user's streams)."""
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


def user_streams(db: Session, user_id: str) -> list[Stream]:
    """The user's streams, by name."""
    return list(db.scalars(select(Stream).where(Stream.user_id == user_id).order_by(Stream.name)))


def stats(db: Session, stream: Stream, settings: Settings) -> dict:
    """The stream's counts, images/s over the last RATE_WINDOW_S seconds and latency percentiles (from
    appended to written) over its last LATENCY_ROWS results."""
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


def results(db: Session, stream: Stream, after: int, limit: int, newest: bool) -> ResultsOut:
    """A page of the stream's results after the id `after`: oldest first, or the `limit` newest first."""
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


def latest_result(db: Session, stream: Stream) -> int:
    """The id of the stream's newest result (0 when none): where a feed of new results starts."""
    return db.scalar(select(func.max(Prediction.id)).where(Prediction.stream_id == stream.id)) or 0


def events_after(
    readers: sessionmaker[Session],
    settings: Settings,
    user_id: str,
    name: str,
    stream_id: str,
    after: int,
    with_stats: bool,
):
    """(up to EVENTS_PAGE results after `after`, stats or None); (None, None) when the stream is gone."""
    with session_scope(readers) as db:
        stream = db.scalar(select(Stream).where(Stream.user_id == user_id, Stream.name == name, Stream.id == stream_id))
        if stream is None:
            return None, None
        rows = list(
            db.scalars(
                select(Prediction)
                .where(Prediction.stream_id == stream_id, Prediction.id > after)
                .order_by(Prediction.id)
                .limit(EVENTS_PAGE)
            )
        )
        out = stats(db, stream, settings) if with_stats else None
        return [_result(r) for r in rows], out


async def follow(
    readers: sessionmaker[Session],
    settings: Settings,
    user_id: str,
    name: str,
    stream_id: str,
    cursor: int,
    disconnected: Callable[[], Awaitable[bool]],
) -> AsyncIterator[dict]:
    """The stream's server-sent events after `cursor`: `prediction` (id = the result's id) as results are
    written, `stats` every 2 s; until the stream is deleted or `disconnected()` says the client went."""
    loop = asyncio.get_running_loop()
    next_stats = 0.0
    while True:
        due = loop.time() >= next_stats
        rows, out = await run_in_threadpool(events_after, readers, settings, user_id, name, stream_id, cursor, due)
        if rows is None:
            return  # deleted meanwhile
        for row in rows:
            cursor = row.id
            yield {"id": str(row.id), "event": "prediction", "data": row.model_dump_json(by_alias=True)}
        if out is not None:
            next_stats = loop.time() + 2.0
            yield {"event": "stats", "data": json.dumps(out)}
        if len(rows) < EVENTS_PAGE:
            if await disconnected():
                return
            await asyncio.sleep(0.5)


def dead_letters(db: Session, stream: Stream, limit: int) -> DeadOut:
    """The stream's dead letters with their reasons, oldest first."""
    letters = ledger.dead_letters(db, stream.id, limit)
    return DeadOut(
        entries=[
            DeadLetter(key=row.image_key, error=row.error or "", deliveries=row.deliveries, at=iso(row.dead_at))
            for row in letters
        ]
    )
