"""The sync protocol against a real server, on both backends (SQLite + folder; Postgres + S3 API)."""

from __future__ import annotations

import uuid

from .conftest import Account, png_bytes, project_changes, sample_change, sha


def new_project(account: Account, images: int = 3, seed: int = 0):
    device = account.device()
    project, cat, dog = (uuid.uuid4().hex for _ in range(3))
    pictures = [png_bytes(seed + i) for i in range(images)]
    for picture in pictures:
        account.upload(picture)
    changes = project_changes(device, project, "Pets", {"cat": cat, "dog": dog})
    changes += [sample_change(device, project, p, cat if i % 2 == 0 else dog) for i, p in enumerate(pictures)]
    result = device.push(changes)
    return device, project, {"cat": cat, "dog": dog}, pictures, result


def test_push_pull_roundtrip_idempotent_and_paged(server):
    alice = Account(server.url)
    device, project, classes, pictures, result = new_project(alice, images=5)
    assert result == {"last_mutation": 8, "version": 8, "accepted": 8, "skipped": 0}
    # the same push again (a retry after a lost answer) changes nothing
    again = alice.post(
        "/api/sync/push",
        json={
            "device": device.id,
            "changes": [
                {**c, "mutation": i + 1} for i, c in enumerate(project_changes(device, project, "Renamed", classes))
            ],
        },
    )
    assert again.json() == {"last_mutation": 8, "version": 8, "accepted": 0, "skipped": 3}
    changes, cursor, last = alice.pull_all(limit=3)  # three pages
    assert [c["version"] for c in changes] == list(range(1, 9)) and cursor == "8"
    assert {c["kind"] for c in changes} == {"project", "class", "sample"}
    assert last["projects"][project]["expires"] > last["projects"][project]["last_change"]
    assert alice.pull_all(since=cursor)[0] == []
    # a second device of the same account sees the images by sha256
    phone = Account(server.url, email=alice.email, signup=False)
    for picture in pictures:
        got = phone.get(f"/api/blobs/{sha(picture)}")
        assert got.status_code == 200 and got.content == picture
    assert phone.post("/api/blobs/missing", json={"sha256": [sha(p) for p in pictures]}).json() == {"missing": []}


def test_last_writer_wins_and_tombstones(server):
    alice = Account(server.url)
    laptop, project, classes, pictures, _ = new_project(alice)
    phone = alice.device()
    cat_sample = f"{project}/{sha(pictures[0])}"
    # offline: the phone renames "dog" later than the laptop does; the laptop deletes a sample the phone edits earlier
    late, early = phone.clock.tick(), laptop.clock.tick()
    laptop_edit = laptop.change("class", classes["dog"], project, {"name": "puppy", "order": 1}, rev=min(early, late))
    phone_edit = phone.change("class", classes["dog"], project, {"name": "hound", "order": 1}, rev=max(early, late))
    phone.push([phone_edit])
    laptop.push([laptop_edit])  # older: skipped
    deletion = laptop.change("sample", cat_sample, project, deleted=True)
    laptop.push([deletion])
    stale_edit = sample_change(phone, project, pictures[0], classes["dog"])
    stale_edit["rev"] = "000000000000001-000000-" + phone.id  # an edit made before the delete
    phone.push([stale_edit])
    state = alice.state()
    assert state[("class", classes["dog"])]["name"] == "hound"
    assert ("sample", cat_sample) not in state
    changes, _, _ = alice.pull_all()
    assert any(c["id"] == cat_sample and c["deleted"] for c in changes)  # the tombstone travels
    # a delete of a project takes later edits of its records with it
    laptop.push([laptop.change("project", project, project, deleted=True)])
    late_sample = sample_change(phone, project, pictures[1], classes["cat"])
    assert phone.push([late_sample])["accepted"] == 0


