#!/usr/bin/env python3
"""The training engine's speed in Debian chromium, each number beside native onnxruntime measured in
the same run: embedding images/s, head training steps/s, and "100 images of 5 classes → trained
model" seconds, cold (no cached embeddings) and warm, with the longest main-thread task meanwhile,
and after background embedding (images embedded as they are added; Train then only trains), with the
time from the first image added to the model beside the cold run's; then the accuracy drift of each
smaller input size from 224² of the same backbone.

    python bench/browser.py [--artifacts artifacts/default artifacts/resnet18-random] [--images 32]
Writes bench/results/browser.json. Needs the app set up (bash tools/dev.sh run does that once).
"""

from __future__ import annotations

import argparse
import base64
import io
import json
import shutil
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.native_embed import bench_onnxruntime, exported_artifacts  # noqa: E402
from bench.report import machine_facts, new_report, vendored_npm, write_report  # noqa: E402
from tests.conftest import CHROMIUM, CHROMIUM_ARGS, Server  # noqa: E402

EMBED = """async ([images, artifacts, threads, batchSize]) => {
  const t = await import('/tejas.js');
  const blobs = images.map((b64) => new Blob([Uint8Array.from(atob(b64), (c) => c.charCodeAt(0))]));
  await t.embedImages(blobs.slice(0, batchSize), { artifacts, threads, batchSize });  // warm-up: session, wasm
  const started = performance.now();
  const result = await t.embedImages(blobs, { artifacts, threads, batchSize });
  return { seconds: (performance.now() - started) / 1000, inferenceSeconds: result.inferenceSeconds,
           threads: result.threads, failures: result.failures.length };
}"""

TRAIN_STEPS = """async ([artifacts, featureSize, mode, n, epochs, threads]) => {
  const t = await import('/tejas.js');
  const classes = 5;
  const features = Float32Array.from({ length: n * featureSize }, (_, i) => Math.sin(i * 12.9898) * 0.5);
  const labels = Int32Array.from({ length: n }, (_, i) => i % classes);
  const train = { features, labels };
  const result = await t.trainHead({ artifacts, mode, train, numClasses: classes, epochs, batchSize: 16,
                                     ...(threads ? { threads } : {}) });
  return { steps: result.steps, seconds: result.seconds };
}"""

# busyMs > 0 (tests only) blocks the main thread that long while the cold run trains, to prove that
# the long-task measurement sees what happens during the run.
PROJECT = """async ([images, busyMs]) => {
  const longest = { value: 0, count: 0 };
  new PerformanceObserver((list) => {
    for (const entry of list.getEntries()) {
      longest.value = Math.max(longest.value, entry.duration);
      longest.count += 1;
    }
  }).observe({ type: 'longtask', buffered: false });
  const t = await import('/tejas.js');
  const file = (b64, name) => new File([Uint8Array.from(atob(b64), (c) => c.charCodeAt(0))], name);
  t.backgroundEmbedding.pause();  // cold means cold: nothing embedded before Train
  const project = await t.createProject('Bench');
  const classes = [];
  for (let c = 0; c < 5; c++) classes.push(await t.addClass(project.id, `class ${c}`));
  const firstAdded = performance.now();
  for (const [i, [b64, y]] of images.entries()) await t.addSamples(project.id, classes[y].id, [file(b64, `${i}.png`)]);
  let started = performance.now();
  const training = t.train(project.id, { epochs: 20 });
  if (busyMs > 0) {
    await new Promise((resolve) => setTimeout(resolve, 50));
    const until = performance.now() + busyMs;
    while (performance.now() < until);  // deliberately blocking
  }
  await training;
  const cold = (performance.now() - started) / 1000;
  const coldTotal = (performance.now() - firstAdded) / 1000;
  started = performance.now();
  await t.train(project.id, { epochs: 20 });
  const warm = (performance.now() - started) / 1000;
  await new Promise((resolve) => setTimeout(resolve, 100));
  return { cold, warm, coldTotal, longestTaskMs: longest.value, longTasks: longest.count };
}"""

