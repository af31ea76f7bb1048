"""The rules the core shares with the browser, read from schemas/rules.json (which pwa/features/rules.js
imports too): class names, texts, image sizes, the spreadsheet guard of every CSV cell written, and how
refusals quote texts and write numbers, so both word them alike."""

from __future__ import annotations

import json
import re
from importlib import resources
from numbers import Integral, Real

__all__ = [
    "BLANK_TEXT",
    "MAX_ASPECT_RATIO",
    "MAX_IMAGE_FRAMES",
    "MAX_IMAGE_PIXELS",
    "MAX_TEXT_CHARACTERS",
    "RULES",
    "format_float",
    "format_number",
    "guard_cell",
    "image_size_problem",
    "is_blank_text",
    "is_exact_integer",
    "is_guarded",
    "megapixels",
    "message",
    "quote",
    "resize_problem",
    "resized_size",
    "text_problem",
    "unguard_cell",
    "validate_class_name",
]

RULES: dict = json.loads(resources.files("tejas").joinpath("schemas", "rules.json").read_text(encoding="utf-8"))


def code_points(ranges: list[str]) -> frozenset[int]:
    """The code points of ["0000-001F", "007F", ...]."""
    points: set[int] = set()
    for item in ranges:
        first, _, last = item.partition("-")
        points.update(range(int(first, 16), int(last or first, 16) + 1))
    return frozenset(points)


MAX_EXACT_INTEGER: int = RULES["max_exact_integer"]
_ESCAPE = code_points(RULES["quote"]["escape"])
_NAMED = {"\\": "\\\\", "\n": "\\n", "\r": "\\r", "\t": "\\t"}
_NAMES = RULES["class_name"]
_BLANK = code_points(_NAMES["blank"])
_FORBIDDEN = code_points(_NAMES["forbidden"]) | {ord(ch) for ch in _NAMES["forbidden_chars"]}
_RESERVED = frozenset(_NAMES["reserved"])


def _char_class(ranges: list[str]) -> str:
    """The code points of ["0009-000D", "0020", ...] as the inside of a regular expression's [...]."""
    parts = []
    for item in ranges:
        first, _, last = item.partition("-")
        parts.append(re.escape(chr(int(first, 16))) + (f"-{re.escape(chr(int(last, 16)))}" if last else ""))
    return "".join(parts)


# A character that is not blank: a text without one is blank (a regular expression, not a loop: 100,000 rows).
_NOT_BLANK = re.compile(f"[^{_char_class(_NAMES['blank'])}]")
BLANK_TEXT: str = RULES["text"]["messages"]["blank"]
MAX_TEXT_CHARACTERS: int = RULES["text"]["max_characters"]
_IMAGE = RULES["image"]
MAX_IMAGE_PIXELS: int = _IMAGE["max_pixels"]
MAX_ASPECT_RATIO: int = _IMAGE["max_aspect_ratio"]
MAX_IMAGE_FRAMES: int = _IMAGE["max_frames"]
_CELL = RULES["spreadsheet_cell"]
_GUARD: str = _CELL["guard"]
_FORMULA_STARTS = tuple(_CELL["formula_starts"])
_PLAIN_NUMBER = re.compile(_CELL["plain_number"])
_ASCII_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")


def quote(text: str) -> str:
    """`text` in quotes as repr() writes it, escaping exactly the table's code points."""
    mark = '"' if "'" in text and '"' not in text else "'"
    out = []
    for ch in text:
        code = ord(ch)
        if ch == mark:
            out.append("\\" + ch)
        elif ch in _NAMED:
            out.append(_NAMED[ch])
        elif code in _ESCAPE:
            out.append(f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}")
        else:
            out.append(ch)
    return mark + "".join(out) + mark


def format_float(value) -> str:
    """A number as repr(float(value)) writes it: 1.0, 0.2, 1e-07, nan, inf."""
    return repr(float(value)) if isinstance(value, Real) and not isinstance(value, bool) else str(value)


def is_exact_integer(value) -> bool:
    """An integer a JS number holds exactly (|value| <= 2**53 - 1), not a bool."""
    return isinstance(value, Integral) and not isinstance(value, bool) and abs(value) <= MAX_EXACT_INTEGER


def format_number(value) -> str:
    """An exact integer digit by digit (12), any other number as format_float (2**60 as 1.152921504606847e+18)."""
    return str(int(value)) if is_exact_integer(value) else format_float(value)


def message(template: str, **values) -> str:
    """The template with its {placeholders} filled (nothing else in it is special)."""
    return re.sub(r"\{(\w+)\}", lambda m: str(values[m[1]]), template)


def is_blank_text(text: str) -> bool:
    """Whether `text` is blank (rules.json text.$blank): empty, or only White_Space and invisible characters."""
    return _NOT_BLANK.search(text) is None


