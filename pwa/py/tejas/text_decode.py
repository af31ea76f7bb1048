"""The bytes of a text file as text: refuses what is not text (images, archives, Office files, UTF-32, mostly
control characters) and works out the encoding (UTF-8 with or without BOM, UTF-16 with or without BOM,
Windows-1252, or UTF-8 mixed with Windows-1252), saying in notes what it assumed. Used by tejas.text_csv."""

from __future__ import annotations

import codecs
import re

__all__ = ["SAMPLE_CHARS", "TextCsvError", "decode_text"]

SAMPLE_CHARS = 1 << 16  # what the encoding, delimiter, header and columns are worked out from
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

# Windows-1252 as browsers decode it (WHATWG): the five bytes it leaves undefined become C1 controls.
_CP1252 = {b: (bytes([b]).decode("cp1252", "ignore") or chr(b)) for b in range(0x80, 0xA0)}


def _cp1252_fallback(error: UnicodeDecodeError) -> tuple[str, int]:
    bad = error.object[error.start : error.end]
    return "".join(_CP1252.get(b, chr(b)) for b in bad), error.end


codecs.register_error("tejas-windows-1252", _cp1252_fallback)


class TextCsvError(ValueError):
    """A file refused whole; the message names the file and what to do."""


def decode_text(data: bytes, name: str) -> tuple[str, str, list[str]]:
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
