"""Hostile input gets a clear 4xx and stores nothing: malformed and oversized pushes, unknown kinds,
10⁵ changes, blobs whose bytes do not match their name, non-images, a zip bomb, a decompression bomb."""

from __future__ import annotations

import io
import json
import struct
import uuid
import zipfile
import zlib

import pytest

from .conftest import Account, png_bytes, project_changes, sha


def nothing_stored(account: Account, server) -> None:
    assert account.pull_all()[0] == []
    blobs = server.data_dir / "blobs"
    assert not blobs.exists() or not [p for p in blobs.rglob("*") if p.is_file()]
    assert not list((server.data_dir / "uploads").glob("*")) if (server.data_dir / "uploads").exists() else True


def zip_bomb() -> bytes:
    """A zip whose one entry inflates 100 MB of zeros from ~100 KB."""
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("bomb.png", b"\0" * 100_000_000)
    return out.getvalue()


def png_declaring(width: int, height: int) -> bytes:
    """A tiny, valid-looking PNG whose header declares width × height pixels (a decompression bomb)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    idat = chunk(b"IDAT", zlib.compress(b"\0" * 64))
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + idat + chunk(b"IEND", b"")


@pytest.fixture
def alice(embedded_server):
    server = embedded_server(TEJAS_MAX_IMAGE_BYTES=str(2 * 2**20))
    return Account(server.url), server


def test_malformed_and_oversized_pushes(alice):
    account, server = alice
    device = account.device()
    project = uuid.uuid4().hex
    good = project_changes(device, project, "P", {"a": uuid.uuid4().hex})
    cases = {
        "not JSON": dict(content=b"{not json", headers={"Content-Type": "application/json"}),
        "no device": dict(json={"changes": good}),
        "unknown kind": dict(json={"device": "d1", "changes": [{**good[0], "kind": "password"}]}),
        "extra field": dict(json={"device": "d1", "changes": [{**good[0], "owner": "someone else"}]}),
        "bad rev": dict(json={"device": "d1", "changes": [{**good[0], "rev": "tomorrow"}]}),
        "bool as mutation": dict(json={"device": "d1", "changes": [{**good[0], "mutation": True}]}),
        "id with ..": dict(json={"device": "d1", "changes": [{**good[0], "id": "../../etc", "project": "../../etc"}]}),
        "mutations not increasing": dict(json={"device": "d1", "changes": [good[1], good[0]]}),
        "sample without image": dict(
            json={"device": "d1", "changes": [device.change("sample", f"{project}/x", project, {"classId": "a"})]}
        ),
        "huge record": dict(
            json={
                "device": "d1",
                "changes": [device.change("class", "c", project, {"name": "a", "junk": "x" * 70_000})],
            }
        ),
        "1,001 changes": dict(
            json={
                "device": "d1",
                "changes": [device.change("class", f"c{i}", project, {"name": f"c{i}"}) for i in range(1001)],
            }
        ),
    }
    for name, kwargs in cases.items():
        response = account.post("/api/sync/push", **kwargs)
        assert response.status_code == 422, (name, response.status_code, response.text[:300])
        detail = response.json()["detail"]
        assert isinstance(detail, str) and detail.startswith("Invalid request:"), (name, detail)
    # 10⁵ changes: refused while the body arrives (8 MiB limit), whatever Content-Length says
    many = {
        "device": "d1",
        "changes": [device.change("class", f"c{i}", project, {"name": f"c{i}"}) for i in range(100_000)],
    }
    body = json.dumps(many).encode()
    big = account.post("/api/sync/push", content=body, headers={"Content-Type": "application/json"})
    assert big.status_code == 413 and "at most 8 MiB" in big.json()["detail"]

    def chunked():
        yield from (body[i : i + 65536] for i in range(0, len(body), 65536))

    streamed = account.post("/api/sync/push", content=chunked(), headers={"Content-Type": "application/json"})
    assert streamed.status_code == 413
    nothing_stored(account, server)


def test_hostile_blobs(alice):
    account, server = alice
    image = png_bytes(3)
    cases = [
        # (name, sha256 in the URL, body, kind, status, words in the answer)
        ("bytes not matching their name", sha(b"other"), image, "image", 400, "do not match"),
        ("text as an image", sha(b"hello world"), b"hello world", "image", 400, "not an image"),
        ("a zip bomb as an image", None, zip_bomb(), "image", 400, "not an image"),
        ("a decompression bomb", None, png_declaring(100_000, 100_000), "image", 400, "too large"),
        ("empty", sha(b""), b"", "image", 400, "empty"),
        ("over the size limit", None, b"\x89PNG\r\n\x1a\n" + b"\0" * (3 * 2**20), "image", 413, "at most 2 MiB"),
        ("model bytes not float32s", sha(b"abcde"), b"abcde", "model", 400, "multiple of 4"),
    ]
    for name, name_sha, body, kind, status, words in cases:
        response = account.put(
            f"/api/blobs/{name_sha or sha(body)}",
            params={"kind": kind},
            content=body,
            headers={"Content-Type": "application/octet-stream"},
        )
        assert response.status_code == status, (name, response.text)
        assert words in response.json()["detail"], (name, response.json())
    assert account.put(f"/api/blobs/{sha(image)}", params={"kind": "script"}, content=image).status_code == 422
    assert account.put("/api/blobs/not-a-sha", params={"kind": "image"}, content=image).status_code == 422
    assert account.put(f"/api/blobs/{sha(image).upper()}", params={"kind": "image"}, content=image).status_code == 422
    nothing_stored(account, server)
    assert account.post("/api/blobs/missing", json={"sha256": [sha(image)]}).json() == {"missing": [sha(image)]}
    assert account.post("/api/blobs/missing", json={"sha256": ["../../etc/passwd"]}).status_code == 422