def text_problem(text: str, max_chars: int = MAX_TEXT_CHARACTERS) -> str | None:
    """Why `text` cannot be a text sample (rules.json text: NUL, blank, too long in code points), or None."""
    messages = RULES["text"]["messages"]
    if "\0" in text:
        return messages["nul"]
    if is_blank_text(text):
        return BLANK_TEXT
    if len(text) > max_chars:
        return message(messages["too_long"], count=f"{len(text):,}", max=f"{max_chars:,}")
    return None


def _strip_blank(text: str) -> str:
    start, end = 0, len(text)
    while start < end and ord(text[start]) in _BLANK:
        start += 1
    while end > start and ord(text[end - 1]) in _BLANK:
        end -= 1
    return text[start:end]


def validate_class_name(name: str, max_chars: int | None = None) -> str | None:
    """Why `name` cannot be a class (a folder name on every OS), or None when it can."""
    messages = _NAMES["messages"]
    max_chars = _NAMES["max_chars"] if max_chars is None else max_chars
    if all(ord(ch) in _BLANK for ch in name):
        return messages["empty"]
    if set(name) == {"."}:
        return message(messages["dots"], name=quote(name))
    if len(name) > max_chars:
        return message(messages["too_long"], max_chars=max_chars)
    bad = min((ord(ch) for ch in name if ord(ch) in _FORBIDDEN), default=None)
    if bad is not None:
        return message(messages["forbidden"], name=quote(name), char=quote(chr(bad)))
    if _strip_blank(name.split(".")[0]).translate(_ASCII_LOWER) in _RESERVED:
        return message(messages["reserved"], name=quote(name))
    if name[-1] in _NAMES["bad_last"]:
        return message(messages["bad_last"], name=quote(name))
    return None


def megapixels(max_pixels: int) -> str:
    """A pixel limit in megapixels as messages write it: 64, 0.5."""
    mp = max_pixels / 1e6
    return str(int(mp)) if mp == int(mp) else format_float(mp)


def image_size_problem(
    width: int,
    height: int,
    max_pixels: int = MAX_IMAGE_PIXELS,
    max_aspect_ratio: int | None = MAX_ASPECT_RATIO,
) -> str | None:
    """Why a width × height canvas costs too much to decode and resize (rules.json image), or None.
    `max_aspect_ratio=None` checks the pixels only (an image that is stored, never resized)."""
    messages = _IMAGE["messages"]
    if width * height > max_pixels:
        return message(messages["too_large"], width=width, height=height, megapixels=megapixels(max_pixels))
    if max_aspect_ratio is not None and max(width, height) > max_aspect_ratio * min(width, height):
        return message(messages["too_narrow"], width=width, height=height, ratio=format_number(max_aspect_ratio))
    return None


def resized_size(width: int, height: int, shorter_side: int) -> tuple[int, int]:
    """torchvision's resize of the shorter side to `shorter_side`: the long side scales alike, truncated."""
    if width <= height:
        return shorter_side, int(shorter_side * height / width)
    return int(shorter_side * width / height), shorter_side


def resize_problem(width: int, height: int, shorter_side: int, max_pixels: int = MAX_IMAGE_PIXELS) -> str | None:
    """Why resizing a width × height image to a `shorter_side` px shorter side would cost too much, or None."""
    resized_width, resized_height = resized_size(width, height, shorter_side)
    if resized_width * resized_height <= max_pixels:
        return None
    return message(
        _IMAGE["messages"]["resized_too_large"],
        width=width,
        height=height,
        shorter=shorter_side,
        resized_width=resized_width,
        resized_height=resized_height,
        megapixels=megapixels(max_pixels),
    )


def is_guarded(cell: str) -> bool:
    """Whether `cell` is already guarded (rules.json spreadsheet_cell): one ' or more, then a formula start."""
    rest = cell.lstrip(_GUARD)
    return len(rest) < len(cell) and rest.startswith(_FORMULA_STARTS)


def guard_cell(value) -> str:
    """A CSV cell a spreadsheet shows as text (rules.json spreadsheet_cell): one it would run as a formula
    (=, +, -, @, tab or CR first, but not a plain number such as -1 or +2.5) or one already guarded
    ('=..., ''-x) gets a leading '."""
    text = "" if value is None else str(value)
    if text.startswith(_FORMULA_STARTS) and not _PLAIN_NUMBER.fullmatch(text) or is_guarded(text):
        return _GUARD + text
    return text


def unguard_cell(cell: str) -> str:
    """A cell as it was before guard_cell: one ' less before a formula start ('=x -> =x, ''=x -> '=x)."""
    return cell[len(_GUARD) :] if is_guarded(cell) else cell
