"""Training on the server from the app (docs/jobs.md) against a real `tejas serve`: a signed-in browser
syncs an Animal-MNIST project, starts a `full` fine-tune on the Train screen, watches its epochs arrive
live in the chart, survives the server being killed and restarted mid-job (the job resumes from its
checkpoint and the app reconnects with Last-Event-ID), stores the result as the project's model, predicts
with it offline, and the server's ONNX and .pt agree with the app. The full fine-tune's validation
accuracy is reported beside the browser head's on the same split."""

from __future__ import annotations

import base64
import json
import shutil

import httpx
import numpy as np
import onnxruntime as ort
import pytest
import torch
import torchvision
from playwright.sync_api import TimeoutError as PlaywrightTimeout

from tejas_ml.export.checks import preprocess

from .conftest import (
    ANIMAL_NAMES,
    PAGE_HELPERS,
    WAIT_FOR_SERVICE_WORKER,
    animal_images,
    png,
    unique_animals,
    wait_screen,
)

pytestmark = [pytest.mark.browser, pytest.mark.slow]

PASSWORD = "correct horse battery"
PER_CLASS, EPOCHS = 6, 4
# Generous: a full ResNet18 fine-tune on a 2-core CPU, a server restart and its job's recovery.
JOB_TIMEOUT_MS = 300_000

# Every value the chart's data-points takes while the job is not finished (epochs seen live).
OBSERVE_CHART = """() => {
  window.livePoints = [];
  const card = document.querySelector('#server-train');
  const chart = document.querySelector('#server-train-chart');
  new MutationObserver(() => {
    if (card.dataset.status !== 'done') window.livePoints.push(Number(chart.dataset.points));
  }).observe(chart, { attributes: true, attributeFilter: ['data-points'] });
}"""


@pytest.fixture
def jobs_server(app_copy, serve, tmp_path):
    """`tejas serve` with a copy of the app whose service worker precaches the default export (so it
    works offline), its own data folder, and its training worker."""
    pwa, artifacts = app_copy
    return serve(artifacts, pwa, data_dir=tmp_path / "server-data")


def b64png(rgb) -> str:
    return base64.b64encode(png(rgb)).decode()


def job_events(url: str, token: str, job_id: str) -> list[dict]:
    """Every event of a finished job's stream (it ends after the terminal event)."""
    events, current = [], {}
    with httpx.Client(base_url=url, timeout=60) as client:
        with client.stream(
            "GET", f"/api/jobs/{job_id}/events", headers={"Authorization": f"Bearer {token}"}
        ) as response:
            assert response.status_code == 200
            for line in response.iter_lines():
                if not line:
                    if current.get("event"):
                        events.append(current)
                    current = {}
                elif line.startswith("event:"):
                    current["event"] = line[6:].strip()
                elif line.startswith("data:"):
                    current["data"] = json.loads(line[5:].strip())
    return events


def wait_card(page, server, condition: str, timeout: float) -> None:
    """Wait until `condition` (JS over `card`, the #server-train element) holds; a timeout says what the
    card showed and what the server logged."""
    try:
        page.wait_for_function(
            f"() => {{ const card = document.querySelector('#server-train'); return {condition}; }}", timeout=timeout
        )
    except PlaywrightTimeout:
        shown = page.evaluate(
            "() => ({...document.querySelector('#server-train')?.dataset,"
            " status: document.querySelector('#server-train-status')?.textContent,"
            " result: document.querySelector('#server-train-result')?.textContent})"
        )
        log = server.log.read_text()[-3000:]
        raise AssertionError(f"not reached: {condition}\ncard: {shown}\nserver log:\n{log}") from None


