"""Sync between devices through a real `tejas serve`: two browser contexts on one account get
byte-identical projects (images, labels, models); offline edits on both converge to the state the edit
lists imply, on both devices and on the server; a server killed while a device uploads loses nothing
and stores each image once; the Sync screen and what About says sync sends."""

from __future__ import annotations

import base64
import hashlib
import shutil
import subprocess
from datetime import UTC, datetime, timedelta

import httpx
import numpy as np
import pytest

from ..conftest import TEJAS
from .conftest import PAGE_HELPERS, axe_violations, digit_images, png, wait_screen

pytestmark = [pytest.mark.browser, pytest.mark.slow]

PASSWORD = "correct horse battery"

# dumpDevice() → {projectId: {name, created, classes, samples (with the sha256 of their stored image
# bytes), models (with the sha256 of their float32 LE parameters), current}} read through the app's API.
SYNC_HELPERS = """
window.hexOf = async (buffer) => Array.from(new Uint8Array(await crypto.subtle.digest('SHA-256', buffer)),
  (b) => b.toString(16).padStart(2, '0')).join('');
window.dumpDevice = async () => {
  const t = await import('/tejas.js');
  const out = {};
  for (const p of await t.listProjects()) {
    const classes = (await t.listClasses(p.id)).map((c) => ({ id: c.id, name: c.name, order: c.order }));
    const samples = [];
    for (const s of await t.listSamples(p.id)) {
      const bytes = await (await t.getImage(s.contentId)).arrayBuffer();
      const { contentId, classId, name, source, added, format, width, height, size } = s;
      const sha256 = await hexOf(bytes);
      samples.push({ contentId, classId, name, source, added, format, width, height, size, sha256 });
    }
    samples.sort((a, b) => a.contentId.localeCompare(b.contentId));
    const models = [];
    for (const m of await t.listModels(p.id)) {
      const p32 = m.parameters;
      const bytes = p32.buffer.slice(p32.byteOffset, p32.byteOffset + p32.byteLength);
      models.push({ id: m.id, parameters: await hexOf(bytes), length: m.parameters.length, accuracy: m.metrics.accuracy,
                    classes: m.classes, created: m.created });
    }
    models.sort((a, b) => a.id.localeCompare(b.id));
    const current = (await t.currentModel(p.id))?.id ?? null;
    out[p.id] = { name: p.name, created: p.created, classes, samples, models, current };
  }
  return out;
};
window.pendingOf = async (projectId) => (await (await import('/tejas.js')).listChanges(projectId)).length;
"""


@pytest.fixture
def sync_server(default_export, serve, tmp_path):
    """`tejas serve` with the default export and its own data folder."""
    folder, _ = default_export
    shutil.copytree(folder, tmp_path / "artifacts" / "default")
    return serve(tmp_path / "artifacts", data_dir=tmp_path / "server-data")


def devices(browser, url: str):
    """Yields open_device() → a page of the app at `url` in a fresh browser context (its own IndexedDB:
    another device); the contexts close after."""
    contexts = []

    def open_device():
        context = browser.new_context()
        contexts.append(context)
        page = context.new_page()
        page.add_init_script(PAGE_HELPERS + SYNC_HELPERS)
        page.goto(url + "/")
        wait_screen(page, "projects")
        return page

    yield open_device
    for context in contexts:
        context.close()


@pytest.fixture
def new_device(browser, sync_server):
    """new_device() → a page of the app in a fresh browser context (its own IndexedDB: another device)."""
    yield from devices(browser, sync_server.url)


def b64png(rgb) -> str:
    return base64.b64encode(png(rgb)).decode()


def digits(label: int, start: int, count: int) -> list[str]:
    """`count` digit images of one label (64×64 PNG, base64), from the `start`-th."""
    train, validation = digit_images()
    images = [rgb for rgb, y in train + validation if y == label]
    return [b64png(rgb) for rgb in images[start : start + count]]


def sign(page, email: str, create: bool) -> dict:
    return page.evaluate(
        "async ([email, password, create]) => { const t = await import('/tejas.js');"
        " return create ? t.signUp(email, password) : t.signIn(email, password); }",
        [email, PASSWORD, create],
    )


def sync_now(page) -> dict:
    return page.evaluate("async () => (await import('/tejas.js')).syncNow()")


