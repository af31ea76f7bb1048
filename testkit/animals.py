"""Animal-MNIST (PyPI `animal-mnist`, MIT; 28×28 grey drawings) as ImageFolder datasets for the trainer's
tests and benchmark: read from the package's files (importing the package would import tensorflow)."""

from __future__ import annotations

import gzip
import importlib.util
import io
import pickle
import zipfile
from functools import cache
from pathlib import Path

import numpy as np
from PIL import Image

NAMES = ["bear", "bird", "cat", "cow", "dog", "elephant", "giraffe", "horse", "lion", "tiger"]


@cache
def _raw():
    spec = importlib.util.find_spec("animal_mnist")
    if spec is None:
        raise RuntimeError(
            "animal-mnist is not installed: `pip install --no-deps animal-mnist==0.4` (tools/dev.sh does)"
        )
    folder = Path(spec.submodule_search_locations[0]) / "data" / "Animal_MNIST"
    with gzip.open(folder / "animal_data_version_3.gz") as f:
        images = np.asarray(pickle.load(f), np.uint8)
    with gzip.open(folder / "animal_label_version_3.gz") as f:
        labels = np.asarray(pickle.load(f))
    return images, labels


def animal_pngs(classes: int = 5, per_class: int = 10, size: int = 56, offset: int = 0) -> dict[str, list[bytes]]:
    """{class name: [PNG bytes]}: `per_class` distinct images of each of the first `classes` classes."""
    images, labels = _raw()
    out: dict[str, list[bytes]] = {}
    for label in range(classes):
        seen: set[bytes] = set()
        pngs = out.setdefault(NAMES[label], [])
        for row in np.flatnonzero(labels == label)[offset:]:
            raw = images[row].tobytes()
            if raw in seen:
                continue
            seen.add(raw)
            grey = Image.fromarray(images[row]).resize((size, size), Image.Resampling.BILINEAR)
            buffer = io.BytesIO()
            grey.convert("RGB").save(buffer, "PNG")
            pngs.append(buffer.getvalue())
            if len(pngs) == per_class:
                break
    return out


def write_folder(root: Path, data: dict[str, list[bytes]]) -> Path:
    for name, pngs in data.items():
        (root / name).mkdir(parents=True, exist_ok=True)
        for i, png in enumerate(pngs):
            (root / name / f"{i:04d}.png").write_bytes(png)
    return root


def write_zip(path: Path, data: dict[str, list[bytes]]) -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as z:
        for name, pngs in data.items():
            for i, png in enumerate(pngs):
                z.writestr(f"{name}/{i:04d}.png", png)
    return path
