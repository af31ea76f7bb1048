#!/usr/bin/env python3
"""The training engine's speed in Debian chromium, each number beside native onnxruntime measured in
the same run (issue 16's "time to a model" report):
- embedding images/s per backbone variant (the default, MobileNetV2 at 160²; its float32 224² reference;
  ResNet18 float32 and with dynamic uint8 weights), with each variant's accuracy drift from its 224²
  float32 reference on two data sets that ship offline (bench/variants.py's measure_drift), and an
  onnxruntime-web session-option sweep on the default;
- head training steps/s (the app trains the narrowest head set that holds the classes);
- "100 images of 5 classes → trained model" cold (no cached embeddings), warm, and after background
  embedding (images embedded as they are added; Train then only trains), with the time from the first
  image added to the model, and the longest main-thread task meanwhile;
- a 5,000-image project (256×256 JPEGs in a zip) imported through the Data screen, embedded and trained:
  seconds per stage, peak memory against the stated bound, main-thread tasks over 200 ms
  (bench/browser_scale.py's measure_scale).

    python bench/browser.py [--artifacts artifacts/default ...] [--variants ...] [--scale-images 5000]
Variants missing under artifacts/ are exported first. Writes bench/results/browser.json. Needs the app
set up (bash tools/dev.sh run does that once).
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

from bench.browser_scale import measure_scale  # noqa: E402
from bench.native_embed import bench_onnxruntime  # noqa: E402
from bench.report import machine_facts, new_report, vendored_npm, write_report  # noqa: E402
from bench.variants import (  # noqa: E402
    SESSION_SETTINGS,
    VARIANTS,
    browser_embed_speed,
    export_missing,
    measure_drift,
)
from testkit.browser import CHROMIUM, CHROMIUM_ARGS  # noqa: E402
from testkit.server import Server  # noqa: E402

EMBED = """async ([images, artifacts, threads, batchSize]) => {
  const t = await import('/tejas.js');
  const blobs = images.map((b64) => new Blob([Uint8Array.from(atob(b64), (c) => c.charCodeAt(0))]));
  // warm-up: the session, wasm and its memory reach their steady state over a whole first pass (one batch
  // left the measured run up to twice as slow as the next); native onnxruntime is measured warm too
  await t.embedImages(blobs, { artifacts, threads, batchSize });
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


# Pages measure the engine, not the offline install: a service worker would download the whole precache
# (the app and its artifacts, ~130 MB) in the background of every new page while it is being measured.
NO_SW = "block"

# The variants measured beside artifacts/default (names of bench/variants.py's VARIANTS): the default's
# float32 224² reference, and ResNet18 float32 and uint8 (random weights: no ImageNet ResNet18 ships offline,
# so its drift measures quantisation noise, not an accuracy a user would see).
DEFAULT_VARIANTS = ("mobilenet_v2-224", "resnet18-random", "resnet18-random-uint8")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--artifacts", type=Path, nargs="*", help="artifact folders (default: artifacts/default)")
    parser.add_argument(
        "--variants",
        nargs="*",
        default=list(DEFAULT_VARIANTS),
        choices=sorted(VARIANTS),
        help="variants to measure beside --artifacts, exported into artifacts/<name> when missing",
    )
    parser.add_argument("--images", type=int, default=32, help="images per embedding measurement")
    parser.add_argument(
        "--native-seconds", type=float, default=2.0, help="length of each native onnxruntime window (default 2)"
    )
    parser.add_argument(
        "--project-images", type=int, default=100, help="images of the project runs (default 100, in 5 classes)"
    )
    parser.add_argument(
        "--scale-images", type=int, default=5000, help="images of the scale run (default 5000; 0 skips it)"
    )
    parser.add_argument("--drift-splits", type=int, default=5, help="random splits per drift measurement")
    parser.add_argument("--inject-busy-ms", type=float, default=0, help=argparse.SUPPRESS)  # tests only
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "browser.json")
    args = parser.parse_args(argv)
    folders = list(args.artifacts or [ROOT / "artifacts" / "default"])
    if (
        not all((f / "manifest.json").is_file() for f in folders)
        or not Path(CHROMIUM).exists()
        or not (ROOT / "pwa" / "vendor" / "vendor.json").exists()
    ):
        print(
            "browser bench: error: needs artifacts, pwa/vendor and /usr/bin/chromium; run the README's commands",
            file=sys.stderr,
        )
        return 1
    if args.variants:
        export_missing(tuple(args.variants), ROOT / "artifacts")
        folders += [ROOT / "artifacts" / name for name in args.variants if name not in {f.name for f in folders}]
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
        session_options=[],
        training=[],
        project=[],
        scale=None,
    )
    default = next((f for f in folders if f.name == "default"), folders[0])
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            report["chromium"] = browser.version
            for folder in folders:
                report["embedding"] += embedding_rows(browser, server, folder, images, args.native_seconds)
            report["session_options"] = session_option_rows(browser, server, default, images)
            for folder in folders:
                report["training"].append(training_row(browser, server, folder))
            report["project"].append(project_row(browser, server, default, args))
            if args.scale_images > 0:
                context = browser.new_context(viewport={"width": 1280, "height": 800}, service_workers=NO_SW)
                page = context.new_page()
                page.goto(server.url + "/")
                page.wait_for_selector("main[data-ready]")
                report["scale"] = {
                    "artifacts": default.name,
                    **measure_scale(page, args.scale_images, log=lambda m: print(m, file=sys.stderr)),
                }
                context.close()
            browser.close()
    finally:
        server.stop()
        shutil.rmtree(work, ignore_errors=True)
    report["accuracy"] = drift_rows(folders, args.drift_splits)
    report["machine"] = machine_facts()
    write_report(args.out, report)
    return 0


