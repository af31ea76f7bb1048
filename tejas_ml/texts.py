"""What the server accepts as a text sample's bytes (docs/sync.md): UTF-8, then the rules the app and the
core apply (tejas.rules.text_problem, from rules.json: no NUL, not blank, at most MAX_TEXT_CHARACTERS
Unicode code points), refused in their words."""

from __future__ import annotations

from tejas.rules import BLANK_TEXT, MAX_TEXT_CHARACTERS, text_problem

MAX_TEXT_BYTES = 4 * MAX_TEXT_CHARACTERS  # a code point takes at most 4 bytes in UTF-8


class TextError(ValueError):
    """The bytes are not an acceptable text; the message says why."""


def check_text(data: bytes) -> str:
    """The text `data` holds; TextError naming the problem when it is not an acceptable text sample."""
    if not data:
        raise TextError(BLANK_TEXT)
    if len(data) > MAX_TEXT_BYTES:
        raise TextError(f"{len(data):,} bytes is more than {MAX_TEXT_CHARACTERS:,} characters can take")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise TextError(f"not UTF-8 (byte {exc.start} is {data[exc.start]:#04x})") from None
    problem = text_problem(text)
    if problem:
        raise TextError(problem)
    return text