def server_state(url: str, email: str) -> dict:
    """The account's live records on the server, in dumpDevice's shape (from GET /api/sync/pull)."""
    with httpx.Client(base_url=url, timeout=30) as client:
        token = client.post("/api/auth/signin", json={"email": email, "password": PASSWORD}).json()["token"]
        headers = {"Authorization": f"Bearer {token}"}
        records, since = {}, "0"
        while True:
            page = client.get("/api/sync/pull", params={"since": since, "limit": 1000}, headers=headers).json()
            for change in page["changes"]:
                records[(change["kind"], change["id"])] = change
            since = page["cursor"]
            if not page["more"]:
                break
        blobs = {}
        live = [c for c in records.values() if not c["deleted"]]
        for change in live:
            sha = change["data"]["contentId"] if change["kind"] == "sample" else None
            sha = change["data"]["parameters"]["sha256"] if change["kind"] == "model" else sha
            if sha:
                body = client.get(f"/api/blobs/{sha}", headers=headers).content
                assert hashlib.sha256(body).hexdigest() == sha
                blobs[sha] = body
    out = {}
    for change in live:
        if change["kind"] == "project":
            out[change["id"]] = {
                "name": change["data"]["name"],
                "created": change["data"]["created"],
                "classes": [],
                "samples": [],
                "models": [],
                "current": None,
            }
    for change in live:
        project, data = out[change["project"]], change["data"]
        if change["kind"] == "class":
            project["classes"].append({"id": change["id"], "name": data["name"], "order": data["order"]})
        elif change["kind"] == "sample":
            project["samples"].append({**data, "sha256": hashlib.sha256(blobs[data["contentId"]]).hexdigest()})
        elif change["kind"] == "model":
            raw = blobs[data["parameters"]["sha256"]]
            project["models"].append(
                {
                    "id": change["id"],
                    "parameters": data["parameters"]["sha256"],
                    "length": len(raw) // 4,
                    "accuracy": data["metrics"]["accuracy"],
                    "classes": data["classes"],
                    "created": data["created"],
                }
            )
        elif change["kind"] == "head":
            project["current"] = data["modelId"]
    for project in out.values():
        project["classes"].sort(key=lambda c: c["order"])
        project["samples"].sort(key=lambda s: s["contentId"])
        project["models"].sort(key=lambda m: m["id"])
    return out


def test_a_second_device_gets_the_project_byte_identical(new_device, sync_server):
    a = new_device()
    sign(a, "ada@example.org", create=True)
    items = [[b64, 0] for b64 in digits(0, 0, 10)] + [[b64, 1] for b64 in digits(1, 0, 10)]
    made = a.evaluate(
        """async (items) => {
          const { t, project } = await projectWith('Zero or one', ['zero', 'one'], items);
          const model = await t.train(project.id, { epochs: 5 });
          const before = (await t.syncStatus()).projects[0];
          const offRun = await t.syncNow();
          return { projectId: project.id, model: model.id, before, offRun };
        }""",
        items,
    )
    # off by default: signed in and synced, yet nothing waits to be sent and the server holds nothing
    assert made["before"]["on"] is False and made["before"]["pending"] == 0
    assert made["offRun"]["lastError"] is None and made["offRun"]["projects"][0]["on"] is False
    assert server_state(sync_server.url, "ada@example.org") == {}
    made |= a.evaluate(
        """async ([projectId, b64]) => {
          const t = await import('/tejas.js');
          await t.setProjectSync(projectId, true);
          const status = await t.syncNow();
          const top = await t.predict(projectId, fileFrom(b64, 'q.png'), { topK: 2 });
          return { status, pending: await pendingOf(projectId), top };
        }""",
        [made["projectId"], items[0][0]],
    )
    assert made["status"]["lastError"] is None and made["pending"] == 0
    assert made["status"]["projects"][0]["on"] is True and made["status"]["projects"][0]["pending"] == 0
    mine = a.evaluate("dumpDevice()")
    project = mine[made["projectId"]]
    assert len(project["samples"]) == 20 and len(project["models"]) == 1 and project["current"] == made["model"]
    assert all(s["sha256"] == s["contentId"] for s in project["samples"])

    b = new_device()
    sign(b, "ada@example.org", create=False)
    status = sync_now(b)
    assert status["lastError"] is None
    assert [(p["id"], p["on"]) for p in status["projects"]] == [(made["projectId"], True)]  # arrived: syncs on
    theirs = b.evaluate("dumpDevice()")
    assert theirs == mine
    assert server_state(sync_server.url, "ada@example.org") == mine
    # the model works on the second device: the same predictions
    top = b.evaluate(
        "async ([id, b64]) => (await import('/tejas.js')).predict(id, fileFrom(b64, 'q.png'), { topK: 2 })",
        [made["projectId"], items[0][0]],
    )
    assert top == made["top"]
    # thumbnails were made on arrival, as addSamples makes them
    assert (
        b.evaluate(
            "async (id) => (await (await import('/tejas.js')).getThumbnail(id)).type",
            project["samples"][0]["contentId"],
        )
        == "image/webp"
    )


def test_a_blob_the_server_refuses_is_set_aside_and_the_rest_syncs(new_device, sync_server):
    """Bytes the server will never take (here an image damaged in this device's storage; an older app's text
    that the rules now call blank is the same case) leave their sample out with a reason on the project,
    instead of failing every run: the project's other records sync, and nothing waits."""
    a = new_device()
    sign(a, "bo@example.org", create=True)
    items = [[b64, 0] for b64 in digits(0, 0, 4)]
    out = a.evaluate(
        """async (items) => {
          const { t, project } = await projectWith('Digits', ['zero'], items);
          const samples = await t.listSamples(project.id);
          const db = await import('/db.js');
          await db.transaction(['blobs'], 'readwrite', async ({ blobs }) => {
            const record = await db.get(blobs, samples[0].contentId);
            await db.put(blobs, { ...record, image: new Blob([new Uint8Array([0x89, 0x50, 0x4e, 0x47, 1, 2, 3])]) });
          });
          await t.setProjectSync(project.id, true);
          const status = await t.syncNow();
          return { projectId: project.id, damaged: samples[0].contentId, damagedName: samples[0].name, status,
                   pending: await pendingOf(project.id) };
        }""",
        items,
    )
    status = out["status"]
    assert status["lastError"] is None and out["pending"] == 0, status
    row = status["projects"][0]
    assert row["error"].startswith(f'sample "{out["damagedName"]}" was not synced: the server refused it (')
    assert "The bytes do not match their name" in row["error"], row["error"]
    on_server = server_state(sync_server.url, "bo@example.org")[out["projectId"]]
    assert sorted(s["contentId"] for s in on_server["samples"]) == sorted(
        s["contentId"]
        for s in a.evaluate("dumpDevice()")[out["projectId"]]["samples"]
        if s["contentId"] != out["damaged"]
    )
    assert len(on_server["samples"]) == 3 and on_server["classes"][0]["name"] == "zero"
    # the next run is clean: the sample set aside does not come back until it is changed
    again = sync_now(a)
    assert again["lastError"] is None and a.evaluate("(id) => pendingOf(id)", out["projectId"]) == 0


