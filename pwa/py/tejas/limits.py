"""Limits on what a dataset archive may contain; every one is a setting with a documented default."""

from __future__ import annotations

from dataclasses import dataclass

from .catalog import MAX_CLASSES
from .rules import RULES

__all__ = ["Limits", "DEFAULT_LIMITS"]

MiB = 1 << 20
GiB = 1 << 30


@dataclass(frozen=True)
class Limits:
    """Defaults suit a person's photo collection; a server may lower or raise them."""

    max_archive_bytes: int = 4 * GiB  # the zip file itself
    max_total_bytes: int = 8 * GiB  # all entries, uncompressed, as the archive declares them
    max_file_bytes: int = 64 * MiB  # one image
    # Expansion of one entry: photos barely compress, a deflate bomb expands ~1000×. Only checked
    # for entries over `ratio_floor_bytes`, so a small flat drawing saved as BMP still imports.
    max_ratio: int = 200
    ratio_floor_bytes: int = 1 * MiB
    # The same ratio for the whole archive (all entries against the zip file's real size, so entries that
    # share compressed bytes count), once it expands past this: 300 entries of 1 MiB at ~900× are refused
    # before anything is written; a small archive of flat drawings, however well it compresses, is not.
    total_ratio_floor_bytes: int = 64 * MiB
    max_files: int = 100_000  # entries in the archive, folders included
    max_classes: int = MAX_CLASSES  # what the default artifacts' head serves (catalog.json)
    # width × height of one image's canvas, every frame included (rules.json image.max_pixels, shared with
    # the browser and Pillow's MAX_IMAGE_PIXELS on the server): decompression bombs declare huge sizes.
    max_pixels: int = RULES["image"]["max_pixels"]
    # longer side over shorter (rules.json image.max_aspect_ratio): resizing a 3000×1 strip to a model's
    # shorter side would make it 549,000×183 pixels.
    max_aspect_ratio: int = RULES["image"]["max_aspect_ratio"]
    max_name_chars: int = RULES["class_name"]["max_chars"]  # one class name (100, shared with the browser)
    max_sidecar_bytes: int = 16 * MiB  # tejas.json


DEFAULT_LIMITS = Limits()
