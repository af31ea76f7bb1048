#!/usr/bin/env python3
"""Many devices syncing at once against a real `tejas serve`: latency, throughput, and nothing lost.

Simulated devices (asyncio + httpx, loopback only) follow docs/sync.md like the app does: each signs in
with its own token, then in rounds makes changes (projects, classes, samples of generated PNG images,
then edits and deletions of those samples), uploads the images the server says are missing, pushes
the round's changes, and pulls until caught up (downloading the images of its other devices' samples
and checking their sha256). Devices of one user share one project whose records they all write, so
last-writer-wins decides between them. Some images are the same bytes on every device of every user
(dedupe). When every device has pushed everything, each pulls once more and the run checks:

- each device holds exactly the union of its user's records (latest revision of each): none lost,
  none extra, none stale, no data changed;
- a full pull from the start lists each record exactly once (no duplicate) and no more records;
- the server says no image of a live sample is missing for its user, and its store (folder or bucket)
  holds each image exactly once.

    python bench/sync_load.py          # 50 devices (25 users × 2), 1,000 changes and 200 images each,
                                       # embedded (SQLite + folder) and postgres+s3 (Postgres + moto)
    python bench/sync_load.py --users 1 --devices-per-user 3 --changes 20 --blobs 5 --shared-blobs 2 \
        --rounds 2 --backends embedded     # the smoke test's size (tests/bench/test_sync_load.py)
Writes bench/results/sync_load.json (or --out); exits 1 when a check fails.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import importlib.metadata
import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import asdict, dataclass, field
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.report import _git, machine_facts, new_report, write_report  # noqa: E402
from testkit import services  # noqa: E402
from testkit.images import png  # noqa: E402

TEJAS = str(Path(sys.executable).parent / "tejas")
BACKENDS = ("embedded", "postgres+s3")
PASSWORD = "correct horse battery staple"
RETRIES = 6  # with the back-off below: about 16 s of patience, then the run fails
# Server-side code the numbers depend on (report.py's list covers bench/, pwa/, tools/).
SERVER_PATHS = ("sync_server",)


@dataclass
class Config:
    # 25 × 2: each device pulls about what it pushes (its sibling's records and images); more devices per
    # user multiply the downloads (each device fetches every sibling's images), not the pushes
    users: int = 25
    devices_per_user: int = 2
    changes: int = 1000  # per device, pushed
    blobs: int = 200  # images per device (samples of its own project)
    shared_blobs: int = 20  # of those, the same bytes on every device of every user
    rounds: int = 5  # edit → upload → push → pull cycles per device
    pull_limit: int = 500
    # devices syncing at the same moment (each with up to blob_concurrency requests in flight); all 50 at once
    # with 4 each overran the embedded server's connection pool (500s after 30 s waits) on this 2-core machine
    concurrent_devices: int = 50  # every device at once
    blob_concurrency: int = 4  # uploads / downloads in flight per device
    image_size: int = 24  # square PNGs, a few hundred bytes to 2 KB
    delete_fraction: float = 0.05  # of the edits, deletions of own samples
    seed: int = 0
    timeout_s: float = 900  # per backend: the whole run is abandoned (and fails) after this

    def check(self):
        own = 1 + 5 + self.blobs + self.shared_blobs + 1  # project, classes, samples, shared samples, class
        needed = own + self.rounds  # + the shared project record once a round
        if self.changes < needed:
            raise SystemExit(f"--changes must be at least {needed} for {self.blobs} images and {self.rounds} rounds")
        if self.shared_blobs > self.blobs:
            raise SystemExit("--shared-blobs cannot exceed --blobs")


# ---------------------------------------------------------------------------------------------- the server


class Server:
    """`tejas serve` on a free port with its data in a temporary folder; env picks the backend."""

    def __init__(self, env: dict[str, str]):
        self.root = Path(tempfile.mkdtemp(prefix="tejas-sync-load-"))
        self.port = services.free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = dict(
            os.environ,
            TEJAS_DATA_DIR=str(self.root / "data"),
            TEJAS_ARTIFACTS_DIR=str(self.root / "artifacts"),
            # fast password hashing: sign-in cost is not what this measures (NOTES.md: 131 ms per hash at defaults)
            TEJAS_ARGON2_TIME_COST="1",
            TEJAS_ARGON2_MEMORY_KIB="8",
            TEJAS_ARGON2_PARALLELISM="1",
            # every simulated user signs up from 127.0.0.1: the per-address sign-up limit would stop the 11th
            TEJAS_SIGNUP_MAX_PER_ADDRESS="1000000",
            **env,
        )
        self.log = self.root / "server.log"
        with open(self.log, "w") as log:
            self.process = subprocess.Popen(
                [TEJAS, "serve", "--port", str(self.port)],
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )

        def health():
            urllib.request.urlopen(f"{self.url}/api/health", timeout=2).close()

        try:
            services.poll(health, 60, "tejas serve", alive=lambda: self.process.poll() is None, log=self.log)
        except BaseException:
            self.stop()
            raise

    def cpu_seconds(self) -> float | None:
        """User + system CPU time of the server process so far."""
        try:
            fields = Path(f"/proc/{self.process.pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            return None
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def stored_blob_names(self) -> list[str]:
        """File names in the local blob folder (the embedded store)."""
        blobs = self.root / "data" / "blobs"
        return [p.name for p in blobs.rglob("*") if p.is_file()] if blobs.exists() else []

    def logged_errors(self) -> list[str]:
        """The distinct exception lines of the server's log (the last line of each traceback)."""
        lines = self.log.read_text(errors="replace").splitlines() if self.log.exists() else []
        found = [line for line in lines if re.match(r"^[A-Za-z_.]+(Error|Exception)\b", line)]
        return sorted(set(line[:300] for line in found))[:10]

    def stop(self):
        services.stop_process(self.process, timeout=15)

    def cleanup(self):
        shutil.rmtree(self.root, ignore_errors=True)