def test_a_full_storage_quota_keeps_the_changes_waiting(browser, default_export, serve, tmp_path):
    """A blob refused because the account's storage is full (413 with X-Tejas-Quota: storage) fails the run
    and is retried later, unlike bytes the server will never take: setting those samples aside would lose
    them for good once room is made (issue 24, 3)."""
    folder, _ = default_export
    shutil.copytree(folder, tmp_path / "artifacts" / "default")
    server = serve(tmp_path / "artifacts", data_dir=tmp_path / "server-data", env={"TEJAS_MAX_USER_BYTES": "100"})
    opened = devices(browser, server.url)
    a = next(opened)()
    sign(a, "full@example.org", create=True)
    items = [[b64, 0] for b64 in digits(0, 0, 3)]
    out = a.evaluate(
        """async (items) => {
          const { t, project } = await projectWith('Digits', ['zero'], items);
          await t.setProjectSync(project.id, true);
          let error = null;
          try { await t.syncNow(); } catch (e) { error = e.message; }
          return { projectId: project.id, error, status: await t.syncStatus(), pending: await pendingOf(project.id) };
        }""",
        items,
    )
    message = out["error"] or (out["status"] or {}).get("lastError") or ""
    assert "Storage full" in message, out
    assert out["pending"] >= 4, out  # the project, its class and its 3 samples all still wait
    row = ((out["status"] or {}).get("projects") or [{}])[0]
    assert "was not synced" not in (row.get("error") or ""), row
    assert server_state(server.url, "full@example.org") == {}
    next(opened, None)  # closes the device's context


def test_offline_edits_on_two_devices_converge(new_device, sync_server):
    email = "two@example.org"
    a, b = new_device(), new_device()
    sign(a, email, create=True)
    sign(b, email, create=False)
    zeros, ones = digits(0, 0, 10), digits(1, 0, 10)
    made = a.evaluate(
        """async (items) => {
          const { t, project, classes } = await projectWith('Digits', ['zero', 'one'], items);
          await t.setProjectSync(project.id, true);
          await t.syncNow();
          return { projectId: project.id, classes: classes.map((c) => c.id) };
        }""",
        [[x, 0] for x in zeros] + [[x, 1] for x in ones],
    )
    project_id, (zero, one) = made["projectId"], made["classes"]
    sync_now(b)
    assert b.evaluate("dumpDevice()") == a.evaluate("dumpDevice()")

    a.context.set_offline(True)
    b.context.set_offline(True)
    # A: ten new images (five in each class) and class "one" renamed
    added_zero, added_one = digits(2, 0, 5), digits(3, 0, 5)
    content = {x: hashlib.sha256(base64.b64decode(x)).hexdigest() for x in zeros + ones + added_zero + added_one}
    a.evaluate(
        """async ([projectId, zero, one, addedZero, addedOne]) => {
          const t = await import('/tejas.js');
          await t.addSamples(projectId, zero, addedZero.map((b64, i) => fileFrom(b64, `a0-${i}.png`)));
          await t.addSamples(projectId, one, addedOne.map((b64, i) => fileFrom(b64, `a1-${i}.png`)));
          await t.renameClass(one, 'uno');
        }""",
        [project_id, zero, one, added_zero, added_one],
    )
    # B: five images deleted, three moved from "zero" to "one", a class added
    deleted = [content[x] for x in zeros[:3] + ones[:2]]
    moved = [content[x] for x in zeros[5:8]]
    offline = b.evaluate(
        """async ([projectId, one, deleted, moved]) => {
          const t = await import('/tejas.js');
          await t.deleteSamples(projectId, deleted);
          await t.moveSamples(projectId, moved, one);
          const added = await t.addClass(projectId, 'two');
          const refused = await t.syncNow().then(() => 'synced', (e) => e.message);
          return { added: added.id, refused, status: await t.syncStatus() };
        }""",
        [project_id, one, deleted, moved],
    )
    assert "offline" in offline["refused"]
    waiting = offline["status"]["projects"][0]
    assert waiting["on"] and waiting["pending"] == 5 + 3 + 1  # one change per record: deletes, moves, the class
    assert a.evaluate("(id) => pendingOf(id)", project_id) == 10 + 1

    a.context.set_offline(False)
    b.context.set_offline(False)
    for page in (a, b, a, b):
        assert sync_now(page)["lastError"] is None

    # the state the two edit lists imply, computed here
    expected_classes = {zero: "zero", one: "uno", offline["added"]: "two"}
    expected = {content[x]: zero for x in zeros} | {content[x]: one for x in ones}
    expected |= {content[x]: zero for x in added_zero} | {content[x]: one for x in added_one}
    for sha in deleted:
        del expected[sha]
    expected |= {sha: one for sha in moved}

    state_a, state_b = a.evaluate("dumpDevice()"), b.evaluate("dumpDevice()")
    assert state_a == state_b
    assert state_a == server_state(sync_server.url, email)
    project = state_a[project_id]
    assert {c["id"]: c["name"] for c in project["classes"]} == expected_classes
    assert {s["contentId"]: s["classId"] for s in project["samples"]} == expected
    assert all(s["sha256"] == s["contentId"] for s in project["samples"])
    for page in (a, b):
        assert page.evaluate("(id) => pendingOf(id)", project_id) == 0


