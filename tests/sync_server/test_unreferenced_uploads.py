"""The purge's short grace for uploads no record refers to spares a blob that a stream image appended by
`?blob=` still waits on (its bytes are read when a worker predicts it), and drops it once nothing does."""

from __future__ import annotations

from datetime import timedelta

from sync_server.core.clock import utcnow
from sync_server.core.config import Settings
from sync_server.core.db import make_engine, make_sessionmaker, migrate, session_scope
from sync_server.models import Blob, Stream, StreamImage, User, UserBlob
from sync_server.retention import drop_unreferenced_uploads


def test_a_blob_a_pending_stream_image_names_is_kept(tmp_path):
    engine = make_engine(Settings(data_dir=tmp_path))
    migrate(engine)
    sessions = make_sessionmaker(engine)
    old = utcnow() - timedelta(hours=48)
    with session_scope(sessions) as db:
        db.add(User(id="u1", email="a@example.org", password_hash="x"))
        db.add(User(id="u2", email="b@example.org", password_hash="x"))
        for sha in ("a" * 64, "b" * 64):
            db.add(Blob(sha256=sha, size=10, kind="image"))
        db.flush()
        for user in ("u1", "u2"):
            for sha in ("a" * 64, "b" * 64):
                db.add(UserBlob(user_id=user, sha256=sha, kind="image", size=10, created_at=old))
        db.add(Stream(id="s1", user_id="u1", name="door", model="model:m"))
        db.flush()
        db.add(StreamImage(stream_id="s1", image_key="k1", blob="a" * 64, store="blobs"))

    # u1's "a" waits in u1's stream; u2's "a" (same bytes) and both "b" are referred to by nothing
    assert drop_unreferenced_uploads(sessions, utcnow() - timedelta(hours=24)) == 3
    with session_scope(sessions) as db:
        assert [(h.user_id, h.sha256[0]) for h in db.query(UserBlob).all()] == [("u1", "a")]
        db.query(StreamImage).delete()  # predicted: the ledger row goes with its result
    assert drop_unreferenced_uploads(sessions, utcnow() - timedelta(hours=24)) == 1
    engine.dispose()
