#!/usr/bin/env python3
"""Native reference speed of each exported backbone: images/second in onnxruntime and in PyTorch.

Later browser benchmarks report themselves as a ratio to these numbers, measured in the same run.

    python bench/native_embed.py                     # every artifacts/*/ with a manifest
    python bench/native_embed.py --artifacts artifacts/default --seconds 5
Writes bench/results/native_embed.json (or --out).
"""

from __future__ import annotations

import argparse
import json
import logging
import statistics
import sys
import time
from pathlib import Path

logging.getLogger("torch.utils.cpp_extension").setLevel(logging.ERROR)

import numpy as np  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.report import machine_facts, new_report, write_report  # noqa: E402

THREADS = (1, 2)
BATCHES = (1, 8)


def images_per_second(run, batch: int, seconds: float, repeats: int = 3) -> dict:
    """Median throughput over `repeats` timed windows of at least `seconds` each (after warm-up)."""
    run()
    run()
    rates = []
    for _ in range(repeats):
        count, started = 0, time.perf_counter()
        while True:
            run()
            count += 1
            elapsed = time.perf_counter() - started
            if elapsed >= seconds:
                break
        rates.append(count * batch / elapsed)
    return {"images_per_second": statistics.median(rates), "windows": [round(r, 2) for r in rates]}


def bench_onnxruntime(path: Path, images: np.ndarray, threads: int, seconds: float) -> dict:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.log_severity_level = 3
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    return images_per_second(lambda: session.run(None, {name: images}), len(images), seconds)


def bench_torch(manifest: dict, images: np.ndarray, threads: int, seconds: float) -> dict:
    import torch

    from tejas_ml.export.backbones import get_backbone
    from tejas_ml.export.models import FeatureExtractor

    torch.set_num_threads(threads)
    backbone = get_backbone(manifest["architecture"])
    # Speed does not depend on the weights' values; the architecture is rebuilt, not reloaded.
    extractor = FeatureExtractor(*backbone.split(backbone.build())[:2]).eval()
    batch = torch.from_numpy(images)

    def run():
        with torch.inference_mode():
            extractor(batch)

    return images_per_second(run, len(images), seconds)


def run_benchmarks(folders: list[Path], seconds: float) -> dict:
    results = []
    for folder in folders:
        manifest = json.loads((folder / "manifest.json").read_text())
        h, w = manifest["input"]["size"]
        for batch in BATCHES:
            images = np.random.default_rng(0).standard_normal((batch, 3, h, w), dtype=np.float32)
            for threads in THREADS:
                for runtime in ("onnxruntime", "torch"):
                    if runtime == "onnxruntime":
                        measured = bench_onnxruntime(
                            folder / manifest["models"]["backbone"]["file"], images, threads, seconds
                        )
                    else:
                        measured = bench_torch(manifest, images, threads, seconds)
                    row = {
                        "artifacts": folder.name,
                        "architecture": manifest["architecture"],
                        "weights": manifest["weights"]["kind"],
                        "input_size": [h, w],
                        "runtime": runtime,
                        "threads": threads,
                        "batch": batch,
                        **measured,
                    }
                    print(
                        f"{folder.name:>16} {manifest['architecture']:>12} {runtime:>11} "
                        f"threads={threads} batch={batch}: {row['images_per_second']:8.1f} img/s",
                        file=sys.stderr,
                    )
                    results.append(row)
    return new_report("native_embed", seconds_per_window=seconds, machine=machine_facts(), results=results)


def exported_artifacts() -> list[Path]:
    """Every artifact folder under artifacts/ (the benchmarks' default)."""
    return sorted(p.parent for p in (ROOT / "artifacts").glob("*/manifest.json"))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--artifacts", type=Path, nargs="*", help="artifact folders (default: artifacts/*/)")
    parser.add_argument("--seconds", type=float, default=3.0, help="length of each timed window (default 3)")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "native_embed.json")
    args = parser.parse_args(argv)
    folders = args.artifacts or exported_artifacts()
    missing = [f for f in folders if not (f / "manifest.json").is_file()]
    if not folders or missing:
        print(
            f"native_embed: error: no artifacts in {missing or 'artifacts/'}; run `tejas export` first", file=sys.stderr
        )
        return 1
    report = run_benchmarks(folders, args.seconds)
    write_report(args.out, report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