def noise_pngs(count: int, size: int = 160) -> list[str]:
    """Distinct images of random noise (~75 KB each): uploads that take a while."""
    rng = np.random.default_rng(12)
    return [b64png(rng.integers(0, 256, (size, size, 3), dtype=np.uint8)) for _ in range(count)]


def test_server_killed_during_upload_loses_nothing(new_device, sync_server):
    email = "kill@example.org"
    page = new_device()
    sign(page, email, create=True)
    images = noise_pngs(200)
    shas = sorted(hashlib.sha256(base64.b64decode(x)).hexdigest() for x in images)
    project_id = page.evaluate(
        """async (images) => {
          const t = await import('/tejas.js');
          const project = await t.createProject('Noise');
          const a = await t.addClass(project.id, 'a');
          const b = await t.addClass(project.id, 'b');
          const files = images.map((b64, i) => fileFrom(b64, `${i}.png`));
          await t.addSamples(project.id, a.id, files.slice(0, 100));
          await t.addSamples(project.id, b.id, files.slice(100));
          // the upload's progress, observable from the test
          window.uploads = 0;
          t.onSyncStatus((s) => { if (s.progress?.stage === 'upload') window.uploads = s.progress.done; });
          await t.setProjectSync(project.id, true);
          window.firstRun = t.syncNow().then(() => 'synced', (e) => e.message);
          return project.id;
        }""",
        images,
    )
    page.wait_for_function("window.uploads >= 10", timeout=60_000)
    sync_server.kill()
    blobs = sync_server.data_dir / "blobs"
    arrived = [p.name for p in blobs.rglob("*") if p.is_file() and ".partial" not in p.name]
    assert 10 <= len(arrived) < 200  # killed mid-upload: some images arrived, some not
    refused = page.evaluate("window.firstRun")
    assert "Cannot reach the sync server" in refused
    status = page.evaluate("async () => (await import('/tejas.js')).syncStatus()")
    assert status["projects"][0]["pending"] == 203  # project, 2 classes, 200 samples: all still queued
    assert status["lastError"] == refused

    sync_server.restart()
    assert sync_now(page)["lastError"] is None

    with httpx.Client(base_url=sync_server.url) as client:
        token = client.post("/api/auth/signin", json={"email": email, "password": PASSWORD}).json()["token"]
        headers = {"Authorization": f"Bearer {token}"}
        assert client.post("/api/blobs/missing", json={"sha256": shas}, headers=headers).json() == {"missing": []}
    # each image stored exactly once (content-addressed files)
    stored = sorted(p.name for p in blobs.rglob("*") if p.is_file() and ".partial" not in p.name)
    assert stored == shas
    assert page.evaluate("(id) => pendingOf(id)", project_id) == 0
    server = server_state(sync_server.url, email)
    assert server == page.evaluate("dumpDevice()")
    assert sorted(s["contentId"] for s in server[project_id]["samples"]) == shas


