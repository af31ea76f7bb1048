"""Dataset zips imported a batch at a time (features/dataset/zip_import.js with the Python worker's
DATASET_ZIP_* messages) in Debian chromium: the zip File is read in place, classes keep the archive's
order, progress comes per batch, skips are reported, and a refused zip stores nothing."""

from __future__ import annotations

import io
import json
import zipfile

import numpy as np
import pytest

from .conftest import PAGE_HELPERS, png

pytestmark = [pytest.mark.browser, pytest.mark.slow]
assert PAGE_HELPERS

IMPORT = """async ([b64, name, intoExisting]) => {
  const { callWorker } = await import('/protocol.js');
  const zipImport = await import('/features/dataset/zip_import.js');
  const t = await import('/tejas.js');
  const worker = new Worker('/workers/python.js', { type: 'module' });
  const callPython = (type, payload) => callWorker(worker, type, payload);
  const file = window.fileFrom(b64, name);
  const progress = [];
  const onProgress = (p) => progress.push([p.done, p.total]);
  const before = (await t.listProjects()).length;
  try {
    let project, result;
    if (intoExisting) {
      project = await t.createProject('Existing');
      await t.addClass(project.id, 'Dog');
      result = await zipImport.addDatasetZip(project.id, file, callPython, { onProgress });
    } else {
      ({ project, ...result } = await zipImport.importDatasetZip(file, callPython, { onProgress }));
    }
    const classes = await t.listClasses(project.id);
    const samples = await t.listSamples(project.id);
    return { ok: true, added: result.added, skipped: result.skipped, progress, batch: zipImport.BATCH,
             classes: classes.map((c) => [c.name, samples.filter((s) => s.classId === c.id).length]),
             sources: [...new Set(samples.map((s) => s.source))] };
  } catch (error) {
    return { ok: false, message: error.message, projectsAdded: (await t.listProjects()).length - before };
  } finally {
    worker.terminate();
  }
}"""


def dataset_zip(counts: dict[str, int], extra=()) -> str:
    import base64

    rng = np.random.default_rng(0)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        sidecar = {"format": "tejas-dataset", "version": 1, "classes": list(counts), "samples": []}
        archive.writestr("tejas.json", json.dumps(sidecar))
        # interleaved, so batches mix classes
        for i in range(max(counts.values())):
            for name, n in counts.items():
                if i < n:
                    archive.writestr(f"{name}/{i:03d}.png", png((rng.random((12, 12, 3)) * 255).astype(np.uint8)))
        for path, data in extra:
            archive.writestr(path, data)
    return base64.b64encode(buffer.getvalue()).decode()


def test_zip_imports_in_batches_with_progress(app):
    page = app
    counts = {"zebra": 60, "Dog": 45, "ant": 18}  # more than one batch (zip_import.BATCH)
    b64 = dataset_zip(counts, extra=[("ant/broken.png", b"not an image"), ("empty/also-broken.png", b"no")])
    result = page.evaluate(IMPORT, [b64, "animals.zip", False])
    assert result["ok"], result
    assert result["added"] == 123
    assert result["classes"] == [["zebra", 60], ["Dog", 45], ["ant", 18]]  # the sidecar's order
    assert [s["name"] for s in result["skipped"]] == ["ant/broken.png", "empty/also-broken.png"]
    batch = result["batch"]
    assert result["progress"] == [[min(done, 123), 123] for done in range(batch, 123 + batch, batch)]
    assert result["sources"] == ["zip"]

    # into an existing project: "dog" (any case) fills the class that is there
    again = page.evaluate(IMPORT, [dataset_zip({"dog": 3, "cat": 2}), "more.zip", True])
    assert again["ok"], again
    assert again["classes"] == [["Dog", 3], ["cat", 2]]


def test_refused_zip_stores_nothing(app):
    import base64

    page = app
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("cat/x.png", b"not an image")
    result = page.evaluate(IMPORT, [base64.b64encode(buffer.getvalue()).decode(), "bad.zip", False])
    assert not result["ok"]
    assert result["message"] == "bad.zip: no usable images (expected <class>/<image> folders)"
    assert result["projectsAdded"] == 0
    result = page.evaluate(IMPORT, [base64.b64encode(b"hello").decode(), "plain.zip", False])
    assert result["message"] == "plain.zip: not a zip archive" and result["projectsAdded"] == 0
