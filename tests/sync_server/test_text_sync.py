"""Text projects sync like image projects (docs/sync.md "Text samples"): samples' blobs are UTF-8 texts,
checked by content; two devices' offline edits of a text project merge. Both backends."""

from __future__ import annotations

import uuid

from ..training.spam import spam_rows
from .conftest import Account, png_bytes, sha


def text_sample(device, project: str, text: str, class_id: str, source: str = "csv", **extra) -> dict:
    data = text.encode("utf-8")
    content = sha(data)
    return device.change(
        "sample",
        f"{project}/{content}",
        project,
        {
            "contentId": content,
            "classId": class_id,
            "name": f"row {content[:6]}",
            "source": source,
            "added": "2026-12-05T00:00:00Z",
            "format": "text",
            "size": len(data),
            **extra,
        },
    )


def new_text_project(account: Account, texts: list[tuple[str, str]]):
    device = account.device()
    project = uuid.uuid4().hex
    classes = {"ham": uuid.uuid4().hex, "spam": uuid.uuid4().hex}
    changes = [device.change("project", project, project, {"name": "SMS", "kind": "text", "created": "2026"})]
    changes += [
        device.change("class", cid, project, {"name": n, "order": i}) for i, (n, cid) in enumerate(classes.items())
    ]
    for _, text in texts:
        account.upload(text.encode("utf-8"), kind="text")
    changes += [text_sample(device, project, text, classes[label]) for label, text in texts]
    device.push(changes)
    return device, project, classes


def test_text_project_syncs_between_two_devices_and_offline_edits_merge(server):
    rows = spam_rows(total=6) + [("ham", "Ünïcödé 你好 مرحبا 👩‍👩‍👧 ok"), ("spam", "x" * 5000)]
    laptop_account = Account(server.url)
    laptop, project, classes = new_text_project(laptop_account, rows)
    # a second device of the same account gets the project, and each text by its sha256, byte for byte
    phone_account = Account(server.url, email=laptop_account.email, signup=False)
    phone = phone_account.device()
    state = phone_account.state()
    assert state[("project", project)]["kind"] == "text"
    samples = {k[1]: v for k, v in state.items() if k[0] == "sample"}
    assert len(samples) == len(rows) and all(s["format"] == "text" for s in samples.values())
    for _, text in rows:
        got = phone_account.get(f"/api/blobs/{sha(text.encode())}")
        assert got.status_code == 200 and got.content.decode("utf-8") == text

    # offline on both devices, then both push
    edited_old = rows[0][1]
    edited_new = edited_old + " (edited on the laptop)"
    laptop_account.upload(edited_new.encode(), kind="text")
    laptop_edits = [
        # editText: the new text in the same class, the old sample deleted (its id changes)
        text_sample(laptop, project, edited_new, classes[rows[0][0]], source="typed"),
        laptop.change("sample", f"{project}/{sha(edited_old.encode())}", project, deleted=True),
        laptop.change("class", "urgent-laptop", project, {"name": "urgent", "order": 2}),
        text_sample(laptop, project, "Call me back NOW", "urgent-laptop", source="typed"),
        text_sample(laptop, project, rows[1][1], classes["spam"], source="correction"),  # moved to spam
    ]
    laptop_account.upload(b"Call me back NOW", kind="text")
    phone_account.upload("Lunch at 1? 🍜".encode(), kind="text")
    phone_edits = [
        phone.change("class", "urgent-phone", project, {"name": "Urgent ", "order": 2}),
        text_sample(phone, project, "Lunch at 1? 🍜", classes["ham"], source="typed"),
        text_sample(phone, project, "Call me back NOW", "urgent-phone", source="typed"),
    ]
    phone.push(phone_edits)
    laptop.push(laptop_edits)
    # the phone moves the same text later than the laptop did: the later edit wins
    phone.push([text_sample(phone, project, rows[1][1], classes["ham"], source="correction")])

    for account in (laptop_account, phone_account):
        state = account.state()
        samples = {v["contentId"]: v for k, v in state.items() if k[0] == "sample"}
        live_classes = {k[1]: v["name"] for k, v in state.items() if k[0] == "class"}
        # one "urgent" class (the two devices' classes merged), holding both devices' samples
        urgent = [cid for cid, name in live_classes.items() if name.strip().casefold() == "urgent"]
        assert len(urgent) == 1, live_classes
        assert samples[sha(b"Call me back NOW")]["classId"] == urgent[0]
        assert sha(edited_old.encode()) not in samples
        assert samples[sha(edited_new.encode())]["classId"] == classes[rows[0][0]]
        assert samples[sha("Lunch at 1? 🍜".encode())]["classId"] == classes["ham"]
        assert samples[sha(rows[1][1].encode())]["classId"] == classes["ham"]
        assert len(samples) == len(rows) + 2
    assert phone_account.get(f"/api/blobs/{sha(edited_new.encode())}").content.decode() == edited_new


def test_text_blobs_are_checked_by_content(server):
    account = Account(server.url)
    longest = "👍" * 5000  # 5,000 characters, 20,000 bytes: the most a text may be
    account.upload(longest.encode(), kind="text")
    cases = [
        # (name, body, kind, status, words in the answer)
        ("not UTF-8", "café".encode("latin-1"), "text", 400, "not UTF-8"),
        ("a NUL", b"hello\x00world", "text", 400, "NUL"),
        ("over 5,000 characters", b"a" * 5001, "text", 400, "at most 5,000"),
        ("over the byte limit", "é".encode() * 10_001, "text", 413, "at most 5,000 characters"),
        ("empty", b"", "text", 400, "empty"),
        ("an image as a text", png_bytes(1), "text", 400, "not UTF-8"),
        ("a text as an image", b"hello world", "image", 400, "not an image"),
    ]
    for name, body, kind, status, words in cases:
        response = account.put(
            f"/api/blobs/{sha(body)}",
            params={"kind": kind},
            content=body,
            headers={"Content-Type": "application/octet-stream"},
        )
        assert response.status_code == status, (name, response.text)
        assert words in response.json()["detail"], (name, response.json())
    missing = account.post("/api/blobs/missing", json={"sha256": [sha(b"a" * 5001), sha(b"hello\x00world")]})
    assert len(missing.json()["missing"]) == 2  # nothing refused was kept

    # a record must name its blob's kind: a text sample refers to a text, an image sample to an image
    image = png_bytes(2)
    account.upload(image)
    device = account.device()
    project, cls = uuid.uuid4().hex, uuid.uuid4().hex
    device.push(
        [
            device.change("project", project, project, {"name": "T", "kind": "text"}),
            device.change("class", cls, project, {"name": "a"}),
        ]
    )
    as_text = device.change(
        "sample",
        f"{project}/{sha(image)}",
        project,
        {"contentId": sha(image), "classId": cls, "format": "text", "size": len(image)},
    )
    refused = account.post("/api/sync/push", json={"device": device.id, "changes": [as_text]})
    assert refused.status_code == 422 and "kind text" in refused.json()["detail"], refused.text
    as_image = device.change(
        "sample",
        f"{project}/{sha(longest.encode())}",
        project,
        {"contentId": sha(longest.encode()), "classId": cls, "format": "png"},
    )
    refused = account.post("/api/sync/push", json={"device": device.id, "changes": [as_image]})
    assert refused.status_code == 422 and "kind image" in refused.json()["detail"], refused.text
    assert not any(k[0] == "sample" for k in account.state())
    ok = text_sample(device, project, longest, cls)
    assert device.push([ok])["accepted"] == 1