def test_sync_screen_and_what_about_says(new_device, sync_server):
    page = new_device()
    page.set_viewport_size({"width": 1280, "height": 800})
    project_id = page.evaluate(
        "async (b64) => { const { project } = await projectWith('Birds', ['robin'], [[b64, 0]]); return project.id; }",
        digits(0, 0, 1)[0],
    )
    page.get_by_role("banner").get_by_role("link", name="Sync", exact=True).click()
    wait_screen(page, "sync")
    assert page.get_by_label("Server address").input_value() == sync_server.url
    switch = page.get_by_role("switch", name="Sync this project (Birds)")
    assert not switch.is_checked() and switch.is_disabled()  # off by default; needs an account
    assert axe_violations(page) == []

    page.get_by_label("Email").fill("ui@example.org")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Create account").click()
    page.wait_for_selector("#account-state")
    assert "Signed in as ui@example.org" in page.inner_text("#account-state")
    assert axe_violations(page) == []

    switch.click()
    row_selector = f".sync-project[data-project-id='{project_id}']"
    page.wait_for_selector(f"{row_selector} input.switch:checked")
    row = page.locator(row_selector)
    # switching on syncs at once; "Sync now" syncs again (a later lastSync) and the screen says all is sent
    page.wait_for_selector("#sync-status[data-state=synced]", timeout=30_000)
    page.evaluate(
        """async () => {
          const t = await import('/tejas.js');
          const before = (await t.syncStatus()).lastSync;
          window.syncedAgain = false;
          t.onSyncStatus((s) => { if (!s.running && s.lastSync > before) window.syncedAgain = true; });
        }"""
    )
    page.get_by_role("button", name="Sync now").click()
    # (wait_for_function does not await a promise: its predicate must be synchronous)
    page.wait_for_function("() => window.syncedAgain", timeout=30_000)
    page.wait_for_selector("#sync-status[data-state=synced]")
    page.wait_for_selector(f"{row_selector}[data-state=synced]")
    assert "Synced." in row.inner_text()
    assert "The server deletes this project's copy on" in row.locator(".retention").inner_text()
    assert page.get_by_role("switch", name="Sync this project (Birds)").is_checked()

    # the server down: the run that follows a change fails, the row says so with a Retry, and a failed
    # run is retried by itself (not only a minute later)
    page.evaluate(
        """async () => {
          window.failures = new Set();
          (await import('/tejas.js')).onSyncStatus((s) => { if (s.failedAt) window.failures.add(s.failedAt); });
        }"""
    )
    sync_server.kill()
    page.evaluate("async (id) => (await import('/tejas.js')).addClass(id, 'crow')", project_id)
    page.wait_for_selector(f"{row_selector}[data-state=error]", timeout=30_000)
    assert "1 change waiting. Last error: Cannot reach the sync server" in row.inner_text()
    assert row.get_by_role("button", name="Retry").is_visible()
    page.wait_for_function("() => window.failures.size >= 2", timeout=30_000)
    # offline: changes wait, and the row shows no error to retry (as when the network drops during a run)
    page.context.set_offline(True)
    page.wait_for_selector(f"{row_selector}[data-state=waiting]")
    page.wait_for_selector("#sync-status[data-state=offline]")
    assert "1 change waiting." in row.inner_text() and row.get_by_role("button", name="Retry").count() == 0
    page.evaluate("async (id) => (await import('/tejas.js')).addClass(id, 'jay')", project_id)
    page.wait_for_function(
        "(selector) => document.querySelector(selector).textContent.includes('2 changes waiting.')", arg=row_selector
    )
    assert row.get_attribute("data-state") == "waiting"
    assert "2 changes waiting; they are sent when the network is back" in page.inner_text("#sync-status")
    # back online (the server too), sync runs by itself and sends both
    sync_server.restart()
    page.context.set_offline(False)
    page.wait_for_selector(f"{row_selector}[data-state=synced]", timeout=30_000)
    assert page.evaluate("(id) => pendingOf(id)", project_id) == 0
    assert {c["name"] for c in server_state(sync_server.url, "ui@example.org")[project_id]["classes"]} == {
        "robin",
        "crow",
        "jay",
    }

    # online, sync runs by itself shortly after a change: the row says the change waits, then that all is
    # synced. "Waiting" lasts only until that run: every state the row takes is recorded, so none is missed.
    page.evaluate(
        """(selector) => {
          window.rowStates = [document.querySelector(selector).dataset.state];
          new MutationObserver(() => {
            const state = document.querySelector(selector)?.dataset.state;
            if (state && state !== window.rowStates.at(-1)) window.rowStates.push(state);
          }).observe(document.querySelector('.sync-projects'), { subtree: true, childList: true, attributes: true });
        }""",
        row_selector,
    )
    page.evaluate("async (id) => (await import('/tejas.js')).renameProject(id, 'Garden birds')", project_id)
    page.wait_for_function(
        "() => { const s = window.rowStates; const i = s.indexOf('waiting'); return i >= 0 && s.at(-1) === 'synced'; }",
        timeout=30_000,
    )
    assert server_state(sync_server.url, "ui@example.org")[project_id]["name"] == "Garden birds"

    page.get_by_role("button", name="Sign out").click()
    page.wait_for_selector("form.account-form")
    assert page.evaluate("async () => (await (await import('/tejas.js')).listProjects()).length") == 1  # kept

    page.get_by_role("banner").get_by_role("link", name="About & privacy").click()
    wait_screen(page, "about")
    text = page.inner_text("#privacy-title + p") + page.inner_text("main")
    assert "Nothing, unless you turn sync on." in text
    sends = page.inner_text("#sync-sends")
    for what in ("project name and class names", "image bytes", "label", "metadata", "model parameters and metrics"):
        assert what in sends
    assert "Only while you are signed in" in text and "“Sync this project” switch is on" in text
    page.wait_for_function("document.getElementById('retention-days').textContent === '30 days'")
    assert "after its last change" in page.inner_text("#retention")
    assert "Deleting your account deletes everything the server holds for you" in page.inner_text("#retention")


def test_create_account_with_a_taken_email(new_device):
    """The server answers sign-up for a taken email like for a new one (it does not tell strangers which
    emails have accounts): on the Sync screen, "Create account" then fails only at the sign-in that follows,
    with a sentence that says what to do; with the account's own password it signs in."""
    first = new_device()
    sign(first, "taken@example.org", create=True)
    page = new_device()
    page.get_by_role("banner").get_by_role("link", name="Sync", exact=True).click()
    wait_screen(page, "sync")
    page.get_by_label("Email").fill("taken@example.org")
    page.get_by_label("Password").fill("not the owner's password")
    page.get_by_role("button", name="Create account").click()
    page.wait_for_function("document.getElementById('account-error').textContent !== ''")
    assert page.inner_text("#account-error") == (
        "taken@example.org cannot sign in with this password: "
        "if it already has an account, sign in with that account's password."
    )
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Create account").click()  # someone who forgot they had an account
    page.wait_for_selector("#account-state")
    assert "Signed in as taken@example.org" in page.inner_text("#account-state")


