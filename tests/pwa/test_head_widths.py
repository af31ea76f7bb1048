"""Narrow heads in the browser: a project with few classes trains the narrowest exported head set that
holds them (manifest training.head.narrow) and gets what the 100-wide masked head gives, in the same
wide layout: parameters, predictions and resumed runs agree within float rounding."""

from __future__ import annotations

import base64

import numpy as np
import pytest

from ..conftest import manifest_of
from .conftest import digit_images, png

pytestmark = [pytest.mark.browser, pytest.mark.slow]

# Float rounding only: the same sums in another order (the wide head's matrix products), amplified a
# little by Adam's normalised steps over a few dozen steps.
TOLERANCE = 1e-4

NARROW_VS_WIDE = """async (items) => {
  const t = await import('/tejas.js');
  const blobs = items.map(([b64]) => new Blob([Uint8Array.from(atob(b64), (c) => c.charCodeAt(0))]));
  const { features, featureSize } = await t.embedImages(blobs);
  const train = { features, labels: Int32Array.from(items.map(([, y]) => y)) };
  const run = (narrowHead, initialParameters) => t.trainHead({ train, validation: train, numClasses: 3, epochs: 4,
    batchSize: 16, learningRate: 1e-2, seed: 3, narrowHead, initialParameters });
  const diff = (a, b) => a.reduce((m, v, i) => Math.max(m, Math.abs(v - b[i])), 0);
  const probabilities = (r) => t.headProbabilities(r.parameters, r.layout, features, featureSize, 3);
  const [narrow, wide] = [await run(true), await run(false)];
  const [resumedNarrow, resumedWide] = [await run(true, wide.parameters), await run(false, wide.parameters)];
  const pair = (a, b) => ({
    widths: [a.trainedWidth, b.trainedWidth], lengths: [a.parameters.length, b.parameters.length],
    sameLayout: JSON.stringify(a.layout) === JSON.stringify(b.layout), layout: a.layout, steps: [a.steps, b.steps],
    parameters: diff(a.parameters, b.parameters), probabilities: diff(probabilities(a), probabilities(b)),
    loss: diff(a.history.map((h) => h.loss), b.history.map((h) => h.loss)),
    validationAccuracy: [a.history.at(-1).validationAccuracy, b.history.at(-1).validationAccuracy],
    moved: diff(a.parameters, wide.parameters),
  });
  return { fresh: pair(narrow, wide), resumed: pair(resumedNarrow, resumedWide) };
}"""


def test_narrow_head_trains_as_the_wide_masked_head(app, default_export):
    folder, _ = default_export
    head = manifest_of(folder)["training"]["head"]
    train, _ = digit_images()
    items = [(base64.b64encode(png(r)).decode(), int(y)) for r, y in train if y < 3]
    result = app.evaluate(NARROW_VS_WIDE, items)
    for name, run in result.items():
        print(f"{name}: narrow vs wide, parameters {run['parameters']:.1e}, probabilities {run['probabilities']:.1e}")
        assert run["widths"] == [8, 100], name
        assert run["sameLayout"] and run["layout"] == head["parameters"], name
        assert run["lengths"] == [head["parameter_count"]] * 2, name
        assert run["steps"][0] == run["steps"][1] == 4 * -(-len(items) // 16)
        assert run["parameters"] <= TOLERANCE, (name, run)
        assert run["probabilities"] <= TOLERANCE, (name, run)
        assert run["loss"] <= TOLERANCE, (name, run)
        assert run["validationAccuracy"][0] == run["validationAccuracy"][1], name
    assert result["resumed"]["moved"] > 1e-3  # the resumed runs trained on from the model they were given


def test_project_trains_narrow_and_keeps_the_wide_model_record(app, default_export):
    """Through the app's own train(): the stored model is in the wide layout, predicts as the wide run's,
    and resumes."""
    folder, _ = default_export
    head = manifest_of(folder)["training"]["head"]
    train, _ = digit_images()
    items = [(base64.b64encode(png(r)).decode(), int(y)) for r, y in train if y < 3]
    result = app.evaluate(
        """async (items) => {
          const { t, project } = await projectWith('Widths', ['zero', 'one', 'two'], items);
          const options = { epochs: 5, batchSize: 16, seed: 1 };
          const query = () => fileFrom(items[0][0], 'query.png');
          const narrow = await t.train(project.id, options);
          const narrowTop = await t.predict(project.id, query(), { topK: 3 });
          const wide = await t.train(project.id, { ...options, narrowHead: false });
          const wideTop = await t.predict(project.id, query(), { topK: 3 });
          const resumed = await t.train(project.id, { ...options, resume: true });
          const diff = (a, b) => a.reduce((m, v, i) => Math.max(m, Math.abs(v - b[i])), 0);
          return { layout: narrow.layout, length: narrow.parameters.length,
                   parameters: diff(narrow.parameters, wide.parameters), narrowTop, wideTop,
                   resumedLength: resumed.parameters.length,
                   resumedMoved: diff(resumed.parameters, wide.parameters) };
        }""",
        items,
    )
    assert result["layout"] == head["parameters"] and result["length"] == head["parameter_count"]
    assert result["parameters"] <= TOLERANCE
    assert [c["name"] for c in result["narrowTop"]] == [c["name"] for c in result["wideTop"]]
    got = np.array([c["probability"] for c in result["narrowTop"]])
    np.testing.assert_allclose(got, [c["probability"] for c in result["wideTop"]], atol=TOLERANCE)
    assert result["resumedLength"] == head["parameter_count"] and result["resumedMoved"] > 1e-3


def test_narrow_sets_leave_the_artifact_identity_alone(app, default_export, tmp_path):
    """Models record the artifacts' identity; narrow sets are cut from the wide head and train the same
    model, so artifacts without them (an export from before) have the same identity: their models stay usable."""
    import json
    import shutil

    folder, _ = default_export
    older = tmp_path / "artifacts" / "older"
    shutil.copytree(folder, older, ignore=shutil.ignore_patterns("training_narrow"))
    manifest = manifest_of(older)
    del manifest["training"]["head"]["narrow"]
    manifest["files"] = {f: v for f, v in manifest["files"].items() if not f.startswith("training_narrow/")}
    (older / "manifest.json").write_text(json.dumps(manifest))
    changed = tmp_path / "artifacts" / "changed"
    shutil.copytree(folder, changed)
    manifest = manifest_of(changed)
    manifest["training"]["head"]["narrow"]["sets"][0]["parameter_count"] += 1
    (changed / "manifest.json").write_text(json.dumps(manifest))
    ids = app.evaluate(
        """async () => {
          const { loadArtifactSet } = await import('/features/train/artifact_set.js');
          const id = async (name) => (await loadArtifactSet(new URL(`/artifacts/${name}/`, location.href).href)).id;
          return { now: await id('default'), older: await id('older'), changed: await id('changed') };
        }"""
    )
    assert ids["now"] == ids["older"]
    assert ids["changed"] == ids["now"]  # the narrow sets take no part, whatever they hold
