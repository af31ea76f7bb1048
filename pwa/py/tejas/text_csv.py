"""Texts and their labels from a CSV file (or one text per line), read strictly and kindly, and written back.

Strict: a file that is not text, too big, with too many rows or labels, or with no usable row is refused
whole (TextCsvError, naming the file and the limit). Kind: the encoding, delimiter, header and which
column holds the label are worked out and said in `notes`; a bad row is skipped with its 1-based line
number and the reason, never a failed import. Formula-looking cells are neutralised on export (a ' before
them) and come back without that ' on import, so export -> import gives the same texts and labels.
"""

from __future__ import annotations

import codecs
import csv
import io
import re
from collections import Counter
from dataclasses import asdict, dataclass

from .limits import DEFAULT_LIMITS
from .rules import MAX_TEXT_CHARACTERS, is_blank_text, quote, text_problem, validate_class_name

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
DELIMITERS = {",": "commas", "\t": "tabs", ";": "semicolons", "|": "pipes"}  # in order of preference on a tie
SAMPLE_CHARS = 1 << 16  # what the delimiter, header and columns are worked out from
CONTROL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
MAX_CONTROL_SHARE = 0.05  # random bytes are ~11% control bytes; a CSV with a stray NUL in a row far less
UTF8_MULTIBYTE = re.compile(rb"[\xc2-\xdf][\x80-\xbf]|[\xe0-\xef][\x80-\xbf]{2}|[\xf0-\xf4][\x80-\xbf]{3}")
MAGIC = [
    (b"\x89PNG\r\n\x1a\n", "a PNG image"),
    (b"\xff\xd8\xff", "a JPEG image"),
    (b"GIF87a", "a GIF image"),
    (b"GIF89a", "a GIF image"),
    (b"%PDF-", "a PDF document"),
    (b"PK\x03\x04", "a zip archive (an Excel .xlsx workbook is one: save it as CSV)"),
    (b"PK\x05\x06", "a zip archive (an Excel .xlsx workbook is one: save it as CSV)"),
    (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1", "an old Office document (.xls, .doc: save it as CSV)"),
    (b"\x1f\x8b", "a gzip archive"),
    (b"7z\xbc\xaf\x27\x1c", "a 7-Zip archive"),
    (b"\xff\xfe\x00\x00", "UTF-32 text, which Tejas does not read (save it as UTF-8)"),
    (b"\x00\x00\xfe\xff", "UTF-32 text, which Tejas does not read (save it as UTF-8)"),
]
# Header names (lower case, without spaces, _ - .) that say which column is which.
TEXT_NAMES = {"text", "message", "messages", "sms", "content", "body", "sentence", "review", "document", "doc",
              "tweet", "comment", "utterance", "query", "question", "title", "description", "email", "input",
              "post", "phrase", "excerpt", "passage", "abstract", "headline", "v2"}  # fmt: skip
LABEL_NAMES = {"label", "labels", "class", "classname", "category", "target", "sentiment", "intent", "tag",
               "topic", "type", "y", "classification", "genre", "emotion", "outcome", "output", "v1"}  # fmt: skip

# What a spreadsheet evaluates when a cell begins with it (OWASP, CSV injection): = + - @, tab, CR.
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
# A signed plain number (-1, +2.5, -.5e3) begins with + or - but a spreadsheet reads it as a number, never a
# formula: it is written as it is. ASCII digits only: "-١" is no number to a spreadsheet.
PLAIN_NUMBER = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
# A guarded cell: one ' or more before a formula start. The export adds one ' to every cell of this form too
# (so a text that really begins with '= comes back whole) and the reader takes one away; that also mends the
# '-1 that exports made before numbers were left alone.
GUARDED = re.compile(r"'+[=+\-@\t\r]")

# Windows-1252 as browsers decode it (WHATWG): the five bytes it leaves undefined become C1 controls.
_CP1252 = {b: (bytes([b]).decode("cp1252", "ignore") or chr(b)) for b in range(0x80, 0xA0)}


def _cp1252_fallback(error: UnicodeDecodeError) -> tuple[str, int]:
    bad = error.object[error.start : error.end]
    return "".join(_CP1252.get(b, chr(b)) for b in bad), error.end


codecs.register_error("tejas-windows-1252", _cp1252_fallback)


class TextCsvError(ValueError):
    """A file refused whole; the message names the file and what to do."""


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
    text, encoding, notes = _decode(data, name)
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
    cells a spreadsheet would run as formulas (= + - @, tab, CR first; not a plain number like -1) prefixed
    with ', as are cells already of the form '=... (read_text_csv takes one ' away: the rows come back)."""
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


def guard_cell(value) -> str:
    """A cell a spreadsheet shows as text: one it would evaluate (=, +, -, @, tab or CR first, but not a
    plain number such as -1 or +2.5) or one already guarded ('=..., ''-x) gets a leading '."""
    text = "" if value is None else str(value)
    if text.startswith(FORMULA_STARTS) and not PLAIN_NUMBER.fullmatch(text) or GUARDED.match(text):
        return "'" + text
    return text


def unguard_cell(cell: str) -> str:
    """A cell as it was before guard_cell: one ' less before a formula start ('=x -> =x, ''=x -> '=x)."""
    return cell[1:] if cell.startswith("'") and GUARDED.match(cell) else cell


# --- encoding -------------------------------------------------------------------------------------------


def _decode(data: bytes, name: str) -> tuple[str, str, list[str]]:
    """(text, encoding, notes); TextCsvError for a file that is not text."""
    for magic, what in MAGIC:
        if data.startswith(magic):
            raise TextCsvError(f"{name} is not a text file: it is {what}")
    if data.startswith(b"RIFF") and data[8:12] == b"WEBP":
        raise TextCsvError(f"{name} is not a text file: it is a WebP image")
    notes: list[str] = []
    if data.startswith(codecs.BOM_UTF16_LE) or data.startswith(codecs.BOM_UTF16_BE):
        order = "LE" if data.startswith(codecs.BOM_UTF16_LE) else "BE"
        text, encoding = _utf16(data[2:], order, name, "it begins with a UTF-16 byte order mark"), f"UTF-16 {order}"
    elif (order := _utf16_without_bom(data)) is not None:
        why = "it has no byte order mark, but every second byte is NUL"
        text, encoding = _utf16(data, order, name, why), f"UTF-16 {order} (no byte order mark)"
        notes.append(f"read as UTF-16 {order}: {why}")
    else:
        bom = 3 if data.startswith(codecs.BOM_UTF8) else 0
        encoding = "UTF-8 with BOM" if bom else "UTF-8"
        try:
            text = data[bom:].decode("utf-8")
        except UnicodeDecodeError as error:
            bad = bom + error.start
            if UTF8_MULTIBYTE.search(data, bom):
                text, encoding = data[bom:].decode("utf-8", "tejas-windows-1252"), "UTF-8 and Windows-1252 (mixed)"
                notes.append(
                    f"the file mixes encodings: read as UTF-8, and the bytes that are not UTF-8 (the first at offset "
                    f"{bad:,}) as Windows-1252"
                )
            else:
                text, encoding = data[bom:].decode("latin-1").translate(_CP1252), "Windows-1252"
                notes.append(f"read as Windows-1252: not valid UTF-8 (first bad byte at offset {bad:,})")
    head = text[:SAMPLE_CHARS]
    controls = len(CONTROL.findall(head))
    if controls > MAX_CONTROL_SHARE * len(head):
        raise TextCsvError(
            f"{name} is not a text file: {controls / len(head):.0%} of its characters are control characters "
            "such as NUL (save the data as CSV text)"
        )
    return text, encoding, notes


def _utf16_without_bom(data: bytes) -> str | None:
    """'LE' or 'BE' when the first bytes look like mostly-ASCII UTF-16 (NUL every second byte)."""
    sample = data[:SAMPLE_CHARS]
    half = len(sample) // 2
    if half < 2:
        return None
    even, odd = sample[0::2].count(0), sample[1::2].count(0)
    if odd >= 0.4 * half and even <= 0.05 * half:
        return "LE"
    if even >= 0.4 * half and odd <= 0.05 * half:
        return "BE"
    return None


def _utf16(data: bytes, order: str, name: str, why: str) -> str:
    try:
        return data.decode(f"utf-16-{order.lower()}")
    except UnicodeDecodeError as error:
        raise TextCsvError(
            f"{name} is not valid UTF-16 {order} ({why}): {error.reason} at byte {error.start:,}; save it as UTF-8"
        ) from None


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
        delimiter, width = _sniff(text, name)
    sample = [r for r in _sample_records(text, delimiter)[start_line:] if _filled(r)][:1000]
    if not sample:
        raise TextCsvError(f"{name} has no rows")
    if width is None:
        width = Counter(len(r) for r in sample).most_common(1)[0][0]
    if width < 2:
        raise TextCsvError(_one_column(name))
    header, text_col, label_col, how = _columns(sample[0], sample[1:], width, name)
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
    A guarded cell ('=x, see GUARDED) loses its ' before anything is checked (a 5,000-character text exported
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
                if row_text.startswith("'") and GUARDED.match(row_text):
                    row_text, guards = row_text[1:], 1
                if label.startswith("'") and GUARDED.match(label):
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
                if not _filled(cells):
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


def _sample_records(text: str, delimiter: str) -> list[list[str]]:
    """The records of the file's first SAMPLE_CHARS characters (the last one dropped when cut short)."""
    out = []
    try:
        out.extend(csv.reader(io.StringIO(text[:SAMPLE_CHARS], newline=""), delimiter=delimiter))
    except csv.Error:
        pass
    return out[:-1] if len(text) > SAMPLE_CHARS and len(out) > 1 else out


def _filled(cells: list[str]) -> bool:
    return not all(is_blank_text(c) for c in cells)


def _sniff(text: str, name: str) -> tuple[str, int]:
    """The delimiter that splits the first records (quotes respected) most consistently into 2+ fields."""
    best = None
    for delimiter in DELIMITERS:
        widths = [len(cells) for cells in _sample_records(text, delimiter) if _filled(cells)][:1000]
        if not widths:
            continue
        width, hits = Counter(widths).most_common(1)[0]
        if width >= 2 and (best is None or hits / len(widths) > best[0]):
            best = (hits / len(widths), delimiter, width)
    if best is None:
        raise TextCsvError(_one_column(name))
    return best[1], best[2]


def _column_kind(cell: str) -> str | None:
    key = re.sub(r"[\s_.\-]+", "", cell.strip().lower())
    if key in TEXT_NAMES or key.endswith("text"):
        return "text"
    if key in LABEL_NAMES or key.endswith(("label", "class", "category")):
        return "label"
    return None


def _columns(first: list[str], later: list[list[str]], width: int, name: str) -> tuple[bool, int, int, str]:
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


def _one_column(name: str) -> str:
    return (
        f"{name} has one column; expected 2 columns, a text and a label, separated by commas, tabs, semicolons "
        "or pipes (for one text per line, add the file as a class instead)"
    )


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