def test_clock_never_goes_back(new_device):
    page = new_device()
    result = page.evaluate(
        """async () => {
          const c = await import('/clock.js');
          let s = { ms: 1000, counter: 0 };
          const revs = [];
          for (const now of [1000, 1000, 999, 5, 2000]) { s = c.nextClock(s, now); revs.push(c.formatRev(s, 'dev')); }
          s = c.observeClock(s, c.formatRev({ ms: 3000, counter: 7 }, 'other'));
          revs.push(c.formatRev(c.nextClock(s, 2500), 'dev'));
          const t = await import('/tejas.js');
          const p = await t.createProject('Clock');
          const cls = await t.addClass(p.id, 'x');
          const renamed = await t.renameClass(cls.id, 'y');
          return { revs, parsed: c.parseRev(revs[0]), local: [p.rev, cls.rev, renamed.rev] };
        }"""
    )
    revs = result["revs"]
    assert revs == sorted(revs) and len(set(revs)) == len(revs)
    assert revs[0] == "000000000001000-000001-dev" and revs[4] == "000000000002000-000000-dev"
    assert revs[5] == "000000000003000-000008-dev"
    assert result["parsed"] == {"ms": 1000, "counter": 1, "device": "dev"}
    local = result["local"]
    assert local == sorted(local) and len(set(local)) == 3
    assert all(len(r.split("-")[0]) == 15 and len(r.split("-")[1]) == 6 for r in local)


def test_the_same_class_made_on_two_devices_becomes_one(new_device, sync_server):
    email = "merge@example.org"
    a, b = new_device(), new_device()
    sign(a, email, create=True)
    sign(b, email, create=False)
    project_id = a.evaluate(
        """async (items) => {
          const { t, project } = await projectWith('Pets', ['dog'], items);
          await t.setProjectSync(project.id, true);
          await t.syncNow();
          return project.id;
        }""",
        [[x, 0] for x in digits(0, 0, 2)],
    )
    sync_now(b)
    a.context.set_offline(True)
    b.context.set_offline(True)
    add_cat = """async ([projectId, name, items]) => {
      const t = await import('/tejas.js');
      const cls = await t.addClass(projectId, name);
      await t.addSamples(projectId, cls.id, items.map((b64, i) => fileFrom(b64, `${name}-${i}.png`)));
      return cls.id;
    }"""
    cat_a = a.evaluate(add_cat, [project_id, "cat", digits(1, 0, 2)])
    cat_b = b.evaluate(add_cat, [project_id, "Cat", digits(2, 0, 2)])
    # A reaches the server first (B stays offline until then, so its background sync cannot)
    a.context.set_offline(False)
    assert sync_now(a)["lastError"] is None
    b.context.set_offline(False)
    for page in (b, a):
        assert sync_now(page)["lastError"] is None
    state_a, state_b = a.evaluate("dumpDevice()"), b.evaluate("dumpDevice()")
    assert state_a == state_b == server_state(sync_server.url, email)
    project = state_a[project_id]
    # one "cat": the class the server stored first, holding both devices' images
    assert [c["name"] for c in project["classes"]] == ["dog", "cat"]
    assert cat_b not in [c["id"] for c in project["classes"]]
    assert sorted(s["classId"] for s in project["samples"]).count(cat_a) == 4


def test_a_model_larger_than_a_record_and_a_purged_project(new_device, sync_server):
    email = "purge@example.org"
    a = new_device()
    sign(a, email, create=True)
    # a model listing 1,500 image ids in its split: its data would pass the server's 64 KiB per record
    project_id = a.evaluate(
        """async (items) => {
          const { t, project, classes } = await projectWith('Big', ['x', 'y'], items);
          const { saveImportedModels } = await import('/features/train/engine.js');
          const ids = Array.from({ length: 1500 }, (_, i) => i.toString(16).padStart(64, '0'));
          const model = {
            id: 'm1', projectId: project.id, created: new Date().toISOString(), mode: 'head',
            classes: classes.map((c) => ({ id: c.id, name: c.name })), parameters: Float32Array.from([1.5, -2, 3.25]),
            split: { train: ids, validation: [] }, metrics: { accuracy: 0.5, cells: { '0,0': ids.slice(0, 300) } },
          };
          await saveImportedModels(project.id, [model], 'm1');
          await t.setProjectSync(project.id, true);
          await t.syncNow();
          return project.id;
        }""",
        [[x, 0] for x in digits(0, 0, 2)] + [[x, 1] for x in digits(1, 0, 2)],
    )
    server = server_state(sync_server.url, email)[project_id]
    assert server["current"] == "m1" and server["models"][0]["length"] == 3
    with httpx.Client(base_url=sync_server.url) as client:
        token = client.post("/api/auth/signin", json={"email": email, "password": PASSWORD}).json()["token"]
        changes = client.get("/api/sync/pull", headers={"Authorization": f"Bearer {token}"}).json()["changes"]
    model = next(c["data"] for c in changes if c["kind"] == "model")
    assert (
        model["split"] is None
        and model["metrics"] == {"accuracy": 0.5, "cells": {}}
        and "record size" in model["trimmed"]
    )

    # the server's retention timer deletes the project: sync switches off here, with a notice; data stays
    later = (datetime.now(UTC) + timedelta(days=40)).isoformat()
    purge = subprocess.run(
        [TEJAS, "server", "purge", "--now", later], env=sync_server.env, capture_output=True, text=True, check=True
    )
    assert "purged 1 project(s)" in purge.stdout
    status = sync_now(a)
    mine = status["projects"][0]
    assert mine["on"] is False and "The server deleted its copy" in mine["notice"]
    assert len(a.evaluate("dumpDevice()")[project_id]["samples"]) == 4
    # switched on again: uploaded again, and it stays on
    status = a.evaluate(
        "async (id) => { const t = await import('/tejas.js'); await t.setProjectSync(id, true); return t.syncNow(); }",
        project_id,
    )
    assert status["projects"][0]["on"] is True and status["projects"][0]["notice"] is None
    assert status["lastError"] is None
    assert len(server_state(sync_server.url, email)[project_id]["samples"]) == 4


