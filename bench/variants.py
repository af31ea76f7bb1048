#!/usr/bin/env python3
"""Faster backbone variants against float32 224² of the same architecture: linear-probe accuracy drift on two
data sets that ship offline, feature cosine, native and browser images/s; and onnxruntime-web session options.

    python bench/variants.py [--skip-browser] [--native-seconds 2]

Variants (exported into artifacts/<name> when missing, head only): MobileNetV2-ImageNet at 224² (the reference),
192², 160², 128² and with uint8 weights; ResNet18 with random weights (no ImageNet ResNet18 weights ship offline:
its drift is a quantisation-noise proxy, not an accuracy claim) at 224², 160² and uint8. Writes
bench/results/variants.json. bench/browser.py may call measure_drift() and browser_embed_speed().

Data sets:
- animal_mnist: PyPI animal-mnist 0.4 (MIT), 28×28 grey drawings upscaled to 112² RGB, 10 classes.
- photos: crops of the real photos scikit-image and scikit-learn ship (astronaut, cat, coffee, rocket, Hubble
  deep field, immunohistochemistry, retina, motorcycle, China palace, flower, brick, grass, gravel, camera man):
  each photo is a class, each sample a random square crop of 20–50 % of its shorter side at a random place,
  randomly mirrored, brightness ×0.8–1.2, resized to 128² (photo-like texture/part recognition).
Each: a LogisticRegression on native onnxruntime features (the browser's equal them within 1e-5 for float32),
trained on `train_per_class` images per class, scored on `validation_per_class`, over `splits` random splits.
"""

from __future__ import annotations

import argparse
import base64
import functools
import gzip
import importlib.util
import io
import json
import pickle
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.native_embed import bench_onnxruntime  # noqa: E402
from bench.report import machine_facts, new_report, vendored_npm, write_report  # noqa: E402

MAX_DRIFT_POINTS = 1.0
# name -> (backbone, weights, input size, quantize); the first of each architecture is its reference
VARIANTS = {
    "mobilenet_v2-224": ("mobilenet_v2", "imagenet", 224, "none"),
    "mobilenet_v2-192": ("mobilenet_v2", "imagenet", 192, "none"),
    "mobilenet_v2-160": ("mobilenet_v2", "imagenet", 160, "none"),
    "mobilenet_v2-128": ("mobilenet_v2", "imagenet", 128, "none"),
    "mobilenet_v2-uint8": ("mobilenet_v2", "imagenet", 224, "uint8"),
    "resnet18-random": ("resnet18", "none", 224, "none"),
    "resnet18-random-160": ("resnet18", "none", 160, "none"),
    "resnet18-random-uint8": ("resnet18", "none", 224, "uint8"),
}
PHOTO_NAMES = (
    "astronaut chelsea coffee rocket hubble_deep_field immunohistochemistry retina stereo_motorcycle "
    "china flower brick grass gravel camera"
).split()

# The page side: embed base64 images with the app's embedImages (decode, preprocess and backbone in the embed
# worker) under the given session options; a warm-up batch first (session creation, wasm start-up).
EMBED = """async ([images, artifacts, threads, batchSize, session, repeats]) => {
  const t = await import('/tejas.js');
  const blobs = images.map((b64) => new Blob([Uint8Array.from(atob(b64), (c) => c.charCodeAt(0))]));
  const options = { artifacts, threads, batchSize, session };
  await t.embedImages(blobs.slice(0, batchSize), options);
  let best = null;
  for (let r = 0; r < repeats; r++) {
    const started = performance.now();
    const result = await t.embedImages(blobs, options);
    const seconds = (performance.now() - started) / 1000;
    if (!best || seconds < best.seconds) best = { seconds, result };
  }
  const { result } = best;
  return { seconds: best.seconds, inferenceSeconds: result.inferenceSeconds, threads: result.threads,
           session: result.session, failures: result.failures.length, features: Array.from(result.features) };
}"""


