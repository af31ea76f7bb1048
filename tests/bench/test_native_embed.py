"""bench/native_embed.py runs on exported artifacts and writes the JSON later benchmarks compare to."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from ..conftest import ROOT

pytestmark = pytest.mark.slow


def test_writes_a_row_per_runtime_thread_and_batch(resnet18_random, tmp_path):
    out = tmp_path / "native.json"
    command = [
        sys.executable,
        str(ROOT / "bench" / "native_embed.py"),
        "--artifacts",
        str(resnet18_random),
        "--seconds",
        "0.1",
        "--out",
        str(out),
    ]
    result = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    report = json.loads(out.read_text())
    assert report["machine"]["cpu_count"] >= 1
    rows = {(r["runtime"], r["threads"], r["batch"]): r for r in report["results"]}
    assert set(rows) == {(rt, t, b) for rt in ("onnxruntime", "torch") for t in (1, 2) for b in (1, 8)}
    assert all(r["images_per_second"] > 0 and r["architecture"] == "resnet18" for r in rows.values())


def test_refuses_a_folder_without_artifacts(tmp_path):
    command = [sys.executable, str(ROOT / "bench" / "native_embed.py"), "--artifacts", str(tmp_path)]
    result = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert result.returncode == 1 and "run `tejas export` first" in result.stderr