# A version-2 database (made by the app's own first two migrations) with a project, a class, a sample,
# a model as its current one, and a change-log entry of the old shape.
VERSION_2 = """async () => {
  const { MIGRATIONS } = await import('/db.js');
  await new Promise((resolve, reject) => {
    const req = indexedDB.open('tejas', 2);
    req.onupgradeneeded = () => {
      MIGRATIONS[0](req.result, req.transaction);
      const tx = req.transaction;
      tx.objectStore('projects').put({ id: 'p1', name: 'Old', created: '2026-01-01T00:00:00.000Z', modelId: 'm1' });
      tx.objectStore('classes').put({ id: 'c1', projectId: 'p1', name: 'a', order: 0 });
      tx.objectStore('samples').put({ projectId: 'p1', contentId: 'x', classId: 'c1', name: 'x.png' });
      tx.objectStore('blobs').put({ contentId: 'x', image: new Blob(['x']) });
      tx.objectStore('models').put({ id: 'm1', projectId: 'p1', parameters: new Float32Array(2) });
      tx.objectStore('changes').put({ projectId: 'p1', op: 'put', store: 'projects', key: 'p1', at: 'then' });
      MIGRATIONS[1](req.result, tx);  // after the records: its sweep keeps what they use
    };
    req.onsuccess = () => { req.result.close(); resolve(); };
    req.onerror = () => reject(req.error);
  });
}"""


def test_the_migration_gives_every_record_a_revision(sync_server, page):
    page.goto(sync_server.url + "/manifest.webmanifest")  # the app's origin, without the app opening the database
    page.evaluate(VERSION_2)
    result = page.evaluate(
        """async () => {
          const t = await import('/tejas.js');
          const [project] = await t.listProjects();
          const { transaction, getAll } = await import('/db.js');
          const meta = await transaction(['meta'], 'readonly', ({ meta }) => getAll(meta));
          return { project, classes: await t.listClasses('p1'), samples: await t.listSamples('p1'),
                   models: await t.listModels('p1'), log: await t.listChanges('p1'), meta };
        }"""
    )
    revs = [
        result["project"]["rev"],
        result["project"]["headRev"],
        result["classes"][0]["rev"],
        result["samples"][0]["rev"],
        result["models"][0]["rev"],
    ]
    device = next(m["value"] for m in result["meta"] if m["key"] == "device")
    assert len(set(revs)) == 5 and all(
        r.endswith(f"-{device}") and len(r) == 15 + 1 + 6 + 1 + len(device) for r in revs
    )
    clock = next(m for m in result["meta"] if m["key"] == "clock")
    assert f"{clock['ms']:015d}-{clock['counter']:06d}-{device}" == max(revs)  # the clock continues after them
    assert result["log"] == []  # the old entries are gone: switching sync on logs a snapshot


def test_changes_from_another_device_show_up_without_navigating(new_device, sync_server):
    """B's projects list redraws itself when a pull brings A's new project; on B's Data screen of that
    project a banner offers A's later images, and "Show them" shows them."""
    from .conftest import wait_count

    email = "live@example.org"
    a, b = new_device(), new_device()
    sign(a, email, create=True)
    sign(b, email, create=False)
    project_id = a.evaluate(
        """async (items) => {
          const { t, project } = await projectWith('Arrives', ['one'], items);
          await t.setProjectSync(project.id, true);
          await t.syncNow();
          return project.id;
        }""",
        [[x, 0] for x in digits(1, 0, 2)],
    )
    assert b.locator("text=Arrives").count() == 0
    sync_now(b)
    b.get_by_role("link", name="Arrives").first.wait_for()  # the list redrew itself
    assert b.is_hidden("#remote-banner")
    b.get_by_role("link", name="Arrives").first.click()
    wait_screen(b, "data")
    wait_count(b, "one", 2)
    a.evaluate(
        """async ([projectId, items]) => {
          const t = await import('/tejas.js');
          const [cls] = await t.listClasses(projectId);
          await t.addSamples(projectId, cls.id, items.map((b64, i) => fileFrom(b64, `late-${i}.png`)));
          await t.syncNow();
        }""",
        [project_id, digits(1, 2, 3)],
    )
    sync_now(b)
    b.wait_for_selector("#remote-banner:visible")
    assert "other devices" in b.inner_text("#remote-banner")
    assert b.locator("main .error[role=alert]:visible").count() == 0
    b.click("#remote-show")
    wait_count(b, "one", 5)
    assert b.is_hidden("#remote-banner")


