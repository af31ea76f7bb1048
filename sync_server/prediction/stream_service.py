"""What the stream routes change (docs/predictions.md, "Streams"), without HTTP: create a stream or change
its model (the model checked first), delete one, append an image (its bytes, or a blob of the user's).

Image bytes go to the "streams" area of the blob store under a random name of their own; the worker
deletes them once the image's entry is done (result written, dead-lettered, or its stream deleted).
An image named by `?blob=` stays the user's blob and is never deleted here. What a stream still owes and
its dead letters are rows in the database (ledger.py), written before the bytes and the Redis entry: the
counts and dead letters are read from there, and survive a Redis that restarts empty.

Refusals are exceptions whose str() is the sentence for the user; the routes give them their status:
StreamNotFound and ImageNotHeld (404), ModelNotFound (404) and ModelUnusable (422), ImageRefused (400),
quotas.QuotaExceeded (its own), a Redis that does not answer (redis.ConnectionError/TimeoutError,
RedisUnavailable: 503)."""

from __future__ import annotations

import logging
import secrets
from pathlib import Path

from pydantic import BaseModel, Field
from sqlalchemy import delete, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from .. import quotas
from ..core.db import session_scope
from ..models import Job, Prediction, Record, Stream, StreamImage, UserBlob
from ..storage import make_store
from . import ledger
from .models import ModelNotFound, ModelUnusable, check_synced_model, parse_reference
from .stream_reads import owned
from .streams import StreamQueue

log = logging.getLogger("tejas.streams")


class ImageRefused(ValueError):
    """The bytes are not an image the server accepts."""


class ImageNotHeld(LookupError):
    """`?blob=` names no image among the user's blobs."""


class AppendOut(BaseModel):
    key: str
    entry: str | None = Field(description="the Redis entry of this image; for a duplicate, the one in flight")
    duplicate: bool = Field(description="the key was already in this stream: nothing was added")


