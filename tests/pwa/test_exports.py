"""Exports made in the browser (Pyodide + the stdlib core): the ONNX runs in onnxruntime with the
browser's predictions, the .pt loads strictly into torchvision and agrees, the dataset zip re-imports
identically."""

from __future__ import annotations

import base64
import io
import json
import zipfile

import numpy as np
import onnxruntime as ort
import pytest
import torch
import torchvision

from tejas_ml.export.checks import preprocess

from ..conftest import manifest_of
from .conftest import PAGE_HELPERS, digit_images, png

pytestmark = [pytest.mark.browser, pytest.mark.slow]


EXPORT = """async ([items, queries, mode]) => {
  const { t, project } = await projectWith('Digits', ['zero', 'one', 'two'], items);
  const [file, b64] = [fileFrom, base64Of];
  const model = await t.train(project.id, { epochs: mode === 'head' ? 10 : 3, mode });
  if (model.mode !== mode) throw new Error(`trained in ${model.mode} mode`);
  const predictions = [];
  for (const q of queries) predictions.push(await t.predict(project.id, file(q, 'q.png'), { topK: 3 }));
  const zip = await t.exportDatasetZip(project.id);
  const imported = await t.importDatasetZip(new File([zip], 'digits.zip'));
  const again = await t.exportDatasetZip(imported.project.id);
  return {
    predictions, onnx: await b64(await t.exportOnnx(project.id)), pt: await b64(await t.exportPytorch(project.id)),
    zip: await b64(zip), again: await b64(again), imported: { added: imported.added, skipped: imported.skipped },
  };
}"""


@pytest.mark.parametrize("mode", ["head", "last_block"])
def test_exports_agree_with_the_browser(app, default_export, tmp_path, mode):
    folder, _ = default_export
    manifest = manifest_of(folder)
    train, validation = digit_images()
    items = [(base64.b64encode(png(r)).decode(), int(y)) for r, y in train if y < 3]
    queries = [r for r, y in validation if y < 3][:6]
    out = app.evaluate(EXPORT, [items, [base64.b64encode(png(q)).decode() for q in queries], mode])

    spec = manifest["input"]
    batch = np.stack(
        [
            preprocess(q, spec["resize"]["shorter_side"], spec["size"][0], spec["mean"], spec["std"]).numpy()
            for q in queries
        ]
    )
    browser = np.array(
        [
            [next(p["probability"] for p in pred if p["name"] == n) for n in ("zero", "one", "two")]
            for pred in out["predictions"]
        ]
    )

    onnx_path = tmp_path / "model.onnx"
    onnx_path.write_bytes(base64.b64decode(out["onnx"]))
    model = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    probabilities = model.run(["probabilities"], {"image": batch})[0]
    assert (probabilities.argmax(1) == browser.argmax(1)).all()
    assert np.abs(probabilities - browser).max() <= 1e-4
    assert json.loads(model.get_modelmeta().custom_metadata_map["class_names"]) == ["zero", "one", "two"]

    pt_path = tmp_path / "model.pt"
    pt_path.write_bytes(base64.b64decode(out["pt"]))
    net = getattr(torchvision.models, manifest["architecture"])(num_classes=3).eval()
    net.load_state_dict(torch.load(pt_path, weights_only=True), strict=True)
    with torch.no_grad():
        torch_probabilities = net(torch.from_numpy(batch)).softmax(1).numpy()
    assert np.abs(torch_probabilities - probabilities).max() <= 1e-4

    zip_bytes = base64.b64decode(out["zip"])
    assert out["imported"] == {"added": len(items), "skipped": []}
    assert base64.b64decode(out["again"]) == zip_bytes  # re-imported, re-exported: byte-identical
    with zipfile.ZipFile(io.BytesIO(zip_bytes)) as archive:
        names = archive.namelist()
        sidecar = json.loads(archive.read("tejas.json"))
    assert sidecar["classes"] == ["zero", "one", "two"] and len(names) == len(items) + 1


def test_a_refused_zip_creates_nothing(app):
    result = app.evaluate(
        """async () => {
          const t = await import('/tejas.js');
          const error = await t.importDatasetZip(new File([new TextEncoder().encode('not a zip')], 'bad.zip'))
            .then(() => null, (e) => e.message);
          return { error, projects: (await t.listProjects()).length };
        }"""
    )
    assert result == {"error": "bad.zip: not a zip archive", "projects": 0}


def test_project_moves_to_a_fresh_browser_profile_and_keeps_training(app, browser, default_export, serve, tmp_path):
    train, validation = digit_images()
    items = [(base64.b64encode(png(r)).decode(), int(y)) for r, y in train if y < 2][8:32]  # 12 of each
    query = base64.b64encode(png(validation[0][0])).decode()
    exported = app.evaluate(
        """async ([items, query]) => {
          const { t, project } = await projectWith('Moving', ['zero', 'one'], items);
          await t.train(project.id, { epochs: 5 });
          return { file: await base64Of(await t.exportProject(project.id)),
                   top: await t.predict(project.id, fileFrom(query, 'q.png')) };
        }""",
        [items, query],
    )
    fresh = browser.new_context()  # another profile: nothing of the first one's IndexedDB
    try:
        page = fresh.new_page()
        page.add_init_script(PAGE_HELPERS)
        page.goto(app.url)
        moved = page.evaluate(
            """async ([data, query]) => {
              const t = await import('/tejas.js');
              const file = fileFrom;
              const before = (await t.listProjects()).length;
              const { project, models } = await t.importProject(file(data, 'moving.tejas'));
              const top = await t.predict(project.id, file(query, 'q.png'));
              const resumed = await t.train(project.id, { epochs: 2, resume: true });
              const notAProject = await t.importProject(file(btoa('nope'), 'x.tejas'))
                .then(() => null, (e) => e.message);
              return { before, name: project.name, models, top, samples: (await t.listSamples(project.id)).length,
                       resumedLoss: resumed.history[0].loss, notAProject };
            }""",
            [exported["file"], query],
        )
    finally:
        fresh.close()
    assert moved["before"] == 0 and moved["name"] == "Moving" and moved["models"] == 1 and moved["samples"] == 24
    assert [p["name"] for p in moved["top"]] == [p["name"] for p in exported["top"]]
    for a, b in zip(moved["top"], exported["top"], strict=True):
        assert a["probability"] == pytest.approx(b["probability"], abs=1e-6)
    assert moved["resumedLoss"] < 0.5  # resumed from the trained weights, not from scratch (≈ ln 2)
    assert moved["notAProject"] == "x.tejas: not a Tejas project file (not a zip archive)"
