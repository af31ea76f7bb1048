"""Predict → Live stream against real processes: a redis-server, a `tejas serve` with TEJAS_REDIS_URL and one
`tejas stream-worker`. A browser signs up on the Sync screen, syncs a project whose head it trained, creates
a stream on the Predict screen, sends 20 images (and one that cannot be decoded) through the file chooser
before any worker runs — the lag shows 21 — then a worker starts: 20 rows whose classes and confidences are
`tejas.predict()`'s on the same images, the throughput shown, the lag falling to 0, one dead letter with
its error. The server is then killed (SIGKILL): the view says it is retrying and nothing throws; while the
browser is offline the server comes back and a result is written — after the network returns the view
resumes after its last event (Last-Event-ID) and shows it, and an image sent from the UI while offline is
sent and arrives; the camera sends a frame every second; the stream is deleted; without Redis the view
says streaming needs it. Axe-core, dark mode and a 360 px phone are checked on the view with its results in it."""

from __future__ import annotations

import base64
import struct
import subprocess
import time
import zlib

import httpx
import pytest
from playwright.sync_api import TimeoutError as PlaywrightTimeout

from ..conftest import TEJAS
from ..services import redis_server, stop_process  # noqa: F401 (fixture)
from .conftest import (
    ANIMAL_NAMES,
    PAGE_HELPERS,
    SCREENSHOTS,
    axe_violations,
    png,
    query_images,
    unique_animals,
    wait_screen,
)

pytestmark = [pytest.mark.browser, pytest.mark.slow]

EMAIL, PASSWORD = "stream@example.org", "correct horse battery"
PER_CLASS, IMAGES = 6, 20
RESULT_TIMEOUT_MS = 180_000  # the worker loads its model on the first image (ResNet18 on two slow shared cores)

CAMERA_ROWS = (
    "[...view.querySelectorAll('#stream-table tr')].filter((r) => r.dataset.key?.startsWith('camera-')).length"
)

# Every figure the view shows while it runs, for the assertions after the fact.
OBSERVE_FIGURES = """() => {
  window.seen = { pending: [], rates: [] };
  const root = document.querySelector('#stream-view');
  new MutationObserver(() => {
    window.seen.pending.push(root.dataset.pending);
    window.seen.rates.push(Number(root.dataset.rate));
  }).observe(root, { attributes: true, attributeFilter: ['data-stats'] });
}"""


@pytest.fixture
def stack(app_copy, serve, tmp_path, redis_server):  # noqa: F811
    """(server, start_worker): `tejas serve` with Redis, serving the app; workers share its data and Redis."""
    pwa, artifacts = app_copy
    env = {
        "TEJAS_REDIS_URL": redis_server.url,
        "TEJAS_JOB_HEARTBEAT_SECONDS": "1",
        # an undecodable image is dead-lettered after 2 deliveries, 2 s apart
        "TEJAS_STREAM_MAX_DELIVERIES": "2",
        "TEJAS_STREAM_CLAIM_IDLE_SECONDS": "2",
        "PYTHONWARNINGS": "ignore",
    }
    server = serve(artifacts, pwa, data_dir=tmp_path / "server-data", env=env)
    workers = []

    def start_worker(name: str):
        log = tmp_path / f"{name}.log"
        with open(log, "a") as out:  # a file, not a pipe nobody reads
            workers.append(
                subprocess.Popen(
                    [TEJAS, "stream-worker", "--name", name], env=server.env, stdout=out, stderr=subprocess.STDOUT
                )
            )
        return log

    yield server, start_worker, redis_server
    for worker in workers:
        stop_process(worker, timeout=30)


