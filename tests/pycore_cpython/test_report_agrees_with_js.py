"""One prediction report format (pwa/py/tejas/schemas/report.json) and one spreadsheet guard (rules.json
spreadsheet_cell): the app's writer (features/predict/report.js, run in Node) and the core's
(tejas.predictions: tejas predict, the server's batches) write byte-identical CSV and equal JSON, both valid
against the schema, for the same predictions; file and class names and errors begin with whatever a
spreadsheet would run, or a guard, or a plain number; probabilities include the exact ties where rounding
rules differ (1/128 -> 0.007812)."""

from __future__ import annotations

import io
import json

import jsonschema
import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from tejas.predictions import REPORT_SCHEMA, probability_text, report_json, write_csv
from tejas.rules import RULES, guard_cell, is_guarded

from .node_side import NodeSide
from .test_rules_agree_with_js import CASES

VALIDATOR = jsonschema.Draft202012Validator(REPORT_SCHEMA)


@pytest.fixture(scope="module")
def js():
    """The value of the app's answer for `kind` (an error fails the test)."""
    node = NodeSide("js_report.mjs")

    def value(kind: str, *args):
        reply = node(kind, *args)
        assert "error" not in reply, reply["error"]
        return reply["value"]

    yield value
    node.close()


CELL = RULES["spreadsheet_cell"]
# Beginnings a spreadsheet runs, guards (one or more), plain numbers and near-numbers, CSV's own characters.
LEADING = [*CELL["formula_starts"], "", "'", "''", "'=", "''-", "-1", "+2.5", "-.5e3", "+1e", "-1 ", "--1", "-١",
           " =", "\n=", '"', ",", "=HYPERLINK(", "@SUM(", "+44 20"]  # fmt: skip
TAIL = "=+-@'\t\r\n\",.;e0123456789 abcé\u200b\ufeff\U0001f600"
texts = st.builds(
    lambda lead, tail: lead + tail,
    st.sampled_from(LEADING),
    st.one_of(
        st.text(alphabet=TAIL, max_size=8), st.text(alphabet=st.characters(exclude_categories=["Cs"]), max_size=8)
    ),
)
# Exact ties of 6-decimal rounding are odd multiples of 1/128; the rest as a float32 softmax gives them.
TIES = [k / 128 for k in range(1, 128, 2)]
probabilities = st.one_of(st.sampled_from([0.0, 1.0, 0.5, *TIES]), st.floats(0, 1, width=32), st.floats(0, 1))
sha256 = st.one_of(st.none(), st.text(alphabet="0123456789abcdef", min_size=64, max_size=64))


@st.composite
def reports(draw):
    """(model, top_k, rows as the core writes them)."""
    classes = draw(st.lists(texts, min_size=1, max_size=5))
    top_k = draw(st.integers(1, len(classes)))
    rows = []
    for _ in range(draw(st.integers(0, 6))):
        error = draw(st.one_of(st.none(), texts))
        count = 0 if error is not None else draw(st.integers(0, top_k))
        top = [{"class": draw(st.sampled_from(classes)), "probability": draw(probabilities)} for _ in range(count)]
        rows.append({"file": draw(texts), "sha256": draw(sha256), "top": top, "error": error})
    return {"classes": classes, "architecture": "resnet18"}, top_k, rows


def app_rows(rows: list[dict]) -> list[dict]:
    """The same rows as predictMany gives them to the app's writer (a source index; top entries by name)."""
    return [
        {**row, "index": i, "top": [{"name": t["class"], "probability": t["probability"]} for t in row["top"]]}
        for i, row in enumerate(rows)
    ]


# Names a spreadsheet would run, numbers that stay numbers, a name already guarded, a tie, RFC 4180's characters.
HOSTILE = (
    {"classes": ["-1", "+1"]},
    2,
    [
        {"file": "=cmd.png", "sha256": None, "error": None,
         "top": [{"class": "-1", "probability": 0.75}, {"class": "+1", "probability": 1 / 128}]},
        {"file": "'=x.png", "sha256": "0" * 64, "top": [], "error": "@not an image"},
        {"file": 'a,"b"\nc.png', "sha256": None, "top": [{"class": "+1", "probability": 0.0234375}], "error": None},
    ],
)  # fmt: skip


@CASES
@given(report=reports())
@example(report=HOSTILE)
def test_report_csv_and_json_agree(js, report):
    model, top_k, rows = report
    ours = io.StringIO(newline="")
    write_csv(rows, top_k, ours)
    theirs = js("csv", {"topK": top_k, "rows": app_rows(rows)})
    assert theirs.encode("utf-8") == ours.getvalue().encode("utf-8")

    ours_json = json.loads(report_json(rows, model, top_k))
    theirs_json = json.loads(js("json", {"model": model, "topK": top_k, "rows": app_rows(rows)}))
    VALIDATOR.validate(ours_json)
    VALIDATOR.validate(theirs_json)
    assert theirs_json == ours_json


@CASES
@given(p=st.one_of(probabilities, st.floats(-1e9, 1e9), st.sampled_from([-0.0, -1e-9, 0.9999995, 123.4567895])))
@example(p=1 / 128)  # toFixed rounds this tie up (0.007813); the format says half to even (0.007812)
@example(p=0.0234375)
def test_probability_text_agrees(js, p):
    assert js("probability", p) == probability_text(p)


@CASES
@given(value=st.one_of(texts, st.text(alphabet=st.characters(exclude_categories=["Cs"]))))
@example(value="-1")
@example(value="-1-1")
@example(value="''=x")
@example(value="'")
def test_spreadsheet_guard_agrees(js, value):
    assert js("guard", value) == guard_cell(value)
    assert js("isGuarded", value) == is_guarded(value)


def test_the_guard_keeps_numbers_and_guards_formulas_and_guards():
    """The rule itself, as rules.json words it: the report and the text export write these cells alike."""
    cells = {"-1": "-1", "+2.5": "+2.5", "-.5e3": "-.5e3", "-1 ": "'-1 ", "--1": "'--1", "-١": "'-١", "=1": "'=1",
             "@x": "'@x", "\tx": "'\tx", "'=x": "''=x", "''-1": "'''-1", "'a": "'a", "a=b": "a=b"}  # fmt: skip
    assert {cell: guard_cell(cell) for cell in cells} == cells