class StreamService:
    """The stream operations on one server's database, Redis and blob store. `state` is the app's state:
    settings, sessions (writes), readers; the Redis queue and the streams store are made on first use."""

    def __init__(self, state):
        self.state = state
        self.settings, self.sessions, self.readers = state.settings, state.sessions, state.readers

    @property
    def queue(self) -> StreamQueue:
        if getattr(self.state, "stream_queue", None) is None:
            self.state.stream_queue = StreamQueue(self.settings)
        return self.state.stream_queue

    @property
    def store(self):
        if getattr(self.state, "streams_store", None) is None:
            self.state.streams_store = make_store(self.settings, "streams")
        return self.state.streams_store

    # ------------------------------------------------------------------------------------ streams

    def check_model(self, db: Session, user_id: str, ref: str) -> None:
        """The reference names a model of the user's (ModelNotFound), made on this server's artifacts
        (ModelUnusable); the ONNX itself is written by the first worker that needs it (a failure then shows
        in the dead letters)."""
        kind, ident = parse_reference(ref)
        missing = ModelNotFound(f"No such model among yours ({kind}:…); GET /api/models lists yours.")
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
            check_synced_model(model, kind, self.settings)
        except ModelUnusable as exc:
            raise ModelUnusable(f"{str(exc)[0].upper()}{str(exc)[1:]}.") from None
        artifacts = model.get("artifacts") or {}
        wanted = artifacts.get("backbone_sha256")
        if wanted and artifacts.get("kind") != "job":
            from tejas.artifacts import ArtifactError, read_manifest

            manifest = self.settings.artifacts_dir / self.settings.artifacts_name
            try:
                have = read_manifest(manifest)["files"]["backbone.onnx"]["sha256"]
            except (ArtifactError, KeyError, TypeError):
                return
            if wanted != have:
                raise ModelUnusable(
                    "That model was trained with other artifacts than this server has; retrain it in the app and sync."
                )

    def put(self, db: Session, user_id: str, name: str, model: str, top_k: int) -> tuple[Stream, bool]:
        """Create the stream or change its model and top_k; (the stream, whether it was created). Images
        already appended use the model a worker finds when it takes them."""
        self.check_model(db, user_id, model)
        db.rollback()  # no read transaction held while Redis is asked
        self.queue.ensure_group()
        created = False  # once set, kept: a loser of a race to create answers 201 too
        for attempt in range(2):  # the same name created twice at once: the loser changes the winner's
            try:
                with session_scope(self.sessions) as writer:
                    stream = writer.scalar(select(Stream).where(Stream.user_id == user_id, Stream.name == name))
                    if stream is None:
                        quotas.lock_user(writer, user_id)  # two creations at once cannot both take the last one
                        quotas.check_streams(writer, user_id, self.settings)
                        stream = Stream(user_id=user_id, name=name, model=model, top_k=top_k, appended=0)
                        writer.add(stream)
                        created = True
                    else:
                        stream.model, stream.top_k = model, top_k
                break
            except IntegrityError:
                if attempt:
                    raise
        return stream, created

    def delete(self, db: Session, user_id: str, name: str) -> None:
        """The stream, its results and dead letters; its images still queued are dropped by the workers (and
        their bytes, should Redis have lost their entries, by the purge)."""
        stream_id = owned(db, user_id, name).id
        db.rollback()
        with session_scope(self.sessions) as writer:
            writer.execute(delete(Prediction).where(Prediction.stream_id == stream_id))
            writer.execute(delete(StreamImage).where(StreamImage.stream_id == stream_id))
            writer.execute(delete(Stream).where(Stream.id == stream_id))

    # ------------------------------------------------------------------------------------ appends

    def lookup(self, user_id: str, name: str, key: str | None) -> tuple[Stream, bool]:
        """The user's stream (StreamNotFound) and whether `key` already has a result in it."""
        with session_scope(self.readers) as db:
            stream = owned(db, user_id, name)
            done = (
                key is not None
                and db.scalar(
                    select(func.count()).where(Prediction.stream_id == stream.id, Prediction.image_key == key)
                )
                > 0
            )
            return stream, done

    def check_room(self, user_id: str) -> None:
        """QuotaExceeded (429) when the user's streams hold TEJAS_MAX_STREAM_PENDING images not done yet
        (appends of one user sent at the same moment can pass it together), then Redis asked whether it
        answers: both before an image's bytes are read or stored (nothing to clean up after a refusal)."""
        with session_scope(self.readers) as db:
            quotas.check_stream_pending(quotas.stream_images_pending(db, user_id), self.settings)
        self.queue.ping()

    def _holds_image(self, user_id: str, sha: str) -> bool:
        with session_scope(self.readers) as db:
            return (
                db.scalar(
                    select(func.count())
                    .select_from(UserBlob)
                    .where(UserBlob.user_id == user_id, UserBlob.sha256 == sha, UserBlob.kind == "image")
                )
                > 0
            )

    def append_blob(self, stream: Stream, user_id: str, key: str | None, blob: str) -> AppendOut:
        """Append an image the user uploaded to the blob store (ImageNotHeld); its key defaults to its sha256."""
        if not self._holds_image(user_id, blob):
            raise ImageNotHeld("No such image among the blobs you uploaded (PUT /api/blobs/{sha256}?kind=image).")
        key = key or blob
        self.check_room(user_id)
        new, entry = ledger.admit(self.sessions, stream.id, key, blob, "blobs")
        if not new:
            return AppendOut(key=key, entry=entry, duplicate=True)
        entry = self._enqueue(stream.id, user_id, key, blob, "blobs")
        return AppendOut(key=key, entry=entry, duplicate=False)

    def append_upload(
        self, stream: Stream, done: bool, user_id: str, name: str, key: str | None, path: Path, sha: str
    ) -> AppendOut:
        """Append the image received in `path` (ImageRefused); its key defaults to its sha256. `done`: the
        key given already has a result in the stream (what `lookup` said)."""
        from tejas.images import ImageError, sniff_image
        from tejas.limits import DEFAULT_LIMITS

        try:
            sniff_image(path.read_bytes(), DEFAULT_LIMITS.max_pixels)
        except ImageError as exc:
            raise ImageRefused(f"Not accepted as an image: {exc}.") from None
        if key is None:
            key = sha
            stream, done = self.lookup(user_id, name, key)
        if done:
            return AppendOut(key=key, entry=None, duplicate=True)
        name_in_store = secrets.token_hex(32)  # its own name: the worker deletes it when its entry is done
        # the ledger's row before the bytes: bytes no row names are orphans (the purge deletes them)
        new, entry = ledger.admit(self.sessions, stream.id, key, name_in_store, "streams")
        if not new:
            return AppendOut(key=key, entry=entry, duplicate=True)
        try:
            self.store.put_file(name_in_store, path)
        except BaseException:
            ledger.withdraw(self.sessions, stream.id, key, name_in_store)
            raise
        entry = self._enqueue(stream.id, user_id, key, name_in_store, "streams")
        return AppendOut(key=key, entry=entry, duplicate=False)

    def _enqueue(self, stream_id: str, user_id: str, key: str, blob: str, store: str) -> str | None:
        """Put an image already in the ledger into Redis: its entry id, or None when Redis stopped answering
        meanwhile (the image stays owed: the server or a worker enqueues it once Redis answers again)."""
        import redis

        try:
            entry = self.queue.append(stream_id, user_id, key, blob, store)
        except redis.RedisError as exc:  # down, or answering an error (out of memory, a read-only replica)
            log.warning("stream %s: image %r kept for later, Redis failed: %s", stream_id, key, exc)
            return None
        ledger.attach_entry(self.sessions, stream_id, key, blob, entry)
        return entry
