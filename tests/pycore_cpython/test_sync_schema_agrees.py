"""The sync record format has one definition, pwa/py/tejas/schemas/sync.json, and both sides read it the same
way: revisions the app's clock (pwa/clock.js) parses are the ones the server's models accept, the revisions it
writes sort like their clocks, and every change the app makes of a stored record (features/sync/records.js)
passes the server's Change model and the JSON Schema itself. Checked on thousands of generated inputs against
the app's JS run in Node (one process, JSON lines, like test_rules_agree_with_js.py)."""

from __future__ import annotations

import json
import re

import jsonschema
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from sync_server import schemas
from tejas.rules import validate_class_name

from ..conftest import ROOT
from .node_side import NodeSide

CASES = settings(
    max_examples=1000, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow], database=None
)
SCHEMA = json.loads((ROOT / "pwa" / "py" / "tejas" / "schemas" / "sync.json").read_text(encoding="utf-8"))
VALIDATOR = jsonschema.Draft202012Validator(SCHEMA)


@pytest.fixture(scope="module")
def js():
    node = NodeSide("js_sync.mjs")
    yield node
    node.close()


def server_accepts(change: dict) -> str | None:
    """None when the server's Change model takes `change`, else its complaint."""
    try:
        schemas.Change.model_validate(change)
    except ValidationError as error:
        return str(error)
    return None


def change_with(rev: str) -> dict:
    return {"mutation": 1, "kind": "head", "id": "p", "project": "p", "rev": rev, "data": {"modelId": None}}


def test_both_sides_read_the_same_constants(js):
    constants = js("constants")["value"]
    assert constants["kinds"] == list(schemas.KINDS) == SCHEMA["$defs"]["kind"]["enum"]
    assert constants["maxDataBytes"] == schemas.MAX_RECORD_BYTES == SCHEMA["max_record_bytes"]
    # the server's change is the schema's: the same fields, the same ones required
    fields = schemas.Change.model_fields
    assert set(fields) == set(SCHEMA["properties"])
    assert {name for name, field in fields.items() if field.is_required()} == set(SCHEMA["required"])


devices = st.from_regex(re.compile(SCHEMA["$defs"]["device"]["pattern"]), fullmatch=True)
clocks = st.fixed_dictionaries(
    {
        "ms": st.integers(0, 10 ** SCHEMA["revision"]["ms_digits"] - 1),
        "counter": st.integers(0, 10 ** SCHEMA["revision"]["counter_digits"] - 1),
    }
)
# Near-revisions: the characters where regular-expression engines differ (Unicode digits, \d, a final newline).
TRICKY = "0123456789-_aZ\n\r \t\u0660\u0661\u06f1\u0967\uff11\U0001d7ce\xb9\u2212./:é"
revisions = st.one_of(
    st.builds(lambda c, d: f"{c['ms']:015d}-{c['counter']:06d}-{d}", clocks, devices),
    st.builds(
        lambda c, d, tail: f"{c['ms']:015d}-{c['counter']:06d}-{d}{tail}", clocks, devices, st.text(TRICKY, max_size=2)
    ),
    st.builds(
        lambda ms, counter, d: f"{ms}-{counter}-{d}",
        st.text(TRICKY, min_size=14, max_size=16),
        st.text(TRICKY, min_size=5, max_size=7),
        st.text(TRICKY, min_size=0, max_size=66),
    ),
    st.text(TRICKY, max_size=90),
)


@CASES
@given(rev=revisions)
@example(rev="000000000001000-000001-dev\n")
@example(rev="000000000001000-00000\u0661-dev")
@example(rev="000000000001000-000001-" + "d" * 64)
@example(rev="000000000001000-000001-" + "d" * 65)
@example(rev="000000000001000-000001-")
def test_the_app_parses_exactly_the_revisions_the_server_accepts(js, rev):
    parsed = js("parseRev", rev)
    refused = server_accepts(change_with(rev))
    assert ("value" in parsed) == (refused is None), (parsed, refused)
    # Python's jsonschema matches `pattern` with re.search, whose `$` also matches before a final newline
    # (ECMA-262, the schema's dialect, the app and the server's engine do not): only there may it differ.
    assert VALIDATOR.is_valid(change_with(rev)) == (refused is None) or rev.endswith("\n")
    if refused is None:
        assert re.fullmatch(schemas.REV, rev)
        ms, counter, device = rev.split("-", 2)
        assert parsed["value"] == {"ms": int(ms), "counter": int(counter), "device": device}


@CASES
@given(a=clocks, b=clocks, device_a=devices, device_b=devices)
def test_written_revisions_are_valid_and_sort_like_their_clocks(js, a, b, device_a, device_b):
    rev_a, rev_b = js("formatRev", a, device_a)["value"], js("formatRev", b, device_b)["value"]
    assert server_accepts(change_with(rev_a)) is None
    assert js("parseRev", rev_a)["value"] == {**a, "device": device_a}
    # revisions compare as strings: that order is the clocks' (then the devices')
    assert (rev_a < rev_b) == ((a["ms"], a["counter"], device_a) < (b["ms"], b["counter"], device_b))


# What the app stores: ids it makes (UUIDs), names its own rules let through, sha256 content ids.
ids = st.uuids().map(str)
sha256s = st.binary(min_size=32, max_size=32).map(bytes.hex)
class_names = st.text(max_size=12).filter(lambda name: validate_class_name(name) is None)
times = st.datetimes().map(lambda t: t.isoformat(timespec="milliseconds") + "Z")


def _record(kind: str) -> st.SearchStrategy:
    if kind in ("project", "head"):
        return st.fixed_dictionaries(
            {"id": ids, "name": class_names, "created": times, "kind": st.sampled_from(["image", "text"])},
            optional={"modelId": st.one_of(st.none(), ids)},
        )
    if kind == "class":
        return st.fixed_dictionaries(
            {"id": ids, "projectId": ids, "name": class_names, "order": st.integers(0, 1000), "created": times}
        )
    if kind == "sample":
        return st.fixed_dictionaries(
            {
                "projectId": ids,
                "contentId": sha256s,
                "classId": ids,
                "name": st.text(max_size=20),
                "source": st.sampled_from(["upload", "webcam", "drawing", "correction", "zip"]),
                "added": times,
                "format": st.sampled_from(["png", "jpeg", "webp", "text"]),
                "width": st.integers(1, 8000),
                "height": st.integers(1, 8000),
                "size": st.integers(1, 2**31),
            }
        )
    return st.fixed_dictionaries(  # a model
        {
            "id": ids,
            "projectId": ids,
            "created": times,
            "mode": st.sampled_from(["head", "last_block"]),
            "classes": st.lists(st.fixed_dictionaries({"id": ids, "name": class_names}), max_size=4),
            "parameters": st.lists(st.floats(width=32, allow_nan=False, allow_infinity=False), max_size=20),
        }
    )


records = st.sampled_from(schemas.KINDS).flatmap(lambda kind: st.tuples(st.just(kind), _record(kind)))


@CASES
@given(kind_record=records, mutation=st.integers(1, 2**53 - 1), clock=clocks, device=devices)
def test_every_change_the_app_makes_passes_the_server_and_the_schema(js, kind_record, mutation, clock, device):
    kind, record = kind_record
    change = js("change", kind, record, {"mutation": mutation, "clock": clock, "device": device})["value"]
    assert server_accepts(change) is None
    VALIDATOR.validate(change)
    tombstone = {**change, "deleted": True, "data": None}
    assert server_accepts(tombstone) is None
    VALIDATOR.validate(tombstone)