def test_same_class_created_on_two_devices_merges(server):
    alice = Account(server.url)
    laptop, project, classes, pictures, _ = new_project(alice, images=2)
    phone = alice.device()
    phone_cat = uuid.uuid4().hex
    extra = [png_bytes(100 + i) for i in range(3)]
    for picture in extra:
        alice.upload(picture)
    # the phone made its own "Cat" offline and put three images in it
    phone.push(
        [
            phone.change("class", phone_cat, project, {"name": "Cat", "order": 0}),
            *[sample_change(phone, project, p, phone_cat) for p in extra[:2]],
        ]
    )
    phone.push([sample_change(phone, project, extra[2], phone_cat)])  # a later push still uses its id
    state = alice.state()
    live_cats = [k for k, v in state.items() if k[0] == "class" and v["name"].lower() == "cat"]
    assert live_cats == [("class", classes["cat"])]
    cat_samples = {v["contentId"] for k, v in state.items() if k[0] == "sample" and v["classId"] == classes["cat"]}
    assert cat_samples == {sha(pictures[0])} | {sha(p) for p in extra}
    merged = [c for c in alice.pull_all()[0] if c["id"] == phone_cat]
    assert merged[0]["deleted"] and merged[0]["data"]["mergedInto"] == classes["cat"]


def test_same_image_in_two_classes_keeps_the_later(server):
    alice = Account(server.url)
    laptop, project, classes, pictures, _ = new_project(alice, images=1)
    phone = alice.device()
    newer = sample_change(phone, project, pictures[0], classes["dog"])
    older = sample_change(laptop, project, pictures[0], classes["cat"])
    older["rev"], newer["rev"] = sorted([older["rev"], newer["rev"]])
    phone.push([newer])
    laptop.push([older])
    samples = [v for k, v in alice.state().items() if k[0] == "sample"]
    assert len(samples) == 1 and samples[0]["classId"] == classes["dog"]


def test_blobs_must_be_uploaded_first_and_are_readable_only_when_referenced(server):
    alice = Account(server.url)
    device = alice.device()
    project, cls = uuid.uuid4().hex, uuid.uuid4().hex
    picture = png_bytes(7)
    refused = device.push(
        [*project_changes(device, project, "P", {"a": cls}), sample_change(device, project, picture, cls)], expect=409
    )
    assert "upload them first" in refused["detail"]
    assert alice.state() == {}  # nothing of the refused push was stored
    assert alice.post("/api/blobs/missing", json={"sha256": [sha(picture)]}).json() == {"missing": [sha(picture)]}
    alice.upload(picture)
    assert alice.get(f"/api/blobs/{sha(picture)}").status_code == 404  # uploaded, but no record refers to it yet
    device.push([*project_changes(device, project, "P", {"a": cls}), sample_change(device, project, picture, cls)])
    assert alice.get(f"/api/blobs/{sha(picture)}").content == picture
    # model parameters: whole float32s
    parameters = bytes(range(256)) * 4
    alice.upload(parameters, kind="model")
    assert alice.put(f"/api/blobs/{sha(b'abc')}", params={"kind": "model"}, content=b"abc").status_code == 400


def test_delete_project_and_account(server):
    alice = Account(server.url)
    _, project, _, pictures, _ = new_project(alice)
    assert [p["id"] for p in alice.get("/api/projects").json()] == [project]
    assert alice.get(f"/api/projects/{project}").json()["records"] == 6
    assert alice.delete(f"/api/projects/{project}").status_code == 204
    assert alice.get("/api/projects").json() == []
    assert project in alice.pull_all()[2]["purged"]
    assert alice.get(f"/api/blobs/{sha(pictures[0])}").status_code == 404
    bob = Account(server.url)
    new_project(bob, seed=0)  # the same images, held by another account
    assert bob.delete("/api/me").status_code == 204
    assert bob.get("/api/me").status_code == 401
    signin = bob.http.post("/api/auth/signin", json={"email": bob.email, "password": "correct horse battery"})
    assert signin.status_code == 401
