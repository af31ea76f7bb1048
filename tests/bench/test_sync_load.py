"""bench/sync_load.py at toy size: a real `tejas serve` (embedded: SQLite + a folder), three devices of one
user, and the bench's own checks (nothing lost, nothing duplicated, each image stored once). No timing is
asserted: only that the run is whole and its checks hold."""

from __future__ import annotations

import json
import subprocess
import sys

from bench.sync_load import compare

from ..conftest import ROOT

DEVICES, CHANGES, BLOBS, SHARED = 3, 20, 5, 2


def test_sync_load_loses_and_duplicates_nothing(tmp_path):
    out = tmp_path / "sync_load.json"
    done = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "sync_load.py"), "--users", "1", "--devices-per-user", str(DEVICES),
         "--changes", str(CHANGES), "--blobs", str(BLOBS), "--shared-blobs", str(SHARED), "--rounds", "2",
         "--backends", "embedded", "--out", str(out)],
        capture_output=True, text=True, timeout=300, cwd=ROOT,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-4000:]
    report = json.loads(out.read_text())
    assert report["ok"] and report["benchmark"] == "sync_load"
    (result,) = report["results"]
    checks, totals = result["checks"], result["totals"]
    assert result["backend"] == "embedded" and result["devices"] == DEVICES
    for key in ("lost", "stale", "extra", "changed", "duplicated", "blobs_missing", "blobs_stored_twice"):
        assert checks[key] == 0, (key, checks)
    assert totals["changes_pushed"] == DEVICES * CHANGES
    # a change that loses to a later revision already stored counts as skipped, not lost
    assert totals["changes_accepted"] + totals["changes_skipped"] == DEVICES * CHANGES
    # every device ends with the user's whole record set, which has records from every device
    assert checks["records_per_device_min"] == checks["records_per_device_max"] == checks["records_expected"]
    assert checks["records_expected"] > CHANGES
    # the shared images are stored once; each device's own images once each
    assert checks["blobs_uploaded_distinct"] == SHARED + DEVICES * (BLOBS - SHARED) == checks["blobs_stored"]
    # each device downloads its sibling devices' images (those of samples still live when it pulled)
    assert 0 < totals["blobs_downloaded"] <= DEVICES * (DEVICES - 1) * (BLOBS - SHARED)
    for name in ("push", "pull", "blob_upload"):
        assert result[name]["count"] > 0 and result[name]["p50_ms"] <= result[name]["p95_ms"]
    assert report["machine"]["cpu_count"] >= 1 and report["git_commit"]


def test_the_checks_see_a_lost_a_stale_an_extra_and_an_altered_record():
    def rec(kind, id, rev, data=None, deleted=False):
        return {"kind": kind, "id": id, "project": "p", "rev": rev, "deleted": deleted, "data": data}

    expected = {
        ("project", "p"): rec("project", "p", "2", {"name": "b"}),
        ("sample", "p/a"): rec("sample", "p/a", "5", {"classId": "c"}),
        ("sample", "p/b"): rec("sample", "p/b", "3", None, deleted=True),
        ("class", "c"): rec("class", "c", "1", {"name": "cat"}),
    }
    assert compare(dict(expected), expected)["lost"] == 0
    local = dict(expected)
    del local[("class", "c")]  # lost
    local[("sample", "p/a")] = rec("sample", "p/a", "4", {"classId": "c"})  # stale
    local[("sample", "p/b")] = rec("sample", "p/b", "3", {"classId": "c"})  # same rev, other state
    local[("class", "x")] = rec("class", "x", "1", {"name": "dog"})  # extra
    result = compare(local, expected)
    assert (result["lost"], result["stale"], result["extra"], result["changed"]) == (1, 1, 1, 1)
