"""bench/browser.py runs end to end (tiny settings) and writes every number it promises, and its two
self-checks measure something: the drift compares two input sizes, the long-task watch sees a long task."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from ..conftest import ROOT

pytestmark = [pytest.mark.slow, pytest.mark.browser]


def test_browser_bench_writes_its_json(default_export, mobilenet_v2_224, tmp_path):
    folder, _ = default_export
    reference_224 = mobilenet_v2_224  # the default backbone and weights at 224²: the default's reference
    out = tmp_path / "browser.json"
    command = [
        sys.executable,
        str(ROOT / "bench" / "browser.py"),
        "--artifacts",
        str(folder),
        str(reference_224),
        "--variants",  # none beyond the two folders
        "--images",
        "4",
        "--native-seconds",
        "0.2",
        "--project-images",
        "20",
        "--scale-images",
        "30",
        "--drift-splits",
        "2",
        # test-only: a 300 ms busy loop on the page's main thread while the cold run trains
        "--inject-busy-ms",
        "300",
        "--out",
        str(out),
    ]
    result = subprocess.run(command, capture_output=True, text=True, timeout=1800)
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(out.read_text())
    assert report["chromium"] and report["machine"]["cpu_count"] >= 1
    embedding = {(r["artifacts"], r["threads"], r["batch"]) for r in report["embedding"]}
    assert embedding == {(f.name, t, b) for f in (folder, reference_224) for t in (1, 2) for b in (1, 8)}
    assert all(r["browser_images_per_second"] > 0 and r["native_images_per_second"] > 0 for r in report["embedding"])
    assert {r["input_size"] for r in report["embedding"]} == {160, 224}

    # session options: each setting measured, and none changes the features
    settings = {r["setting"]: r for r in report["session_options"]}
    assert set(settings) == {"defaults", "graph basic", "no memory pattern", "fixed batch"}
    assert all(r["images_per_second"] > 0 and r["max_abs_diff_vs_defaults"] <= 1e-4 for r in settings.values())

    default_training = next(r for r in report["training"] if r["artifacts"] == folder.name)
    assert default_training["head_steps_per_second_1_threads"] > 0
    assert default_training["head_steps_per_second_2_threads"] > 0
    assert default_training["last_block_steps_per_second"] > 0

    # The drift compares the default (160²) with the 224² folder of the same backbone, not a folder with
    # itself: the two folders' features of the same images differ, while their accuracies stay close.
    (drift,) = report["accuracy"]
    assert (drift["artifacts"], drift["drift_reference"], drift["input_size"]) == (folder.name, reference_224.name, 160)
    assert set(drift["datasets"]) == {"animal_mnist", "photos"}
    for scores in drift["datasets"].values():
        assert 0.5 < scores["feature_cosine"] < 0.99, "160² and 224² features equal: the drift compares one size"
        assert scores["reference_accuracy"] > 0.5 and scores["variant_accuracy"] > 0.5
        assert scores["drift_points"] == pytest.approx(
            100 * (scores["reference_accuracy"] - scores["variant_accuracy"]), abs=0.01
        )
    assert drift["within_bound"] == (drift["max_drift_points"] <= 1)

    project = report["project"][0]
    assert project["images"] == 20 and project["cold_seconds"] > project["warm_seconds"] > 0
    # after background embedding, Train embedded nothing itself
    assert project["background_train_embedded_images"] == 0 and project["background_total_seconds"] > 0
    # The long-task watch must see the deliberate 300 ms task (a broken observer reports 0).
    assert project["injected_busy_ms"] == 300
    assert project["long_tasks"] >= 1 and project["longest_main_thread_task_ms"] >= 250

    scale = report["scale"]
    assert scale["images"] == 30 and scale["import_seconds"] > 0 and scale["train_seconds"] > 0
    assert scale["peak_js_heap_used_mib"] > 0 and scale["peak_renderer_rss_mib"] > 0
    assert scale["memory_bound_mib"] > 0 and scale["max_tiles_rendered"] > 0
