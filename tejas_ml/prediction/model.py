"""A Tejas classifier ONNX file run with onnxruntime: preprocessing and class names come from the
model's own metadata (`tejas_input`, `class_names`, written by the core's writer), so any model the app,
the server or `tejas train` exported predicts the same way everywhere.

Preprocessing is the manifest's rule, with Pillow as the reference the browser reproduces bit for bit
(pwa/features/embed/preprocess.js): shorter side resized with antialiased bilinear filtering, centre
crop, scale to [0, 1], normalise.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from tejas.rules import resized_size

__all__ = ["Classifier", "ModelError", "decode"]


class ModelError(ValueError):
    """A file that is not a Tejas classifier (no class names or input description in its metadata)."""


def import_onnxruntime():
    """onnxruntime without torch: the onnxruntime-training wheel's import probes ORTModule, which imports
    torch (2 s and ~300 MB per process) though inference never needs it. Hiding the probe's module for
    the import makes it take its own "ORTModule not present" path; a process that uses torch anyway
    imports onnxruntime as usual."""
    import sys

    if "onnxruntime" in sys.modules or "torch" in sys.modules:
        import onnxruntime

        return onnxruntime
    probe = "onnxruntime.training.ortmodule"
    sys.modules[probe] = None  # type: ignore[assignment]  # makes `from … import` raise ImportError
    try:
        import onnxruntime
    finally:
        if sys.modules.get(probe, 0) is None:
            del sys.modules[probe]
    return onnxruntime


def decode(data: bytes, spec: dict) -> np.ndarray:
    """Image bytes → the model's input [3, H, W] float32 (ValueError with the reason when undecodable, or
    when decoding or resizing it would cost more than the core's image rule allows: tejas_ml.imaging)."""
    from PIL import Image

    from ..imaging import decoded_rgb

    resize = spec["resize"]["shorter_side"]
    crop_h, crop_w = spec["size"]
    with decoded_rgb(data, resize) as rgb:  # ImageError (a ValueError) says why not
        try:
            resized = np.asarray(rgb.resize(resized_size(rgb.width, rgb.height, resize), Image.Resampling.BILINEAR))
        except (OSError, ValueError) as exc:
            raise ValueError(f"cannot be decoded ({exc})") from None
    h, w = resized.shape[:2]
    # torchvision's centre-crop offsets
    top, left = int(round((h - crop_h) / 2.0)), int(round((w - crop_w) / 2.0))
    cropped = resized[top : top + crop_h, left : left + crop_w].astype(np.float32) / 255.0
    mean = np.asarray(spec["mean"], dtype=np.float32)
    std = np.asarray(spec["std"], dtype=np.float32)
    return ((cropped - mean) / std).transpose(2, 0, 1).copy()


class Classifier:
    """An exported Tejas ONNX classifier: `predict(images)` → per image its top-k or its error."""

    def __init__(self, path: str | Path, threads: int | None = None):
        ort = import_onnxruntime()
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads or min(4, os.cpu_count() or 1)
        options.inter_op_num_threads = 1
        options.log_severity_level = 3
        try:
            self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        except Exception as exc:  # onnxruntime raises its own Fail / InvalidGraph types
            raise ModelError(f"{Path(path).name}: not an ONNX model onnxruntime can load ({exc})") from None
        metadata = self.session.get_modelmeta().custom_metadata_map
        if metadata.get("tejas_modality") == "text":
            raise ModelError(
                f"{Path(path).name}: a text classifier; these predictions are of images (choose an image model)"
            )
        try:
            self.classes: list[str] = json.loads(metadata["class_names"])
            self.input_spec: dict = json.loads(metadata["tejas_input"])
        except (KeyError, ValueError):
            raise ModelError(
                f"{Path(path).name}: not a Tejas classifier (its metadata has no class names or input description); "
                "export it from the app, `tejas train` or a server job"
            ) from None
        self.metadata = dict(metadata)
        self.input_name = self.session.get_inputs()[0].name
        outputs = [o.name for o in self.session.get_outputs()]
        self.output = "probabilities" if "probabilities" in outputs else outputs[0]
        self.softmax = self.output != "probabilities"
        self._pool = ThreadPoolExecutor(max(1, options.intra_op_num_threads), thread_name_prefix="tejas-decode")

    def describe(self) -> dict:
        return {
            "classes": self.classes,
            "architecture": self.metadata.get("architecture"),
            "input": self.input_spec,
        }

    def probabilities(self, batch: np.ndarray) -> np.ndarray:
        out = self.session.run([self.output], {self.input_name: batch})[0]
        if self.softmax:
            out = np.exp(out - out.max(axis=1, keepdims=True))
            out /= out.sum(axis=1, keepdims=True)
        return out

    def predict(self, images: Iterable[bytes], top_k: int = 5) -> list[dict]:
        """Per image {top: [{class, probability}], error: None} or {top: [], error: reason}; Pillow
        decodes in threads (it releases the GIL), onnxruntime runs the decodable ones as one batch."""
        decoded = list(self._pool.map(self._try_decode, images))
        good = [i for i, d in enumerate(decoded) if not isinstance(d, str)]
        results: list[dict] = [{"top": [], "error": d} if isinstance(d, str) else {} for d in decoded]
        if good:
            probabilities = self.probabilities(np.stack([decoded[i] for i in good]))
            k = max(1, min(top_k, len(self.classes)))
            for row, i in zip(probabilities, good, strict=True):
                order = np.argsort(-row, kind="stable")[:k]
                results[i] = {
                    "top": [{"class": self.classes[j], "probability": float(row[j])} for j in order],
                    "error": None,
                }
        return results

    def _try_decode(self, data: bytes):
        try:
            return decode(data, self.input_spec)
        except ValueError as exc:
            return str(exc)

    def close(self) -> None:
        self._pool.shutdown(wait=False)