def test_full_fine_tune_on_the_server_survives_a_restart_and_works_offline(
    jobs_server, browser, tmp_path, record_property
):
    animals = unique_animals(PER_CLASS)
    items = [(b64png(rgb), label) for label in range(5) for rgb in animals[label]]
    _, validation = animal_images()
    seen = {rgb.tobytes() for rgb in (r for label in range(5) for r in animals[label])}
    query = next(rgb for rgb, _ in validation if rgb.tobytes() not in seen)

    context = browser.new_context(accept_downloads=True)
    try:
        page = context.new_page()
        page.on("console", lambda m: m.type in ("error", "warning") and print("console:", m.text))
        page.add_init_script(PAGE_HELPERS)
        page.goto(jobs_server.url + "/")
        page.wait_for_function("document.body.dataset.offline === 'ready'")  # registered
        page.evaluate(WAIT_FOR_SERVICE_WORKER)
        page.reload()  # controlled by the service worker from here on (it serves the job's artifact set)
        wait_screen(page, "projects")

        # Signed in, a synced project; the browser head first (seed 0, 20% held out: the server's split).
        setup = page.evaluate(
            """async ([items, names, password]) => {
              const { t, project } = await projectWith('Animals', names, items);
              await t.signUp('cloud@example.org', password);
              await t.setProjectSync(project.id, true);
              await t.syncNow();
              const head = await t.train(project.id, { epochs: 20, seed: 0, validationShare: 0.2 });
              return { projectId: project.id, accuracy: head.metrics.accuracy, validation: head.split.validation };
            }""",
            [items, ANIMAL_NAMES, PASSWORD],
        )
        project_id = setup["projectId"]
        page.goto(f"{jobs_server.url}/#/p/{project_id}/train")
        wait_screen(page, "train")
        card = page.locator("#server-train")
        card.wait_for()
        page.wait_for_function("() => !/Asking/.test(document.querySelector('#server-device').textContent)")
        assert page.is_checked("input[name=serverMode][value=full]")
        page.fill("input[name=serverEpochs]", str(EPOCHS))
        page.evaluate(OBSERVE_CHART)
        page.click("#server-train-start")

        # A checkpoint written: the server dies (SIGKILL) mid-job; the app says it is reconnecting.
        wait_card(page, jobs_server, "Number(card.dataset.checkpoint) >= 1", JOB_TIMEOUT_MS)
        job_id = card.get_attribute("data-job")
        jobs_server.kill()
        wait_card(page, jobs_server, "card.dataset.connection === 'reconnecting'", 60_000)
        assert "reconnecting" in page.inner_text("#server-train-status")
        jobs_server.restart()

        wait_card(page, jobs_server, "['done', 'failed'].includes(card.dataset.status)", JOB_TIMEOUT_MS)
        assert card.get_attribute("data-status") == "done", page.inner_text("#server-train-result")
        live = page.evaluate("window.livePoints")
        assert len(set(p for p in live if p > 0)) >= 3, live
        assert page.get_attribute("#server-train-chart", "data-points") == str(EPOCHS)
        result_text = page.inner_text("#server-train-result")
        assert "trained on the server: " in result_text and "full fine-tune" in result_text, result_text

        token = httpx.post(
            f"{jobs_server.url}/api/auth/signin", json={"email": "cloud@example.org", "password": PASSWORD}
        ).json()["token"]
        events = job_events(jobs_server.url, token, job_id)
        started = [e for e in events if e["event"] == "started"]
        assert len(started) >= 2 and started[-1]["data"]["resumed_from_epoch"] >= 1, started

        model = page.evaluate(
            """async (projectId) => {
              const m = await (await import('/tejas.js')).currentModel(projectId);
              return { mode: m.mode, server: m.server, artifactsUrl: m.artifactsUrl ?? null,
                       accuracy: m.metrics.accuracy, validation: m.split.validation, epochs: m.history.length };
            }""",
            project_id,
        )
        assert model["server"]["mode"] == "full" and model["server"]["job"] == job_id
        assert model["artifactsUrl"] == f"artifacts/server/{job_id}/"
        assert sorted(model["validation"]) == sorted(setup["validation"])  # the same held-out images

        # The server's own files, downloaded through the result card (fetch + Blob, token in a header).
        files = {}
        for button, name in (("#server-download-onnx", "model.onnx"), ("#server-download-pt", "model.pt")):
            with page.expect_download() as download:
                page.click(button)
            files[name] = tmp_path / name
            download.value.save_as(files[name])

        # Offline, after a reload: the model and its fine-tuned backbone come from this device.
        context.set_offline(True)
        page.reload()
        wait_screen(page, "train")
        assert "trained on the server" in page.inner_text("#model-origin")
        top = page.evaluate(
            """async ([projectId, query]) =>
              (await import('/tejas.js')).predict(projectId, fileFrom(query, 'q.png'), { topK: 5 })""",
            [project_id, b64png(query)],
        )
    finally:
        context.close()

    browser_probabilities = np.array([[next(p["probability"] for p in top if p["name"] == n) for n in ANIMAL_NAMES]])
    manifest = json.loads(
        httpx.get(
            f"{jobs_server.url}/api/jobs/{job_id}/files/artifacts/manifest.json",
            headers={"Authorization": f"Bearer {token}"},
        ).content
    )
    spec = manifest["input"]
    batch = preprocess(query, spec["resize"]["shorter_side"], spec["size"][0], spec["mean"], spec["std"]).numpy()[None]
    session = ort.InferenceSession(str(files["model.onnx"]), providers=["CPUExecutionProvider"])
    onnx_probabilities = session.run(["probabilities"], {"image": batch})[0]
    # docs/jobs.md names the key `tejas.classes`; the core's writer (shared with the app's exports) says `class_names`
    metadata = session.get_modelmeta().custom_metadata_map
    assert json.loads(metadata.get("tejas.classes") or metadata["class_names"]) == ANIMAL_NAMES
    assert np.abs(onnx_probabilities - browser_probabilities).max() <= 1e-4

    net = getattr(torchvision.models, manifest["architecture"])(num_classes=5).eval()
    net.load_state_dict(torch.load(files["model.pt"], weights_only=True), strict=True)
    with torch.no_grad():
        torch_probabilities = net(torch.from_numpy(batch)).softmax(1).numpy()
    assert np.abs(torch_probabilities - onnx_probabilities).max() <= 1e-4

    report = {
        "browser_head": setup["accuracy"],
        "server_full": model["accuracy"],
        "validation_images": len(model["validation"]),
    }
    record_property("validation_accuracy", json.dumps(report))
    print(f"validation accuracy on the same split: {json.dumps(report)}")


