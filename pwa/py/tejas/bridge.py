"""What the browser's Python worker (pwa/workers/python.js) calls: plain values in (bytes-like, lists,
dicts, str), files or plain values out. The worker only converts JS values and moves bytes through
Pyodide's file system, so everything the browser does with Python is here, linted and tested in CPython.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import zipfile
from array import array
from collections.abc import Iterable

from . import text_csv
from .dataset import ArchiveError, DatasetReader, Sample, read_archive, write_archive
from .image_zip import ImageZip
from .images import sniff_image

__all__ = [
    "ArchiveError",
    "export_dataset",
    "import_dataset",
    "open_dataset_zip",
    "open_image_zip",
    "read_text_csv",
    "read_zip_entries",
    "write_model",
    "write_text_csv",
    "write_zip",
]

ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)
MODEL_KINDS = ("onnx", "pt")


def write_zip(entries: Iterable[dict], dest) -> None:
    """Store entries ({"name", "bytes"}) uncompressed with fixed timestamps: the same entries give the same file."""
    with zipfile.ZipFile(dest, "w", zipfile.ZIP_STORED) as archive:
        for entry in entries:
            info = zipfile.ZipInfo(entry["name"], date_time=ZIP_EPOCH)
            info.external_attr = 0o100644 << 16
            archive.writestr(info, bytes(entry["bytes"]))


def read_zip_entries(source, label: str, names: Iterable[str]) -> list[tuple[str, bytes]]:
    """(name, bytes) of the entries in `names` that the zip holds, in the order asked.

    ValueError names `label` (the file the user chose) when `source` is no zip archive.
    """
    try:
        archive = zipfile.ZipFile(source)
    except zipfile.BadZipFile:
        raise ValueError(f"{label}: not a Tejas project file (not a zip archive)") from None
    with archive:
        present = set(archive.namelist())
        return [(name, archive.read(name)) for name in names if name in present]


def _floats(data) -> array:
    """float32 values from their little-endian bytes (a Float32Array's buffer)."""
    values = array("f")
    values.frombytes(bytes(data))
    return values


def write_model(
    kind: str, artifacts_dir, weight, bias, class_names: list[str], dest, last_block: dict | None = None
) -> dict:
    """Write a trained classifier as ONNX (kind "onnx") or PyTorch (kind "pt") to `dest`.

    weight and bias are the head's float32 bytes; last_block maps tensor names to float32 bytes for a
    model trained in last-block mode (None or empty for a head-only model). Text artifacts (manifest modality
    "text") write ONNX only: their encoder + head; "pt" is refused with a sentence. Returns the model's metadata.
    """
    if kind not in MODEL_KINDS:
        raise ValueError(f"unknown model kind {kind!r} (expected one of {', '.join(MODEL_KINDS)})")
    if kind == "onnx":
        from .onnx_writer import write_classifier_onnx as write
    else:
        from .model_export import write_classifier_pt as write
    block = {name: _floats(data) for name, data in (last_block or {}).items()} or None
    return write(artifacts_dir, _floats(weight), _floats(bias), list(class_names), dest, block)


def export_dataset(classes: list[str], samples: Iterable[dict], dest) -> list[str]:
    """Write an ImageFolder zip with the tejas.json sidecar from samples {"label", "name", "bytes",
    "metadata"} (metadata: a dict or its JSON text). Returns the paths written."""
    items = []
    for s in samples:
        data = bytes(s["bytes"])
        metadata = s.get("metadata") or {}
        if isinstance(metadata, str):
            metadata = json.loads(metadata)
        info = sniff_image(data, 10**9, max_aspect_ratio=None)  # what the app holds is written as it is
        digest = hashlib.sha256(data).hexdigest()
        items.append(Sample(f"{s['label']}/{s['name']}", s["label"], data, info, digest, dict(metadata)))
    return write_archive(list(classes), items, dest)


def import_dataset(source) -> tuple[str, list[bytes]]:
    """A dataset zip as (description, image bytes in sample order); ArchiveError (naming the archive) for
    one refused whole. The description is JSON text, {"classes", "warnings", "skipped": [{"path",
    "reason"}], "samples": [{"label", "name", "metadata"}]}: JSON keeps metadata exactly as stored (a
    converted dict would turn null into undefined), and the bytes travel to JS beside it uncopied."""
    dataset = read_archive(source)
    description = {
        "classes": dataset.classes,
        "warnings": dataset.warnings,
        "skipped": [{"path": s.path, "reason": s.reason} for s in dataset.skipped],
        "samples": [
            {"label": s.label, "name": s.path.split("/", 1)[1], "metadata": s.metadata} for s in dataset.samples
        ],
    }
    return json.dumps(description), [s.data for s in dataset.samples]


class DatasetZip:
    """A dataset zip opened for an import in batches: `description` (JSON text: {"classes", "warnings",
    "skipped": [{"path", "reason"}], "count"}), then `read_batch(n, max_bytes)` -> (JSON text of [{"label",
    "name", "metadata"}], their bytes) until empty, and close()."""

    def __init__(self, source):
        self._reader = DatasetReader(source)
        self.description = json.dumps(
            {
                "classes": self._reader.classes,
                "warnings": self._reader.warnings,
                "skipped": [{"path": s.path, "reason": s.reason} for s in self._reader.skipped],
                "count": self._reader.count,
            }
        )

    def read_batch(self, n: int, max_bytes: int | None = None) -> tuple[str, list[bytes]]:
        batch = self._reader.read_batch(n, max_bytes)
        described = [{"label": s.label, "name": s.path.split("/", 1)[1], "metadata": s.metadata} for s in batch]
        return json.dumps(described), [s.data for s in batch]

    def close(self) -> None:
        self._reader.close()


def open_dataset_zip(source) -> DatasetZip:
    """A dataset zip to import in batches (DatasetZip); ArchiveError (naming the archive) when refused whole,
    before any sample is read for keeps."""
    return DatasetZip(source)


def open_image_zip(source) -> ImageZip:
    """A zip of images to predict, open: .name, .paths, .read_many(indices) -> [(bytes | None, MIME type
    or reason)], .close(). ArchiveError (naming the archive) when the core refuses it whole."""
    return ImageZip(source)


def read_text_csv(data, name: str, layout: str = "csv", max_classes: int | None = None) -> str:
    """A text file's table as JSON text ({rows: [{text, label, row}], skipped: [{row, reason}], notes,
    encoding, delimiter, header, classes}); TextCsvError (naming the file) for a file refused whole.
    JSON keeps a null label null in JS and moves 100,000 rows in one string instead of a proxy per row."""
    limits = text_csv.DEFAULT_TEXT_LIMITS
    if max_classes is not None:
        limits = dataclasses.replace(limits, max_classes=int(max_classes))
    table = text_csv.read_text_csv(bytes(data), name, layout or "csv", limits)
    return json.dumps(table.to_dict(), ensure_ascii=False)


def write_text_csv(rows) -> bytes:
    """rows ([{text, label}], or their JSON text) as the dataset's CSV bytes (UTF-8, formula cells neutralised)."""
    if isinstance(rows, str):
        rows = json.loads(rows)
    return text_csv.write_text_csv(rows)