# ---------------------------------------------------------------------------------------------- data sets


@functools.cache
def animal_mnist(per_class: int = 100, size: int = 112) -> tuple[np.ndarray, np.ndarray]:
    """Animal-MNIST: the first `per_class` distinct images of each of its 10 classes, as size² RGB uint8."""
    from PIL import Image

    spec = importlib.util.find_spec("animal_mnist")
    if spec is None:
        raise SystemExit("animal-mnist is not installed: pip install --no-deps animal-mnist==0.4")
    folder = Path(spec.submodule_search_locations[0]) / "data" / "Animal_MNIST"
    with gzip.open(folder / "animal_data_version_3.gz") as f:  # importing the package would import tensorflow
        images = pickle.load(f)
    with gzip.open(folder / "animal_label_version_3.gz") as f:
        labels = np.asarray(pickle.load(f))
    rgb, ys = [], []
    for label in sorted(set(labels.tolist())):
        seen = set()
        for row in np.flatnonzero(labels == label):
            grey = np.asarray(images[row], np.uint8)
            if grey.tobytes() in seen:
                continue
            seen.add(grey.tobytes())
            rgb.append(np.asarray(Image.fromarray(grey).resize((size, size), Image.Resampling.BILINEAR).convert("RGB")))
            ys.append(label)
            if len(seen) == per_class:
                break
    return np.stack(rgb), np.asarray(ys)


