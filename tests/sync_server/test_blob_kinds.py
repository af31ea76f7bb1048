"""A blob's kind is each user's own (issue 24, 3): bytes another user uploaded first as another kind
neither block your records nor show in any answer you get."""

from __future__ import annotations

import re

from .conftest import Account, png_bytes, project_changes, sample_change, sha

START_MS = 1_780_000_000_000  # one clock for both runs: the records' revisions come out the same


def image_of_whole_floats(seed: int) -> bytes:
    """A PNG whose length is a multiple of 4: valid as an image and as model parameters (float32s)."""
    return next(data for size in range(8, 64) if len(data := png_bytes(seed, size)) % 4 == 0)


def sync_one_image(account: Account, image: bytes) -> list[tuple[int, str]]:
    """What one user's app does with one image (ask what is missing, upload it, push the sample, pull,
    download it), as the (status, body) of every answer, with this image's sha256 and size, and dates,
    written as placeholders so two runs on different bytes compare."""
    answers = []
    digest = sha(image)

    def keep(response) -> None:
        body = response.content if response.headers.get("content-type") == "application/octet-stream" else None
        text = "<the image's bytes>" if body == image else response.text
        text = text.replace(digest, "<sha256>").replace(digest[:8], "<sha256[:8]>").replace(str(len(image)), "<size>")
        text = re.sub(r"\d{4}-\d\d-\d\dT[\d:.]+Z?", "<date>", text)
        answers.append((response.status_code, text))

    device = account.device("phone", start_ms=START_MS)
    keep(account.post("/api/blobs/missing", json={"sha256": [digest]}))
    keep(account.upload(image, kind="image", expect=201))
    changes = project_changes(device, "p1", "Birds", {"robin": "c1"})
    changes.append(sample_change(device, "p1", image, "c1"))
    keep(account.post("/api/sync/push", json={"device": device.id, "changes": changes}))
    keep(account.get("/api/sync/pull", params={"since": "0"}))
    keep(account.get(f"/api/blobs/{digest}"))
    return answers


def test_another_users_upload_of_the_same_bytes_as_another_kind_changes_nothing_for_you(server):
    # alone: user A syncs an image
    alone = sync_one_image(Account(server.url), image_of_whole_floats(1))
    assert [status for status, _ in alone] == [200, 201, 200, 200, 200], alone

    # the same with user B first uploading A's image bytes as model parameters (they pass as float32s)
    image = image_of_whole_floats(2)
    bob = Account(server.url)
    bob.upload(image, kind="model", expect=201)
    after_bob = sync_one_image(Account(server.url), image)
    assert after_bob == alone  # every answer A gets is the one A gets when B did nothing

    # and B's own use of the bytes is B's kind: B's model record refers to them as parameters
    device = bob.device()
    params = {"sha256": sha(image), "length": len(image) // 4}
    changes = project_changes(device, "p9", "Mine", {"a": "c9"})
    device.push([*changes, device.change("model", "m1", "p9", {"name": "mine", "parameters": params})])
    assert bob.state()[("model", "m1")]["parameters"] == params


def test_your_own_upload_decides_what_your_records_may_use_it_as(embedded_server):
    server = embedded_server()
    alice = Account(server.url)
    image = image_of_whole_floats(3)
    alice.upload(image, kind="model", expect=201)
    device = alice.device()
    changes = [*project_changes(device, "p1", "Birds", {"robin": "c1"}), sample_change(device, "p1", image, "c1")]
    refused = device.push(changes, expect=422)
    assert f"you uploaded {sha(image)} as model" in refused["detail"], refused
    # uploading the same bytes again as an image makes them yours as an image
    alice.upload(image, kind="image", expect=201)
    device.push(changes)
    assert ("sample", f"p1/{sha(image)}") in alice.state()
