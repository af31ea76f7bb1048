"""The rules that exist in both languages give the same answers: class-name validation, blank texts, the
stratified split and the metrics, compared on thousands of generated inputs against the browser's JS run in Node.

One Node process answers every case (JSON lines over stdin/stdout), so a few thousand cases take seconds.
Any difference fails, messages included; metrics must agree within 1e-12.
"""

from __future__ import annotations

import math

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from tejas.dataset import validate_class_name
from tejas.metrics import classification_report
from tejas.rules import BLANK_TEXT, RULES, code_points, is_blank_text, text_problem
from tejas.splits import stratified_split

from .node_side import NodeSide

CASES = settings(
    max_examples=2000, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow], database=None
)


@pytest.fixture(scope="module")
def js():
    rules = NodeSide("js_rules.mjs")
    yield rules
    rules.close()


def python(function, *args):
    try:
        return {"value": function(*args)}
    except ValueError as error:
        return {"error": str(error)}


# Characters where Python and JS (and file systems) differ: every kind of blank, the BOM, controls,
# zero-width and bidi marks, the characters Windows forbids, quotes, dots, and the reserved stems' letters.
TRICKY = (
    "\t\n\x0b\x0c\r\x1c\x1d\x1e\x1f \x7f\x80\x85\x9f\xa0\xad\u1680\u180e\u2000\u200a\u200b\u200c\u200d\u200e\u200f"
    "\u2028\u2029\u202a\u202e\u202f\u205f\u2060\u2066\u2069\u3000\ufeff\ufffe\uffff"
    "\x00\x01\x1b<>:\"/\\|?*'.-_aconCONprnPRNauxAUXnulNULcomCOMlptLPT19¹²³ııİKé\u0301\U0001f600"
)
reserved_like = st.builds(
    lambda stem, sep, tail: stem + sep + tail,
    st.sampled_from(["con", "CON", "Prn", "aux", "nul", "com1", "COM9", "lpt5", "com0", "com¹", "lpt³", "conn"]),
    st.sampled_from(["", ".", " ", " .", "\u3000", "\ufeff", "\x85", "\xa0", ". "]),
    st.text(alphabet=TRICKY, max_size=4),
)
names = st.one_of(
    st.text(alphabet=st.characters(exclude_categories=["Cs"]), max_size=12),
    st.text(alphabet=TRICKY, max_size=8),
    reserved_like,
    st.text(alphabet=st.characters(exclude_categories=["Cs"]), min_size=95, max_size=105),
    st.text(alphabet=TRICKY, min_size=98, max_size=102),
)


@CASES
@given(name=names)
@example(name="\ufeff")  # the disagreements issue 11 found, checked first
@example(name="\x1c")
@example(name="con\x85")
@example(name="a\ud800b")  # a lone surrogate: JSON carries it both ways
@example(name="\ufeffCOM\xb9 .x")
def test_class_name_rules_agree(js, name):
    assert js("name", name) == python(validate_class_name, name)


# every character rules.json calls blank (class_name.blank, which text.$blank uses too)
BLANK = "".join(chr(c) for c in sorted(code_points(RULES["class_name"]["blank"])))
texts = st.one_of(
    st.text(alphabet=st.sampled_from(BLANK), max_size=12),  # blank, by every character of the list
    st.text(alphabet=TRICKY, max_size=8),
    st.builds(str.__add__, st.text(alphabet=st.sampled_from(BLANK), max_size=4), st.text(alphabet=TRICKY, max_size=2)),
    st.text(alphabet=st.characters(), max_size=6),  # surrogates too (JSON carries them)
)


@CASES
@given(text=texts)
@example(text="\ufeff")  # String.prototype.trim and str.strip disagree on each of these
@example(text="\u180e")
@example(text="\x85")
@example(text="\x1c\x1f")
@example(text="\u200b")
@example(text="")
@example(text="\ud800")
def test_blank_text_rule_agrees(js, text):
    assert js("blankText", text) == {"value": BLANK_TEXT if is_blank_text(text) else None}


def server_refuses_the_name(name: str) -> bool:
    """Whether the sync server refuses a project record named `name` (its Change model)."""
    from pydantic import ValidationError

    from sync_server.schemas import Change

    project = "p" * 8
    change = {"mutation": 1, "kind": "project", "id": project, "project": project,
              "rev": "000000000001000-000001-dev", "data": {"name": name}}  # fmt: skip
    try:
        Change.model_validate(change)
    except ValidationError:
        return True
    return False


