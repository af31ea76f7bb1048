"""Texts and their labels from a CSV file (or one text per line), read strictly and kindly, and written back.

Strict: a file that is not text, too big, with too many rows or labels, or with no usable row is refused
whole (TextCsvError, naming the file and the limit). Kind: the encoding, delimiter, header and which
column holds the label are worked out and said in `notes`; a bad row is skipped with its 1-based line
number and the reason, never a failed import. Formula-looking cells are guarded on export (a ' before them,
rules.json spreadsheet_cell) and come back without that ' on import, so export -> import gives the same
texts and labels. The bytes are decoded by tejas.text_decode, the columns found by tejas.text_columns.
"""

from __future__ import annotations

import csv
import io
import re
from collections import Counter
from dataclasses import asdict, dataclass

from .limits import DEFAULT_LIMITS
from .rules import (
    MAX_TEXT_CHARACTERS,
    guard_cell,
    is_blank_text,
    is_guarded,
    quote,
    text_problem,
    unguard_cell,
    validate_class_name,
)
from .text_columns import DELIMITERS, find_columns, is_filled, one_column, sample_records, sniff_delimiter
from .text_decode import TextCsvError, decode_text

__all__ = [
    "DEFAULT_TEXT_LIMITS",
    "TextCsvError",
    "TextLimits",
    "TextTable",
    "guard_cell",
    "read_text_csv",
    "unguard_cell",
    "write_text_csv",
]

LAYOUTS = ("csv", "lines")


@dataclass(frozen=True)
class TextLimits:
    max_file_bytes: int = 20_000_000
    max_rows: int = 100_000
    max_classes: int = DEFAULT_LIMITS.max_classes  # the artifacts' head serves at most this many (manifest)
    max_text_chars: int = MAX_TEXT_CHARACTERS


DEFAULT_TEXT_LIMITS = TextLimits()


@dataclass
class TextTable:
    rows: list[dict]  # {text, label (None for layout 'lines'), row}
    skipped: list[dict]  # {row, reason}
    notes: list[str]
    encoding: str
    delimiter: str | None
    header: list[str] | bool  # the header row's cells, or False
    classes: dict[str, int]  # label -> rows, in order of first appearance

    def to_dict(self) -> dict:
        return asdict(self)


def read_text_csv(data: bytes, name: str, layout: str = "csv", limits: TextLimits = DEFAULT_TEXT_LIMITS) -> TextTable:
    """The usable rows of a text file, what was skipped and why; TextCsvError for a file refused whole.

    layout 'csv': a text and a label column; 'lines': every non-empty line is a text (label None).
    """
    if layout not in LAYOUTS:
        raise ValueError(f"unknown layout {layout!r} (expected one of {', '.join(LAYOUTS)})")
    name = name or "the file"
    data = bytes(data)
    if not data:
        raise TextCsvError(f"{name} is empty")
    if len(data) > limits.max_file_bytes:
        raise TextCsvError(
            f"{name} is {len(data) / 1e6:,.1f} MB; a text file may be at most {limits.max_file_bytes / 1e6:,g} MB "
            "(split it into smaller files)"
        )
    text, encoding, notes = decode_text(data, name)
    if is_blank_text(text):
        raise TextCsvError(f"{name} is empty (only blank lines)")
    reader = _read_lines if layout == "lines" else _read_csv
    rows, skipped, delimiter, header = reader(text, name, limits, notes)
    classes = _class_counts(rows) if layout == "csv" else {}
    if not rows:
        raise TextCsvError(_nothing_usable(name, skipped, header))
    repeats = len(rows) - len({row["text"] for row in rows})
    if repeats:
        notes.append(f"{repeats:,} {_plural(repeats, 'row repeats', 'rows repeat')} an earlier text")
    return TextTable(rows, skipped, notes, encoding, delimiter, header, classes)


def write_text_csv(rows) -> bytes:
    """The rows ({text, label}) as UTF-8 CSV: header text,label, RFC 4180 quoting, \\r\\n line ends,
    every cell through guard_cell (rules.json spreadsheet_cell: a ' before = + - @, tab, CR first, but not
    before a plain number like -1; and before a cell already of the form '=..., as read_text_csv takes one
    ' away: the rows come back)."""
    out = io.StringIO(newline="")
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(["text", "label"])
    for row in rows:
        writer.writerow([guard_cell(row.get("text")), guard_cell(row.get("label"))])
    value = out.getvalue()
    try:
        return value.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate from a JS string
        return re.sub("[\ud800-\udfff]", "\ufffd", value).encode("utf-8")


# --- layouts --------------------------------------------------------------------------------------------


