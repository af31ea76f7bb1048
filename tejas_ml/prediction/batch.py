"""Predict every image of a zip or folder with one classifier, in batches, one batch in memory at a
time: what `tejas predict` and the server's batch jobs run, so both write the same report."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from itertools import islice
from pathlib import Path

from tejas.limits import DEFAULT_LIMITS, Limits
from tejas.predictions import ImageFile, iter_images, report_json, write_csv

from .model import Classifier

__all__ = ["BATCH_SIZE", "predict_source", "write_reports"]

BATCH_SIZE = 16


class Stopped(Exception):
    """`should_stop` said so (a cancelled job)."""


def predict_source(
    classifier: Classifier,
    source: str | Path,
    *,
    top_k: int = 5,
    batch_size: int = BATCH_SIZE,
    limits: Limits = DEFAULT_LIMITS,
    should_stop: Callable[[], bool] = lambda: False,
) -> Iterator[dict]:
    """Report rows {file, sha256, top: [{class, probability}], error} in the source's path order.
    Raises tejas.predictions.ArchiveError for an archive refused whole, Stopped when asked to stop."""
    files = iter_images(source, limits)
    while batch := list(islice(files, batch_size)):
        if should_stop():
            raise Stopped()
        images = [f for f in batch if isinstance(f, ImageFile)]
        predicted = iter(classifier.predict([f.data for f in images], top_k))
        for f in batch:
            if isinstance(f, ImageFile):
                yield {"file": f.path, "sha256": f.sha256, **next(predicted)}
            else:
                yield {"file": f.path, "sha256": None, "top": [], "error": f.reason}


def write_reports(
    rows: list[dict], classifier: Classifier, top_k: int, json_path: Path | None, csv_path: Path | None, **extra
) -> None:
    """report.json and/or report.csv of finished rows."""
    k = max(1, min(top_k, len(classifier.classes)))
    if json_path is not None:
        Path(json_path).write_text(report_json(rows, classifier.describe(), k, **extra), encoding="utf-8")
    if csv_path is not None:
        with open(csv_path, "w", encoding="utf-8", newline="") as out:
            write_csv(rows, k, out)


class Throughput:
    """Images per second since the first image."""

    def __init__(self):
        self.start = time.perf_counter()

    def rate(self, done: int) -> float:
        return done / max(time.perf_counter() - self.start, 1e-9)
