"""How a CSV's text is laid out: the delimiter (sniffed from the first records, quotes respected), whether the
first row is a header, and which column holds the text and which the label. Used by tejas.text_csv."""

from __future__ import annotations

import csv
import io
import re
from collections import Counter

from .rules import is_blank_text
from .text_decode import SAMPLE_CHARS, TextCsvError

__all__ = ["DELIMITERS", "find_columns", "is_filled", "one_column", "sample_records", "sniff_delimiter"]

DELIMITERS = {",": "commas", "\t": "tabs", ";": "semicolons", "|": "pipes"}  # in order of preference on a tie
# Header names (lower case, without spaces, _ - .) that say which column is which.
TEXT_NAMES = {"text", "message", "messages", "sms", "content", "body", "sentence", "review", "document", "doc",
              "tweet", "comment", "utterance", "query", "question", "title", "description", "email", "input",
              "post", "phrase", "excerpt", "passage", "abstract", "headline", "v2"}  # fmt: skip
LABEL_NAMES = {"label", "labels", "class", "classname", "category", "target", "sentiment", "intent", "tag",
               "topic", "type", "y", "classification", "genre", "emotion", "outcome", "output", "v1"}  # fmt: skip


def sample_records(text: str, delimiter: str) -> list[list[str]]:
    """The records of the file's first SAMPLE_CHARS characters (the last one dropped when cut short)."""
    out = []
    try:
        out.extend(csv.reader(io.StringIO(text[:SAMPLE_CHARS], newline=""), delimiter=delimiter))
    except csv.Error:
        pass
    return out[:-1] if len(text) > SAMPLE_CHARS and len(out) > 1 else out


def is_filled(cells: list[str]) -> bool:
    return not all(is_blank_text(c) for c in cells)


def sniff_delimiter(text: str, name: str) -> tuple[str, int]:
    """The delimiter that splits the first records (quotes respected) most consistently into 2+ fields."""
    best = None
    for delimiter in DELIMITERS:
        widths = [len(cells) for cells in sample_records(text, delimiter) if is_filled(cells)][:1000]
        if not widths:
            continue
        width, hits = Counter(widths).most_common(1)[0]
        if width >= 2 and (best is None or hits / len(widths) > best[0]):
            best = (hits / len(widths), delimiter, width)
    if best is None:
        raise TextCsvError(one_column(name))
    return best[1], best[2]


def _column_kind(cell: str) -> str | None:
    key = re.sub(r"[\s_.\-]+", "", cell.strip().lower())
    if key in TEXT_NAMES or key.endswith("text"):
        return "text"
    if key in LABEL_NAMES or key.endswith(("label", "class", "category")):
        return "label"
    return None


def find_columns(first: list[str], later: list[list[str]], width: int, name: str) -> tuple[bool, int, int, str]:
    """(header?, text column, label column, why) from the first record and the ones after it."""
    kinds = [_column_kind(c) for c in first]
    text_col = kinds.index("text") if "text" in kinds else None
    label_col = kinds.index("label") if "label" in kinds else None
    if width > 2:
        if text_col is None or label_col is None or len(first) != width:
            raise TextCsvError(
                f"{name} has {width} columns and no header row naming its text and label columns; expected 2 "
                "columns (a text and a label), or a header row with columns named text and label"
            )
        return True, text_col, label_col, ""
    if text_col is not None and label_col is not None:
        return True, text_col, label_col, ""
    if text_col is not None or label_col is not None:
        text_col = 1 - label_col if text_col is None else text_col
        return True, text_col, 1 - text_col, ""
    pairs = [r for r in later if len(r) == 2] or [first]
    distinct = [len({r[i].strip() for r in pairs}) for i in (0, 1)]
    length = [sum(len(r[i]) for r in pairs) / len(pairs) for i in (0, 1)]
    label_col = 0 if (distinct[0], length[0]) < (distinct[1], length[1]) else 1
    later_labels = {r[label_col].strip() for r in later if len(r) == 2}
    header = (
        len(first) == 2
        and first[label_col].strip() not in later_labels
        and 0 < len(later_labels) < len(pairs)
        and len(first[1 - label_col]) <= 40
    )
    fewer, more = distinct[label_col], distinct[1 - label_col]
    how = (
        f" (it has fewer distinct values in the first rows: {fewer:,} against {more:,})"
        if fewer < more
        else " (its values are shorter)"
    )
    return header, 1 - label_col, label_col, how


def one_column(name: str) -> str:
    return (
        f"{name} has one column; expected 2 columns, a text and a label, separated by commas, tabs, semicolons "
        "or pipes (for one text per line, add the file as a class instead)"
    )
