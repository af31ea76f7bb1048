"""What a project keeps in IndexedDB over time: models bound to the artifacts they were trained with
(refused with a message and retrained in one click after the artifacts change), storage that stays
bounded (old models pruned, embeddings and image bytes deleted with their last sample, orphans of
older versions swept by a migration), and corrections that are always trained on."""

from __future__ import annotations

import base64
import json
import shutil

import pytest

from .conftest import PAGE_HELPERS, digit_images, png, wait_screen

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def digit_items(classes: int, per_class: int) -> list[tuple[str, int]]:
    train, _ = digit_images()
    out = []
    for label in range(classes):
        images = [rgb for rgb, y in train if y == label][:per_class]
        out += [(base64.b64encode(png(rgb)).decode(), label) for rgb in images]
    return out


# {store: count} of every object store, read straight from IndexedDB (not through the app's API).
STORE_COUNTS = """async () => {
  const db = await new Promise((resolve, reject) => {
    const req = indexedDB.open('tejas');
    req.onsuccess = () => resolve(req.result);
    req.onerror = () => reject(req.error);
  });
  const names = [...db.objectStoreNames];
  const tx = db.transaction(names, 'readonly');
  const counts = {};
  await Promise.all(names.map((n) => new Promise((resolve) => {
    tx.objectStore(n).count().onsuccess = (e) => { counts[n] = e.target.result; resolve(); };
  })));
  db.close();
  return counts;
}"""


def test_thirty_retrains_and_deletes_leave_the_stores_bounded(app):
    items = digit_items(3, 6)
    shared = items[:2]  # also in a second project: their bytes and embeddings must survive the delete
    result = app.evaluate(
        """async ([items, shared, storeCounts]) => {
          const counts = eval(storeCounts);
          const { t, project, classes } = await projectWith('Digits', ['zero', 'one', 'two'], items);
          const other = await projectWith('Other', ['zero'], shared.map(([b64]) => [b64, 0]));
          const created = [];
          for (let i = 0; i < 30; i++) created.push((await t.train(project.id, { epochs: 1, seed: i })).id);
          const models = (await t.listModels(project.id)).map((m) => m.id);
          const current = (await t.currentModel(project.id)).id;
          const afterTraining = await counts();
          const storage = await t.projectStorage(project.id);

          // delete one class's samples (one of them shared with the other project)
          const samples = await t.listSamples(project.id);
          const zeros = samples.filter((s) => s.classId === classes[0].id).map((s) => s.contentId);
          await t.deleteSamples(project.id, zeros);
          const afterSampleDelete = await counts();
          await t.deleteClass(classes[1].id);
          const afterClassDelete = await counts();
          await t.deleteProject(project.id);
          const afterProjectDelete = await counts();
          const otherStorage = await t.projectStorage(other.project.id);
          return { keep: t.KEEP_PREVIOUS_MODELS, created, models, current, afterTraining, storage,
                   afterSampleDelete, afterClassDelete, afterProjectDelete, otherStorage };
        }""",
        [items, shared, STORE_COUNTS],
    )
    keep = result["keep"]
    assert keep == 3
    # the current model and the 3 newest before it; the other 26 deleted with their runs
    assert result["current"] == result["created"][-1]
    assert sorted(result["models"]) == sorted(result["created"][-(keep + 1) :])
    assert result["afterTraining"]["models"] == keep + 1
    # 18 images, 2 of them also in the other project: one blob and one embedding per distinct image
    assert result["afterTraining"]["blobs"] == 18
    assert result["afterTraining"]["embeddings"] == 18
    storage = result["storage"]
    assert storage["models"] > 0 and storage["embeddings"] == 18 * 1280 * 4 and storage["images"] > 0
    assert storage["total"] == storage["images"] + storage["embeddings"] + storage["models"]

    # class zero's 6 images deleted: the 2 shared ones keep their bytes and embeddings, 4 go
    assert result["afterSampleDelete"]["blobs"] == 14
    assert result["afterSampleDelete"]["embeddings"] == 14
    # class one deleted with its 6 images
    assert result["afterClassDelete"]["blobs"] == 8
    assert result["afterClassDelete"]["embeddings"] == 8
    # the project deleted: only the other project's 2 images remain (bytes and the embeddings made before)
    after = result["afterProjectDelete"]
    assert after["models"] == 0 and after["samples"] == 2 and after["classes"] == 1 and after["projects"] == 1
    assert after["blobs"] == 2 and after["embeddings"] == 2
    assert result["otherStorage"]["embeddings"] == 2 * 1280 * 4 and result["otherStorage"]["models"] == 0