def project_row(browser, server, default: Path, args) -> dict:
    """N (100) images of 5 classes → model with the artifacts the app uses: cold, warm, after background."""
    if default.name != "default":
        print("note: the project run uses artifacts/default only", file=sys.stderr)
    context = browser.new_context(service_workers=NO_SW)
    page = context.new_page()
    page.goto(server.url + "/")
    project_images = sample_images(args.project_images, seed=1)
    project = page.evaluate(PROJECT, [project_images, args.inject_busy_ms])
    context.close()
    # a fresh page (its models not loaded yet, as for the cold run) with background embedding on
    context = browser.new_context(service_workers=NO_SW)
    page = context.new_page()
    page.goto(server.url + "/")
    background = page.evaluate(BACKGROUND, [project_images])
    context.close()
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
    return {
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


def session_option_rows(browser, server, folder: Path, images) -> list[dict]:
    """onnxruntime-web session options on `folder` (2 threads, batch 8), each setting against the embed
    worker's defaults in the same page, and the largest difference of its features from the defaults'."""
    artifacts = f"{server.url}/artifacts/{folder.name}/"
    page = browser.new_page(service_workers=NO_SW)
    page.goto(server.url + "/")
    encoded = [b for b, _ in images]
    rows, reference = [], None
    try:
        for name, session in SESSION_SETTINGS.items():
            speed = browser_embed_speed(page, artifacts, encoded, threads=2, batch=8, session=session)
            features = speed.pop("features")
            reference = features if reference is None else reference
            rows.append(
                {
                    "artifacts": folder.name,
                    "setting": name,
                    **speed,
                    "max_abs_diff_vs_defaults": float(np.abs(features - reference).max()),
                }
            )
            print(
                f"session {name:>18}: {speed['images_per_second']:6.1f} img/s "
                f"(backbone alone {speed['inference_images_per_second']:6.1f})",
                file=sys.stderr,
            )
    finally:
        page.close()
    return rows


def describe(folder: Path, manifest: dict) -> dict:
    """The columns that say which backbone a row measured."""
    return {
        "artifacts": folder.name,
        "architecture": manifest["architecture"],
        "weights": manifest["weights"]["kind"],
        "input_size": manifest["input"]["size"][0],
        "quantization": manifest["models"]["backbone"].get("quantization", "none"),
    }


def embedding_rows(browser, server, folder: Path, images, native_seconds: float) -> list[dict]:
    """Browser and native onnxruntime images/s at 1 and 2 threads, batch 1 and 8."""
    manifest = json.loads((folder / "manifest.json").read_text())
    artifacts = f"{server.url}/artifacts/{folder.name}/"
    h, w = manifest["input"]["size"]
    rows = []
    for threads in (1, 2):
        for batch in (1, 8):
            page = browser.new_page(service_workers=NO_SW)  # a fresh worker: wasm threads are fixed at start-up
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
        page = browser.new_page(service_workers=NO_SW)  # a fresh train worker for each thread count
        page.goto(server.url + "/")
        steps = page.evaluate(TRAIN_STEPS, [artifacts, manifest["feature_size"], "head", 100, 20, threads])
        page.close()
        row[f"head_steps_per_second_{threads}_threads"] = steps["steps"] / steps["seconds"]
    row["head_steps_per_second"] = row["head_steps_per_second_1_threads"]  # what the app uses
    block = manifest["training"].get("last_block")
    if block:
        page = browser.new_page(service_workers=NO_SW)
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


def reference_folder(folder: Path, folders: list[Path]) -> Path | None:
    """The float32 224² folder of the same architecture and weights as `folder` (never itself), or None."""
    manifest = json.loads((folder / "manifest.json").read_text())

    def key(f: Path):
        m = json.loads((f / "manifest.json").read_text())
        return m["architecture"], m["weights"]["kind"]

    for other in folders:
        m = json.loads((other / "manifest.json").read_text())
        if (
            other != folder
            and key(other) == key(folder)
            and m["input"]["size"][0] == 224
            and "quantization" not in m["models"]["backbone"]
            and (manifest["input"]["size"][0] != 224 or "quantization" in manifest["models"]["backbone"])
        ):
            return other
    return None


def drift_rows(folders: list[Path], splits: int) -> list[dict]:
    """Each variant's linear-probe accuracy drift from its float32 224² reference on Animal-MNIST and photo
    crops (bench/variants.py); a variant counts as an option only if it drifts ≤ 1 point on both."""
    rows = []
    for folder in folders:
        reference = reference_folder(folder, folders)
        if reference is None:
            continue
        manifest = json.loads((folder / "manifest.json").read_text())
        drift = measure_drift(reference, folder, splits=splits)
        rows.append(
            {
                **describe(folder, manifest),
                "drift_reference": reference.name,
                **{k: v for k, v in drift.items() if k not in ("reference", "variant")},
            }
        )
        print(
            f"drift {folder.name:>22} vs {reference.name}: "
            + ", ".join(f"{name} {d['drift_points']:+.2f} points" for name, d in drift["datasets"].items()),
            file=sys.stderr,
        )
    return rows


if __name__ == "__main__":
    sys.exit(main())