@CASES
@given(name=texts)
@example(name="\x1c")  # str.strip() strips U+001C..U+001F and U+0085, String.prototype.trim does not
@example(name="\x1f\x85")
@example(name="\u200b")  # invisible: blank to the app's rule, kept by str.strip()
@example(name="\ufeff")
@example(name=" a ")
def test_the_server_refuses_a_project_name_exactly_when_the_app_does(js, name):
    """A project the app created (features/dataset/projects.js: isBlankName) is never refused on every push
    for its name; before, the server judged names by str.strip() and refused a project named "\x1c"."""
    if any(0xD800 <= ord(ch) <= 0xDFFF for ch in name):
        return  # not Unicode: the server refuses any record holding it (tests/sync_server/test_input_5xx.py)
    assert js("blankName", name) == {"value": server_refuses_the_name(name)}
    assert server_refuses_the_name(name) == is_blank_text(name)


@CASES
@given(text=texts)
@example(text="😀" * 5000)  # 10,000 UTF-16 units, 5,000 code points: within the limit on both sides
@example(text="😀" * 5001)
@example(text="x" * 5001)
@example(text="a\x00b")
@example(text="\x00")
def test_text_sample_rules_agree(js, text):
    assert js("textProblem", text) == {"value": text_problem(text)}


def test_every_blank_character_is_blank_on_both_sides(js):
    for ch in BLANK:
        assert js("blankText", ch) == {"value": BLANK_TEXT}, ascii(ch)
    assert js("blankText", BLANK) == {"value": BLANK_TEXT} and is_blank_text(BLANK)


ids = st.text(alphabet="abcé😀:0", max_size=3)
shares = st.one_of(
    st.sampled_from([0.0, -0.0, 0.2, 0.5, 0.25, 1 / 3, 0.999, 1.0, 1.5, -0.1, 1e-7, 2e16]),
    st.sampled_from([math.nan, math.inf, -math.inf]),
    st.floats(allow_nan=True, allow_infinity=True),
    st.floats(min_value=0, max_value=1),
)
# No integral float below 2**53 (JSON carries no int/float difference: Python's 3.0 arrives in JS as 3).
seeds = st.one_of(
    st.integers(-5, 5),
    st.integers(-(2**80), 2**80),
    st.sampled_from([2**53 - 1, -(2**53 - 1), 2**53, -(2**53), 0.5, -1.5, 1e300, math.nan, math.inf]),
)


@st.composite
def splits(draw):
    pairs = draw(st.lists(st.tuples(ids, st.sampled_from(["x", "y", "z", 0, 1])), max_size=30))
    sample_ids, labels = [i for i, _ in pairs], [label for _, label in pairs]
    if draw(st.integers(0, 20)) == 0:  # sometimes the lengths differ
        labels = labels[:-1] if labels and draw(st.booleans()) else [*labels, "x"]
    return sample_ids, labels, draw(shares), draw(seeds)


@CASES
@given(case=splits())
@example(case=(["a", "b", "c"], ["x", "x", "x"], 1.0, 0))
@example(case=(["a", "a", "b"], ["x", "x", "x"], 0.5, 0))
def test_split_agrees(js, case):
    ours = python(lambda *a: dict(zip(("train", "validation"), stratified_split(*a), strict=True)), *case)
    assert js("split", *case) == ours


@st.composite
def metric_inputs(draw):
    n = draw(st.integers(0, 6))
    index = st.integers(0, n - 1) if n else st.just(0)
    if draw(st.integers(0, 10)) == 0:  # sometimes out of range, or no integer
        index = st.one_of(st.integers(-2, n + 1), st.sampled_from([0.5, -0.5, 1e20 + 0.5, math.nan, math.inf]))
    pairs = draw(st.lists(st.tuples(index, index), max_size=40))
    y_true, y_pred = [t for t, _ in pairs], [p for _, p in pairs]
    if draw(st.integers(0, 20)) == 0:
        y_pred = y_pred[:-1] if y_pred else [0]
    sample_ids = [f"s{i}" for i in range(len(y_true))] if draw(st.booleans()) else None
    return y_true, y_pred, [f"c{i}" for i in range(n)], sample_ids


def _close(a, b) -> bool:
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_close(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_close(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, float | int) and isinstance(b, float | int) and not isinstance(a, bool):
        return abs(a - b) <= 1e-12
    return a == b


@CASES
@given(case=metric_inputs())
def test_metrics_agree(js, case):
    theirs, ours = js("metrics", *case), python(classification_report, *case)
    assert _close(theirs, ours), f"JS {theirs}\n!= Python {ours}"