# ---------------------------------------------------------------------------------------------- devices


class Clock:
    """The hybrid logical clock of docs/sync.md: never goes back, counter on ties, device id last."""

    def __init__(self, device: str):
        self.device, self.ms, self.counter = device, 0, 0

    def tick(self) -> str:
        now = int(time.time() * 1000)
        if now > self.ms:
            self.ms, self.counter = now, 0
        else:
            self.counter += 1
        return f"{self.ms:015d}-{self.counter:06d}-{self.device}"

    def observe(self, rev: str):
        ms, counter, _ = rev.split("-", 2)
        if (int(ms), int(counter)) > (self.ms, self.counter):
            self.ms, self.counter = int(ms), int(counter)


@dataclass
class Stats:
    push_s: list[float] = field(default_factory=list)
    pull_s: list[float] = field(default_factory=list)
    missing_s: list[float] = field(default_factory=list)
    upload_s: list[float] = field(default_factory=list)
    download_s: list[float] = field(default_factory=list)
    signin_s: list[float] = field(default_factory=list)
    changes_pushed: int = 0
    changes_accepted: int = 0
    changes_skipped: int = 0
    changes_pulled: int = 0
    pages: int = 0
    bytes_up: int = 0
    bytes_down: int = 0
    blob_gone: int = 0  # a download answered 404: the sample was deleted meanwhile (its tombstone follows)
    server_errors: list[str] = field(default_factory=list)  # 5xx answers, each retried
    connection_errors: list[str] = field(default_factory=list)  # connections lost mid-request, each retried

    def merge(self, other: Stats):
        for name, value in asdict(other).items():
            setattr(self, name, getattr(self, name) + value)


def image(seed: int, size: int) -> bytes:
    return png(size, size, seed=seed)


def shared_images(config: Config) -> list[bytes]:
    return [image(1_000_000_000 + i, config.image_size) for i in range(config.shared_blobs)]