@pytest.fixture
def text_device(browser, default_export, serve, tmp_path):
    """text_device() → a page of the app (its own browser context) on a `tejas serve` with the text artifacts too."""
    from .test_text_projects import text_artifacts

    folder, _ = default_export
    shutil.copytree(folder, tmp_path / "artifacts" / "default")
    shutil.copytree(text_artifacts(), tmp_path / "artifacts" / "text")
    server = serve(tmp_path / "artifacts", data_dir=tmp_path / "server-data")
    for open_device in devices(browser, server.url):
        open_device.server = server
        yield open_device


def without_absent(state: dict) -> dict:
    """dumpDevice's samples list width/height (null for a text); the server's records leave them out."""
    for project in state.values():
        project["samples"] = [{k: v for k, v in s.items() if v is not None} for s in project["samples"]]
    return state


def test_a_text_project_syncs_and_offline_edits_merge(text_device):
    """A text project made in the app syncs through the app's own client (text blobs uploaded as text,
    stored as text on arrival), the second device predicts alike, and offline edits on both converge."""
    from .test_text_projects import spam_sample

    email = "texts@example.org"
    sample = spam_sample(12)
    a = text_device()
    sign(a, email, create=True)
    made = a.evaluate(
        """async (sample) => {
          const t = await import('/tejas.js');
          const project = await t.createProject('SMS', { kind: 'text' });
          for (const [label, texts] of Object.entries(sample)) {
            const cls = await t.addClass(project.id, label);
            await t.addTexts(project.id, cls.id, texts);
          }
          const model = await t.train(project.id, { epochs: 5 });
          await t.setProjectSync(project.id, true);
          const status = await t.syncNow();
          const top = await t.predictText(project.id, 'WINNER! claim your free prize now', { topK: 2 });
          return { projectId: project.id, model: model.id, status, top };
        }""",
        sample,
    )
    assert made["status"]["lastError"] is None, made["status"]
    mine = a.evaluate("dumpDevice()")
    assert len(mine[made["projectId"]]["samples"]) == 24
    assert all(s["format"] == "text" and s["sha256"] == s["contentId"] for s in mine[made["projectId"]]["samples"])

    b = text_device()
    sign(b, email, create=False)
    assert sync_now(b)["lastError"] is None
    theirs = b.evaluate("dumpDevice()")
    assert theirs == mine
    assert without_absent(server_state(text_device.server.url, email)) == without_absent(mine)
    got = b.evaluate(
        """async (id) => { const t = await import('/tejas.js');
          const project = await t.getProject(id);
          const texts = await t.listTexts(id);
          const top = await t.predictText(id, 'WINNER! claim your free prize now', { topK: 2 });
          const type = (await t.getImage(texts[0].contentId)).type;
          return { kind: project.kind, texts: texts.map((s) => s.text), top, type }; }""",
        made["projectId"],
    )
    assert got["kind"] == "text"
    assert sorted(got["texts"]) == sorted(sample["ham"] + sample["spam"])
    assert got["type"].startswith("text/plain")
    assert [r["name"] for r in got["top"]] == [r["name"] for r in made["top"]]
    assert all(abs(x["probability"] - y["probability"]) <= 1e-5 for x, y in zip(got["top"], made["top"], strict=True))

    # offline on both: A edits a text, B moves another to the other class and adds one; both sync after
    edited, moved = sample["ham"][0], sample["ham"][1]
    for page in (a, b):
        page.context.set_offline(True)
    a.evaluate(
        """async ([id, old]) => { const t = await import('/tejas.js');
          const s = (await t.listTexts(id)).find((x) => x.text === old);
          await t.editText(id, s.contentId, old + ' (edited on A)'); }""",
        [made["projectId"], edited],
    )
    b.evaluate(
        """async ([id, text]) => { const t = await import('/tejas.js');
          const classes = await t.listClasses(id);
          const spam = classes.find((c) => c.name === 'spam');
          const s = (await t.listTexts(id)).find((x) => x.text === text);
          await t.moveSamples(id, [s.contentId], spam.id);
          await t.addTexts(id, spam.id, ['typed on B while offline']); }""",
        [made["projectId"], moved],
    )
    for page in (a, b):
        page.context.set_offline(False)
    for page in (a, b, a):
        assert sync_now(page)["lastError"] is None
    final_a, final_b = a.evaluate("dumpDevice()"), b.evaluate("dumpDevice()")
    assert final_a == final_b
    assert without_absent(server_state(text_device.server.url, email)) == without_absent(final_a)
    texts = b.evaluate(
        """async (id) => { const t = await import('/tejas.js');
          const names = new Map((await t.listClasses(id)).map((c) => [c.id, c.name]));
          return (await t.listTexts(id)).map((s) => [s.text, names.get(s.classId)]); }""",
        made["projectId"],
    )
    labels = dict(texts)
    assert labels[edited + " (edited on A)"] == "ham" and edited not in labels
    assert labels[moved] == "spam" and labels["typed on B while offline"] == "spam"
    assert len(texts) == 25
