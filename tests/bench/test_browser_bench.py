"""bench/browser.py runs end to end (tiny settings) and writes every number it promises."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from ..conftest import ROOT

pytestmark = [pytest.mark.slow, pytest.mark.browser]


def test_browser_bench_writes_its_json(default_export, tmp_path):
    folder, _ = default_export
    out = tmp_path / "browser.json"
    command = [
        sys.executable,
        str(ROOT / "bench" / "browser.py"),
        "--artifacts",
        str(folder),
        "--images",
        "4",
        "--out",
        str(out),
    ]
    result = subprocess.run(command, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(out.read_text())
    assert {(r["threads"], r["batch"]) for r in report["embedding"]} == {(1, 1), (1, 8), (2, 1), (2, 8)}
    assert all(r["browser_images_per_second"] > 0 and r["native_images_per_second"] > 0 for r in report["embedding"])
    assert report["training"][0]["head_steps_per_second"] > 0
    assert report["training"][0]["last_block_steps_per_second"] > 0
    (accuracy,) = report["accuracy"]
    assert accuracy["validation_accuracy"] > 0.5 and accuracy["drift_points_vs_224"] == 0
    project = report["project"][0]
    assert project["images"] == 100 and project["cold_seconds"] > project["warm_seconds"] > 0
    assert project["longest_main_thread_task_ms"] >= 0
