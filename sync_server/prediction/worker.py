"""`tejas stream-worker`: classify the images of prediction streams (docs/predictions.md, "Streams").

One consumer of the group TEJAS_STREAM_GROUP on the Redis stream TEJAS_STREAM_KEY. At start it reads its
own pending entries (what it had been given before it was killed), then new ones. Entries idle longer
than TEJAS_STREAM_CLAIM_IDLE_SECONDS (a dead worker's, or ones that failed) are taken over with
XAUTOCLAIM. A batch is grouped by stream, each stream's model loaded once (ModelCache), the results
inserted with ON CONFLICT DO NOTHING on (stream, image key) and committed, and only then acknowledged:
an entry delivered twice (its worker died after the commit) still has one row. The same transaction
deletes the image's ledger row (ledger.py: the database's list of what each stream owes). An entry that
fails (undecodable image, model gone, image bytes gone) stays pending with its error; once delivered
TEJAS_STREAM_MAX_DELIVERIES times its ledger row becomes a dead letter. A stream's image bytes (the
"streams" area of the blob store) are deleted when its entry is done, whichever way (row, dead letter,
stream deleted), before the acknowledgement: a crash in between leaves an entry whose row already exists.
At start and every TEJAS_STREAM_REQUEUE_SECONDS the worker enqueues again the owed images whose Redis
entries are gone (a Redis restarted without persistence), as the server does.

SIGTERM/SIGINT: the current batch is finished, the worker deregisters and exits 0.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import socket
import sys
import threading
import time
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from sqlalchemy import delete, select, tuple_
from sqlalchemy.exc import IntegrityError

from ..core.clock import utcnow
from ..core.config import Settings
from ..core.db import make_engine, make_sessionmaker, session_scope
from ..jobs import forget_worker, register_worker
from ..models import Prediction, Stream, StreamImage
from ..storage import make_store
from . import ledger
from .models import ModelCache, ModelNotFound, model_file
from .streams import StreamQueue, redacted

log = logging.getLogger("tejas.streams")

BLOCK_MS = 1000  # a blocked read returns this often to look at the stop flag, the clock, claims
DEAD_TRIM_EVERY_S = 600.0


@dataclass
class Entry:
    id: str
    fields: dict
    deliveries: int = 1
    data: bytes | None = None
    error: str | None = None
    crashed: bool = False  # given out too often with no result and no error: its workers died on it
    result: dict | None = field(default=None, repr=False)

    @property
    def stream(self) -> str:
        return self.fields.get("stream", "")

    @property
    def key(self) -> str:
        return self.fields.get("key", "")

    @property
    def appended_at(self) -> datetime:
        try:
            return datetime.fromtimestamp(int(self.fields["at"]) / 1000, UTC).replace(tzinfo=None)
        except (KeyError, ValueError):
            return utcnow()


def insert_ignoring_duplicates(dialect: str):
    """INSERT … ON CONFLICT DO NOTHING of the database's dialect."""
    if dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert
    return insert


