"""A small client of the sync protocol (docs/sync.md) for tests and benchmarks: an account signed in over
httpx, its devices with their own mutation counters and hybrid logical clocks, and the records a
project's push carries."""

from __future__ import annotations

import hashlib
import itertools
import time
import uuid

import httpx

PASSWORD = "correct horse battery"


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class Clock:
    """A device's hybrid logical clock (what pwa/features/sync does), enough for tests."""

    def __init__(self, device: str, start_ms: int | None = None):
        self.device, self.ms, self.counter = device, start_ms or int(time.time() * 1000), 0

    def tick(self) -> str:
        self.counter += 1
        return f"{self.ms:015d}-{self.counter:06d}-{self.device}"


class Device:
    """One simulated device of one account: its own device id, mutation counter and clock."""

    def __init__(self, client: Account, name: str | None = None, start_ms: int | None = None):
        self.account = client
        self.id = name or uuid.uuid4().hex[:12]
        self.mutations = itertools.count(1)
        self.clock = Clock(self.id, start_ms)

    def change(
        self,
        kind: str,
        record_id: str,
        project: str,
        data: dict | None = None,
        deleted: bool = False,
        rev: str | None = None,
    ) -> dict:
        return {
            "mutation": next(self.mutations),
            "kind": kind,
            "id": record_id,
            "project": project,
            "rev": rev or self.clock.tick(),
            "deleted": deleted,
            "data": None if deleted else data,
        }

    def push(self, changes: list[dict], expect: int = 200) -> dict:
        response = self.account.post("/api/sync/push", json={"device": self.id, "changes": changes})
        assert response.status_code == expect, response.text
        return response.json()


class Account:
    """An httpx client signed in as one user."""

    def __init__(self, base_url: str, email: str | None = None, password: str = PASSWORD, signup: bool = True):
        self.http = httpx.Client(base_url=base_url, timeout=60)
        self.email = email or f"{uuid.uuid4().hex[:10]}@example.org"
        credentials = {"email": self.email, "password": password}
        if signup:  # sign-up answers 202 without a token (the same for a taken email): then sign in
            response = self.http.post("/api/auth/signup", json=credentials)
            assert response.status_code == 202, response.text
        response = self.http.post("/api/auth/signin", json=credentials)
        assert response.status_code == 200, response.text
        self.session = response.json()
        self.token = self.session["token"]
        self.http.headers["Authorization"] = f"Bearer {self.token}"

    def __getattr__(self, name):  # get, post, put, delete, request
        return getattr(self.http, name)

    def device(self, name: str | None = None, start_ms: int | None = None) -> Device:
        return Device(self, name, start_ms)

    def upload(self, data: bytes, kind: str = "image", expect: int = 201) -> httpx.Response:
        response = self.put(
            f"/api/blobs/{sha(data)}",
            params={"kind": kind},
            content=data,
            headers={"Content-Type": "application/octet-stream"},
        )
        assert response.status_code == expect, response.text
        return response

    def pull_all(self, since: str = "0", limit: int = 1000) -> tuple[list[dict], str, dict]:
        """Every change after `since`, following pages; (changes, cursor, last page)."""
        changes = []
        while True:
            page = self.get("/api/sync/pull", params={"since": since, "limit": limit})
            assert page.status_code == 200, page.text
            body = page.json()
            changes += body["changes"]
            since = body["cursor"]
            if not body["more"]:
                return changes, since, body

    def state(self) -> dict[tuple[str, str], dict]:
        """The server's live records of this user: (kind, id) -> data."""
        changes, _, _ = self.pull_all()
        return {(c["kind"], c["id"]): c["data"] for c in changes if not c["deleted"]}


def project_changes(device: Device, project: str, name: str, classes: dict[str, str]) -> list[dict]:
    """A project record and its classes (name -> id)."""
    changes = [device.change("project", project, project, {"name": name, "created": "2026-11-25T00:00:00Z"})]
    for order, (class_name, class_id) in enumerate(classes.items()):
        changes.append(device.change("class", class_id, project, {"name": class_name, "order": order}))
    return changes


def sample_change(device: Device, project: str, image: bytes, class_id: str, **extra) -> dict:
    content = sha(image)
    return device.change(
        "sample",
        f"{project}/{content}",
        project,
        {
            "contentId": content,
            "classId": class_id,
            "name": f"{content[:8]}.png",
            "source": "file",
            "format": "png",
            "size": len(image),
            **extra,
        },
    )
