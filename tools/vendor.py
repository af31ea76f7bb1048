#!/usr/bin/env python3
"""Copy the browser libraries the PWA needs from node_modules (npm) into pwa/vendor/ — never a CDN.

Runs `npm ci` first when node_modules is missing or older than package-lock.json. Writes
pwa/vendor/vendor.json listing every vendored file with its size and sha256, which the service
worker's precache list is built from.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
NODE_MODULES = ROOT / "node_modules"
VENDOR = ROOT / "pwa" / "vendor"

# destination folder -> (npm package, files taken from it)
BUNDLES = {
    # Inference: current onnxruntime-web (wasm SIMD+threads; WebGPU where the adapter is real).
    "ort": (
        "onnxruntime-web",
        [
            "dist/ort.all.min.mjs",
            "dist/ort.wasm.min.mjs",
            "dist/ort-wasm-simd-threaded.mjs",
            "dist/ort-wasm-simd-threaded.wasm",
            "dist/ort-wasm-simd-threaded.jsep.mjs",
            "dist/ort-wasm-simd-threaded.jsep.wasm",
            "dist/ort-wasm-simd-threaded.asyncify.mjs",
            "dist/ort-wasm-simd-threaded.asyncify.wasm",
        ],
    ),
    # Training: 1.19.2 is the last onnxruntime-web with onnxruntime-web/training.
    "ort-training": (
        "onnxruntime-web-training",
        [
            "dist/ort.training.wasm.min.mjs",
            "dist/ort-training-wasm-simd-threaded.mjs",
            "dist/ort-training-wasm-simd-threaded.wasm",
        ],
    ),
    # Python (stdlib only) for the pwa/py core.
    "pyodide": (
        "pyodide",
        [
            "pyodide.mjs",
            "pyodide.asm.mjs",
            "pyodide.asm.wasm",
            "python_stdlib.zip",
            "pyodide-lock.json",
        ],
    ),
    # Text projects: tokenizer.json read in the browser (pure JS, no wasm, no dependencies; ids equal
    # Python `tokenizers` once features/text/tokenize.js mends two of its normalizer's differences).
    "tokenizers": ("@huggingface/tokenizers", ["dist/tokenizers.min.mjs", "LICENSE"]),
    # The training panel's live chart (loss and accuracy per epoch).
    "uplot": ("uplot", ["dist/uPlot.esm.js", "dist/uPlot.min.css"]),
    # Accessibility checks in the browser tests.
    "axe-core": ("axe-core", ["axe.min.js"]),
}


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def npm_install(force: bool = False) -> None:
    lock = ROOT / "package-lock.json"
    stamp = NODE_MODULES / ".package-lock.json"
    if not force and stamp.exists() and stamp.stat().st_mtime >= lock.stat().st_mtime:
        return
    npm = shutil.which("npm")
    if npm is None:
        sys.exit("vendor: npm not found; install Node.js (apt-get install -y nodejs npm)")
    print("vendor: npm ci", file=sys.stderr)
    subprocess.run([npm, "ci", "--no-audit", "--no-fund", "--loglevel=error"], cwd=ROOT, check=True)


def vendor() -> dict:
    """Copy BUNDLES into pwa/vendor and return their listing (for vendor.json)."""
    listing = {"packages": {}, "files": {}}
    for folder, (package, files) in BUNDLES.items():
        package_dir = NODE_MODULES / package
        meta = json.loads((package_dir / "package.json").read_text())
        listing["packages"][folder] = {"npm": f"{meta['name']}@{meta['version']}"}
        dest = VENDOR / folder
        dest.mkdir(parents=True, exist_ok=True)
        for rel in files:
            source = package_dir / rel
            if not source.is_file():
                sys.exit(f"vendor: {package}@{meta['version']} lacks {rel}; check package.json")
            target = dest / Path(rel).name
            if (
                not target.exists()
                or target.stat().st_size != source.stat().st_size
                or _sha256(target) != _sha256(source)
            ):
                shutil.copyfile(source, target)
            listing["files"][f"vendor/{folder}/{target.name}"] = {
                "size": target.stat().st_size,
                "sha256": _sha256(target),
            }
    return listing


CORE = ROOT / "pwa" / "py" / "tejas"
CORE_ZIP = "tejas-core.zip"


def pack_core() -> Path:
    """Zip the stdlib core (pwa/py/tejas) for the browser: the Python worker unpacks it into
    Pyodide's site-packages. Deterministic (sorted names, fixed timestamps)."""
    import zipfile

    target = VENDOR / CORE_ZIP
    files = sorted(p for p in CORE.rglob("*") if p.is_file() and p.suffix in (".py", ".json"))
    with zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as archive:
        for path in files:
            info = zipfile.ZipInfo(f"tejas/{path.relative_to(CORE).as_posix()}", date_time=(1980, 1, 1, 0, 0, 0))
            info.external_attr = 0o100644 << 16
            archive.writestr(info, path.read_bytes(), zipfile.ZIP_DEFLATED)
    return target


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--force-npm", action="store_true", help="run npm ci even if up to date")
    args = parser.parse_args()
    npm_install(args.force_npm)
    listing = vendor()
    core = pack_core()
    listing["files"][f"vendor/{CORE_ZIP}"] = {"size": core.stat().st_size, "sha256": _sha256(core)}
    (VENDOR / "vendor.json").write_text(json.dumps(listing, indent=2) + "\n")
    total = sum(f["size"] for f in listing["files"].values())
    print(f"vendor: {len(listing['files'])} files, {total / 1e6:.0f} MB in {VENDOR}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