class StreamWorker:
    def __init__(self, settings: Settings, name: str):
        self.settings, self.name = settings, name
        self.engine = make_engine(settings)
        self.sessions = make_sessionmaker(self.engine)
        # on SQLite, lookups in a plain BEGIN: they need not queue for the write lock behind the server's appends
        sqlite = self.engine.dialect.name == "sqlite"
        self.read_engine = make_engine(settings, readonly=True) if sqlite else self.engine
        self.readers = make_sessionmaker(self.read_engine)
        self.insert = insert_ignoring_duplicates(self.engine.dialect.name)
        self.queue = StreamQueue(settings, block_s=BLOCK_MS / 1000)
        self.images = make_store(settings, "streams")
        self.blobs = make_store(settings)
        self.jobs_store = make_store(settings, "jobs")
        self.models = ModelCache(size=4, threads=settings.prediction_threads)
        self.stopping = threading.Event()
        self.written = 0

    # -------------------------------------------------------------------------------------------- loop

    def run(self) -> int:
        log.warning(
            "stream worker %s: reading %s (group %s) at %s",
            self.name,
            self.settings.stream_key,
            self.settings.stream_group,
            redacted(self.settings.redis_url),
        )
        self._beat()
        own_cursor: str | None = "0"  # own pending entries first, then new ones
        claim_cursor, next_claim = "0-0", 0.0
        next_beat = next_trim = next_requeue = 0.0
        adopted = False
        failures = 0
        while not self.stopping.is_set():
            try:
                now = time.monotonic()
                if now >= next_beat:
                    self._beat()
                    next_beat = now + self.settings.job_heartbeat_seconds
                if now >= next_trim:
                    self._trim_dead()
                    next_trim = now + DEAD_TRIM_EVERY_S
                if now >= next_requeue:
                    next_requeue = now + self.settings.stream_requeue_seconds
                    if not adopted:  # entries queued before the ledger existed get their rows, once
                        ledger.adopt_entries(self.sessions, self.queue)
                        adopted = True
                    ledger.requeue_lost(self.sessions, self.queue, self.settings.stream_requeue_seconds)
                batch = self.settings.stream_batch_size
                if own_cursor is not None:
                    entries = self.queue.read(self.name, own_cursor, batch)
                    if not entries:
                        own_cursor = None
                        continue
                    own_cursor = entries[-1][0]
                    self.process(entries)
                elif now >= next_claim:
                    claim_cursor, entries = self.queue.claim(self.name, claim_cursor, batch)
                    if claim_cursor == "0-0" or not entries:
                        next_claim = now + max(0.5, self.settings.stream_claim_idle_seconds / 3)
                    if entries:
                        self.process(entries)
                else:
                    entries = self.queue.read(self.name, ">", batch, BLOCK_MS)
                    if entries:
                        self.process(entries)
                failures = 0
            except Exception as exc:  # Redis or the database away: wait and go on
                failures += 1
                if failures == 1:
                    self._ensure_group_quietly()
                log.warning("stream worker %s: %s: %s (retrying)", self.name, type(exc).__name__, exc)
                self.stopping.wait(min(10.0, 0.5 * 2 ** min(failures, 5)))
        try:
            forget_worker(self.sessions, self.name)
        except Exception:
            pass
        log.warning("stream worker %s: stopped after writing %d result(s)", self.name, self.written)
        return 0

    def _ensure_group_quietly(self) -> None:
        try:
            self.queue.ensure_group()
        except Exception:
            pass

    def _beat(self) -> None:
        try:
            register_worker(self.sessions, self.name, "stream", {"device": "cpu", "device_name": "onnxruntime CPU"})
        except Exception as exc:
            log.warning("stream worker %s: heartbeat: %s", self.name, exc)

    def _trim_dead(self) -> None:
        removed = ledger.trim_dead(self.sessions, utcnow() - timedelta(days=self.settings.retention_days))
        if removed:
            log.warning("stream worker %s: deleted %d dead letter(s) past the retention period", self.name, removed)

    def stop(self, *_args) -> None:
        self.stopping.set()

    # -------------------------------------------------------------------------------------------- a batch

    def process(self, raw: list[tuple[str, dict]]) -> None:
        if not raw:
            return
        entries = [Entry(entry_id, fields) for entry_id, fields in raw]
        every = max(0.2, self.settings.stream_claim_idle_seconds / 3)
        with self.queue.leased(self.name, [e.id for e in entries], every):
            counts = self.queue.deliveries(self.name, [e.id for e in entries])
            # an entry no longer ours (another worker took it over meanwhile) is that worker's now
            entries = [e for e in entries if e.id in counts]
            for entry in entries:
                entry.deliveries = counts[entry.id]
            streams, done = self._lookup(entries)
            dropped, settled, todo = [], [], []
            for entry in entries:
                if entry.stream not in streams:
                    dropped.append(entry)  # stream deleted (or a malformed entry): nothing to write
                elif (entry.stream, entry.key) in done:
                    settled.append(entry)  # written before (a redelivery after a crash, a duplicate)
                elif entry.deliveries > self.settings.stream_max_deliveries:
                    entry.crashed = True
                    entry.error = f"its worker stopped while classifying it {entry.deliveries - 1} times"
                    settled.append(entry)
                else:
                    todo.append(entry)
            self._classify(todo, streams)
            written = self._write([e for e in todo if e.result is not None], streams)
            already = [e for e in settled if e.error is None]
            if already:  # a row admitted while its result was being written: owed no more
                owed = tuple_(StreamImage.stream_id, StreamImage.image_key).in_([(e.stream, e.key) for e in already])
                with session_scope(self.sessions) as session:
                    session.execute(delete(StreamImage).where(owed))
            self._finish([*dropped, *written, *already])
            self._fail([e for e in [*todo, *settled] if e.error is not None])

    def _lookup(self, entries: list[Entry]) -> tuple[dict[str, Stream], set[tuple[str, str]]]:
        """The entries' streams (id -> row) and which (stream, key) already have a result."""
        stream_ids = {e.stream for e in entries if e.stream}
        pairs = [(e.stream, e.key) for e in entries if e.stream]
        with session_scope(self.readers) as session:
            streams = {s.id: s for s in session.scalars(select(Stream).where(Stream.id.in_(stream_ids)))}
            done = set()
            if pairs:
                done = set(
                    session.execute(
                        select(Prediction.stream_id, Prediction.image_key).where(
                            tuple_(Prediction.stream_id, Prediction.image_key).in_(pairs)
                        )
                    ).tuples()
                )
            session.expunge_all()
        return streams, done

    def _classify(self, entries: list[Entry], streams: dict[str, Stream]) -> None:
        by_stream: dict[str, list[Entry]] = defaultdict(list)
        for entry in entries:
            by_stream[entry.stream].append(entry)
        for stream_id, group in by_stream.items():
            stream = streams[stream_id]
            try:
                with session_scope(self.readers) as session:
                    path = model_file(session, stream.user_id, stream.model, self.settings, self.jobs_store, self.blobs)
                classifier = self.models.get(path)
            except ModelNotFound as exc:
                for entry in group:
                    entry.error = str(exc)
                continue
            except Exception as exc:  # not a Tejas classifier, artifacts missing, …: this stream only
                log.warning("stream %s: model %s: %s", stream_id, stream.model, exc)
                for entry in group:
                    entry.error = f"model {stream.model}: {exc}"
                continue
            readable = []
            for entry in group:
                store = self.blobs if entry.fields.get("store") == "blobs" else self.images
                try:
                    entry.data = b"".join(store.open(entry.fields.get("blob", "")))
                    readable.append(entry)
                except (FileNotFoundError, ValueError):
                    entry.error = "its image is no longer stored (deleted before it was classified)"
            try:
                results = classifier.predict([e.data for e in readable], stream.top_k) if readable else []
            except Exception as exc:  # onnxruntime failing on this model: this stream only
                log.warning("stream %s: predicting: %s", stream_id, exc)
                for entry in readable:
                    entry.error, entry.data = f"model {stream.model} failed: {exc}", None
                continue
            for entry, result in zip(readable, results, strict=True):
                entry.data = None
                if result["error"]:
                    entry.error = f"{entry.key}: {result['error']}"
                else:
                    entry.result = result

    def _write(self, entries: list[Entry], streams: dict[str, Stream]) -> list[Entry]:
        """Insert the results (a row already there stays as it was); the entries now in the table."""
        for _attempt in range(3):
            if not entries:
                return []
            rows = [
                {
                    "stream_id": e.stream,
                    "image_key": e.key,
                    "label": e.result["top"][0]["class"],
                    "confidence": e.result["top"][0]["probability"],
                    "top": e.result["top"],
                    "worker": self.name,
                    "appended_at": e.appended_at,
                    "created_at": utcnow(),
                }
                for e in entries
            ]
            statement = self.insert(Prediction).on_conflict_do_nothing(index_elements=["stream_id", "image_key"])
            owed = tuple_(StreamImage.stream_id, StreamImage.image_key).in_([(e.stream, e.key) for e in entries])
            try:
                with session_scope(self.sessions) as session:
                    session.execute(statement, rows)
                    session.execute(delete(StreamImage).where(owed))  # no longer owed, in the same commit
                self.written += len(rows)
                return entries
            except IntegrityError:
                # a stream deleted since the lookup (its rows' foreign key fails): its entries are dropped
                alive, _ = self._lookup(entries)
                gone = [e for e in entries if e.stream not in alive]
                self._finish(gone)
                entries = [e for e in entries if e.stream in alive]
        raise RuntimeError("results could not be written (integrity errors three times)")

    def _finish(self, entries: list[Entry]) -> None:
        """Delete their image bytes, then acknowledge (deleting the entries)."""
        for entry in entries:
            self._delete_image(entry)
        self.queue.ack([e.id for e in entries])

    def _delete_image(self, entry: Entry) -> None:
        if entry.fields.get("store") == "streams" and entry.fields.get("blob"):
            try:
                self.images.delete(entry.fields["blob"])
            except Exception as exc:  # a store that hiccups leaves one file, never a lost result
                log.warning("stream worker %s: deleting image %s: %s", self.name, entry.fields["blob"], exc)

    def _fail(self, entries: list[Entry]) -> None:
        """Remember each failure; an entry delivered TEJAS_STREAM_MAX_DELIVERIES times goes to the dead letters."""
        if not entries:
            return
        earlier = self.queue.last_errors([e.id for e in entries])
        keep = {}
        for entry in entries:
            error = entry.error or "failed"
            if (entry.crashed or "no longer stored" in error) and entry.id in earlier:
                error = earlier[entry.id]  # the failure before the crash (or before its bytes went) is the reason
            if entry.deliveries >= self.settings.stream_max_deliveries:
                with session_scope(self.sessions) as session:  # the dead letter first: it survives Redis
                    ledger.give_up(session, entry.stream, entry.key, error[:2000], entry.deliveries)
                self._delete_image(entry)
                self.queue.ack([entry.id])
                log.warning(
                    "stream worker %s: entry %s dead after %d deliveries: %s",
                    self.name,
                    entry.id,
                    entry.deliveries,
                    error,
                )
            else:
                keep[entry.id] = error[:2000]
        self.queue.remember_errors(keep)


def default_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:stream"


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="tejas stream-worker",
        description="Classify the images of prediction streams (settings from TEJAS_* variables, as `tejas serve`).",
    )
    parser.add_argument(
        "--name",
        default=None,
        help="consumer name; a worker restarted with the same name takes up its own pending entries first "
        "(default: <host>:<pid>:stream)",
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(message)s")
    settings = Settings()
    from ..deployment import WrongDatabase, check_worker_database

    try:  # never on a missing, empty or another deployment's database (it used to make its own SQLite)
        check_worker_database(settings, "tejas stream-worker").dispose()
    except WrongDatabase as exc:
        print(exc, file=sys.stderr)
        return 1
    worker = StreamWorker(settings, args.name or default_name())
    signal.signal(signal.SIGTERM, worker.stop)
    signal.signal(signal.SIGINT, worker.stop)
    try:
        worker.queue.ensure_group()
    except Exception as exc:
        log.warning("stream worker %s: Redis at %s: %s (retrying)", worker.name, redacted(settings.redis_url), exc)
    return worker.run()