def _read_lines(text: str, name: str, limits: TextLimits, notes: list[str]):
    """Every non-blank line is a text; line endings \\r\\n, \\n and \\r alike."""
    rows, skipped = [], []
    for number, line in enumerate(io.StringIO(text, newline=""), 1):
        line = line.rstrip("\r\n")
        if is_blank_text(line):
            continue
        if len(rows) + len(skipped) >= limits.max_rows:
            raise TextCsvError(_too_many_rows(name, limits))
        reason = text_problem(line, limits.max_text_chars)
        if reason:
            skipped.append({"row": number, "reason": reason})
        else:
            rows.append({"text": line, "label": None, "row": number})
    return rows, skipped, None, False


def _read_csv(text: str, name: str, limits: TextLimits, notes: list[str]):
    # A single field may be as long as the file: raise the module-wide limit, never lower it (threads).
    if csv.field_size_limit() < limits.max_file_bytes:
        csv.field_size_limit(limits.max_file_bytes)
    start_line = 0
    first = re.split(r"\r\n|\n|\r", text[:64], maxsplit=1)[0].strip(" ").lower()
    if re.fullmatch(r"sep=[,;|\t]", first):  # Excel's hint line
        delimiter, width = first[4], None
        start_line = 1
        notes.append(f"the first line {quote(first)} names the delimiter")
    else:
        delimiter, width = sniff_delimiter(text, name)
    sample = [r for r in sample_records(text, delimiter)[start_line:] if is_filled(r)][:1000]
    if not sample:
        raise TextCsvError(f"{name} has no rows")
    if width is None:
        width = Counter(len(r) for r in sample).most_common(1)[0][0]
    if width < 2:
        raise TextCsvError(one_column(name))
    header, text_col, label_col, how = find_columns(sample[0], sample[1:], width, name)
    notes.append(f"{width} columns separated by {DELIMITERS[delimiter]}")
    if header:
        notes.append(f"the first row is a header: {', '.join(quote(c) for c in sample[0])}")
        ignored = [quote(c) for i, c in enumerate(sample[0]) if i not in (text_col, label_col)]
        if ignored:
            notes.append(f"{_plural(len(ignored), 'column', 'columns')} {', '.join(ignored)} ignored")
    else:
        notes.append("no header row")
    labels_note = f"column {label_col + 1} is the label, column {text_col + 1} the text{how}"

    rows, skipped, blank, guarded = _parse(
        text, delimiter, start_line, header, (width, text_col, label_col), name, limits
    )
    distinct = len({_label_key(row["label"]) for row in rows})
    if distinct > limits.max_classes:
        raise TextCsvError(_too_many_labels(name, distinct, len(rows), label_col, limits))
    notes.append(labels_note)
    if blank:
        notes.append(f"{blank:,} blank {_plural(blank, 'line', 'lines')} ignored")
    if guarded:
        notes.append(
            f"{guarded:,} {_plural(guarded, 'cell begins', 'cells begin')} with ' before =, +, -, @, a tab or a CR "
            "(the guard a CSV export adds so that spreadsheets do not run formulas): read without that '"
        )
    return rows, skipped, delimiter, (list(sample[0]) if header else False)


def _parse(text: str, delimiter: str, start_line: int, header: bool, columns, name: str, limits: TextLimits):
    """(rows, skipped, blank lines, guarded cells) of the whole file; the common row takes the short path.
    A guarded cell ('=x, see rules.is_guarded) loses its ' before anything is checked (a 5,000-character text exported
    as '=... is 5,001 characters in the file)."""
    width, text_col, label_col = columns
    rows, skipped = [], []
    good_labels: set[str] = set()
    reasons: dict[str, str | None] = {}  # label -> why it cannot be a class (each label checked once)
    blank = number = data_rows = guarded = 0
    max_chars, max_rows = limits.max_text_chars, limits.max_rows
    source = io.StringIO(text, newline="")
    for _ in range(start_line):
        source.readline()
    reader = csv.reader(source, delimiter=delimiter)
    line_before = start_line
    try:
        for cells in reader:
            number, line_before = line_before + 1, reader.line_num + start_line
            # the short path: a row like the ones before it (a label already checked, a text within limits)
            if len(cells) == width:
                row_text, label = cells[text_col], cells[label_col].strip()
                guards = 0
                if row_text.startswith("'") and is_guarded(row_text):  # the cheap test first: 100,000 rows
                    row_text, guards = row_text[1:], 1
                if label.startswith("'") and is_guarded(label):
                    label, guards = label[1:], guards + 1
                fine = (
                    label in good_labels
                    and len(row_text) <= max_chars
                    and "\0" not in row_text
                    and not is_blank_text(row_text)
                )
            else:
                row_text = label = None
                fine = False
            if not fine:
                if not is_filled(cells):
                    blank += 1
                    continue
                if header:
                    header = False
                    continue
                reason = _row_problem(cells, width, row_text, label, limits, reasons)
                if reason:
                    skipped.append({"row": number, "reason": reason})
                else:
                    good_labels.add(label)
            data_rows += 1
            if data_rows > max_rows:
                raise TextCsvError(_too_many_rows(name, limits))
            if fine or not reason:
                if "\r" in row_text:
                    row_text = row_text.replace("\r\n", "\n").replace("\r", "\n")
                rows.append({"text": row_text, "label": label, "row": number})
                guarded += guards
    except csv.Error as error:
        raise TextCsvError(f"{name}, row {number}: {error}") from None
    spans = line_before - number + 1
    if number and _quote_left_open(_last_lines(text, spans), delimiter):
        if spans > 1:
            raise TextCsvError(
                f"{name}: the quote that opens a field in row {number} is never closed, so the rest of the file "
                f"({spans:,} lines) would be one field; close or remove that quote"
            )
        if rows and rows[-1]["row"] == number:
            rows.pop()
        skipped = [s for s in skipped if s["row"] != number] + [{"row": number, "reason": "a quote is never closed"}]
    return rows, skipped, blank, guarded


