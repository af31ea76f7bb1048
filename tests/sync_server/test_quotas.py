"""Per-user quotas (issue 24, 3): bytes stored, jobs, streams and images waiting in streams, each refused
at its limit with a sentence saying what is used and the limit, and shown in GET /api/me; and blobs
nobody's record refers to are dropped after hours, not the retention period's days."""

from __future__ import annotations

import io
import subprocess
import zipfile
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

import httpx

from ..conftest import ROOT, TEJAS
from ..services import backend, fresh_postgres_db, postgres_url, redis_server, s3_server  # noqa: F401 (fixtures)
from .conftest import Account, png_bytes, project_changes, sample_change, sha
from .predict_support import synced_model


def usage(account: Account) -> dict:
    me = account.get("/api/me")
    assert me.status_code == 200, me.text
    return me.json()["usage"]


def images_of_one_size(count: int, start: int = 0) -> list[bytes]:
    """`count` different PNGs of the same length (so a limit can be set in images)."""
    out: list[bytes] = []
    seed = start
    while len(out) < count:
        data = png_bytes(seed)
        if not out or len(data) == len(out[0]):
            out.append(data)
        seed += 1
    return out


def training_zip(images: list[bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for i, image in enumerate(images):
            archive.writestr(f"{'ab'[i % 2]}/{i}.png", image)
    return buffer.getvalue()


def test_storage_quota_refuses_with_what_is_used_and_shows_in_me(embedded_server):
    images = images_of_one_size(4)
    size = len(images[0])
    server = embedded_server(TEJAS_MAX_USER_BYTES=str(3 * size), TEJAS_MAX_JOBS_QUEUED="7")
    alice, bob = Account(server.url), Account(server.url)
    assert usage(alice) == {
        "storage_bytes": {"used": 0, "limit": 3 * size},
        "jobs": {"used": 0, "limit": 7},
        "streams": {"used": 0, "limit": 20},
        "stream_images_pending": {"used": 0, "limit": 10_000},
    }
    for image in images[:3]:
        alice.upload(image)
    assert usage(alice)["storage_bytes"] == {"used": 3 * size, "limit": 3 * size}

    refused = alice.upload(images[3], expect=413).json()["detail"]
    full = f"Storage full: {size * 3} bytes of your {size * 3} bytes used"
    assert refused.startswith(f"{full}; this image ({size} bytes) would not fit. To make room, delete"), refused
    assert alice.post("/api/blobs/missing", json={"sha256": [sha(images[3])]}).json()["missing"] == [sha(images[3])]
    alice.upload(images[0], expect=201)  # bytes already held take no more room: sent again, they pass
    # full: no training upload is taken (before its body is stored)
    zipped = training_zip(images)
    answer = alice.post("/api/jobs/upload", content=zipped, headers={"Content-Type": "application/zip"})
    assert answer.status_code == 413 and answer.json()["detail"].startswith("Storage full: "), answer.text
    assert usage(alice)["jobs"]["used"] == 0

    # the same bytes count for each user who holds them, and one user's use is not another's
    bob.upload(images[0])
    assert usage(bob)["storage_bytes"]["used"] == size
    assert usage(alice)["storage_bytes"]["used"] == 3 * size


def test_concurrent_uploads_never_pass_the_storage_quota(serve, tmp_path, backend):  # noqa: F811
    images = images_of_one_size(12, start=100)
    size = len(images[0])
    (tmp_path / "artifacts").mkdir()
    env = {**backend, "TEJAS_MAX_USER_BYTES": str(5 * size)}
    server = serve(tmp_path / "artifacts", data_dir=tmp_path / "data", env=env)
    alice = Account(server.url)

    def put(image: bytes) -> int:
        with httpx.Client(base_url=server.url, headers=alice.http.headers, timeout=120) as http:
            url = f"/api/blobs/{sha(image)}?kind=image"
            return http.put(url, content=image, headers={"Content-Type": "application/octet-stream"}).status_code

    with ThreadPoolExecutor(12) as pool:
        statuses = list(pool.map(put, images))
    assert sorted(statuses) == [201] * 5 + [413] * 7, statuses
    assert usage(alice)["storage_bytes"] == {"used": 5 * size, "limit": 5 * size}


def test_job_quota_says_how_many_of_how_many(embedded_server):
    server = embedded_server(TEJAS_MAX_JOBS_QUEUED="0")
    alice = Account(server.url)
    zipped = training_zip(images_of_one_size(4, start=200))
    answer = alice.post("/api/jobs/upload", content=zipped, headers={"Content-Type": "application/zip"})
    assert answer.status_code == 429, answer.text
    too_many = "Too many jobs: 0 of your 0 queued or running; wait for one to finish or cancel one."
    assert answer.json()["detail"] == too_many


def test_stream_quotas_count_streams_and_waiting_images(serve, tmp_path, redis_server):  # noqa: F811
    # no stream worker runs: every image appended stays waiting
    env = {"TEJAS_REDIS_URL": redis_server.url, "TEJAS_MAX_STREAMS": "1", "TEJAS_MAX_STREAM_PENDING": "2"}
    server = serve(ROOT / "artifacts", data_dir=tmp_path / "data", env=env)
    alice = Account(server.url)
    model, _ = synced_model(alice, ROOT / "artifacts" / "default", ["cat", "dog"], tmp_path)
    assert alice.put("/api/streams/first", json={"model": model}).status_code == 201
    second = alice.put("/api/streams/second", json={"model": model})
    assert second.status_code == 429, second.text
    assert second.json()["detail"].startswith("Too many streams: 1 of your 1; delete one"), second.text
    assert alice.put("/api/streams/first", json={"model": model, "top_k": 2}).status_code == 200  # changing is fine

    headers = {"Content-Type": "application/octet-stream"}
    for seed in range(2):
        appended = alice.post("/api/streams/first/images", content=png_bytes(300 + seed), headers=headers)
        assert appended.status_code == 202, appended.text
    third = alice.post("/api/streams/first/images", content=png_bytes(302), headers=headers)
    assert third.status_code == 429, third.text
    waiting = "Too many images waiting: 2 of your 2 appended to your streams and not predicted yet"
    assert third.json()["detail"].startswith(waiting), third.text
    assert usage(alice)["streams"] == {"used": 1, "limit": 1}
    assert usage(alice)["stream_images_pending"] == {"used": 2, "limit": 2}
    bob = Account(server.url)  # quotas are per user
    bob_model, _ = synced_model(bob, ROOT / "artifacts" / "default", ["cat", "dog"], tmp_path, seed=1)
    assert bob.put("/api/streams/first", json={"model": bob_model}).status_code == 201


def test_unreferenced_uploads_go_after_hours_not_the_retention_period(embedded_server):
    hours = 1
    server = embedded_server(TEJAS_UNREFERENCED_BLOB_HOURS=str(hours))
    alice = Account(server.url)
    kept, dropped = png_bytes(400), png_bytes(401)
    alice.upload(kept)
    alice.upload(dropped)
    device = alice.device()
    device.push([*project_changes(device, "p1", "Birds", {"robin": "c1"}), sample_change(device, "p1", kept, "c1")])

    def purge(after: timedelta) -> str:
        now = (datetime.now(UTC) + after).replace(tzinfo=None)
        result = subprocess.run(
            [TEJAS, "server", "purge", "--now", now.isoformat()],
            env=server.env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert result.returncode == 0, result.stderr
        return result.stdout

    def missing() -> list[str]:
        return alice.post("/api/blobs/missing", json={"sha256": [sha(kept), sha(dropped)]}).json()["missing"]

    assert "dropped 0 upload(s)" in purge(timedelta(hours=hours) - timedelta(minutes=5))
    assert missing() == []
    out = purge(timedelta(hours=hours, minutes=5))
    assert f"dropped 1 upload(s) that no record referred to within {hours} hours" in out, out
    assert missing() == [sha(dropped)]  # the app is told to send it again; the referenced one stays
    assert usage(alice)["storage_bytes"]["used"] == len(kept)
    assert alice.get(f"/api/blobs/{sha(kept)}").content == kept
