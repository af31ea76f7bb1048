"""Head training in the browser (train worker, onnxruntime-web 1.19.2) against a scikit-learn
reference trained on the same images' native embeddings (Animal-MNIST, from its PyPI package)."""

from __future__ import annotations

import base64
import io

import numpy as np
import pytest
from PIL import Image
from sklearn.linear_model import LogisticRegression

from tejas_ml.export.checks import preprocess, session

from ..conftest import manifest_of
from .conftest import CLASSES, animal_images, digit_images

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def png_b64(rgb) -> str:
    buffer = io.BytesIO()
    Image.fromarray(rgb).save(buffer, "PNG")
    return base64.b64encode(buffer.getvalue()).decode()


TRAIN_IN_BROWSER = """async ([train, validation, options]) => {
  const tejas = await import('/tejas.js');
  const decode = (b64) => new Blob([Uint8Array.from(atob(b64), (c) => c.charCodeAt(0))]);
  const embed = async (items) => {
    const result = await tejas.embedImages(items.map(([b64]) => decode(b64)));
    return { features: result.features, labels: Int32Array.from(items.map(([, label]) => label)) };
  };
  const trainSet = await embed(train);
  const validationSet = await embed(validation);
  const events = [];
  const started = performance.now();
  const result = await tejas.trainHead({
    train: trainSet, validation: validationSet, numClasses: options.numClasses, ...options,
    onProgress: (p) => events.push({ ...p, at: performance.now() - started }),
  });
  const probabilities = tejas.headProbabilities(result.parameters, result.layout, validationSet.features,
    trainSet.features.length / trainSet.labels.length, options.numClasses);
  return { history: result.history, events, probabilities: Array.from(probabilities), steps: result.steps,
           validationFeatures: Array.from(validationSet.features), trainFeatures: Array.from(trainSet.features) };
}"""


def test_browser_head_matches_logistic_regression_on_native_embeddings(app, default_export):
    folder, _ = default_export
    manifest = manifest_of(folder)
    train, validation = animal_images()
    options = {"numClasses": CLASSES, "epochs": 30, "batchSize": 20, "learningRate": 3e-3, "seed": 1}
    result = app.evaluate(
        TRAIN_IN_BROWSER, [[(png_b64(r), y) for r, y in train], [(png_b64(r), y) for r, y in validation], options]
    )

    spec = manifest["input"]
    native = session(folder / "backbone.onnx", threads=2)

    def embed(items):
        batch = np.stack(
            [
                preprocess(r, spec["resize"]["shorter_side"], spec["size"][0], spec["mean"], spec["std"]).numpy()
                for r, _ in items
            ]
        )
        return native.run(None, {"image": batch})[0]

    x_train, x_val = embed(train), embed(validation)
    y_train, y_val = np.array([y for _, y in train]), np.array([y for _, y in validation])
    f = manifest["feature_size"]
    assert np.abs(np.array(result["trainFeatures"]).reshape(-1, f) - x_train).max() <= 1e-3
    reference = LogisticRegression(max_iter=5000).fit(x_train, y_train).score(x_val, y_val)

    history = result["history"]
    epochs, steps_per_epoch = options["epochs"], -(-len(train) // options["batchSize"])
    assert len(history) == epochs and history[-1]["loss"] < history[0]["loss"]
    browser = history[-1]["validationAccuracy"]
    probabilities = np.array(result["probabilities"]).reshape(len(validation), CLASSES)
    assert (probabilities.argmax(1) == y_val).mean() == pytest.approx(browser)
    print(f"validation accuracy: browser head {browser:.3f}, scikit-learn LogisticRegression {reference:.3f}")
    assert abs(browser - reference) <= 0.02 + 1e-9
    # progress: an entry per epoch, and steps reported in between
    assert sum(1 for e in result["events"] if e.get("epochDone")) == epochs
    assert result["events"][-1]["step"] == result["steps"] == epochs * steps_per_epoch


def test_same_seed_same_model_and_cancel_rejects(app):
    train, _ = digit_images()
    items = [(png_b64(r), y) for r, y in train[:30]]
    outcome = app.evaluate(
        """async (items) => {
          const tejas = await import('/tejas.js');
          const blobs = items.map(([b64]) => new Blob([Uint8Array.from(atob(b64), (c) => c.charCodeAt(0))]));
          const { features } = await tejas.embedImages(blobs);
          const train = { features, labels: Int32Array.from(items.map(([, y]) => y % 3)) };
          const run = () => tejas.trainHead({ train, numClasses: 3, epochs: 3, seed: 7 });
          const [a, b] = [await run(), await run()];
          const same = a.parameters.every((v, i) => v === b.parameters[i]);
          const controller = new AbortController();
          const long = tejas.trainHead({ train, numClasses: 3, epochs: 10000, onProgress: () => controller.abort(),
            signal: controller.signal });
          const error = await long.then(() => null, (e) => e.name);
          const after = await run();  // the worker still trains after a cancel
          return { same, error, afterSame: after.parameters.every((v, i) => v === a.parameters[i]) };
        }""",
        items,
    )
    assert outcome == {"same": True, "error": "AbortError", "afterSame": True}