# A version-1 database (made by the app's own first migration) holding orphans: bytes and
# an embedding of an image no sample holds, and a model whose project is gone.
OLD_DATABASE = """async () => {
  const { MIGRATIONS } = await import('/db.js');  // the app's own version-1 schema, never edited once shipped
  await new Promise((resolve, reject) => {
    const req = indexedDB.open('tejas', 1);
    req.onupgradeneeded = () => {
      MIGRATIONS[0](req.result, req.transaction);
      const tx = req.transaction;
      tx.objectStore('projects').put({ id: 'p1', name: 'Kept' });
      tx.objectStore('classes').put({ id: 'c1', projectId: 'p1', name: 'a', order: 0 });
      tx.objectStore('samples').put({ projectId: 'p1', contentId: 'used', classId: 'c1', name: 'used.png' });
      for (const id of ['used', 'orphan']) {
        tx.objectStore('blobs').put({ contentId: id, image: new Blob([id]) });
        const features = new Float32Array(4);
        tx.objectStore('embeddings').put({ contentId: id, backboneId: 'b', augmentationId: 'none', features });
      }
      tx.objectStore('models').put({ id: 'm1', projectId: 'p1', parameters: new Float32Array(1) });
      tx.objectStore('models').put({ id: 'm2', projectId: 'gone', parameters: new Float32Array(1) });
    };
    req.onsuccess = () => { req.result.close(); resolve(); };
    req.onerror = () => reject(req.error);
  });
}"""


def test_upgrade_sweeps_what_older_versions_left_behind(default_export, serve, tmp_path, page):
    folder, _ = default_export
    shutil.copytree(folder, tmp_path / "artifacts" / "default")
    server = serve(tmp_path / "artifacts")
    # a page of the app's origin that does not open the database itself
    page.goto(server.url + "/manifest.webmanifest")
    page.evaluate(OLD_DATABASE)
    result = page.evaluate(
        """async (storeCounts) => {
          const t = await import('/tejas.js');
          const projects = await t.listProjects();  // opens (and migrates) the database
          return { projects: projects.map((p) => p.id), counts: await eval(storeCounts)(),
                   storage: await t.projectStorage('p1') };
        }""",
        STORE_COUNTS,
    )
    assert result["projects"] == ["p1"]
    counts = result["counts"]
    assert counts["blobs"] == 1 and counts["embeddings"] == 1 and counts["models"] == 1 and counts["samples"] == 1
    assert result["storage"]["embeddings"] == 16 and result["storage"]["models"] == 4


def test_a_correction_is_always_trained_on(app):
    items = digit_items(2, 10)
    result = app.evaluate(
        """async ([items, freshImage]) => {
          const { t, project, classes } = await projectWith('Zero or one', ['zero', 'one'], items);
          const first = await t.train(project.id, { epochs: 2, validationShare: 0.5 });
          // an image the first model held out, "corrected" into the other class by the user
          const id = first.split.validation[0];
          const sample = (await t.listSamples(project.id)).find((s) => s.contentId === id);
          const other = classes.find((c) => c.id !== sample.classId);
          const file = new File([await t.getImage(id)], 'query.png', { type: 'image/png' });
          const correction = await t.addCorrection(project.id, other.id, file);
          const after = (await t.listSamples(project.id)).find((s) => s.contentId === id);
          const second = await t.train(project.id, { epochs: 2, validationShare: 0.5 });
          // a new image as a correction is added, also as a correction
          const fresh = await t.addCorrection(project.id, other.id, fileFrom(freshImage, 'new.png'));
          return { id, correction, source: after.source, classId: after.classId, other: other.id,
                   train: second.split.train, validation: second.split.validation, fresh,
                   freshSource: (await t.listSamples(project.id)).find((s) => s.contentId === fresh.contentId).source };
        }""",
        [items, base64.b64encode(png(digit_images()[1][0][0])).decode()],
    )
    assert result["correction"] == {"contentId": result["id"], "moved": True}
    assert result["source"] == "correction" and result["classId"] == result["other"]
    assert result["id"] in result["train"] and result["id"] not in result["validation"]
    assert result["fresh"]["moved"] is False and result["freshSource"] == "correction"