class Device:
    def __init__(self, config: Config, url: str, user: int, index: int, shared: list[bytes]):
        self.config, self.user, self.index = config, user, index
        self.id = f"u{user:02d}d{index}"
        self.email = f"user{user:02d}@bench.tejas.invalid"
        self.clock = Clock(self.id)
        self.random = random.Random(f"{config.seed}-{self.id}")
        self.client = httpx.AsyncClient(
            base_url=url,
            timeout=120,
            trust_env=False,  # loopback only: never a proxy from the environment
            limits=httpx.Limits(max_connections=config.blob_concurrency + 1),
        )
        self.stats = Stats()
        self.mutation = 0
        self.pushed: list[dict] = []  # every change this device pushed (for the expected state)
        self.local: dict[tuple[str, str], dict] = {}  # (kind, id) -> change (the device's database)
        self.blobs: dict[str, bytes] = {}  # sha256 -> bytes this device holds
        self.cursor = "0"
        unique = [
            image((user * 100 + index) * 100_000 + i, config.image_size)
            for i in range(config.blobs - config.shared_blobs)
        ]
        self.images = shared + unique
        for data in self.images:
            self.blobs[hashlib.sha256(data).hexdigest()] = data
        self.project = self.id
        self.shared_project = f"u{user:02d}-shared"
        self.classes = [f"{self.id}-c{i}" for i in range(5)]
        self.shared_class = f"{self.id}-shared-class"
        self.samples: list[str] = []  # own live sample ids (in creation order)

    async def close(self):
        await self.client.aclose()

    # -- requests ----------------------------------------------------------------------------------------------

    async def request(self, method: str, path: str, timings: list[float] | None, expect=(200,), headers=None, **kwargs):
        """One request as the app makes it: a server error (5xx) or a lost connection is retried (every request
        here is idempotent: pushes by mutation number, uploads by hash) and counted; the time includes retries."""
        started = time.perf_counter()
        for attempt in range(RETRIES + 1):
            try:
                response = await self.client.request(
                    method, path, headers={**self.headers, **(headers or {})}, **kwargs
                )
            except httpx.TransportError as error:
                # e.g. a kept-alive connection the server closed (uvicorn: after 5 s idle) just as it was reused;
                # browsers retry those by themselves
                if attempt == RETRIES:
                    raise
                self.stats.connection_errors.append(type(error).__name__)
                await asyncio.sleep(0.25 * 2**attempt)
                continue
            if response.status_code < 500 or attempt == RETRIES:
                break
            route = re.sub(r"[0-9a-f]{64}", "{sha256}", path)
            self.stats.server_errors.append(f"{method} {route} {response.status_code}")
            await asyncio.sleep(0.25 * 2**attempt)  # back off before the retry, like the app
        if timings is not None:
            timings.append(time.perf_counter() - started)
        if response.status_code not in expect:
            raise RuntimeError(f"{self.id}: {method} {path} → {response.status_code} {response.text[:300]}")
        return response

    headers: dict[str, str] = {}

    async def sign_in(self, first: bool):
        body = {"email": self.email, "password": PASSWORD}
        if first:  # sign-up answers 202 without a token (alike for a taken email): then sign in
            await self.request("POST", "/api/auth/signup", self.stats.signin_s, (202,), json=body)
        response = await self.request("POST", "/api/auth/signin", self.stats.signin_s, json=body)
        self.headers = {"Authorization": f"Bearer {response.json()['token']}"}

    # -- making changes -------------------------------------------------------------------------------------

    def change(self, kind: str, id: str, project: str, data: dict | None) -> dict:
        self.mutation += 1
        change = {
            "mutation": self.mutation,
            "kind": kind,
            "id": id,
            "project": project,
            "rev": self.clock.tick(),
            "deleted": data is None,
            "data": data,
        }
        self.local[(kind, id)] = {k: v for k, v in change.items() if k != "mutation"}
        self.pushed.append(change)
        return change

    def sample_data(self, sha: str, data: bytes, class_id: str, name: str) -> dict:
        size = self.config.image_size
        return {
            "contentId": sha,
            "classId": class_id,
            "name": name,
            "source": "bench",
            "added": "2026-11-25T00:00:00Z",
            "format": "png",
            "width": size,
            "height": size,
            "size": len(data),
        }

    def plan_round(self, round_: int) -> list[dict]:
        """This round's changes: creations first, then edits to fill the device's share of --changes."""
        config = self.config
        changes = []
        if round_ == 0:
            changes.append(self.change("project", self.project, self.project, {"name": self.id, "created": 0}))
            for i, c in enumerate(self.classes):
                changes.append(self.change("class", c, self.project, {"name": f"class {i}", "order": i, "created": 0}))
            changes.append(
                self.change(
                    "class", self.shared_class, self.shared_project, {"name": f"{self.id}'s", "order": 0, "created": 0}
                )
            )
            for data in self.images[: config.shared_blobs]:  # the shared images also go in the shared project
                sha = hashlib.sha256(data).hexdigest()
                changes.append(
                    self.change(
                        "sample",
                        f"{self.shared_project}/{sha}",
                        self.shared_project,
                        self.sample_data(sha, data, self.shared_class, self.id),
                    )
                )
        # every device renames the user's shared project every round: last writer wins
        changes.append(
            self.change(
                "project", self.shared_project, self.shared_project, {"name": f"by {self.id} r{round_}", "created": 0}
            )
        )
        per_round = -(-config.blobs // config.rounds)
        for data in self.images[round_ * per_round : (round_ + 1) * per_round]:
            sha = hashlib.sha256(data).hexdigest()
            sample = f"{self.project}/{sha}"
            self.samples.append(sample)
            cls = self.classes[len(self.samples) % len(self.classes)]
            changes.append(self.change("sample", sample, self.project, self.sample_data(sha, data, cls, sample)))
        # edits: move a sample to another class and rename it, or delete it
        planned_before = self.mutation - len(changes)
        budget = (config.changes * (round_ + 1)) // config.rounds - planned_before
        while len(changes) < budget and self.samples:
            sample = self.random.choice(self.samples)
            if self.random.random() < config.delete_fraction:
                self.samples.remove(sample)
                changes.append(self.change("sample", sample, self.project, None))
                continue
            sha = sample.rsplit("/", 1)[1]
            data = self.blobs[sha]
            cls = self.random.choice(self.classes)
            name = f"{sample} #{self.mutation + 1}"
            changes.append(self.change("sample", sample, self.project, self.sample_data(sha, data, cls, name)))
        return changes

    # -- syncing --------------------------------------------------------------------------------------------

    async def upload_missing(self, shas: list[str]):
        missing = []
        for start in range(0, len(shas), 1000):
            response = await self.request(
                "POST", "/api/blobs/missing", self.stats.missing_s, json={"sha256": shas[start : start + 1000]}
            )
            missing += response.json()["missing"]
        gate = asyncio.Semaphore(self.config.blob_concurrency)

        async def put(sha: str):
            async with gate:
                data = self.blobs[sha]
                response = await self.request(
                    "PUT",
                    f"/api/blobs/{sha}",
                    self.stats.upload_s,
                    (201,),
                    params={"kind": "image"},
                    content=data,
                    headers={"Content-Type": "application/octet-stream"},
                )
                assert response.json()["sha256"] == sha
                self.stats.bytes_up += len(data)

        await asyncio.gather(*(put(sha) for sha in missing))

    async def push(self, changes: list[dict]):
        for start in range(0, len(changes), 1000):
            batch = changes[start : start + 1000]
            response = await self.request(
                "POST", "/api/sync/push", self.stats.push_s, json={"device": self.id, "changes": batch}
            )
            answer = response.json()
            if answer["last_mutation"] != batch[-1]["mutation"]:
                raise RuntimeError(f"{self.id}: push answered last_mutation {answer['last_mutation']}")
            self.stats.changes_pushed += len(batch)
            self.stats.changes_accepted += answer["accepted"]
            self.stats.changes_skipped += answer["skipped"]

    async def download(self, shas: set[str]):
        gate = asyncio.Semaphore(self.config.blob_concurrency)

        async def get(sha: str):
            async with gate:
                response = await self.request("GET", f"/api/blobs/{sha}", self.stats.download_s, (200, 404))
                if response.status_code == 404:
                    self.stats.blob_gone += 1
                    return
                if hashlib.sha256(response.content).hexdigest() != sha:
                    raise RuntimeError(f"{self.id}: blob {sha} came back with other bytes")
                self.blobs[sha] = response.content
                self.stats.bytes_down += len(response.content)

        await asyncio.gather(*(get(sha) for sha in sorted(shas)))

    async def pull(self):
        """Pull pages until the server says there is no more; images first, then the page is applied."""
        while True:
            response = await self.request(
                "GET",
                "/api/sync/pull",
                self.stats.pull_s,
                params={"since": self.cursor, "limit": self.config.pull_limit},
            )
            page = response.json()
            self.stats.pages += 1
            self.stats.changes_pulled += len(page["changes"])
            lacking = {
                c["data"]["contentId"]
                for c in page["changes"]
                if c["kind"] == "sample" and not c["deleted"] and c["data"]["contentId"] not in self.blobs
            }
            await self.download(lacking)
            for change in page["changes"]:
                key = (change["kind"], change["id"])
                mine = self.local.get(key)
                self.clock.observe(change["rev"])
                if mine is None or change["rev"] >= mine["rev"]:
                    self.local[key] = {k: v for k, v in change.items() if k != "version"}
            self.cursor = page["cursor"]
            if not page["more"]:
                return

    async def sync_round(self, round_: int):
        changes = self.plan_round(round_)
        shas = sorted({c["data"]["contentId"] for c in changes if c["kind"] == "sample" and not c["deleted"]})
        await self.upload_missing(shas)
        await self.push(changes)
        await self.pull()


# ---------------------------------------------------------------------------------------------- a run


def percentiles(samples: list[float]) -> dict:
    if not samples:
        return {"count": 0}
    ordered = sorted(samples)

    def rank(p: float) -> float:  # nearest rank
        return ordered[max(0, min(len(ordered) - 1, round(p / 100 * len(ordered) + 0.5) - 1))]

    return {
        "count": len(ordered),
        "p50_ms": round(rank(50) * 1000, 2),
        "p95_ms": round(rank(95) * 1000, 2),
        "max_ms": round(ordered[-1] * 1000, 2),
        "mean_ms": round(sum(ordered) / len(ordered) * 1000, 2),
    }


def expected_state(devices: list[Device]) -> dict[tuple[str, str], dict]:
    """The latest revision of every record the user's devices pushed (revisions compare as strings)."""
    state: dict[tuple[str, str], dict] = {}
    for device in devices:
        for change in device.pushed:
            key = (change["kind"], change["id"])
            if key not in state or change["rev"] > state[key]["rev"]:
                state[key] = {k: v for k, v in change.items() if k != "mutation"}
    return state


async def full_pull(device: Device) -> list[dict]:
    """Every record from the beginning, as a newly signed-in device would see it (own cursor)."""
    changes, cursor = [], "0"
    while True:
        response = await device.request(
            "GET", "/api/sync/pull", None, params={"since": cursor, "limit": device.config.pull_limit}
        )
        page = response.json()
        changes += page["changes"]
        cursor = page["cursor"]
        if not page["more"]:
            return changes


def compare(local: dict, expected: dict) -> dict:
    lost = [k for k in expected if k not in local]
    stale = [k for k in expected if k in local and local[k]["rev"] < expected[k]["rev"]]
    extra = [k for k in local if k not in expected]
    changed = [
        k
        for k in expected
        if k in local
        and local[k]["rev"] == expected[k]["rev"]
        and (local[k]["deleted"], local[k]["data"]) != (expected[k]["deleted"], expected[k]["data"])
    ]
    return {
        "lost": len(lost),
        "stale": len(stale),
        "extra": len(extra),
        "changed": len(changed),
        "examples": [list(k) for k in (lost + stale + extra + changed)[:5]],
    }


async def verify(groups: list[list[Device]], stored_names: list[str]) -> dict:
    totals = {
        "records_expected": 0,
        "records_per_device": [],
        "lost": 0,
        "stale": 0,
        "extra": 0,
        "changed": 0,
        "duplicated": 0,
        "full_pull_count_mismatch": 0,
        "blobs_missing": 0,
        "examples": [],
    }
    all_shas: set[str] = set()
    for devices in groups:
        expected = expected_state(devices)
        totals["records_expected"] += len(expected)
        for device in devices:
            result = compare(device.local, expected)
            totals["records_per_device"].append(len(device.local))
            for key in ("lost", "stale", "extra", "changed"):
                totals[key] += result[key]
            totals["examples"] += [[device.id, *e] for e in result["examples"]]
        # a full pull from the start: each record exactly once, at its latest revision
        everything = await full_pull(devices[0])
        seen: dict[tuple[str, str], int] = {}
        for change in everything:
            key = (change["kind"], change["id"])
            seen[key] = seen.get(key, 0) + 1
        totals["duplicated"] += sum(n - 1 for n in seen.values())
        if len(seen) != len(expected):
            totals["full_pull_count_mismatch"] += 1
        full = {(c["kind"], c["id"]): c for c in everything}
        result = compare(full, expected)
        for key in ("lost", "stale", "extra", "changed"):
            totals[key] += result[key]
        totals["examples"] += [["full pull", *e] for e in result["examples"]]
        # the server holds every image a live sample of this user refers to
        live = sorted({c["data"]["contentId"] for c in expected.values() if c["kind"] == "sample" and not c["deleted"]})
        uploaded = {
            sha
            for d in devices
            for c in d.pushed
            if c["kind"] == "sample" and c["data"]
            for sha in [c["data"]["contentId"]]
        }
        all_shas |= uploaded
        for start in range(0, len(live), 1000):
            response = await devices[0].request(
                "POST", "/api/blobs/missing", None, json={"sha256": live[start : start + 1000]}
            )
            totals["blobs_missing"] += len(response.json()["missing"])
    # the store keeps each image once, whoever uploaded it
    counts: dict[str, int] = {}
    for name in stored_names:
        sha = next((part for part in name.replace(".", "/").split("/") if len(part) == 64), None)
        if sha is not None:
            counts[sha] = counts.get(sha, 0) + 1
    totals["blobs_uploaded_distinct"] = len(all_shas)
    totals["blobs_stored"] = sum(counts.get(sha, 0) for sha in all_shas)
    totals["blobs_stored_twice"] = sum(1 for sha in all_shas if counts.get(sha, 0) > 1)
    totals["blobs_not_stored"] = sum(1 for sha in all_shas if counts.get(sha, 0) == 0)
    per_device = totals.pop("records_per_device")
    totals["records_per_device_min"], totals["records_per_device_max"] = min(per_device), max(per_device)
    totals["examples"] = totals["examples"][:10]
    failures = (
        "lost",
        "stale",
        "extra",
        "changed",
        "duplicated",
        "full_pull_count_mismatch",
        "blobs_missing",
        "blobs_stored_twice",
        "blobs_not_stored",
    )
    totals["ok"] = all(totals[key] == 0 for key in failures)
    return totals


async def drive(config: Config, url: str) -> tuple[list[list[Device]], float, Stats]:
    shared = shared_images(config)
    groups = [
        [Device(config, url, user, index, shared) for index in range(config.devices_per_user)]
        for user in range(config.users)
    ]
    devices = [d for group in groups for d in group]
    try:
        for group in groups:  # accounts: one sign-up per user, then each other device signs in
            await group[0].sign_in(first=True)
            await asyncio.gather(*(d.sign_in(first=False) for d in group[1:]))
        done = asyncio.Event()
        remaining = len(devices)

        # Devices take turns (FIFO) for a sync, at most --concurrent-devices at once: every device stays
        # signed in and interleaves its rounds with the others', as devices syncing at different moments do.
        turns = asyncio.Semaphore(config.concurrent_devices)

        async def run(device: Device):
            nonlocal remaining
            for round_ in range(config.rounds):
                async with turns:
                    await device.sync_round(round_)
            remaining -= 1
            if remaining == 0:
                done.set()
            await done.wait()  # every device has pushed everything: one last pull catches up
            async with turns:
                await device.pull()

        started = time.perf_counter()
        await asyncio.gather(*(run(d) for d in devices))
        wall = time.perf_counter() - started
        total = Stats()
        for device in devices:
            total.merge(device.stats)
        return groups, wall, total
    except BaseException:
        await asyncio.gather(*(d.close() for d in devices), return_exceptions=True)
        raise


async def run_backend(config: Config, name: str) -> dict:
    cleanups = []
    env: dict[str, str] = {}
    facts: dict = {"backend": name}
    s3 = None
    try:
        if name == "postgres+s3":
            cluster = services.start_postgres()
            cleanups.append(cluster.stop)
            s3 = services.start_s3()
            cleanups.append(s3.stop)
            env = {"TEJAS_DATABASE_URL": services.create_database(cluster.url), **s3.env()}
            import psycopg

            with psycopg.connect(services.psycopg_dsn(cluster.url)) as connection:
                facts["postgres"] = connection.execute("SHOW server_version").fetchone()[0]
        server = Server(env)
        cleanups.append(server.cleanup)
        cleanups.append(server.stop)
        cpu_before = server.cpu_seconds()
        try:
            groups, wall, stats = await asyncio.wait_for(drive(config, server.url), config.timeout_s)
        except BaseException:
            print(f"sync_load: {name}: the server's log ends:\n{services.log_tail(server.log, 40)}", file=sys.stderr)
            raise
        cpu_after = server.cpu_seconds()
        try:
            if s3 is not None:
                client = services.s3_client(env)
                names = []
                for page in client.get_paginator("list_objects_v2").paginate(Bucket=env["TEJAS_S3_BUCKET"]):
                    names += [o["Key"] for o in page.get("Contents", [])]
            else:
                names = server.stored_blob_names()
            checks = await verify(groups, names)
        finally:
            await asyncio.gather(*(d.close() for group in groups for d in group))
        requests = sum(len(getattr(stats, k)) for k in ("push_s", "pull_s", "missing_s", "upload_s", "download_s"))
        return {
            **facts,
            "devices": config.users * config.devices_per_user,
            "wall_s": round(wall, 2),
            "server_cpu_s": round(cpu_after - cpu_before, 2) if cpu_before is not None else None,
            "push": percentiles(stats.push_s),
            "pull": percentiles(stats.pull_s),
            "blobs_missing": percentiles(stats.missing_s),
            "blob_upload": percentiles(stats.upload_s),
            "blob_download": percentiles(stats.download_s),
            "sign_in": percentiles(stats.signin_s),
            "throughput": {
                "changes_pushed_per_s": round(stats.changes_pushed / wall, 1),
                "changes_pulled_per_s": round(stats.changes_pulled / wall, 1),
                "blobs_uploaded_per_s": round(len(stats.upload_s) / wall, 1),
                "blobs_downloaded_per_s": round(len(stats.download_s) / wall, 1),
                "requests_per_s": round(requests / wall, 1),
            },
            "totals": {
                "changes_pushed": stats.changes_pushed,
                "changes_accepted": stats.changes_accepted,
                "changes_skipped": stats.changes_skipped,
                "changes_pulled": stats.changes_pulled,
                "pull_pages": stats.pages,
                "blobs_uploaded": len(stats.upload_s),
                "blobs_downloaded": len(stats.download_s) - stats.blob_gone,
                "blob_downloads_gone": stats.blob_gone,
                "bytes_up": stats.bytes_up,
                "bytes_down": stats.bytes_down,
                "requests": requests,
                "server_errors": len(stats.server_errors),
                "connection_errors": len(stats.connection_errors),
            },
            "server_errors": sorted(set(stats.server_errors))[:20],
            "server_log_errors": server.logged_errors(),
            "checks": checks,
        }
    finally:
        for cleanup in reversed(cleanups):
            try:
                cleanup()
            except Exception as error:  # noqa: BLE001 - clean up the rest regardless
                print(f"sync_load: cleanup failed: {error}", file=sys.stderr)


def versions() -> dict:
    found = {}
    for name in ("fastapi", "starlette", "uvicorn", "sqlalchemy", "psycopg", "boto3", "moto", "httpx", "argon2-cffi"):
        try:
            found[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            pass
    return found


def _interrupt(signum, frame):
    raise KeyboardInterrupt


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    defaults = Config()
    for name, value in asdict(defaults).items():
        flag = "--" + name.replace("_", "-")
        parser.add_argument(flag, type=type(value), default=value, help=f"default: {value}")
    parser.add_argument("--backends", nargs="+", choices=BACKENDS, default=list(BACKENDS))
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "sync_load.json")
    args = parser.parse_args(argv)
    # a SIGTERM (e.g. `timeout`) unwinds like Ctrl+C, so the server, Postgres and moto are stopped
    signal.signal(signal.SIGTERM, _interrupt)
    config = Config(**{name: getattr(args, name) for name in asdict(defaults)})
    config.check()
    results = []
    for name in args.backends:
        print(f"sync_load: {name}: {config.users} users × {config.devices_per_user} devices ...", file=sys.stderr)
        result = asyncio.run(run_backend(config, name))
        checks = result["checks"]
        print(
            f"sync_load: {name}: {result['wall_s']} s, push p50 {result['push']['p50_ms']} ms / p95 "
            f"{result['push']['p95_ms']} ms, pull p50 {result['pull']['p50_ms']} ms / p95 "
            f"{result['pull']['p95_ms']} ms; "
            f"lost {checks['lost']}, duplicated {checks['duplicated']}, ok {checks['ok']}; "
            f"server errors (retried) {result['totals']['server_errors']} {result['server_log_errors']}",
            file=sys.stderr,
        )
        results.append(result)
    dirty = _git("status", "--porcelain", "--untracked-files=all", "--", *SERVER_PATHS)
    report = new_report(
        "sync_load",
        config=asdict(config),
        machine=machine_facts(torch=False, onnxruntime=False),
        software=versions(),
        server_git_modified=[line[3:] for line in dirty.splitlines()] if dirty else [],
        results=results,
        ok=all(r["checks"]["ok"] for r in results),
    )
    write_report(args.out, report)
    if not report["ok"]:
        print(f"sync_load: a check failed: {json.dumps([r['checks'] for r in results])}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