def _last_lines(text: str, count: int) -> str:
    """The last `count` lines of `text`, lines ending in \r\n, \n or \r as io.StringIO(newline="") splits them."""
    start = len(text)
    for _ in range(count):
        end = start
        if text.endswith("\r\n", 0, end):
            end -= 2
        elif end and text[end - 1] in "\r\n":
            end -= 1
        start = max(text.rfind("\n", 0, end), text.rfind("\r", 0, end)) + 1
    return text[start:]


def _label_key(label: str) -> str:
    """Labels that differ only in case are one class (the app files "Spam" and "spam" under one)."""
    return label.lower()


def _class_counts(rows: list[dict]) -> dict[str, int]:
    """Rows per class, each class named by its first spelling in the file."""
    names: dict[str, str] = {}
    counts: Counter = Counter()
    for row in rows:
        key = _label_key(row["label"])
        names.setdefault(key, row["label"])
        counts[key] += 1
    return {names[key]: n for key, n in counts.items()}


# --- rows -----------------------------------------------------------------------------------------------


def _row_problem(cells, width, text, label, limits, reasons) -> str | None:
    """Why a row (its cells, and its text and label once unguarded) cannot be a sample, or None."""
    if len(cells) != width:
        return f"{len(cells)} {_plural(len(cells), 'field', 'fields')}, expected {width}"
    if "\0" in label:
        return "the label contains a NUL character"
    problem = text_problem(text, limits.max_text_chars)
    if problem:
        return problem
    if not label:
        return "missing label"
    if label not in reasons:
        reasons[label] = validate_class_name(label, DEFAULT_LIMITS.max_name_chars)
    return reasons[label]


def _quote_left_open(tail: str, delimiter: str) -> bool:
    """Whether the last record ends inside a quoted field (the csv module then takes the rest as that field)."""
    try:
        for _ in csv.reader(io.StringIO(tail, newline=""), delimiter=delimiter, strict=True):
            pass
    except csv.Error as error:
        return "end of data" in str(error)
    return False


# --- messages -------------------------------------------------------------------------------------------


def _plural(n: int, one: str, many: str) -> str:
    return one if n == 1 else many


def _too_many_labels(name: str, distinct: int, rows: int, label_col: int, limits: TextLimits) -> str:
    """The refusal of more labels than a project takes classes (limits.max_classes: the artifacts' manifest)."""
    column, most = label_col + 1, limits.max_classes
    said = f"{name}: {distinct:,} distinct labels in column {column}; a project takes at most {most:,} classes"
    if 2 * distinct > rows:  # most rows a label of their own: a column of texts or ids, more likely than classes
        return f"{said} — is column {column} really the label?"
    return f"{said} (merge or leave out some labels)"


def _too_many_rows(name: str, limits: TextLimits) -> str:
    return f"{name} has more than {limits.max_rows:,} rows, the most one file may have (split it into smaller files)"


def _nothing_usable(name: str, skipped: list[dict], header) -> str:
    if not skipped:
        return f"{name} has a header row but no data rows" if header else f"{name} has no rows"
    first = "; ".join(f"row {s['row']}: {s['reason']}" for s in skipped[:3])
    more = "; …" if len(skipped) > 3 else ""
    return f"{name} has no usable row: all {len(skipped):,} were skipped ({first}{more})"
