"""bench/browser.py runs end to end (tiny settings) and writes every number it promises, and its two
self-checks measure something: the drift compares two input sizes, the long-task watch sees a long task."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from ..conftest import ROOT, offline_env, run_export

pytestmark = [pytest.mark.slow, pytest.mark.browser]


@pytest.fixture(scope="module")
def default_at_160(tmp_path_factory):
    """The default backbone (MobileNetV2-ImageNet here) and weights, exported for 160² input."""
    tmp = tmp_path_factory.mktemp("small")
    out = tmp / "mobilenet_v2-160"
    args = ["--backbone", "mobilenet_v2", "--input-size", "160", "--out", str(out)]
    result = run_export(args, offline_env(tmp), script=False)
    assert result.returncode == 0, result.stderr
    return out


def test_browser_bench_writes_its_json(default_export, default_at_160, tmp_path):
    folder, _ = default_export
    out = tmp_path / "browser.json"
    command = [
        sys.executable,
        str(ROOT / "bench" / "browser.py"),
        "--artifacts",
        str(folder),
        str(default_at_160),
        "--images",
        "4",
        "--native-seconds",
        "0.2",
        # test-only: a 300 ms busy loop on the page's main thread while the cold run trains
        "--inject-busy-ms",
        "300",
        "--out",
        str(out),
    ]
    result = subprocess.run(command, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(out.read_text())
    assert report["chromium"] and report["machine"]["cpu_count"] >= 1
    embedding = {(r["artifacts"], r["threads"], r["batch"]) for r in report["embedding"]}
    assert embedding == {(f.name, t, b) for f in (folder, default_at_160) for t in (1, 2) for b in (1, 8)}
    assert all(r["browser_images_per_second"] > 0 and r["native_images_per_second"] > 0 for r in report["embedding"])
    default_training = next(r for r in report["training"] if r["artifacts"] == folder.name)
    assert default_training["head_steps_per_second_1_threads"] > 0
    assert default_training["head_steps_per_second_2_threads"] > 0
    assert default_training["last_block_steps_per_second"] > 0

    # The drift compares the 160² folder with the 224² folder of the same backbone, not a folder with
    # itself: the two folders' features of the same images differ, while their accuracies stay close.
    rows = {r["artifacts"]: r for r in report["accuracy"]}
    reference, small = rows[folder.name], rows[default_at_160.name]
    assert (reference["input_size"], small["input_size"]) == (224, 160)
    assert reference["drift_reference"] is None and reference["drift_points_vs_224"] is None
    assert small["drift_reference"] == folder.name
    assert small["feature_cosine_vs_224"] < 0.99, "160² and 224² features equal: the drift compares one size"
    assert small["feature_cosine_vs_224"] > 0.5
    assert reference["validation_accuracy"] > 0.5 and small["validation_accuracy"] > 0.5
    assert small["drift_points_vs_224"] == pytest.approx(
        100 * (reference["validation_accuracy"] - small["validation_accuracy"])
    )
    assert abs(small["drift_points_vs_224"]) <= 10

    project = report["project"][0]
    assert project["images"] == 100 and project["cold_seconds"] > project["warm_seconds"] > 0
    # The long-task watch must see the deliberate 300 ms task (a broken observer reports 0).
    assert project["injected_busy_ms"] == 300
    assert project["long_tasks"] >= 1 and project["longest_main_thread_task_ms"] >= 250
