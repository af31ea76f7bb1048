"""What can be trained and on what, read from schemas/catalog.json (which pwa/features/catalog.js imports
too): the training modes and where each runs, the architectures with their feature sizes, and how many
classes an exported head serves. Nothing else lists them."""

from __future__ import annotations

import json
from importlib import resources

__all__ = [
    "APP_MODES",
    "ARCHITECTURES",
    "CATALOG",
    "IMAGE_BACKBONES",
    "MAX_CLASSES",
    "MODES",
    "TEXT_ENCODER",
    "TEXT_MODES",
    "default_input_size",
    "feature_size",
    "modes_for",
]

CATALOG: dict = json.loads(resources.files("tejas").joinpath("schemas", "catalog.json").read_text(encoding="utf-8"))

MAX_CLASSES: int = CATALOG["max_classes"]
ARCHITECTURES: dict[str, dict] = CATALOG["architectures"]


def modes_for(where: str, modality: str) -> tuple[str, ...]:
    """The modes `where` ("app": the browser, "trainer": the PyTorch trainer) trains `modality` in."""
    return tuple(mode for mode, entry in CATALOG["modes"].items() if modality in entry[where])


MODES: tuple[str, ...] = tuple(CATALOG["modes"])  # every mode: the trainer's for images
APP_MODES: tuple[str, ...] = modes_for("app", "image")  # what the browser trains (tejas export --train)
TEXT_MODES: tuple[str, ...] = modes_for("trainer", "text")  # how the trainer trains a text project
IMAGE_BACKBONES: tuple[str, ...] = tuple(name for name, a in ARCHITECTURES.items() if a["modality"] == "image")
TEXT_ENCODER: str = next(name for name, a in ARCHITECTURES.items() if a["modality"] == "text")


def feature_size(architecture: str) -> int:
    """Values per item that `architecture`'s backbone or encoder gives the head."""
    return ARCHITECTURES[architecture]["feature_size"]


def default_input_size(backbone: str) -> int:
    """An image backbone's crop in pixels when the export names none."""
    return ARCHITECTURES[backbone]["default_input_size"]
