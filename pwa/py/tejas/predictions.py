"""Images to predict from a zip or a folder (any layout), read with the dataset archive's hostile-input
rules, and the prediction report (CSV / JSON) that the CLI and the server's batches write, in the one
format schemas/report.json defines (the app's features/predict/report.js writes it too).

A whole archive is refused (ArchiveError) for what `list_entries` refuses: unsafe paths, zip bombs, too
many entries. A bad *file* becomes a row with its error, never a failed run. Only one file's bytes are
in memory at a time.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from importlib import resources

from .archive_source import ArchiveError
from .image_zip import ImageZip
from .images import ImageError, ImageInfo
from .limits import DEFAULT_LIMITS, Limits
from .rules import guard_cell

__all__ = [
    "ArchiveError",
    "ImageFile",
    "Unreadable",
    "count_images",
    "csv_header",
    "csv_row",
    "iter_images",
    "probability_text",
    "report_json",
    "write_csv",
]

REPORT_SCHEMA: dict = json.loads(
    resources.files("tejas").joinpath("schemas", "report.json").read_text(encoding="utf-8")
)
_CSV = REPORT_SCHEMA["x-csv"]


@dataclass
class ImageFile:
    path: str  # inside the archive or folder, forward slashes
    data: bytes
    info: ImageInfo
    sha256: str


@dataclass(frozen=True)
class Unreadable:
    path: str
    reason: str

    def __str__(self) -> str:
        return f"{self.path}: {self.reason}"


def count_images(source, limits: Limits = DEFAULT_LIMITS) -> int:
    """How many files `iter_images` will yield (junk and folders left out); ArchiveError as it would."""
    with ImageZip(source, limits) as files:
        return len(files.paths)


def iter_images(source, limits: Limits = DEFAULT_LIMITS) -> Iterator[ImageFile | Unreadable]:
    """Every file of a zip or folder in path order: an ImageFile, or Unreadable with the reason
    (symbolic link, encrypted, too large, corrupt, not an image). ArchiveError for an archive refused whole."""
    with ImageZip(source, limits) as files:
        for index in sorted(range(len(files.paths)), key=files.paths.__getitem__):
            path = files.paths[index]
            try:
                data, info = files.read_image(index)
            except ImageError as reason:
                yield Unreadable(path, str(reason))
                continue
            yield ImageFile(path, data, info, hashlib.sha256(data).hexdigest())


def probability_text(probability: float) -> str:
    """A probability as the report's CSV writes it (report.json x-csv): 0.75 -> 0.750000."""
    return format(probability, f".{_CSV['probability_decimals']}f")


def csv_header(top_k: int) -> list[str]:
    """The report's CSV columns (report.json x-csv): file, predicted, confidence, class_1, ..., error."""
    ranks = [column.format(rank=rank) for rank in range(1, top_k + 1) for column in _CSV["each_rank"]]
    return [*_CSV["before"], *ranks, *_CSV["after"]]


def csv_row(row: dict, top_k: int) -> list[str]:
    """One report row ({file, top: [{class, probability}], error}) as CSV cells, each through guard_cell."""
    top = row.get("top") or []
    cells = [row["file"], top[0]["class"] if top else "", probability_text(top[0]["probability"]) if top else ""]
    for i in range(top_k):
        cells += [top[i]["class"], probability_text(top[i]["probability"])] if i < len(top) else ["", ""]
    cells.append(row.get("error") or "")
    return [guard_cell(c) for c in cells]


def write_csv(rows: Iterable[dict], top_k: int, out: io.TextIOBase) -> None:
    """The report as CSV (RFC 4180 quoting, \\r\\n line ends), one row per file."""
    writer = csv.writer(out, lineterminator=_CSV["line_end"])
    writer.writerow(csv_header(top_k))
    for row in rows:
        writer.writerow(csv_row(row, top_k))


def report_json(rows: list[dict], model: dict, top_k: int, **extra) -> str:
    """The report as JSON: {model, top_k, images, failed, rows: [{file, sha256, top, error}], ...extra}."""
    failed = sum(1 for r in rows if r.get("error"))
    return json.dumps(
        {"model": model, "top_k": top_k, "images": len(rows), "failed": failed, **extra, "rows": rows},
        ensure_ascii=False,
    )
