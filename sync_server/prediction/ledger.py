"""The database side of prediction streams: the ledger of what each stream still owes (docs/predictions.md,
"When Redis loses its data").

Every image accepted into a stream has a `stream_images` row from before its bytes are stored until its
result is written (the row is deleted in the same transaction) or it is given up on (the row stays as a
dead letter with its error until the retention period passes). Redis only carries the work: a pending row
whose Redis entry is gone — Redis restarted without persistence, or the append failed between the
database and Redis — is enqueued again by `requeue_lost`, which the server and every stream worker run at
start and every TEJAS_STREAM_REQUEUE_SECONDS. Several of them at once enqueue each image once (a row is
taken by a conditional UPDATE); a duplicate that slips through anyway is absorbed by the results' unique
key on (stream, image key).
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta

from sqlalchemy import delete, func, select, tuple_, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from ..core.clock import utcnow
from ..core.db import session_scope
from ..models import Prediction, Stream, StreamImage

log = logging.getLogger("tejas.streams")

PAGE = 500

__all__ = [
    "admit",
    "adopt_entries",
    "attach_entry",
    "counts",
    "dead_letters",
    "give_up",
    "purge_orphans",
    "requeue_lost",
    "trim_dead",
    "withdraw",
]


def admit(sessions: sessionmaker[Session], stream_id: str, key: str, blob: str, store: str) -> tuple[bool, str | None]:
    """Record an image appended to a stream (before its bytes are stored). (True, None): new, the stream's
    `appended` counted; (False, its entry or None): the key is already owed (a duplicate: nothing changes) or
    already has a result. A key that was dead-lettered is owed again (its dead letter goes; `appended` stays:
    it counted that image once already)."""
    now = utcnow()
    for _attempt in range(2):  # the same key admitted twice at once: the loser sees the winner's row
        try:
            with session_scope(sessions) as db:
                if db.scalar(
                    select(func.count()).where(Prediction.stream_id == stream_id, Prediction.image_key == key)
                ):
                    return False, None
                row = db.get(StreamImage, (stream_id, key))
                if row is not None and row.state == "pending":
                    return False, row.entry
                if row is not None:  # dead: tried again with these bytes
                    row.state, row.blob, row.store, row.entry = "pending", blob, store, None
                    row.error, row.deliveries, row.dead_at = None, 0, None
                    row.appended_at = row.enqueued_at = now
                    return True, None
                db.add(
                    StreamImage(
                        stream_id=stream_id,
                        image_key=key,
                        state="pending",
                        blob=blob,
                        store=store,
                        appended_at=now,
                        enqueued_at=now,
                        deliveries=0,
                    )
                )
                db.execute(update(Stream).where(Stream.id == stream_id).values(appended=Stream.appended + 1))
                db.flush()
            return True, None
        except IntegrityError:
            continue
    return False, None


def withdraw(sessions: sessionmaker[Session], stream_id: str, key: str, blob: str) -> None:
    """Undo `admit` for an append that failed before its bytes were stored (the stream's count too)."""
    with session_scope(sessions) as db:
        gone = db.execute(
            delete(StreamImage).where(
                StreamImage.stream_id == stream_id, StreamImage.image_key == key, StreamImage.blob == blob
            )
        ).rowcount
        if gone:
            db.execute(update(Stream).where(Stream.id == stream_id).values(appended=Stream.appended - 1))


def attach_entry(sessions: sessionmaker[Session], stream_id: str, key: str, blob: str, entry: str) -> None:
    """The Redis entry that now carries the image (what a duplicate append answers)."""
    with session_scope(sessions) as db:
        db.execute(
            update(StreamImage)
            .where(StreamImage.stream_id == stream_id, StreamImage.image_key == key, StreamImage.blob == blob)
            .values(entry=entry)
        )


def counts(db: Session, stream_ids: list[str]) -> dict[str, tuple[int, int]]:
    """stream id -> (pending, dead)."""
    out = {sid: [0, 0] for sid in stream_ids}
    if stream_ids:
        rows = db.execute(
            select(StreamImage.stream_id, StreamImage.state, func.count())
            .where(StreamImage.stream_id.in_(stream_ids))
            .group_by(StreamImage.stream_id, StreamImage.state)
        )
        for stream_id, state, n in rows:
            out[stream_id][0 if state == "pending" else 1] += n
    return {sid: (p, d) for sid, (p, d) in out.items()}


def dead_letters(db: Session, stream_id: str, limit: int) -> list[StreamImage]:
    """The stream's dead letters, oldest first."""
    return list(
        db.scalars(
            select(StreamImage)
            .where(StreamImage.stream_id == stream_id, StreamImage.state == "dead")
            .order_by(StreamImage.dead_at, StreamImage.image_key)
            .limit(limit)
        )
    )


def give_up(db: Session, stream_id: str, key: str, error: str, deliveries: int) -> None:
    """Make an owed image a dead letter (within the caller's transaction); an image without a row (appended
    before the ledger existed) gets one, unless it has a result."""
    now = utcnow()
    done = db.execute(
        update(StreamImage)
        .where(StreamImage.stream_id == stream_id, StreamImage.image_key == key, StreamImage.state == "pending")
        .values(state="dead", error=error, deliveries=deliveries, dead_at=now)
    ).rowcount
    if done or db.get(StreamImage, (stream_id, key)) is not None:
        return
    if db.get(Stream, stream_id) is None or db.scalar(
        select(func.count()).where(Prediction.stream_id == stream_id, Prediction.image_key == key)
    ):
        return
    db.add(
        StreamImage(
            stream_id=stream_id,
            image_key=key,
            state="dead",
            blob="",
            store="streams",
            appended_at=now,
            enqueued_at=now,
            error=error,
            deliveries=deliveries,
            dead_at=now,
        )
    )


def requeue_lost(sessions: sessionmaker[Session], queue, grace_s: float, now: datetime | None = None) -> int:
    """Enqueue again every owed image whose Redis entry is gone (last enqueued over `grace_s` ago, so an
    append between its row and its entry is left alone); how many were enqueued."""
    now = now or utcnow()
    cutoff = now - timedelta(seconds=grace_s)
    requeued = 0
    after: tuple[str, str] = ("", "")
    asked_redis = False  # nothing owed, nothing asked: a server without streams never needs Redis here
    while True:
        with session_scope(sessions) as db:
            rows = db.execute(
                select(
                    StreamImage.stream_id,
                    StreamImage.image_key,
                    StreamImage.entry,
                    StreamImage.enqueued_at,
                    StreamImage.blob,
                    StreamImage.store,
                    StreamImage.appended_at,
                    Stream.user_id,
                )
                .join(Stream, Stream.id == StreamImage.stream_id)
                .where(
                    StreamImage.state == "pending",
                    StreamImage.enqueued_at <= cutoff,
                    tuple_(StreamImage.stream_id, StreamImage.image_key) > after,
                )
                .order_by(StreamImage.stream_id, StreamImage.image_key)
                .limit(PAGE)
            ).all()
        if not rows:
            if requeued:
                log.warning("streams: enqueued %d image(s) again whose Redis entries were gone", requeued)
            return requeued
        if not asked_redis:
            queue.ensure_group()  # a Redis that came back empty has no group: entries added now must be read
            asked_redis = True
        after = (rows[-1].stream_id, rows[-1].image_key)
        live = queue.live([(r.entry, r.stream_id, r.image_key) for r in rows if r.entry])
        for r in rows:
            if r.entry and r.entry in live:
                continue
            # take the row: of several recoverers at once, only the one whose UPDATE matched enqueues it
            taken_at = utcnow()
            with session_scope(sessions) as db:
                taken = db.execute(
                    update(StreamImage)
                    .where(
                        StreamImage.stream_id == r.stream_id,
                        StreamImage.image_key == r.image_key,
                        StreamImage.state == "pending",
                        StreamImage.enqueued_at == r.enqueued_at,
                        _same(StreamImage.entry, r.entry),
                    )
                    .values(enqueued_at=taken_at)
                ).rowcount
            if not taken:
                continue
            entry = queue.append(r.stream_id, r.user_id, r.image_key, r.blob, r.store, at=r.appended_at)
            attach_entry(sessions, r.stream_id, r.image_key, r.blob, entry)
            requeued += 1


def adopt_entries(sessions: sessionmaker[Session], queue) -> int:
    """Rows for the entries Redis holds that have none (images queued before this ledger existed, by a
    server before the upgrade): from then on they are owed like any other, and their bytes are no orphans.
    The server runs this once at start and every worker when it starts; how many rows were added."""
    adopted, start = 0, "-"
    while True:
        page = queue.entries(start, PAGE)
        if not page:
            return adopted
        for _attempt in range(2):  # another process adopting the same page at once: the second pass skips it
            try:
                adopted += _adopt(sessions, page)
                break
            except IntegrityError:
                continue
        if len(page) < PAGE:
            return adopted
        start = "(" + page[-1][0]


def _adopt(sessions: sessionmaker[Session], page: list[tuple[str, dict]]) -> int:
    entries = [(entry_id, f) for entry_id, f in page if f.get("stream") and f.get("key") and f.get("blob")]
    if not entries:
        return 0
    pairs = list({(f["stream"], f["key"]) for _, f in entries})
    with session_scope(sessions) as db:
        streams = set(db.scalars(select(Stream.id).where(Stream.id.in_({sid for sid, _ in pairs}))))
        known = set()
        for table in (Prediction, StreamImage):
            key = tuple_(table.stream_id, table.image_key)
            known |= {tuple(row) for row in db.execute(select(table.stream_id, table.image_key).where(key.in_(pairs)))}
        added = 0
        for entry_id, f in entries:
            pair = (f["stream"], f["key"])
            if f["stream"] not in streams or pair in known:
                continue
            known.add(pair)
            try:
                at = datetime.fromtimestamp(int(f.get("at", "")) / 1000, UTC).replace(tzinfo=None)
            except ValueError:
                at = utcnow()
            db.add(
                StreamImage(
                    stream_id=pair[0],
                    image_key=pair[1],
                    state="pending",
                    blob=f["blob"],
                    store=f.get("store") or "streams",
                    entry=entry_id,
                    appended_at=at,
                    enqueued_at=utcnow(),
                    deliveries=0,
                )
            )
            added += 1
        db.flush()
    return added


def _same(column, value):
    return column.is_(None) if value is None else column == value


def trim_dead(sessions: sessionmaker[Session], before: datetime) -> int:
    """Delete dead letters made before `before` (the retention period)."""
    with session_scope(sessions) as db:
        return db.execute(delete(StreamImage).where(StreamImage.state == "dead", StreamImage.dead_at < before)).rowcount


def purge_orphans(sessions: sessionmaker[Session], store) -> int:
    """Delete image bytes in the streams area that no owed image names (their stream was deleted while Redis
    had lost its entries, a crash between a result and the deletion of its bytes, …). Safe beside appends:
    an image's row is written before its bytes, and the store is listed before the rows are read."""
    names = list(store.names())
    if not names:
        return 0
    owed: set[str] = set()
    with session_scope(sessions) as db:
        for start in range(0, len(names), PAGE):
            chunk = names[start : start + PAGE]
            owed.update(
                db.scalars(
                    select(StreamImage.blob).where(
                        StreamImage.store == "streams", StreamImage.state == "pending", StreamImage.blob.in_(chunk)
                    )
                )
            )
    orphans = [name for name in names if name not in owed]
    for name in orphans:
        store.delete(name)
    if orphans:
        log.warning("streams: deleted %d stored image(s) no stream owes any more", len(orphans))
    return len(orphans)
