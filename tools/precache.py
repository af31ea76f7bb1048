#!/usr/bin/env python3
"""Write pwa/precache.js: every file the app needs offline (app shell, vendored runtimes, the default
artifacts) and a version derived from their contents, which names the service worker's cache.

The text artifacts (artifacts/text: an encoder of 23–90 MB) are listed apart, in ON_DEMAND: the service
worker keeps each in the same versioned cache the first time the app fetches it (when a text project is
first used), so people who never classify texts never download them, and a text project works offline
after one use online. Only the files the app loads are listed (the manifest, the encoder it names, the
tokenizer, the head's training files), never the other encoder variants beside them. This is the one list
of them: the page's keepTextArtifactsOffline (pwa/features/text/api.js) fetches exactly ON_DEMAND.

Run after tools/vendor.py and the default export (tools/dev.sh does). A changed file gives a new
version, so the browser installs the new cache beside the old one and switches on reload.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PWA = ROOT / "pwa"
ARTIFACTS = ROOT / "artifacts" / "default"
SHELL_SUFFIXES = {".html", ".js", ".mjs", ".css", ".webmanifest", ".svg", ".png", ".json"}
NOT_SHELL = {"sw.js", "precache.js"}  # the worker itself, and this list (the browser checks them itself)
# The Python core's tables the browser imports too (features/rules.js, catalog.js, predict/report.js,
# sync/records.js, clock.js); the core's code itself
# reaches the browser inside vendor/tejas-core.zip.
SHARED_TABLES = "py/tejas/schemas/*.json"


def shell_files(pwa: Path) -> list[Path]:
    files = []
    for path in sorted(pwa.rglob("*")):
        rel = path.relative_to(pwa)
        if not path.is_file() or path.name in NOT_SHELL:
            continue
        if rel.parts[0] in ("py", "vendor") and not rel.match(SHARED_TABLES):
            continue
        if path.suffix in SHELL_SUFFIXES:
            files.append(path)
    return files


def text_files(folder: Path) -> dict[str, str]:
    """{artifacts/text/<file>: sha256} of the text files the app loads; empty when not exported. The service
    worker keeps these on first fetch, and keepTextArtifactsOffline fetches them: a file the app loads must
    be here (the head's training sets are every file under training/ and training_narrow/)."""
    manifest_path = folder / "manifest.json"
    if not manifest_path.is_file():
        return {}
    manifest = json.loads(manifest_path.read_text())
    files, text = manifest["files"], manifest["text"]
    training = ("training/", "training_narrow/")  # the head's sets: the full one and the narrow ones
    wanted = [text["encoder"], text["tokenizer"], *sorted(f for f in files if f.startswith(training))]
    missing = [f for f in wanted if f not in files]
    if missing:
        sys.exit(f"precache: {manifest_path} lists no sha256 for {', '.join(missing)}; export the text artifacts again")
    out = {"artifacts/text/manifest.json": hashlib.sha256(manifest_path.read_bytes()).hexdigest()}
    out.update({f"artifacts/text/{f}": files[f]["sha256"] for f in wanted})
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pwa", type=Path, default=PWA, help="the app folder (default: pwa/)")
    parser.add_argument("--artifacts", type=Path, default=ARTIFACTS, help="default artifacts (artifacts/default)")
    parser.add_argument(
        "--text-artifacts", type=Path, help="text artifacts, cached on first use (default: text/ beside --artifacts)"
    )
    args = parser.parse_args(argv)
    pwa, artifacts = args.pwa, args.artifacts
    text_artifacts = args.text_artifacts or artifacts.parent / "text"
    listing = pwa / "vendor" / "vendor.json"
    if not listing.is_file():
        sys.exit("precache: pwa/vendor/vendor.json missing; run tools/vendor.py first")
    vendor = json.loads(listing.read_text())["files"]
    manifest = artifacts / "manifest.json"
    if not manifest.is_file():
        sys.exit("precache: artifacts/default/manifest.json missing; run `tejas export --out artifacts/default`")
    artifact_files = json.loads(manifest.read_text())["files"]

    # path -> sha256 of its content: the version, and what a new version can copy from the old cache
    hashes = {}
    for path in shell_files(pwa):
        hashes[path.relative_to(pwa).as_posix()] = hashlib.sha256(path.read_bytes()).hexdigest()
    hashes["./"] = hashes["index.html"]
    for rel, info in sorted(vendor.items()):
        hashes[rel] = info["sha256"]
    hashes["artifacts/default/manifest.json"] = hashlib.sha256(manifest.read_bytes()).hexdigest()
    for rel, info in sorted(artifact_files.items()):
        hashes[f"artifacts/default/{rel}"] = info["sha256"]
    on_demand = text_files(text_artifacts)
    version = hashlib.sha256(json.dumps([hashes, on_demand], sort_keys=True).encode()).hexdigest()[:16]
    size = sum(info["size"] for info in vendor.values()) + sum(info["size"] for info in artifact_files.values())
    (pwa / "precache.js").write_text(
        "// Generated by tools/precache.py: do not edit.\n"
        f"export const VERSION = {json.dumps(version)};\n"
        "// Every file the app needs offline, with the sha256 of its content.\n"
        f"export const FILES = {json.dumps(hashes, indent=1)};\n"
        "// Files kept in the same cache on first fetch (the text model), with the sha256 of their content.\n"
        f"export const ON_DEMAND = {json.dumps(on_demand, indent=1)};\n"
    )
    if not on_demand:
        print(f"precache: no text artifacts in {text_artifacts}: text projects will not work offline", file=sys.stderr)
    print(f"precache: {len(hashes)} files, {size / 1e6:.0f} MB, version {version}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
