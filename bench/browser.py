#!/usr/bin/env python3
"""The training engine's speed in Debian chromium, each number beside native onnxruntime measured in
the same run: embedding images/s, head training steps/s, and "100 images of 5 classes → trained
model" seconds, cold (no cached embeddings) and warm, with the longest main-thread task meanwhile.

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
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.native_embed import bench_onnxruntime, exported_artifacts, machine, write_report  # noqa: E402
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

TRAIN_STEPS = """async ([artifacts, featureSize, mode, n, epochs]) => {
  const t = await import('/tejas.js');
  const classes = 5;
  const features = Float32Array.from({ length: n * featureSize }, (_, i) => Math.sin(i * 12.9898) * 0.5);
  const labels = Int32Array.from({ length: n }, (_, i) => i % classes);
  const train = { features, labels };
  const result = await t.trainHead({ artifacts, mode, train, numClasses: classes, epochs, batchSize: 16 });
  return { steps: result.steps, seconds: result.seconds };
}"""

PROJECT = """async (images) => {
  const longest = { value: 0 };
  new PerformanceObserver((list) => {
    for (const entry of list.getEntries()) longest.value = Math.max(longest.value, entry.duration);
  }).observe({ type: 'longtask', buffered: false });
  const t = await import('/tejas.js');
  const file = (b64, name) => new File([Uint8Array.from(atob(b64), (c) => c.charCodeAt(0))], name);
  const project = await t.createProject('Bench');
  const classes = [];
  for (let c = 0; c < 5; c++) classes.push(await t.addClass(project.id, `class ${c}`));
  for (const [i, [b64, y]] of images.entries()) await t.addSamples(project.id, classes[y].id, [file(b64, `${i}.png`)]);
  let started = performance.now();
  await t.train(project.id, { epochs: 20 });
  const cold = (performance.now() - started) / 1000;
  started = performance.now();
  await t.train(project.id, { epochs: 20 });
  const warm = (performance.now() - started) / 1000;
  await new Promise((resolve) => setTimeout(resolve, 100));
  return { cold, warm, longestTaskMs: longest.value };
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
    report = {
        "benchmark": "browser",
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": machine(),
        "chromium": None,
        "embedding": [],
        "training": [],
        "project": [],
    }
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            report["chromium"] = browser.version
            for folder in folders:
                manifest = json.loads((folder / "manifest.json").read_text())
                artifacts = f"{server.url}/artifacts/{folder.name}/"
                h, w = manifest["input"]["size"]
                for threads in (1, 2):
                    for batch in (1, 8):
                        page = browser.new_page()  # a fresh worker: wasm threads are fixed at start-up
                        page.goto(server.url + "/")
                        result = page.evaluate(EMBED, [[b for b, _ in images], artifacts, threads, batch])
                        page.close()
                        rate = args.images / result["seconds"]
                        inputs = np.random.default_rng(0).standard_normal((batch, 3, h, w), dtype=np.float32)
                        native = bench_onnxruntime(folder / "backbone.onnx", inputs, threads, 2.0)["images_per_second"]
                        row = {
                            "artifacts": folder.name,
                            "architecture": manifest["architecture"],
                            "threads": threads,
                            "batch": batch,
                            "browser_images_per_second": rate,
                            "browser_inference_images_per_second": args.images / result["inferenceSeconds"],
                            "native_images_per_second": native,
                            "browser_over_native": rate / native,
                        }
                        report["embedding"].append(row)
                        print(
                            f"embed {folder.name:>16} threads={threads} batch={batch}: browser {rate:6.1f} img/s "
                            f"(backbone alone {args.images / result['inferenceSeconds']:6.1f}), "
                            f"native {native:6.1f} ({rate / native:.2f}×)",
                            file=sys.stderr,
                        )
                page = browser.new_page()
                page.goto(server.url + "/")
                row = {"artifacts": folder.name, "batch": 16, "classes": 5}
                steps = page.evaluate(TRAIN_STEPS, [artifacts, manifest["feature_size"], "head", 100, 20])
                row["head_steps_per_second"] = steps["steps"] / steps["seconds"]
                block = manifest["training"].get("last_block")
                if block:
                    size = int(np.prod(block["input"]["shape"][1:]))
                    steps = page.evaluate(TRAIN_STEPS, [artifacts, size, "last_block", 32, 1])
                    row["last_block_steps_per_second"] = steps["steps"] / steps["seconds"]
                page.close()
                report["training"].append(row)
                print(
                    f"train {folder.name:>16}: {row['head_steps_per_second']:.0f} head steps/s, "
                    f"{row.get('last_block_steps_per_second', float('nan')):.1f} last-block steps/s",
                    file=sys.stderr,
                )
            # 100 images of 5 classes → model, with the default artifacts the app uses
            default = next((f for f in folders if f.name == "default"), folders[0])
            context = browser.new_context()
            page = context.new_page()
            page.goto(server.url + "/")
            if default.name != "default":
                print("note: the project run uses artifacts/default only", file=sys.stderr)
            project = page.evaluate(PROJECT, sample_images(100, seed=1))
            context.close()
            report["project"].append(
                {
                    "artifacts": default.name,
                    "images": 100,
                    "classes": 5,
                    "epochs": 20,
                    "cold_seconds": project["cold"],
                    "warm_seconds": project["warm"],
                    "longest_main_thread_task_ms": project["longestTaskMs"],
                }
            )
            print(
                f"100 images → model: cold {project['cold']:.1f}s, warm {project['warm']:.1f}s, "
                f"longest main-thread task {project['longestTaskMs']:.0f} ms",
                file=sys.stderr,
            )
            browser.close()
    finally:
        server.stop()
        shutil.rmtree(work, ignore_errors=True)
    report["accuracy"] = accuracy_rows(folders)
    write_report(args.out, report)
    return 0


def accuracy_rows(folders: list[Path]) -> list[dict]:
    """Validation accuracy of a LogisticRegression on each folder's native embeddings of Animal-MNIST
    (5 classes × 20 train / 20 validation), and its drift from the same architecture at fp32 224²: a
    faster option (smaller input, quantised) counts only if it drifts ≤ 1 point."""
    from sklearn.linear_model import LogisticRegression
    from tejas_export.checks import preprocess, session

    from tests.pwa.conftest import animal_images

    train, validation = animal_images()
    rows = []
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

        fit = LogisticRegression(max_iter=5000).fit(embed(train), [y for _, y in train])
        rows.append(
            {
                "artifacts": folder.name,
                "architecture": manifest["architecture"],
                "weights": manifest["weights"]["kind"],
                "input_size": spec["size"][0],
                "validation_accuracy": fit.score(embed(validation), [y for _, y in validation]),
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
            ),
            None,
        )
        row["drift_points_vs_224"] = (
            None
            if reference is None
            else round(100 * (reference["validation_accuracy"] - row["validation_accuracy"]), 2)
        )
        print(
            f"accuracy {row['artifacts']:>16} ({row['input_size']}²): {row['validation_accuracy']:.3f}, "
            f"drift vs 224²: {row['drift_points_vs_224']} points",
            file=sys.stderr,
        )
    return rows


if __name__ == "__main__":
    sys.exit(main())