@functools.cache
def photo_crops(per_class: int = 40, size: int = 128, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Random crops of the photos scikit-image and scikit-learn ship, one class per photo (module docstring)."""
    import skimage.data
    from PIL import Image
    from sklearn.datasets import load_sample_images

    shipped = dict(zip(("china", "flower"), load_sample_images().images, strict=True))
    rng = np.random.default_rng(seed)
    rgb, ys = [], []
    for label, name in enumerate(PHOTO_NAMES):
        photo = shipped[name] if name in shipped else getattr(skimage.data, name)()
        photo = photo[0] if isinstance(photo, tuple) else photo  # stereo_motorcycle: (left, right, disparity)
        photo = np.stack([photo] * 3, -1) if photo.ndim == 2 else photo[..., :3]
        height, width = photo.shape[:2]
        for _ in range(per_class):
            side = int(rng.uniform(0.2, 0.5) * min(height, width))
            top, left = rng.integers(0, height - side + 1), rng.integers(0, width - side + 1)
            crop = photo[top : top + side, left : left + side].astype(np.float32) * rng.uniform(0.8, 1.2)
            crop = crop[:, ::-1] if rng.random() < 0.5 else crop
            image = Image.fromarray(np.clip(crop, 0, 255).astype(np.uint8)).resize(
                (size, size), Image.Resampling.BILINEAR
            )
            rgb.append(np.asarray(image))
            ys.append(label)
    return np.stack(rgb), np.asarray(ys)


DATASETS = {"animal_mnist": animal_mnist, "photos": photo_crops}


# ------------------------------------------------------------------------------------------- accuracy drift


def manifest_of(folder: Path) -> dict:
    return json.loads((Path(folder) / "manifest.json").read_text())


@functools.cache
def _native_features(folder: Path, dataset: str, threads: int) -> np.ndarray:
    """Features of a data set from the folder's backbone.onnx in native onnxruntime, preprocessed by the
    manifest's rule (tejas_ml.export.checks.preprocess, which the browser matches), 16 images a run. Batches of
    16 in input order: a uint8 backbone's activations are quantised per batch, so features depend on it."""
    from tejas_ml.export.checks import preprocess, session

    spec = manifest_of(folder)["input"]
    native = session(folder / "backbone.onnx", threads=threads)
    images, _ = DATASETS[dataset]()
    out = []
    for start in range(0, len(images), 16):
        batch = np.stack(
            [
                preprocess(rgb, spec["resize"]["shorter_side"], spec["size"][0], spec["mean"], spec["std"]).numpy()
                for rgb in images[start : start + 16]
            ]
        )
        out.append(native.run(None, {"image": batch})[0])
    return np.concatenate(out)


def probe_accuracy(features: np.ndarray, labels: np.ndarray, train_per_class: int, splits: int) -> list[float]:
    """Validation accuracy of a LogisticRegression on standardised features, for each of `splits` random
    splits (train_per_class per class to train on, the rest to score)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    scores = []
    for seed in range(splits):
        rng = np.random.default_rng(seed)
        train = np.concatenate(
            [rng.permutation(np.flatnonzero(labels == c))[:train_per_class] for c in np.unique(labels)]
        )
        validation = np.setdiff1d(np.arange(len(labels)), train)
        probe = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000, C=0.1))
        probe.fit(features[train], labels[train])
        scores.append(float(probe.score(features[validation], labels[validation])))
    return scores


def mean_cosine(a: np.ndarray, b: np.ndarray) -> float:
    """Mean cosine similarity of corresponding rows (the same image's features from two backbones)."""
    return float((np.sum(a * b, 1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))).mean())


def measure_drift(
    reference_folder: Path,
    variant_folder: Path,
    *,
    datasets: tuple[str, ...] = ("animal_mnist", "photos"),
    train_per_class: int = 10,
    splits: int = 5,
    threads: int = 2,
) -> dict:
    """Linear-probe accuracy of a variant's features vs its reference's (float32 224² of the same architecture)
    on each data set: accuracies (mean over splits, same splits for both), drift in points (reference − variant;
    positive = the variant is worse), mean feature cosine (only when feature sizes match: always, within one
    architecture), and whether every drift is within MAX_DRIFT_POINTS."""
    reference_folder, variant_folder = Path(reference_folder), Path(variant_folder)
    result = {"reference": reference_folder.name, "variant": variant_folder.name, "datasets": {}}
    for dataset in datasets:
        _, labels = DATASETS[dataset]()
        ref = _native_features(reference_folder, dataset, threads)
        var = _native_features(variant_folder, dataset, threads)
        ref_scores = probe_accuracy(ref, labels, train_per_class, splits)
        var_scores = probe_accuracy(var, labels, train_per_class, splits)
        drifts = [100 * (r - v) for r, v in zip(ref_scores, var_scores, strict=True)]
        result["datasets"][dataset] = {
            "images": len(labels),
            "classes": len(np.unique(labels)),
            "train_per_class": train_per_class,
            "splits": splits,
            "reference_accuracy": float(np.mean(ref_scores)),
            "variant_accuracy": float(np.mean(var_scores)),
            "drift_points": round(float(np.mean(drifts)), 2),
            "drift_points_per_split": [round(d, 2) for d in drifts],
            "feature_cosine": mean_cosine(ref, var) if ref.shape == var.shape else None,
        }
    result["max_drift_points"] = max(d["drift_points"] for d in result["datasets"].values())
    result["within_bound"] = result["max_drift_points"] <= MAX_DRIFT_POINTS
    return result


# --------------------------------------------------------------------------------------------------- speed


def png_base64(images: np.ndarray) -> list[str]:
    from PIL import Image

    out = []
    for rgb in images:
        buffer = io.BytesIO()
        Image.fromarray(rgb).save(buffer, "PNG")
        out.append(base64.b64encode(buffer.getvalue()).decode())
    return out


def browser_embed_speed(
    page, artifacts_url: str, images: list[str], *, threads: int = 2, batch: int = 8, session=None, repeats: int = 2
) -> dict:
    """Images/s of the app's embedImages in a page with the app loaded (a fresh page per thread count: wasm
    threads are fixed when the worker starts), best of `repeats` runs after a warm-up, under embed worker
    session options `session` ({graphOptimizationLevel, enableMemPattern, fixedBatch}; None: the worker's
    defaults). Also returns the features (row-major) to compare with native onnxruntime."""
    result = page.evaluate(EMBED, [images, artifacts_url, threads, batch, session or {}, repeats])
    assert result["failures"] == 0, result
    return {
        "threads": result["threads"],
        "batch": batch,
        "session": result["session"],
        "images_per_second": len(images) / result["seconds"],
        "inference_images_per_second": len(images) / result["inferenceSeconds"],
        "features": np.asarray(result["features"], np.float32).reshape(len(images), -1),
    }


def native_speed(folder: Path, threads: int, batch: int, seconds: float) -> float:
    size = manifest_of(folder)["input"]["size"][0]
    inputs = np.random.default_rng(0).standard_normal((batch, 3, size, size), dtype=np.float32)
    return bench_onnxruntime(folder / "backbone.onnx", inputs, threads, seconds)["images_per_second"]


def native_features_of(folder: Path, rgb: np.ndarray, batch: int) -> np.ndarray:
    """What the browser should give for these images at this batch size (in input order)."""
    from tejas_ml.export.checks import preprocess, session

    spec = manifest_of(folder)["input"]
    native = session(folder / "backbone.onnx")
    tensors = np.stack(
        [preprocess(x, spec["resize"]["shorter_side"], spec["size"][0], spec["mean"], spec["std"]).numpy() for x in rgb]
    )
    return np.concatenate([native.run(None, {"image": tensors[s : s + batch]})[0] for s in range(0, len(rgb), batch)])


# Session option settings compared in one page (same threads): each differs from the defaults in one option.
SESSION_SETTINGS = {
    "defaults": {},
    "graph basic": {"graphOptimizationLevel": "basic"},
    "no memory pattern": {"enableMemPattern": False},
    "fixed batch": {"fixedBatch": True},
}


def export_missing(names, out_root: Path) -> None:
    from tejas_ml.export.export import ExportConfig, export_artifacts

    for name in names:
        if (out_root / name / "manifest.json").is_file():
            continue
        backbone, weights, size, quantize = VARIANTS[name]
        print(f"exporting {name}", file=sys.stderr)
        export_artifacts(
            ExportConfig(
                out=out_root / name, backbone=backbone, weights=weights, input_size=size, quantize=quantize, force=True
            )
        )


def reference_of(name: str) -> str:
    architecture = VARIANTS[name][0]
    return next(n for n, v in VARIANTS.items() if v[0] == architecture)


def browser_rows(folders: dict[str, Path], out_root: Path, images: np.ndarray, args) -> tuple[list, list, str]:
    """Per variant: browser vs native images/s (2 threads, batch 8, default session options) and the browser's
    features vs native; then the session-option sweep (threads, batch, options) on the two MobileNetV2 224/160."""
    from playwright.sync_api import sync_playwright

    from testkit.browser import CHROMIUM, CHROMIUM_ARGS
    from testkit.server import Server

    encoded = png_base64(images)
    server = Server(out_root)
    speed, sweep = [], []
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            version = browser.version
            for name, folder in folders.items():
                page = browser.new_page()
                page.goto(server.url + "/")
                got = browser_embed_speed(page, f"{server.url}/artifacts/{name}/", encoded, threads=2, batch=8)
                page.close()
                native = native_speed(folder, 2, 8, args.native_seconds)
                expected = native_features_of(folder, images, 8)
                row = {
                    "variant": name,
                    "threads": 2,
                    "batch": 8,
                    "browser_images_per_second": got["images_per_second"],
                    "browser_inference_images_per_second": got["inference_images_per_second"],
                    "native_images_per_second": native,
                    "browser_over_native": got["images_per_second"] / native,
                    "browser_vs_native_max_abs_diff": float(np.max(np.abs(got["features"] - expected))),
                    "browser_vs_native_min_cosine": float(
                        np.min(
                            np.sum(got["features"] * expected, 1)
                            / (np.linalg.norm(got["features"], axis=1) * np.linalg.norm(expected, axis=1))
                        )
                    ),
                }
                speed.append(row)
                print(
                    f"{name:>22}: browser {row['browser_images_per_second']:6.1f} img/s (backbone alone "
                    f"{row['browser_inference_images_per_second']:6.1f}), native {native:6.1f} "
                    f"({row['browser_over_native']:.2f}×), max diff {row['browser_vs_native_max_abs_diff']:.1e}",
                    file=sys.stderr,
                )
            for name in args.sweep:
                for threads in (1, 2):
                    page = browser.new_page()
                    page.goto(server.url + "/")
                    for batch in (1, 8):
                        for setting, options in SESSION_SETTINGS.items():
                            if batch == 1 and setting == "fixed batch":
                                continue
                            got = browser_embed_speed(
                                page,
                                f"{server.url}/artifacts/{name}/",
                                encoded,
                                threads=threads,
                                batch=batch,
                                session=options,
                            )
                            expected = native_features_of(folders[name], images, batch)
                            sweep.append(
                                {
                                    "variant": name,
                                    "threads": got["threads"],
                                    "batch": batch,
                                    "setting": setting,
                                    "session": got["session"],
                                    "browser_images_per_second": got["images_per_second"],
                                    "browser_inference_images_per_second": got["inference_images_per_second"],
                                    "browser_vs_native_max_abs_diff": float(np.max(np.abs(got["features"] - expected))),
                                }
                            )
                            print(
                                f"{name:>22} threads={threads} batch={batch:2d} {setting:>18}: "
                                f"{got['images_per_second']:6.1f} img/s (backbone alone "
                                f"{got['inference_images_per_second']:6.1f})",
                                file=sys.stderr,
                            )
                    page.close()
            browser.close()
    finally:
        server.stop()
    return speed, sweep, version


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variants", nargs="*", default=list(VARIANTS), choices=list(VARIANTS))
    parser.add_argument("--artifacts-root", type=Path, default=ROOT / "artifacts")
    parser.add_argument("--browser-images", type=int, default=16, help="photo crops per browser measurement")
    parser.add_argument("--sweep", nargs="*", default=["mobilenet_v2-224", "mobilenet_v2-160"])
    parser.add_argument("--skip-browser", action="store_true")
    parser.add_argument("--native-seconds", type=float, default=2.0)
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "variants.json")
    args = parser.parse_args(argv)
    names = list(dict.fromkeys([reference_of(n) for n in args.variants] + args.variants + args.sweep))
    export_missing(names, args.artifacts_root)
    folders = {name: args.artifacts_root / name for name in names}
    report = new_report("variants", machine=None, chromium=None, npm=vendored_npm(), max_drift_points=MAX_DRIFT_POINTS)
    report["variants"] = []
    for name in names:
        backbone, weights, size, quantize = VARIANTS[name]
        row = {"variant": name, "architecture": backbone, "weights": weights, "input_size": size, "quantize": quantize}
        row["native_images_per_second"] = {
            f"{t}_threads_batch_{b}": native_speed(folders[name], t, b, args.native_seconds)
            for t in (1, 2)
            for b in (1, 8)
        }
        reference = reference_of(name)
        if reference != name:
            row["drift"] = measure_drift(folders[reference], folders[name])
            print(
                f"{name:>22} vs {reference}: "
                + ", ".join(
                    f"{d}: {v['variant_accuracy']:.3f} vs {v['reference_accuracy']:.3f} "
                    f"({v['drift_points']:+.2f} points, cosine {v['feature_cosine']:.4f})"
                    for d, v in row["drift"]["datasets"].items()
                ),
                file=sys.stderr,
            )
        else:
            row["drift"] = None
        report["variants"].append(row)
    if not args.skip_browser:
        images, _ = photo_crops()
        picked = images[np.random.default_rng(1).permutation(len(images))[: args.browser_images]]
        report["browser"], report["session_options"], report["chromium"] = browser_rows(
            folders, args.artifacts_root, picked, args
        )
    report["machine"] = machine_facts()
    write_report(args.out, report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
