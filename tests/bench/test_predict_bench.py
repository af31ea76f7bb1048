"""bench/predict_throughput.py at toy size (6 images, batch 2, one stream worker, short native windows): every
path runs — the app's batches and single predictions in Chromium, `tejas predict`, the server's batch job,
a stream in each mode — each row beside native onnxruntime and with every image's top class equal to
native's; the JSON has the shape the README block reads. The committed JSON ran every path at full size and
backs the README block. No timing is asserted."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys

import pytest

from bench import readme_tables

from ..conftest import ROOT

RESULTS = ROOT / "bench" / "results"
IMAGES = 6
PATHS = {
    "app_many_files",
    "app_many_zip",
    "app_single",
    "cli",
    "batch_job",
    "batch_wall",
    "stream_backlog_1",
    "stream_live_1",
    "stream_paced_1",
}


@pytest.mark.slow
@pytest.mark.browser
def test_toy_run_measures_every_path_beside_native(default_export, tmp_path):
    folder, _ = default_export
    out = tmp_path / "predict_throughput.json"
    done = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "predict_throughput.py"), "--artifacts", str(folder),
         "--images", str(IMAGES), "--batch-size", "2", "--stream-workers", "1", "--native-seconds", "0.2",
         "--out", str(out)],
        capture_output=True, text=True, timeout=900, cwd=ROOT,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-4000:]
    report = json.loads(out.read_text())
    assert report["benchmark"] == "predict_throughput" and report["ok"] and report["errors"] == []
    assert report["chromium"] and report["npm"]["ort"].startswith("onnxruntime-web@")
    assert report["machine"]["cpu_count"] >= 1 and report["machine"]["onnxruntime"]
    assert re.fullmatch(r"[0-9a-f]{40}", report["git_commit"])
    config = report["config"]
    assert config["images"] == IMAGES and config["batch_size"] == 2 and config["stream_workers"] == [1]
    assert config["threads"] >= 1 and config["browser_threads"] >= 1
    assert config["stream_threads_per_worker"] == {"1": config["threads"]}
    assert sum(config["formats"].values()) == IMAGES
    assert report["model"]["classes"] and report["model"]["onnx_sha256"]

    native = {(n["threads"], n["batch"]) for n in report["native"]}
    assert all(n["images_per_second"] > 0 and n["with_decode_images_per_second"] > 0 for n in report["native"])
    rows = {r["path"]: r for r in report["results"]}
    assert set(rows) == PATHS
    for path, row in rows.items():
        # every image through this path, each with native's top class: the same model and images everywhere
        assert row["rows"] == IMAGES and row["top1_same_as_native"] == IMAGES, (path, row)
        assert row["max_top1_probability_diff"] < 1e-3, (path, row)
        assert row["images"] > 0 and row["seconds"] > 0 and row["images_per_second"] > 0, path
        assert row["native_before"] > 0 and row["native_after"] > 0, path
        assert row["over_native"] == pytest.approx(row["images_per_second"] / row["native_images_per_second"])
        assert (row["threads"], row["batch"]) in native, path
    assert rows["app_single"]["batch"] == 1 and rows["app_many_files"]["batch"] == 2
    assert rows["cli"]["own_images_per_second"] > 0 and rows["cli"]["failed"] == 0
    assert rows["batch_wall"]["seconds"] > rows["batch_job"]["seconds"] and rows["batch_job"]["batch"] == 16
    for mode in ("backlog", "live", "paced"):
        stream = rows[f"stream_{mode}_1"]
        assert stream["workers"] == 1 and stream["mode"] == mode
        assert sum(stream["rows_by_worker"].values()) == IMAGES
        assert stream["images"] == IMAGES - stream["rows_in_first_write"]
        assert 0 <= stream["latency_p50_ms"] <= stream["latency_p95_ms"] <= stream["latency_max_ms"]
        assert stream["append_images_per_second"] > 0
    assert rows["stream_paced_1"]["append_rate_asked"] > 0
    assert set(report["notes"]) == {"app", "cli", "batch", "stream_1"}

    # the README block renders from it
    results = tmp_path / "results"
    results.mkdir()
    shutil.copy(out, results / "predict_throughput.json")
    block = readme_tables.predict_block(results)
    for row in rows.values():
        assert f"| {row['label']} |" in block
    assert "**What limits each path (same run):**" in block


def test_a_failed_path_cannot_back_the_readme(tmp_path):
    results = tmp_path / "results"
    results.mkdir()
    report = json.loads((RESULTS / "predict_throughput.json").read_text())
    report["errors"] = [{"path": "stream_2", "error": "RuntimeError: a stream worker exited"}]
    report["ok"] = False
    (results / "predict_throughput.json").write_text(json.dumps(report))
    with pytest.raises(readme_tables.ResultsError, match="stream_2"):
        readme_tables.predict_block(results)


def test_committed_result_ran_every_path_and_backs_the_readme():
    report = json.loads((RESULTS / "predict_throughput.json").read_text())
    assert report["ok"] and not report["errors"]
    machine = report["machine"]
    assert machine["cpu_model"] and machine["cpu_count"] >= 1 and machine["memory_gib"] > 0 and machine["onnxruntime"]
    assert len(machine["load_average"]) == 3 and len(report["load_average_start"]) == 3
    assert re.fullmatch(r"[0-9a-f]{40}", report["git_commit"]) and report["command"].startswith("python bench/")
    images = report["config"]["images"]
    paths = {r["path"] for r in report["results"]}
    workers = report["config"]["stream_workers"]
    assert 2 in workers and 1 in workers
    expected = PATHS - {p for p in PATHS if p.startswith("stream_")}
    expected |= {f"stream_{mode}_{n}" for mode in ("backlog", "live", "paced") for n in workers}
    assert paths == expected
    assert all(r["rows"] == images for r in report["results"])
    text = (ROOT / "README.md").read_text()
    block = re.search(r"<!-- bench:predict -->\n(.*?)<!-- /bench:predict -->", text, re.S).group(1)
    assert block == readme_tables.predict_block(RESULTS) + "\n"