@pytest.fixture
def text_jobs_app(app_copy, serve, tmp_path, page):
    """The app's page, controlled by its service worker (which serves job artifact sets from the app's
    cache), served with the default and text artifacts by a `tejas serve` that runs jobs."""
    from .test_text_projects import text_artifacts

    pwa, artifacts = app_copy
    shutil.copytree(text_artifacts(), artifacts / "text")
    server = serve(artifacts, pwa, data_dir=tmp_path / "server-data", env={"TEJAS_JOB_HEARTBEAT_SECONDS": "1"})
    page.add_init_script(PAGE_HELPERS)
    page.goto(server.url + "/")
    page.evaluate(WAIT_FOR_SERVICE_WORKER)
    page.reload()
    return page, server


def test_a_text_jobs_fine_tuned_model_is_imported_and_predicts_offline_like_its_onnx(text_jobs_app, context):
    """A text project made in the browser, its records and texts put on the server as the sync protocol
    does, fine-tuned there (1 epoch), imported by the app's importJobResult: the app then predicts with the
    job's encoder and head exactly as the job's model.onnx does, also offline."""
    from tejas_ml.training.text_data import encode, pad

    from ..sync_server.conftest import Account
    from ..sync_server.test_text_sync import text_sample
    from ..training.spam import spam_rows

    page, server = text_jobs_app
    rows = spam_rows(8)
    made = page.evaluate(
        """async (rows) => {
          const t = await import('/tejas.js');
          const project = await t.createProject('SMS', { kind: 'text' });
          const ham = await t.addClass(project.id, 'ham');
          const spam = await t.addClass(project.id, 'spam');
          const ids = { ham: ham.id, spam: spam.id };
          for (const [label, text] of rows) await t.addTexts(project.id, ids[label], [text], { source: 'csv' });
          return { project: project.id, classes: ids };
        }""",
        rows,
    )
    alice = Account(server.url)
    device = alice.device()
    project = made["project"]
    changes = [device.change("project", project, project, {"name": "SMS", "kind": "text"})]
    changes += [
        device.change("class", cid, project, {"name": n, "order": i})
        for i, (n, cid) in enumerate(made["classes"].items())
    ]
    for label, text in rows:
        alice.upload(text.encode(), kind="text")
        changes.append(text_sample(device, project, text, made["classes"][label]))
    device.push(changes)
    job = alice.post("/api/jobs", json={"project": project, "epochs": 1, "batch_size": 8, "max_length": 32})
    assert job.status_code == 201, job.text
    events = job_events(server.url, alice.token, job.json()["id"])
    assert events[-1]["event"] == "done", events[-1]
    job = alice.get(f"/api/jobs/{job.json()['id']}").json()

    texts = ["WINNER! Claim your free prize now, call 0800 123", "are we still on for lunch?", "Ünïcödé 你好 👩‍👩‍👧"]
    got = page.evaluate(
        """async ({ server, token, project, job, texts }) => {
          const t = await import('/tejas.js');
          const { importJobResult } = await import('/features/jobs/results.js');
          const options = { defaultArtifacts: t.DEFAULT_ARTIFACTS };
          const model = await importJobResult({ server, token }, project, job, options);
          const again = await importJobResult({ server, token }, project, job, options);
          const predicted = await t.predictTexts(project, texts);
          return { id: model.id, again: again.id, mode: model.mode, backboneId: model.backboneId,
                   artifactsUrl: model.artifactsUrl, server: model.server, classes: predicted.classes,
                   probabilities: Array.from(predicted.probabilities) };
        }""",
        {"server": server.url, "token": alice.token, "project": project, "job": job, "texts": texts},
    )
    assert got["again"] == got["id"] and got["mode"] == "head" and got["server"]["job"] == job["id"]
    assert got["artifactsUrl"] == f"artifacts/server/{job['id']}/" and got["classes"] == ["ham", "spam"]

    def download(name: str) -> bytes:
        response = alice.get(f"/api/jobs/{job['id']}/files/{name}")
        assert response.status_code == 200, response.text
        return response.content

    manifest = json.loads(download("artifacts/manifest.json"))
    assert got["backboneId"] == manifest["files"]["encoder.onnx"]["sha256"][:16]
    tokenizer = server.data_dir / "tokenizer.json"
    tokenizer.write_bytes(download("tokenizer.json"))
    session = ort.InferenceSession(download("model.onnx"), providers=["CPUExecutionProvider"])
    expected = []
    for text in texts:  # one text a run: the app pads per batch, and padding is masked out
        ids, mask = pad(encode(tokenizer, [text], 128))
        expected.append(
            session.run(["probabilities"], {"input_ids": ids.numpy(), "attention_mask": mask.numpy()})[0][0]
        )
    browser = np.array(got["probabilities"], dtype=np.float32).reshape(len(texts), 2)
    assert np.abs(browser - np.array(expected)).max() <= 1e-4, (browser, expected)

    # offline (the server gone too): the job's encoder and tokenizer come from the app's cache
    server.stop()
    context.set_offline(True)
    offline = page.evaluate(
        """async ({ project, text }) => (await (await import('/tejas.js')).predictText(project, text, { topK: 2 }))""",
        {"project": project, "text": texts[0]},
    )
    assert {p["name"] for p in offline} == {"ham", "spam"}
    top = max(range(2), key=lambda i: expected[0][i])
    assert offline[0]["name"] == ["ham", "spam"][top] and abs(offline[0]["probability"] - expected[0][top]) <= 1e-4
