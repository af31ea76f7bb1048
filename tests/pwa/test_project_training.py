"""A project end to end through the JS API: store images, train (embeddings cached), predict,
evaluate; the split and metrics equal the Python core's; a cancelled run keeps the previous model."""

from __future__ import annotations

import base64

import pytest

from tejas.metrics import classification_report
from tejas.splits import stratified_split

from .conftest import digit_images, png

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def test_project_train_predict_evaluate(app):
    train, validation = digit_images()
    items = [(base64.b64encode(png(r)).decode(), int(y)) for r, y in train + validation if y < 3]
    result = app.evaluate(
        """async (items) => {
          const { t, project, classes } = await projectWith('Digits', ['zero', 'one', 'two'], items);
          const file = fileFrom;
          const options = { epochs: 15, batchSize: 16, learningRate: 3e-3 };
          const stages = new Set();
          const first = await t.train(project.id, { ...options, onProgress: (p) => stages.add(p.stage) });

          const controller = new AbortController();
          const abortWhenTraining = (p) => { if (p.stage === 'training') controller.abort(); };
          const cancelled = await t
            .train(project.id, { epochs: 5000, signal: controller.signal, onProgress: abortWhenTraining })
            .then(() => 'finished', (e) => e.name);
          const afterCancel = (await t.currentModel(project.id)).id;

          const warmStages = new Set();
          const model = await t.train(project.id, { ...options, onProgress: (p) => warmStages.add(p.stage) });
          const top = await t.predict(project.id, file(items[0][0], 'query.png'), { topK: 2 });
          const report = await t.evaluate(project.id);
          const samples = await t.listSamples(project.id);
          const labelOf = (s) => classes.findIndex((c) => c.id === s.classId);
          return { stages: [...stages], cancelled, keptFirst: afterCancel === first.id,
                   models: (await t.listModels(project.id)).length, top, report, split: model.split,
                   labels: Object.fromEntries(samples.map((s) => [s.contentId, labelOf(s)])),
                   warmStages: [...warmStages] };
        }""",
        items,
    )
    assert result["stages"] == ["embedding", "training"]
    assert result["cancelled"] == "AbortError" and result["keptFirst"] and result["models"] == 2
    assert result["top"][0]["name"] == "zero" and result["top"][0]["probability"] > result["top"][1]["probability"]
    assert result["warmStages"] == ["training"]  # later runs reuse the cached embeddings: nothing to embed

    # the browser's split equals the Python core's on the same ids
    labels = result["labels"]
    ids = sorted(labels)
    _, python_validation = stratified_split(ids, [labels[i] for i in ids], 0.2, seed=0)
    assert sorted(result["split"]["validation"]) == sorted(python_validation)
    # metrics equal the Python core's for the browser's own predictions
    report = result["report"]
    cells = report["cells"]
    y_true = [int(k.split(",")[0]) for k, v in cells.items() for _ in v]
    y_pred = [int(k.split(",")[1]) for k, v in cells.items() for _ in v]
    python = classification_report(y_true, y_pred, ["zero", "one", "two"])
    assert report["confusionMatrix"] == python["confusion_matrix"]
    assert report["accuracy"] == pytest.approx(python["accuracy"])
    for ours, theirs in zip(report["perClass"], python["per_class"], strict=True):
        assert (ours["precision"], ours["recall"], ours["f1"]) == pytest.approx(
            (theirs["precision"], theirs["recall"], theirs["f1"])
        )
    assert report["accuracy"] >= 0.8
    assert sum(len(v) for v in cells.values()) == report["count"] == len(python_validation)


def test_reload_during_training_loses_no_sample_and_keeps_the_model(app):
    train, _ = digit_images()
    items = [(base64.b64encode(png(r)).decode(), int(y)) for r, y in train if y < 2][10:30]  # 10 of each
    project_id = app.evaluate(
        """async (items) => {
          const { t, project } = await projectWith('Reload', ['zero', 'one'], items);
          const first = await t.train(project.id, { epochs: 3 });
          t.train(project.id, { epochs: 100000 });  // still running when the page goes away
          await new Promise((resolve) => setTimeout(resolve, 1500));
          return [project.id, first.id];
        }""",
        items,
    )
    app.reload()
    after = app.evaluate(
        """async ([projectId]) => {
          const t = await import('/tejas.js');
          return { samples: (await t.listSamples(projectId)).length, model: (await t.currentModel(projectId)).id,
                   models: (await t.listModels(projectId)).length };
        }""",
        project_id,
    )
    assert after == {"samples": 20, "model": project_id[1], "models": 1}


def test_augmented_views_are_deterministic_cached_and_distinct(app):
    train, _ = digit_images()
    items = [(base64.b64encode(png(r)).decode(), int(y)) for r, y in train if y < 2][10:30]
    result = app.evaluate(
        """async (items) => {
          const { t, project } = await projectWith('Augment', ['zero', 'one'], items);
          let embedded = [];
          const count = (p) => { if (p.stage === 'embedding' && p.done === p.total) embedded.push(p.total); };
          const a = await t.train(project.id, { epochs: 3, augment: 2, onProgress: count });
          const firstEmbedded = embedded;
          embedded = [];
          const b = await t.train(project.id, { epochs: 3, augment: 2, onProgress: count });
          const c = await t.train(project.id, { epochs: 3, augment: 2, seed: 1 });
          const db = await new Promise((resolve) => {
            const r = indexedDB.open('tejas');
            r.onsuccess = () => resolve(r.result);
          });
          const read = (method) => new Promise((resolve) => {
            const r = db.transaction('embeddings').objectStore('embeddings')[method]();
            r.onsuccess = () => resolve(r.result);
          });
          const keys = await read('getAllKeys');
          const rows = await read('getAll');
          const byKey = new Map(rows.map((e) => [e.augmentationId + e.contentId, e.features]));
          const someId = rows[0].contentId;
          const plain = byKey.get('none' + someId), view = byKey.get('v1:0:1' + someId);
          return { firstEmbedded, secondEmbedded: embedded, same: a.parameters.every((v, i) => v === b.parameters[i]),
                   differentSeed: c.parameters.some((v, i) => v !== a.parameters[i]),
                   augmentations: [...new Set(keys.map((k) => k[2]))].sort(),
                   viewDiffers: view ? view.some((v, i) => v !== plain[i]) : null };
        }""",
        items,
    )
    # 20 plain, then 2 views of the 16 training images the first time; nothing to embed the second time
    assert result["firstEmbedded"] == [20, 16, 16] and result["secondEmbedded"] == []
    assert result["same"] and result["differentSeed"] and result["viewDiffers"]
    assert result["augmentations"] == ["none", "v1:0:1", "v1:0:2", "v1:1:1", "v1:1:2"]
