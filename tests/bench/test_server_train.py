"""bench/server_train.py at toy size (ResNet18 random-weight artifacts, 4 small PNGs, one timed epoch): the
run is whole and its JSON has the shape the README table reads; the committed JSON says where and how it
ran; the table shows a GPU run when there is one and the command for it when there is not. No timing is
asserted."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys

from bench import readme_tables

from ..conftest import ROOT

RESULTS = ROOT / "bench" / "results"
VARIANTS = ("hand", "trainer", "trainer_no_checkpoint")


def test_toy_run_writes_every_variant_of_every_run(resnet18_random, tmp_path):
    out = tmp_path / "server_train.json"
    done = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "server_train.py"), "--artifacts", str(resnet18_random),
         "--runs", "auto:full,auto:head", "--images", "4", "--classes", "2", "--image-size", "32",
         "--batch-size", "2", "--epochs", "1", "--threads", "1", "--out", str(out)],
        capture_output=True, text=True, timeout=600, cwd=ROOT,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-4000:]
    report = json.loads(out.read_text())
    assert report["benchmark"] == "server_train" and report["config"]["device"] == "cpu"
    assert report["config"]["timed_epochs"] == 1 and report["config"]["warmup_epochs"] == 1
    assert report["data"]["images"] == 4 and report["data"]["image_size"] == [32, 32]
    assert len(report["machine"]["load_average_start"]) == 3 and report["machine"]["gpu"] is None
    assert [r["run"] for r in report["results"]] == ["auto:full", "auto:head"]
    for row in report["results"]:
        assert row["architecture"] == "resnet18" and row["weights"] == "none" and row["input_size"] == [224, 224]
        assert row["device"] == "cpu" and row["amp"] is None and row["channels_last"] is False
        assert row["train_images_per_epoch"] == 4
        for variant in VARIANTS:
            (run,) = row[variant]["repeats"]
            assert row[variant]["images_per_second"] > 0 and len(run["epoch_seconds"]) == 2
        assert row["trainer"]["repeats"][0]["checkpoint_bytes"] > 0
        assert len(row["trainer"]["repeats"][0]["checkpoint_seconds"]) == 2  # one per epoch
        assert "checkpoint_bytes" not in row["trainer_no_checkpoint"]["repeats"][0]
        assert row["ratio"] > 0 and row["ratio_no_checkpoint"] > 0
    # the README table renders from it
    results = tmp_path / "results"
    results.mkdir()
    shutil.copy(out, results / "server_train.json")
    block = readme_tables.server_train_block(results)
    assert block.count("| ResNet18 224², random weights |") == 2 and "pending a run on a GPU machine" in block


def test_refuses_a_folder_without_artifacts(tmp_path):
    command = [sys.executable, str(ROOT / "bench" / "server_train.py"), "--artifacts", str(tmp_path)]
    result = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert result.returncode == 1 and "run `tejas export` first" in result.stderr


def test_committed_result_says_where_and_how_it_ran():
    report = json.loads((RESULTS / "server_train.json").read_text())
    machine = report["machine"]
    assert machine["cpu_model"] and machine["cpu_count"] >= 1 and machine["memory_gib"] > 0
    assert machine["torch"] and len(machine["load_average"]) == 3 and len(machine["load_average_start"]) == 3
    assert re.fullmatch(r"[0-9a-f]{40}", report["git_commit"]) and report["command"].startswith("python bench/")
    modes = {(r["architecture"], r["mode"]) for r in report["results"]}
    assert {("mobilenet_v2", "full"), ("mobilenet_v2", "head"), ("resnet18", "full")} <= modes
    for row in report["results"]:
        assert row["weights"] in ("imagenet", "none") and row["weights_note"]
        assert all(row[v]["images_per_second"] > 0 for v in VARIANTS)


def test_the_table_shows_a_gpu_run_when_there_is_one(tmp_path):
    results = tmp_path / "results"
    results.mkdir()
    report = json.loads((RESULTS / "server_train.json").read_text())
    (results / "server_train.json").write_text(json.dumps(report))
    assert readme_tables.GPU_COMMAND in readme_tables.server_train_block(results)
    report["config"]["device"] = "cuda"
    report["machine"]["gpu"] = {"name": "NVIDIA H100 80GB HBM3"}
    for row in report["results"]:
        row["amp"], row["channels_last"] = "bfloat16", True
    (results / "server_train_cuda.json").write_text(json.dumps(report))
    block = readme_tables.server_train_block(results)
    assert "CUDA on NVIDIA H100 80GB HBM3" in block and "| bfloat16, yes |" in block
    assert "GPU goal, ResNet18 224² full fine-tune" in block and "pending" not in block
