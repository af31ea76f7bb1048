"""The shared rules table (tejas/schemas/rules.json) as the core applies it: the decisions issue 11 found
the two languages disagreeing on, quoting and number formatting. tests/pycore_cpython/
test_rules_agree_with_js.py compares the same functions with the browser's on generated inputs."""

from __future__ import annotations

import math

from tejas.dataset import validate_class_name
from tejas.limits import DEFAULT_LIMITS
from tejas.rules import RULES, format_float, format_number, quote
from tejas.splits import stratified_split

from .support import raises


def test_table_loads_with_the_package():
    assert RULES["version"] == 1 and RULES["class_name"]["max_chars"] == DEFAULT_LIMITS.max_name_chars == 100


def test_blank_and_invisible_names_are_empty():
    for name in ["", " ", "\t", "\ufeff", "\x1c", "\x85", "\u3000", "\u200b\u200d", "\xa0 \u2060"]:
        assert validate_class_name(name) == "class name is empty", name


def test_controls_and_windows_characters_are_refused_by_lowest_code_point():
    assert validate_class_name("a\x1cb") == "class name 'a\\x1cb' contains '\\x1c' (not allowed in folder names)"
    assert validate_class_name("a?b<") == "class name 'a?b<' contains '<' (not allowed in folder names)"
    assert validate_class_name("a\ud800") == "class name 'a\\ud800' contains '\\ud800' (not allowed in folder names)"


def test_reserved_names_ignore_blank_ends_and_ascii_case():
    for name in ["CON", "con.txt", "Lpt9", "com0", "COM¹", "con\x85", "\ufeffnul", "conin$", "aux .tar"]:
        assert validate_class_name(name) == f"class name {quote(name)} is reserved on Windows", name
    for name in ["conn", "com10", "icon", "ſon"]:  # ſ lowercases to s only outside ASCII rules
        assert validate_class_name(name) is None, name


def test_valid_names():
    for name in ["cat", "it's", "émigré", "a\u200bb", "x" * 100, "e\u0301", "😀", "a.b", ".hidden"]:
        assert validate_class_name(name) is None, name
    assert validate_class_name("x" * 101) == "class name is longer than 100 characters"


def test_quote_is_repr_with_the_tables_escapes():
    for text in ["plain", "it's", 'say "hi"', "both ' and \"", "back\\slash", "tab\tnew\nline\r", "\x00\x7f\x9f"]:
        assert quote(text) == repr(text), text
    assert quote("nbsp\xa0bom\ufeffzw\u200b") == "'nbsp\\xa0bom\\ufeffzw\\u200b'"
    assert quote("tag\U000e0041") == "'tag\\U000e0041'"
    assert quote("émigré 😀 \u0301") == "'émigré 😀 \u0301'"  # printable: as is


def test_numbers_are_written_as_python_writes_floats():
    for x in [0.0, -0.0, 0.2, 1.0, 1 / 3, 1e-4, 1e-5, 1e15, 1e16, 123456789.125, 2.5e-300, 1.7976931348623157e308]:
        assert format_float(x) == repr(x)
    assert [format_float(x) for x in (math.nan, math.inf, -math.inf, 1)] == ["nan", "inf", "-inf", "1.0"]
    assert [format_number(x) for x in (12, -3, 2**53 - 1, 2**53, 0.5)] == [
        "12",
        "-3",
        "9007199254740991",
        "9007199254740992.0",
        "0.5",
    ]


def test_split_refusals():
    with raises(ValueError, match="sample ids must be unique: 'a' appears more than once"):
        stratified_split(["a", "b", "a"], ["x", "x", "x"])
    with raises(ValueError, match=r"validation share must be in \[0, 1\), got nan"):
        stratified_split(["a"], ["x"], math.nan)
    with raises(ValueError, match="seed must be an integer between -9007199254740991 and 9007199254740991, got 0.5"):
        stratified_split(["a"], ["x"], 0.2, 0.5)
    with raises(ValueError, match=r"got 9007199254740992.0"):
        stratified_split(["a"], ["x"], 0.2, 2**53)
