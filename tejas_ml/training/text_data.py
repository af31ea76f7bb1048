"""Text training data: examples from a synced text project (its samples' blobs are UTF-8 texts) or from a
CSV read by the core's reader (`tejas.text_csv`, the app's import), and token ids for the DataLoader.

The texts are held in memory (at most 5,000 characters each); the split is the app's (data.split).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from ..texts import TextError, check_text
from .data import DataError, Examples, check_trainable, fetch_checked, project_examples

MAX_CSV_BYTES = 20_000_000  # the core reader's own limit (tejas.text_csv.TextLimits.max_file_bytes)


class CsvError(DataError):
    """The CSV cannot be read as texts at all (refused whole); the message says why."""


@dataclass(frozen=True)
class TextExample:
    id: str  # sha256 of the text's UTF-8 bytes (the app's content id)
    label: int
    text: str
    correction: bool = False


def texts_from_project(records: list[dict], fetch_blob) -> Examples:
    """A synced text project's live records ({kind, id, data}) with each sample's text fetched by
    `fetch_blob(sha256)` (an iterator of byte chunks), checked against its sha256 and as a text."""

    def example(sha: str, label: int, correction: bool) -> TextExample:
        try:
            text = check_text(fetch_checked(fetch_blob, sha, "text"))
        except TextError as exc:
            raise DataError(f"sample {sha[:12]}… of the project is not a text ({exc}); is it a text project?") from None
        return TextExample(sha, label, text, correction)

    return project_examples(records, example)


def _read_csv(data: bytes, name: str):
    """The core's CSV reader (the app's import): {rows: [{text, label, row}], skipped, notes, classes...}."""
    try:
        from tejas.text_csv import read_text_csv
    except ImportError:  # the core predates text projects
        raise CsvError("this server cannot read text CSVs yet (its tejas core has no text_csv); update it") from None
    try:
        result = read_text_csv(data, name, layout="csv")
    except ValueError as exc:  # a file refused whole, with the reason
        raise CsvError(str(exc)) from None
    return result if isinstance(result, dict) else vars(result)


def texts_from_csv(path: Path, name: str | None = None) -> Examples:
    """A CSV of (text, label) rows, read like the app's import: the same text again is skipped (the first
    row keeps it), as are rows the reader skips; at least 2 classes with 2 texts each."""
    name = name or path.name
    size = path.stat().st_size
    if size > MAX_CSV_BYTES:
        raise CsvError(f"{name}: {size / 2**20:.1f} MiB; a text CSV may be at most {MAX_CSV_BYTES / 2**20:g} MiB")
    result = _read_csv(path.read_bytes(), name)
    classes: list[str] = []
    index: dict[str, int] = {}
    items: list[TextExample] = []
    seen: set[str] = set()
    skipped = [f"row {s.get('row')}: {s.get('reason')}" for s in result.get("skipped", [])]
    for row in result["rows"]:
        text, label = row["text"], row.get("label")
        if label is None or not str(label).strip():
            skipped.append(f"row {row.get('row')}: no label")
            continue
        try:
            check_text(text.encode("utf-8"))
        except TextError as exc:
            skipped.append(f"row {row.get('row')}: {exc}")
            continue
        sha = hashlib.sha256(text.encode("utf-8")).hexdigest()
        if sha in seen:
            skipped.append(f"row {row.get('row')}: the same text as an earlier row")
            continue
        seen.add(sha)
        label = str(label)
        if label not in index:
            index[label] = len(classes)
            classes.append(label)
        items.append(TextExample(sha, index[label], text))
    if not items:
        raise CsvError(f"{name}: no usable rows (expected text,label rows)")
    examples = Examples(classes, sorted(items, key=lambda e: e.id), None, skipped)
    check_trainable(classes, examples.counts(), name)
    return examples


def check_csv(path: Path, name: str) -> list[str]:
    """Read an uploaded CSV before a job is made of it; returns its classes (DataError: why not)."""
    return texts_from_csv(path, name).classes


class TokenisedTexts:
    """(token ids, label) per example: every text tokenised once, truncated at `max_length` ending in [SEP]."""

    def __init__(self, examples: list[TextExample], tokenizer_path: Path, max_length: int):
        self.ids = [e.id for e in examples]
        self.labels = [e.label for e in examples]
        self.tokens = encode(tokenizer_path, [e.text for e in examples], max_length) if examples else []

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int):
        return self.tokens[i], self.labels[i]


def encode(tokenizer_path: Path, texts: list[str], max_length: int) -> list[list[int]]:
    """Token ids as the app's tokenizer gives them (no padding), cut at `max_length` with [SEP] kept."""
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(str(tokenizer_path))
    tokenizer.no_padding()
    tokenizer.enable_truncation(max_length=max_length)
    return [e.ids for e in tokenizer.encode_batch(list(texts))]


def pad(token_ids: list[list[int]], pad_id: int = 0):
    """(input_ids, attention_mask) int64 tensors [batch, longest]: padded to the longest, as the app does."""
    import torch

    longest = max(len(ids) for ids in token_ids)
    input_ids = torch.full((len(token_ids), longest), pad_id, dtype=torch.int64)
    mask = torch.zeros((len(token_ids), longest), dtype=torch.int64)
    for row, ids in enumerate(token_ids):
        input_ids[row, : len(ids)] = torch.tensor(ids, dtype=torch.int64)
        mask[row, : len(ids)] = 1
    return input_ids, mask


def collate(batch):
    """DataLoader collate: ((input_ids, attention_mask), labels)."""
    import torch

    tokens, labels = zip(*batch, strict=True)
    return pad(list(tokens)), torch.tensor(labels, dtype=torch.int64)
