"""Retention (the clock is moved, not waited for) and a server killed mid-upload."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta

import httpx
from sqlalchemy import create_engine, text

from ..conftest import TEJAS
from ..services import s3_client
from .conftest import Account, png_bytes, project_changes, sample_change, sha


def stored_blob_names(server, backend) -> set[str]:
    if backend.get("TEJAS_BLOB_STORE") == "s3":
        listing = s3_client(backend).list_objects_v2(Bucket=backend["TEJAS_S3_BUCKET"])
        return {item["Key"].rsplit("/", 1)[-1] for item in listing.get("Contents", [])}
    return {p.name for p in (server.data_dir / "blobs").rglob("*") if p.is_file()}


def push_project(account: Account, images: list[bytes], name: str = "P") -> str:
    device = account.device()
    project, cls = uuid.uuid4().hex, uuid.uuid4().hex
    for image in images:
        account.upload(image)
    device.push(
        [
            *project_changes(device, project, name, {"a": cls}),
            *[sample_change(device, project, image, cls) for image in images],
        ]
    )
    return project


def test_purge_after_the_retention_period(server, backend):
    alice = Account(server.url)
    old_images, kept_images = [png_bytes(i) for i in range(3)], [png_bytes(10 + i) for i in range(2)]
    old = push_project(alice, old_images, "old")
    kept = push_project(alice, kept_images + old_images[:1], "kept")  # shares one image with "old"
    expires = datetime.fromisoformat(alice.get(f"/api/projects/{old}").json()["expires"].replace("Z", "+00:00"))
    assert timedelta(days=29.9) < expires - datetime.now(UTC) <= timedelta(days=30)

    def purge(now: datetime | None = None) -> str:
        result = subprocess.run(
            [TEJAS, "server", "purge", *(["--now", now.isoformat()] if now else [])],
            env=server.env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert result.returncode == 0, result.stderr
        return result.stdout

    assert "purged 0 project(s)" in purge(expires - timedelta(minutes=1))
    assert len(alice.state()) == 10
    # move "old"'s clock back 31 days (as if nothing had touched it since), then purge as of now
    database = backend.get("TEJAS_DATABASE_URL") or f"sqlite:///{server.data_dir / 'tejas.db'}"
    engine = create_engine(database)
    with engine.begin() as db:
        db.execute(
            text("update records set updated_at = :t where project_id = :p"),
            {"t": datetime.now(UTC).replace(tzinfo=None) - timedelta(days=31), "p": old},
        )
    engine.dispose()
    last_change_kept = alice.get(f"/api/projects/{kept}").json()["last_change"]
    out = purge()
    assert "purged 1 project(s) (5 records) and 2 blob(s)" in out, out
    assert [p["id"] for p in alice.get("/api/projects").json()] == [kept]
    assert alice.get(f"/api/projects/{kept}").json()["last_change"] == last_change_kept
    pulled, _, page = alice.pull_all()
    assert old in page["purged"] and old not in page["projects"] and kept in page["projects"]
    assert {c["project"] for c in pulled} == {kept}
    assert stored_blob_names(server, backend) == {sha(i) for i in kept_images + old_images[:1]}
    for image in old_images[1:]:
        assert alice.get(f"/api/blobs/{sha(image)}").status_code == 404
    assert alice.get(f"/api/blobs/{sha(old_images[0])}").content == old_images[0]  # still used by "kept"
    # 31 days on, "kept" goes too; uploading it again later starts afresh
    assert "purged 1 project(s) (5 records) and 3 blob(s)" in purge(datetime.now(UTC) + timedelta(days=31))
    assert stored_blob_names(server, backend) == set()
    again = push_project(alice, kept_images, "kept again")
    assert [p["id"] for p in alice.get("/api/projects").json()] == [again]


def test_the_servers_timer_purges(embedded_server):
    # retention of ~0.1 s and a timer every 0.2 s: the project disappears without anyone calling purge
    server = embedded_server(TEJAS_RETENTION_DAYS=str(0.1 / 86400), TEJAS_PURGE_INTERVAL_SECONDS="0.2")
    alice = Account(server.url)
    project = push_project(alice, [png_bytes(1)])
    deadline = time.monotonic() + 60
    while alice.get("/api/projects").json() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert alice.get("/api/projects").json() == []
    assert project in alice.pull_all()[2]["purged"]
    assert not [p for p in (server.data_dir / "blobs").rglob("*") if p.is_file()]


def test_server_killed_mid_upload_loses_and_duplicates_nothing(embedded_server):
    server = embedded_server()
    alice = Account(server.url)
    images = [png_bytes(1000 + i, size=64) for i in range(200)]
    acknowledged = []

    def upload_all():
        with httpx.Client(base_url=server.url, headers=dict(alice.http.headers), timeout=10) as http:
            for image in images:
                try:
                    response = http.put(f"/api/blobs/{sha(image)}", params={"kind": "image"}, content=image)
                except httpx.HTTPError:
                    return  # the server is gone
                if response.status_code == 201:
                    acknowledged.append(sha(image))

    uploader = threading.Thread(target=upload_all)
    uploader.start()
    deadline = time.monotonic() + 120
    while len(acknowledged) < 40 and time.monotonic() < deadline:
        time.sleep(0.01)
    server.kill()  # SIGKILL mid-upload
    uploader.join(60)
    assert 40 <= len(acknowledged) < 200
    server.restart()
    # the device resumes: asks which are missing, uploads those, pushes the records
    missing = alice.post("/api/blobs/missing", json={"sha256": [sha(i) for i in images]}).json()["missing"]
    assert set(acknowledged).isdisjoint(missing) and len(missing) <= 200 - len(acknowledged)
    for image in images:
        if sha(image) in missing:
            alice.upload(image)
    push_project_records = alice.device()
    project, cls = uuid.uuid4().hex, uuid.uuid4().hex
    push_project_records.push(
        [
            *project_changes(push_project_records, project, "P", {"a": cls}),
            *[sample_change(push_project_records, project, i, cls) for i in images],
        ]
    )
    with sqlite3.connect(server.data_dir / "tejas.db") as db:
        rows = db.execute("select sha256, count(*) from blobs group by sha256").fetchall()
        holds = db.execute("select count(*) from user_blobs").fetchone()[0]
    assert len(rows) == 200 and all(count == 1 for _, count in rows) and holds == 200
    files = [p for p in (server.data_dir / "blobs").rglob("*") if p.is_file()]
    assert sorted(p.name for p in files) == sorted(sha(i) for i in images)  # no partial files left
    assert not list((server.data_dir / "uploads").glob("*"))
    for image in images[::37]:
        assert alice.get(f"/api/blobs/{sha(image)}").content == image


def test_partial_copies_of_dead_writers_are_swept_and_live_ones_kept(tmp_path):
    """A SIGKILL during the local store's copy leaves `.<sha>.<pid>.<random>.partial`; the server's start
    deletes those whose writer is gone, never a live writer's (a worker sharing the folder)."""
    import subprocess
    import sys

    from sync_server.storage.local import LocalStore

    store = LocalStore(tmp_path / "blobs")
    source = tmp_path / "image.bin"
    source.write_bytes(b"bytes")
    digest = sha(b"bytes")
    store.put_file(digest, source)
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead_pid, live_pid = int(gone.stdout), os.getpid()
    folder = tmp_path / "blobs" / digest[:2]
    dead = folder / f".{digest[:8]}.{dead_pid}.x1.partial"
    live = folder / f".{digest[:8]}.{live_pid}.x2.partial"
    old_style = folder / f".{digest[:8]}.x3.partial"  # written before the pid was in the name
    for path in (dead, live, old_style):
        path.write_bytes(b"half")
    assert store.sweep_partials() == 2
    assert sorted(p.name for p in folder.iterdir()) == sorted([digest, live.name])
    assert b"".join(store.open(digest)) == b"bytes"
