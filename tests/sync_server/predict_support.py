"""Prediction tests' shared setup: a model synced "from the app" (a project, its classes, a model record
with a random head in the artifacts' parameter layout, its parameters blob, the project's head) and the
same classifier written locally as ONNX by the core's writer, to compare with `tejas predict`."""

from __future__ import annotations

import io
import uuid
from pathlib import Path

import numpy as np
from PIL import Image

from tejas.artifacts import read_manifest
from tejas.onnx_writer import write_classifier_onnx

from .conftest import Account, project_changes


def synced_model(account: Account, artifacts: Path, classes: list[str], out: Path, seed: int = 0) -> tuple[str, Path]:
    """(reference `model:<id>`, local ONNX path) of a head-only model synced as the app syncs one."""
    manifest = read_manifest(artifacts)
    layout = manifest["training"]["head"]["parameters"]
    f = manifest["feature_size"]
    rng = np.random.default_rng(seed)
    size = max(p["offset"] + int(np.prod(p["shape"])) for p in layout)
    parameters = np.zeros(size, dtype="<f4")
    by_name = {p["name"]: p for p in layout}
    weight = rng.normal(0, 0.05, (len(classes), f)).astype("<f4")
    bias = rng.normal(0, 0.1, len(classes)).astype("<f4")
    w, b = by_name["fc.weight"], by_name["fc.bias"]
    parameters[w["offset"] : w["offset"] + weight.size] = weight.ravel()
    parameters[b["offset"] : b["offset"] + bias.size] = bias
    blob = parameters.tobytes()
    account.upload(blob, kind="model")
    import hashlib

    project, model_id = f"p{uuid.uuid4().hex[:8]}", str(uuid.uuid4())
    class_ids = {name: f"c{i}" for i, name in enumerate(classes)}
    device = account.device()
    changes = project_changes(device, project, "predicting", class_ids)
    record = {
        "created": "2026-12-04T00:00:00Z",
        "mode": "head",
        "classes": [{"id": class_ids[n], "name": n} for n in classes],
        "layout": layout,
        "parameters": {"sha256": hashlib.sha256(blob).hexdigest(), "length": int(parameters.size)},
        "artifacts": {"kind": "default", "backbone_sha256": manifest["files"]["backbone.onnx"]["sha256"]},
    }
    changes.append(device.change("model", model_id, project, record))
    changes.append(device.change("head", project, project, {"modelId": model_id}))
    device.push(changes)
    local = out / f"{model_id}.onnx"
    write_classifier_onnx(artifacts, weight.ravel().tolist(), bias.tolist(), classes, local)
    return f"model:{model_id}", local


def image_bytes(seed: int, size: tuple[int, int] = (48, 40), fmt: str = "PNG") -> bytes:
    """A random RGB image (different per seed)."""
    pixels = np.random.default_rng(seed).integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, fmt)
    return buffer.getvalue()