def poisoned_png() -> bytes:
    """A PNG whose signature, IHDR and IEND are valid (the server's content check passes) but whose IDAT is
    garbage: a worker cannot decode it."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", 16, 16, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", b"not a zlib stream") + chunk(b"IEND", b"")


def wait_view(page, server, logs, condition: str, timeout: float = RESULT_TIMEOUT_MS) -> None:
    """Wait until `condition` (JS over `view`, the #stream-view element) holds; a timeout says what the view
    showed and what the server and worker logged."""
    try:
        page.wait_for_function(
            f"() => {{ const view = document.querySelector('#stream-view'); return Boolean(view && ({condition})); }}",
            timeout=timeout,
        )
    except PlaywrightTimeout:
        shown = page.evaluate(
            "() => ({...document.querySelector('#stream-view')?.dataset,"
            " connection: document.querySelector('#stream-connection')?.textContent,"
            " send: document.querySelector('#stream-send-status')?.textContent,"
            " failed: document.querySelector('#stream-send-failed')?.textContent,"
            " redis: document.querySelector('#stream-redis')?.textContent,"
            " toasts: document.querySelector('#toasts')?.textContent})"
        )
        tails = "\n".join(
            f"--- {p.name}\n{p.read_text(errors='replace')[-2000:]}" for p in [server.log, *logs] if p.exists()
        )
        raise AssertionError(f"not reached: {condition}\nview: {shown}\n{tails}") from None


def send_files(page, paths) -> None:
    with page.expect_file_chooser() as chooser:
        page.click("#stream-choose")
    chooser.value.set_files([str(p) for p in paths])


def table_rows(page) -> list[dict]:
    return page.evaluate(
        "() => [...document.querySelectorAll('#stream-table tbody tr')].map((tr) => ({id: Number(tr.dataset.id),"
        " key: tr.dataset.key, cls: tr.dataset.class, confidence: Number(tr.dataset.confidence)}))"
    )


def test_live_stream_results_figures_and_a_server_restart(stack, browser, tmp_path):
    server, start_worker, redis = stack
    animals = unique_animals(PER_CLASS)
    items = [(base64.b64encode(png(rgb)).decode(), label) for label in range(5) for rgb in animals[label]]
    queries = query_images(IMAGES + 2)
    folder = tmp_path / "send"
    folder.mkdir()
    paths = []
    for i, data in enumerate(queries):
        paths.append(folder / f"frame-{i:02d}.png")
        paths[-1].write_bytes(data)
    poison = folder / "poison.png"
    poison.write_bytes(poisoned_png())
    logs = []

    context = browser.new_context()
    errors: list[str] = []
    try:
        page = context.new_page()
        page.on("pageerror", lambda error: errors.append(str(error)))
        page.add_init_script(PAGE_HELPERS)
        page.set_viewport_size({"width": 1280, "height": 800})
        page.goto(server.url + "/#/sync")
        wait_screen(page, "sync")

        # Signed up through the UI; a project with a head trained here, synced.
        page.get_by_label("Email").fill(EMAIL)
        page.get_by_label("Password").fill(PASSWORD)
        page.get_by_role("button", name="Create account").click()
        page.wait_for_selector("#account-state")
        project_id = page.evaluate(
            """async ([items, names]) => {
              const { t, project } = await projectWith('Animals', names, items);
              await t.train(project.id, { epochs: 10, seed: 0 });
              await t.setProjectSync(project.id, true);
              const status = await t.syncNow();
              const synced = status.projects.find((p) => p.id === project.id);
              if (!synced?.on || synced.pending) throw new Error(`not synced: ${JSON.stringify(synced)}`);
              return project.id;
            }""",
            [items, ANIMAL_NAMES],
        )

        # Predict → Live stream: a new stream on this project's model
        page.goto(f"{server.url}/#/p/{project_id}/predict")
        wait_screen(page, "predict")
        page.get_by_role("link", name="Live stream").click()
        page.wait_for_selector("#stream-form")
        page.wait_for_function("!/Loading/.test(document.querySelector('#stream-pick').textContent)")
        page.get_by_label("New stream").fill("cam-1")
        page.get_by_role("button", name="Create stream").click()
        wait_view(page, server, logs, "view.dataset.stream === 'cam-1' && view.dataset.connection === 'live'", 30_000)
        assert "Uses this project's model." in page.inner_text("#stream-model")
        page.evaluate(OBSERVE_FIGURES)

        # 20 images and a poisoned one through the file chooser, no worker yet: the lag shows them all
        send_files(page, [*paths[:IMAGES], poison])
        wait_view(page, server, logs, f"view.dataset.sent === '{IMAGES + 1}'", 60_000)
        wait_view(page, server, logs, f"view.dataset.pending === '{IMAGES + 1}'", 30_000)
        assert page.inner_text("#stream-workers") == "0" and page.inner_text("#stream-view").count("frame-") == 0

        # a worker starts: 20 rows, the throughput shown, nothing left pending, one dead letter
        logs.append(start_worker("worker-1"))
        wait_view(page, server, logs, f"view.dataset.rows === '{IMAGES}'")
        wait_view(page, server, logs, "view.dataset.pending === '0'", 60_000)
        wait_view(page, server, logs, "window.seen.rates.some((r) => r > 0)", 30_000)
        page.wait_for_function("document.querySelector('#stream-dead').textContent.includes('poison.png')")
        seen = page.evaluate("window.seen")
        assert page.inner_text("#stream-workers") == "1"
        assert float(page.inner_text("#stream-rate")) >= 0 and page.inner_text("#stream-pending") == "0"
        assert page.inner_text("#stream-p50").endswith(" ms") and page.inner_text("#stream-dead-count") == "1"
        dead = page.inner_text("#stream-dead")
        assert "poison.png: " in dead and "2 deliveries" in dead, dead
        assert any(p not in ("0", "unknown") and int(p) >= IMAGES for p in seen["pending"]), seen
        rows = table_rows(page)
        assert sorted(r["key"] for r in rows) == [p.name for p in paths[:IMAGES]]
        assert [r["id"] for r in rows] == sorted((r["id"] for r in rows), reverse=True)  # newest first

        # the same images through tejas.predict() in this browser: the same class and confidence
        expected = page.evaluate(
            """async ([projectId, images]) => {
              const t = await import('/tejas.js');
              const out = {};
              for (const [key, b64] of images) {
                out[key] = (await t.predict(projectId, fileFrom(b64, key), { topK: 5 }))[0];
              }
              return out;
            }""",
            [project_id, [[p.name, base64.b64encode(p.read_bytes()).decode()] for p in paths[:IMAGES]]],
        )
        for row in rows:
            want = expected[row["key"]]
            assert row["cls"] == want["name"], row
            assert abs(row["confidence"] - want["probability"]) <= 1e-4, (row, want)

        # every page of "All results" (oldest first) holds the same rows
        page.click("#stream-all summary")
        page.wait_for_function(f"document.querySelectorAll('#stream-history tbody tr').length === {IMAGES}")

        # accessible, light and dark, and no wider than a 360 px phone
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        for scheme in ("light", "dark"):
            page.emulate_media(color_scheme=scheme)
            assert axe_violations(page) == [], scheme
            page.screenshot(path=str(SCREENSHOTS / f"predict-stream-{scheme}-1280x800.png"), full_page=True)
        page.emulate_media(color_scheme="light")
        page.set_viewport_size({"width": 360, "height": 740})
        page.screenshot(path=str(SCREENSHOTS / "predict-stream-360x740.png"), full_page=True)
        assert page.evaluate("document.documentElement.scrollWidth - document.documentElement.clientWidth") <= 0
        assert axe_violations(page) == []
        page.set_viewport_size({"width": 1280, "height": 800})

        # The server dies: the view says it retries, and nothing throws
        last_id = max(r["id"] for r in rows)
        server.kill()
        wait_view(page, server, logs, "view.dataset.connection === 'unreachable'", 60_000)
        assert "Server unreachable — retrying" in page.inner_text("#stream-connection")

        # Offline, the server back: a result is written meanwhile (sent by another client), and an image
        # chosen here waits to be sent
        context.set_offline(True)
        wait_view(page, server, logs, "view.dataset.connection === 'offline'", 30_000)
        server.restart()
        token = httpx.post(f"{server.url}/api/auth/signin", json={"email": EMAIL, "password": PASSWORD}).json()["token"]
        auth = {"Authorization": f"Bearer {token}"}
        other = httpx.post(
            f"{server.url}/api/streams/cam-1/images",
            params={"key": "while-away.png"},
            content=queries[IMAGES],
            headers=auth,
        )
        assert other.status_code == 202, other.text
        send_files(page, [paths[IMAGES + 1]])
        wait_view(page, server, logs, "view.dataset.toSend === '1'", 30_000)
        assert "to send" in page.inner_text("#stream-send-status")

        # The written result is one the view has not seen (it connected before it existed)
        def written() -> bool:
            page_of = httpx.get(
                f"{server.url}/api/streams/cam-1/results", params={"after": last_id}, headers=auth
            ).json()
            return any(r["key"] == "while-away.png" for r in page_of["results"])

        deadline = time.monotonic() + RESULT_TIMEOUT_MS / 1000
        while not written():
            assert time.monotonic() < deadline, "the worker did not write while-away.png"
            time.sleep(0.25)  # a poll interval, not a stand-in for the condition

        # Back online: resumed after the last event (Last-Event-ID), so the result written meanwhile
        # arrives; the waiting image is sent and arrives too; no row twice
        context.set_offline(False)
        wait_view(page, server, logs, "view.dataset.connection === 'live'", 60_000)
        wait_view(page, server, logs, f"view.dataset.rows === '{IMAGES + 2}'")
        rows = table_rows(page)
        keys = [r["key"] for r in rows]
        assert {"while-away.png", paths[IMAGES + 1].name} <= set(keys) and len(set(keys)) == len(keys) == IMAGES + 2
        assert page.inner_text("#stream-send-status").startswith(
            f"Sent {IMAGES + 2}."
        )  # 20, the poisoned one, the one sent offline
        assert (
            page.locator("#stream-connection").inner_text()
            == "Live: results appear as the server's workers write them."
        )

        # The camera (Chromium's fake one): a frame every second while the toggle is on
        page.get_by_role("button", name="Camera").click()
        page.fill("#stream-every", "1")
        page.locator("#stream-camera").get_by_role("button", name="Turn camera on").click()
        page.wait_for_selector("#stream-camera .webcam[data-camera=on]")
        page.click("#stream-frames")
        assert page.get_attribute("#stream-frames", "aria-pressed") == "true"
        wait_view(page, server, logs, f"{CAMERA_ROWS} >= 2", 60_000)
        page.click("#stream-frames")
        assert page.get_attribute("#stream-frames", "aria-pressed") == "false"

        # Delete (confirmed): the server no longer lists it
        page.click("#stream-delete")
        page.click("#dialog button[value=ok]")
        page.wait_for_function("!document.querySelector('#stream-view').dataset.stream")
        assert httpx.get(f"{server.url}/api/streams", headers=auth).json()["streams"] == []

        # Redis gone: the view says what streaming needs (the server's 503), and nothing throws
        redis.stop()
        page.reload()
        wait_screen(page, "predict")
        page.wait_for_selector("#stream-redis:visible")
        assert page.inner_text("#stream-redis").startswith("Streaming needs Redis on the server.")
        assert errors == [], errors
        print(f"\nfigures seen: pending {seen['pending']}, images/s {seen['rates']}")
    finally:
        context.close()
