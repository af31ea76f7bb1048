"""Read and verify an artifact folder (manifest.json + the files it lists); stdlib only."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

MANIFEST = "manifest.json"
SCHEMA_PATH = Path(__file__).parent / "schemas" / "manifest.schema.json"
MODALITIES = ("image", "text")

__all__ = ["ArtifactError", "MANIFEST", "SCHEMA_PATH", "read_manifest", "sha256_file", "verify_artifacts"]


class ArtifactError(Exception):
    """An artifact folder is missing, incomplete or corrupt; the message names the file."""


def read_manifest(folder) -> dict:
    path = Path(folder) / MANIFEST
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ArtifactError(f"{path}: missing (export artifacts with `tejas export`)") from None
    except ValueError as exc:
        raise ArtifactError(f"{path}: not valid JSON ({exc})") from None
    if not isinstance(manifest, dict) or manifest.get("schema_version") != 1:
        raise ArtifactError(f"{path}: unknown manifest format (expected schema_version 1)")
    return manifest


def _required_keys(schema: dict, modality: str) -> list[str]:
    """Top-level keys the schema requires of a manifest: the common ones, then its modality's (the
    schema's allOf holds one if/then/else: `then` for text, `else` for image)."""
    required = list(schema["required"])
    for rule in schema.get("allOf", []):
        required += rule["then" if modality == "text" else "else"].get("required", [])
    return required


def sha256_file(path) -> str:
    """Hex sha256 of a file, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def verify_artifacts(folder) -> dict:
    """Check the manifest has every key the schema requires and every file it lists exists with its
    recorded size and sha256; return the manifest."""
    folder = Path(folder)
    manifest = read_manifest(folder)
    modality = manifest.get("modality", "image")  # manifests from before text artifacts have none
    if modality not in MODALITIES:
        raise ArtifactError(f"{folder / MANIFEST}: unknown modality {modality!r} (expected image or text)")
    required = _required_keys(json.loads(SCHEMA_PATH.read_text(encoding="utf-8")), modality)
    missing = [key for key in required if key not in manifest]
    if missing:
        raise ArtifactError(
            f"{folder / MANIFEST}: made by an older exporter (no {missing[0]}); re-export with `tejas export --force`"
        )
    if "last_block" in manifest["training"] and "last_block" not in manifest["models"]:
        raise ArtifactError(
            f"{folder / MANIFEST}: made by an older exporter (last-block training without last_block.onnx); "
            "re-export with `tejas export --train last-block --force`"
        )
    for rel, expected in manifest.get("files", {}).items():
        path = folder / rel
        if not path.is_file():
            raise ArtifactError(f"{path}: missing; re-export with `tejas export --force`")
        if path.stat().st_size != expected["size"] or sha256_file(path) != expected["sha256"]:
            raise ArtifactError(f"{path}: corrupt (size or sha256 differs from {MANIFEST}); re-export")
    return manifest