# The same images added one by one to a project the page watches (as its Data screen does): background
# embedding runs while they arrive; then Train. `trainEmbedded` counts the images Train itself embedded.
BACKGROUND = """async ([images]) => {
  const t = await import('/tejas.js');
  const file = (b64, name) => new File([Uint8Array.from(atob(b64), (c) => c.charCodeAt(0))], name);
  const project = await t.createProject('Bench background');
  const classes = [];
  for (let c = 0; c < 5; c++) classes.push(await t.addClass(project.id, `class ${c}`));
  t.backgroundEmbedding.watch(project.id);
  const firstAdded = performance.now();
  for (const [i, [b64, y]] of images.entries()) await t.addSamples(project.id, classes[y].id, [file(b64, `${i}.png`)]);
  const lastAdded = performance.now();
  const status = await t.backgroundEmbedding.ready(project.id);
  if (status.error || status.failed) {
    throw new Error(`background embedding: ${status.error ?? `${status.failed} images failed`}`);
  }
  const ready = performance.now();
  const before = t.embedCounts().foreground.images;
  await t.train(project.id, { epochs: 20 });
  const done = performance.now();
  return { addSeconds: (lastAdded - firstAdded) / 1000, waitSeconds: (ready - lastAdded) / 1000,
           trainSeconds: (done - ready) / 1000, totalSeconds: (done - firstAdded) / 1000,
           trainEmbedded: t.embedCounts().foreground.images - before };
}"""


