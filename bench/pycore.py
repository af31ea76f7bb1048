#!/usr/bin/env python3
"""Speed of the stdlib core in CPython and in Pyodide (Node): dataset zip import/export, model writers.

    python bench/pycore.py [--images 1000] [--artifacts artifacts/resnet18] [--out bench/results/pycore.json]

Measures, in both runtimes on the same files: importing a 1,000-image (~60 MB) ImageFolder zip,
exporting it again, and writing the full ResNet18 classifier as .onnx and .pt. Reports seconds
and the Pyodide/CPython ratio (goal: ≤ 3×; model files in < 2 s in Pyodide).
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT / "pwa" / "py"), str(ROOT)]

from bench.report import machine_facts, new_report, write_report  # noqa: E402

# The timed work, run verbatim in both runtimes. WORK and ARTIFACTS are set before it runs.
TIMED = r"""
import json, time, random
from pathlib import Path
from tejas.dataset import read_archive, write_archive
from tejas.model_export import write_classifier_pt
from tejas.onnx_writer import write_classifier_onnx

def timed(fn, repeats=3):
    best = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - started)
    return best

work = Path(WORK)
result = {}
dataset = read_archive(work / "dataset.zip")
assert len(dataset.samples) == N_IMAGES, len(dataset.samples)
result["import_zip_s"] = timed(lambda: read_archive(work / "dataset.zip"))
result["export_zip_s"] = timed(lambda: write_archive(dataset.classes, dataset.samples, work / f"out-{RUNTIME}.zip"))
if ARTIFACTS:
    manifest = json.loads((Path(ARTIFACTS) / "manifest.json").read_text())
    n, f = 5, manifest["feature_size"]
    rng = random.Random(0)
    weight = [rng.uniform(-0.1, 0.1) for _ in range(n * f)]
    bias = [0.0] * n
    names = [f"class {i}" for i in range(n)]
    onnx_path, pt_path = work / f"m-{RUNTIME}.onnx", work / f"m-{RUNTIME}.pt"
    result["write_onnx_s"] = timed(lambda: write_classifier_onnx(ARTIFACTS, weight, bias, names, onnx_path))
    result["write_pt_s"] = timed(lambda: write_classifier_pt(ARTIFACTS, weight, bias, names, pt_path))
    result["architecture"] = manifest["architecture"]
print("RESULT " + json.dumps(result))
"""


def make_dataset(path: Path, n_images: int) -> int:
    """n_images PNGs of ~60 kB each (stored deflate, like camera photos they do not compress) in 5 classes."""
    from testkit.images import png

    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as archive:
        for i in range(n_images):
            archive.writestr(f"class{i % 5}/img{i:04d}.png", png(140, 140, seed=i, level=0))
    return path.stat().st_size


def run_cpython(work: Path, artifacts: str, n_images: int) -> dict:
    scope = {"WORK": str(work), "ARTIFACTS": artifacts, "N_IMAGES": n_images, "RUNTIME": "cpython"}
    lines = []
    import builtins

    real_print = builtins.print
    builtins.print = lambda *a, **k: lines.append(" ".join(map(str, a)))
    try:
        exec(TIMED, scope)
    finally:
        builtins.print = real_print
    return json.loads(lines[-1].removeprefix("RESULT "))


def run_pyodide(work: Path, artifacts: str, n_images: int) -> dict:
    # Inside Pyodide the artifacts live under the /repo mount.
    mounted = "/repo/" + Path(artifacts).resolve().relative_to(ROOT).as_posix() if artifacts else ""
    script = work / "timed.py"
    script.write_text(f"WORK = '/work'\nARTIFACTS = {mounted!r}\nN_IMAGES = {n_images}\nRUNTIME = 'pyodide'\n" + TIMED)
    node = shutil.which("node") or sys.exit("pycore: node not found (install Node.js)")
    started = time.perf_counter()
    done = subprocess.run(
        [node, str(ROOT / "bench" / "pyodide_exec.mjs"), str(ROOT), str(work), str(script)],
        capture_output=True,
        text=True,
        timeout=1800,
    )
    if done.returncode != 0:
        sys.exit(f"pycore: Pyodide run failed:\n{done.stderr[-3000:]}")
    lines = done.stdout.splitlines()
    result = json.loads([out for out in lines if out.startswith("RESULT ")][-1].removeprefix("RESULT "))
    result["wall_s_including_startup"] = time.perf_counter() - started
    versions = json.loads([out for out in lines if out.startswith("VERSIONS ")][-1].removeprefix("VERSIONS "))
    return result, versions


def find_resnet18() -> str:
    for manifest in sorted((ROOT / "artifacts").glob("*/manifest.json")):
        data = json.loads(manifest.read_text())
        if data["architecture"] == "resnet18" and "state_dict" in data:
            return str(manifest.parent)
    return ""


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=1000)
    parser.add_argument("--artifacts", default=None, help="ResNet18 artifacts (default: first in artifacts/)")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "pycore.json")
    args = parser.parse_args(argv)
    artifacts = args.artifacts if args.artifacts is not None else find_resnet18()
    if args.artifacts is None and not artifacts:
        print(
            "pycore: no ResNet18 artifacts with backbone_state in artifacts/; model writers not timed. "
            "Export some: tejas export --backbone resnet18 --weights none --out artifacts/resnet18",
            file=sys.stderr,
        )
    with tempfile.TemporaryDirectory(prefix="tejas-bench-") as tmp:
        work = Path(tmp)
        size = make_dataset(work / "dataset.zip", args.images)
        print(f"pycore: {args.images} images, {size / 1e6:.0f} MB zip", file=sys.stderr)
        cpython = run_cpython(work, artifacts, args.images)
        pyodide, versions = run_pyodide(work, artifacts, args.images)
    ratios = {k: pyodide[k] / cpython[k] for k in cpython if k.endswith("_s") and cpython[k] > 0}
    report = new_report(
        "pycore",
        machine=machine_facts(torch=False, onnxruntime=False),
        # versions as the Pyodide run reported them: pyodide.version, its Python, Node's process.version
        pyodide_runtime=versions,
        artifacts=Path(artifacts).name if artifacts else None,
        dataset={"images": args.images, "zip_bytes": size},
        cpython=cpython,
        pyodide=pyodide,
        pyodide_over_cpython=ratios,
        goals={
            "pyodide_within_3x": all(r <= 3 for r in ratios.values()),
            "model_files_under_2s_in_pyodide": all(pyodide.get(k, 0) < 2 for k in ("write_onnx_s", "write_pt_s")),
        },
    )
    for key in ratios:
        print(
            f"{key:>16}: CPython {cpython[key]:.3f}s  Pyodide {pyodide[key]:.3f}s  ({ratios[key]:.2f}×)",
            file=sys.stderr,
        )
    write_report(args.out, report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