# The model's artifacts are swapped for another backbone (as an app update that ships new artifacts
# would): the page is reloaded without a service worker so that it sees the new files at once.
def test_a_model_is_refused_with_other_artifacts_and_retrained_in_one_click(
    default_export, resnet18_random, serve, tmp_path, browser
):
    folder, _ = default_export
    artifacts = tmp_path / "artifacts"
    shutil.copytree(folder, artifacts / "default")
    server = serve(artifacts)
    context = browser.new_context(service_workers="block")
    page = context.new_page()
    page.add_init_script(PAGE_HELPERS)
    page.goto(server.url + "/")
    items = digit_items(2, 4)
    project_id = page.evaluate(
        """async (items) => {
          const { t, project } = await projectWith('Digits', ['zero', 'one'], items);
          await t.train(project.id, { epochs: 3 });
          await t.predict(project.id, fileFrom(items[0][0], 'q.png'));  // works with its own artifacts
          return project.id;
        }""",
        items,
    )

    shutil.rmtree(artifacts / "default")
    shutil.copytree(resnet18_random, artifacts / "default")
    page.reload()
    refused = page.evaluate(
        """async ([projectId, b64]) => {
          const t = await import('/tejas.js');
          const attempt = (work) => work().then(() => 'accepted', (e) => `${e.name}: ${e.message}`);
          return {
            status: (await t.modelStatus(projectId)).artifactsChanged,
            predict: await attempt(() => t.predict(projectId, fileFrom(b64, 'q.png'))),
            onnx: await attempt(() => t.exportOnnx(projectId)),
            pt: await attempt(() => t.exportPytorch(projectId)),
            resume: await attempt(() => t.train(projectId, { epochs: 1, resume: true })),
          };
        }""",
        [project_id, items[0][0]],
    )
    message = refused["status"]
    size = json.loads((folder / "manifest.json").read_text())["input"]["size"][0]
    assert f"(mobilenet_v2, ImageNet weights, {size}×{size} px)" in message and "(resnet18, random weights" in message
    assert "retrain with the new backbone" in message
    for what in ("predict", "onnx", "pt", "resume"):
        assert refused[what] == f"ArtifactsChangedError: {message}", what

    # the Predict screen says so and offers the retrain; one click trains on the new backbone
    page.goto(f"{server.url}/#/p/{project_id}/predict")
    wait_screen(page, "predict")
    assert page.inner_text("#artifacts-changed").startswith(message)
    page.get_by_role("button", name="Retrain with the new backbone").click()
    wait_screen(page, "train")
    page.wait_for_selector("main[data-training=done]", timeout=300_000)
    after = page.evaluate(
        """async ([projectId, b64]) => {
          const t = await import('/tejas.js');
          const status = await t.modelStatus(projectId);
          const top = await t.predict(projectId, fileFrom(b64, 'q.png'));
          const onnx = await t.exportOnnx(projectId);
          return { changed: status.artifactsChanged, architecture: status.model.artifacts.architecture,
                   top: top.length, onnx: onnx.size, models: (await t.listModels(projectId)).length };
        }""",
        [project_id, items[0][0]],
    )
    assert after == {**after, "changed": None, "architecture": "resnet18", "top": 2, "models": 2}
    assert after["onnx"] > 1_000_000
    context.close()