def sample_images(count: int, seed: int = 0) -> list[tuple[str, int]]:
    """Photo-like PNGs (smooth noise at 320×240) in 5 classes, as base64."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    out = []
    for i in range(count):
        small = (rng.random((6, 8, 3)) * 255).astype(np.uint8)
        image = Image.fromarray(small).resize((320, 240), Image.Resampling.BICUBIC)
        buffer = io.BytesIO()
        image.save(buffer, "PNG")
        out.append((base64.b64encode(buffer.getvalue()).decode(), i % 5))
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--artifacts", type=Path, nargs="*", help="artifact folders (default: artifacts/*/)")
    parser.add_argument("--images", type=int, default=32, help="images per embedding measurement")
    parser.add_argument(
        "--native-seconds", type=float, default=2.0, help="length of each native onnxruntime window (default 2)"
    )
    parser.add_argument(
        "--project-images", type=int, default=100, help="images of the project runs (default 100, in 5 classes)"
    )
    parser.add_argument("--inject-busy-ms", type=float, default=0, help=argparse.SUPPRESS)  # tests only
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "browser.json")
    args = parser.parse_args(argv)
    folders = args.artifacts or exported_artifacts()
    if not folders or not Path(CHROMIUM).exists() or not (ROOT / "pwa" / "vendor" / "vendor.json").exists():
        print(
            "browser bench: error: needs artifacts, pwa/vendor and /usr/bin/chromium; run the README's commands",
            file=sys.stderr,
        )
        return 1
    from playwright.sync_api import sync_playwright

    images = sample_images(args.images)
    work = Path(tempfile.mkdtemp(prefix="tejas-bench-"))
    for folder in folders:
        shutil.copytree(folder, work / folder.name)
    server = Server(work)
    report = new_report(
        "browser",
        machine=None,  # at the end, with the load average of the run
        chromium=None,
        npm=vendored_npm(),
        images_per_embedding_run=args.images,
        native_seconds_per_window=args.native_seconds,
        embedding=[],
        training=[],
        project=[],
    )
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            report["chromium"] = browser.version
            for folder in folders:
                report["embedding"] += embedding_rows(browser, server, folder, images, args.native_seconds)
                report["training"].append(training_row(browser, server, folder))
            # N (100) images of 5 classes → model, with the default artifacts the app uses
            default = next((f for f in folders if f.name == "default"), folders[0])
            if default.name != "default":
                print("note: the project run uses artifacts/default only", file=sys.stderr)
            context = browser.new_context()
            page = context.new_page()
            page.goto(server.url + "/")
            project_images = sample_images(args.project_images, seed=1)
            project = page.evaluate(PROJECT, [project_images, args.inject_busy_ms])
            context.close()
            # a fresh page (its models not loaded yet, as for the cold run) with background embedding on
            context = browser.new_context()
            page = context.new_page()
            page.goto(server.url + "/")
            background = page.evaluate(BACKGROUND, [project_images])
            context.close()
            report["project"].append(
                {
                    "artifacts": default.name,
                    "images": args.project_images,
                    "classes": 5,
                    "epochs": 20,
                    "cold_seconds": project["cold"],
                    "warm_seconds": project["warm"],
                    # first image added → trained model, without and with background embedding
                    "cold_total_seconds": project["coldTotal"],
                    "background_total_seconds": background["totalSeconds"],
                    # the background run's parts: adding, waiting for "ready" after the last image, Train
                    "background_add_seconds": background["addSeconds"],
                    "background_wait_seconds": background["waitSeconds"],
                    "background_train_seconds": background["trainSeconds"],
                    "background_train_embedded_images": background["trainEmbedded"],
                    "longest_main_thread_task_ms": project["longestTaskMs"],
                    "long_tasks": project["longTasks"],
                    "injected_busy_ms": args.inject_busy_ms,
                }
            )
            print(
                f"{args.project_images} images → model: cold {project['cold']:.1f}s, warm {project['warm']:.1f}s, "
                f"longest main-thread task {project['longestTaskMs']:.0f} ms ({project['longTasks']} over 50 ms)",
                file=sys.stderr,
            )
            print(
                f"first image added → model: {project['coldTotal']:.1f}s cold, "
                f"{background['totalSeconds']:.1f}s with background embedding (Train after ready: "
                f"{background['trainSeconds']:.1f}s, {background['trainEmbedded']} images embedded by Train)",
                file=sys.stderr,
            )
            browser.close()
    finally:
        server.stop()
        shutil.rmtree(work, ignore_errors=True)
    report["accuracy"] = accuracy_rows(folders)
    report["machine"] = machine_facts()
    write_report(args.out, report)
    return 0


def describe(folder: Path, manifest: dict) -> dict:
    """The columns that say which backbone a row measured."""
    return {
        "artifacts": folder.name,
        "architecture": manifest["architecture"],
        "weights": manifest["weights"]["kind"],
        "input_size": manifest["input"]["size"][0],
    }


def embedding_rows(browser, server, folder: Path, images, native_seconds: float) -> list[dict]:
    """Browser and native onnxruntime images/s at 1 and 2 threads, batch 1 and 8."""
    manifest = json.loads((folder / "manifest.json").read_text())
    artifacts = f"{server.url}/artifacts/{folder.name}/"
    h, w = manifest["input"]["size"]
    rows = []
    for threads in (1, 2):
        for batch in (1, 8):
            page = browser.new_page()  # a fresh worker: wasm threads are fixed at start-up
            page.goto(server.url + "/")
            result = page.evaluate(EMBED, [[b for b, _ in images], artifacts, threads, batch])
            page.close()
            rate = len(images) / result["seconds"]
            alone = len(images) / result["inferenceSeconds"]
            inputs = np.random.default_rng(0).standard_normal((batch, 3, h, w), dtype=np.float32)
            native = bench_onnxruntime(folder / "backbone.onnx", inputs, threads, native_seconds)["images_per_second"]
            rows.append(
                {
                    **describe(folder, manifest),
                    "threads": threads,
                    "batch": batch,
                    "browser_images_per_second": rate,
                    "browser_inference_images_per_second": alone,
                    "native_images_per_second": native,
                    "browser_over_native": rate / native,
                }
            )
            print(
                f"embed {folder.name:>16} threads={threads} batch={batch}: browser {rate:6.1f} img/s "
                f"(backbone alone {alone:6.1f}), native {native:6.1f} ({rate / native:.2f}×)",
                file=sys.stderr,
            )
    return rows


def training_row(browser, server, folder: Path) -> dict:
    """Head steps/s on 1 and 2 wasm threads (the app trains the head on 1), last-block steps/s."""
    manifest = json.loads((folder / "manifest.json").read_text())
    artifacts = f"{server.url}/artifacts/{folder.name}/"
    row = {**describe(folder, manifest), "batch": 16, "classes": 5, "max_classes": manifest["max_classes"]}
    for threads in (1, 2):
        page = browser.new_page()  # a fresh train worker for each thread count
        page.goto(server.url + "/")
        steps = page.evaluate(TRAIN_STEPS, [artifacts, manifest["feature_size"], "head", 100, 20, threads])
        page.close()
        row[f"head_steps_per_second_{threads}_threads"] = steps["steps"] / steps["seconds"]
    row["head_steps_per_second"] = row["head_steps_per_second_1_threads"]  # what the app uses
    block = manifest["training"].get("last_block")
    if block:
        page = browser.new_page()
        page.goto(server.url + "/")
        size = int(np.prod(block["input"]["shape"][1:]))
        steps = page.evaluate(TRAIN_STEPS, [artifacts, size, "last_block", 32, 1, None])
        page.close()
        row["last_block_steps_per_second"] = steps["steps"] / steps["seconds"]
    print(
        f"train {folder.name:>16}: {row['head_steps_per_second_1_threads']:.0f} head steps/s on 1 thread, "
        f"{row['head_steps_per_second_2_threads']:.0f} on 2, "
        f"{row.get('last_block_steps_per_second', float('nan')):.1f} last-block steps/s",
        file=sys.stderr,
    )
    return row


def accuracy_rows(folders: list[Path]) -> list[dict]:
    """Validation accuracy of a LogisticRegression on each folder's native embeddings of Animal-MNIST
    (5 classes × 20 train / 20 validation). A folder with a smaller input size is compared with the
    folder of the same backbone and weights at 224² (another folder, never itself): the accuracy
    drift in points, and how alike the two folders' features of the same images are. A faster
    option (smaller input) counts only if it drifts ≤ 1 point."""
    from sklearn.linear_model import LogisticRegression
    from tejas_export.checks import preprocess, session

    from tests.pwa.conftest import animal_images

    train, validation = animal_images()
    rows, features = [], {}
    for folder in folders:
        manifest = json.loads((folder / "manifest.json").read_text())
        spec = manifest["input"]
        native = session(folder / "backbone.onnx", threads=2)

        def embed(items, spec=spec, native=native):
            batch = np.stack(
                [
                    preprocess(r, spec["resize"]["shorter_side"], spec["size"][0], spec["mean"], spec["std"])
                    for r, _ in items
                ]
            )
            return native.run(None, {"image": batch})[0]

        features[folder.name] = embed(validation)
        fit = LogisticRegression(max_iter=5000).fit(embed(train), [y for _, y in train])
        rows.append(
            {
                **describe(folder, manifest),
                "shorter_side": spec["resize"]["shorter_side"],
                "validation_accuracy": fit.score(features[folder.name], [y for _, y in validation]),
            }
        )
    for row in rows:
        reference = next(
            (
                r
                for r in rows
                if r["architecture"] == row["architecture"]
                and r["weights"] == row["weights"]
                and r["input_size"] == 224
                and r["artifacts"] != row["artifacts"]
            ),
            None,
        )
        if row["input_size"] == 224 or reference is None:
            row.update(drift_reference=None, drift_points_vs_224=None, feature_cosine_vs_224=None)
        else:
            row.update(
                drift_reference=reference["artifacts"],
                drift_points_vs_224=round(100 * (reference["validation_accuracy"] - row["validation_accuracy"]), 2),
                feature_cosine_vs_224=mean_cosine(features[row["artifacts"]], features[reference["artifacts"]]),
            )
        print(
            f"accuracy {row['artifacts']:>16} ({row['input_size']}²): {row['validation_accuracy']:.3f}"
            + (
                f", drift vs {row['drift_reference']} (224²): {row['drift_points_vs_224']} points, "
                f"feature cosine {row['feature_cosine_vs_224']:.4f}"
                if row["drift_reference"]
                else ""
            ),
            file=sys.stderr,
        )
    return rows


def mean_cosine(a: np.ndarray, b: np.ndarray) -> float:
    """Mean cosine similarity of corresponding rows (the same image's features from two backbones)."""
    dot = (a * b).sum(1)
    return float((dot / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))).mean())


if __name__ == "__main__":
    sys.exit(main())
