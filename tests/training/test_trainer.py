"""The PyTorch trainer on CPU: every hostile archive of the core's table is read by the core's rules;
a run cut mid-epoch resumes from its checkpoint to exactly the weights of an uncut run; the app's split;
the written models agree with PyTorch in every mode; `tejas train` end to end."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch

from tejas.archive_source import ArchiveError
from tejas.dataset import read_archive
from tejas.splits import stratified_split
from tejas_ml.training.data import DataError, from_archive, split
from tejas_ml.training.run import make_trainer, train_and_write
from tejas_ml.training.trainer import Cancelled, TrainConfig

from ..conftest import TEJAS
from ..pycore.test_dataset import CASES
from .animals import animal_pngs, write_folder, write_zip

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def artifacts(default_export) -> Path:
    return default_export[0]


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_the_trainer_reads_archives_by_the_cores_rules(case, tmp_path):
    (tmp_path / "in").mkdir()
    archive = case.build(tmp_path / "in")
    try:
        expected = read_archive(archive, case.limits)
    except ArchiveError as exc:
        with pytest.raises(DataError) as refused:
            from_archive(archive, tmp_path / "cache", case.limits)
        assert str(refused.value) == str(exc)
        return
    counts = {}
    for sample in expected.samples:
        counts[sample.label] = counts.get(sample.label, 0) + 1
    trainable = len(counts) >= 2 and min(counts.values()) >= 2
    if not trainable:
        with pytest.raises(DataError, match="at least 2"):
            from_archive(archive, tmp_path / "cache", case.limits)
        return
    examples = from_archive(archive, tmp_path / "cache", case.limits)
    assert sorted(examples.skipped) == sorted(str(s) for s in expected.skipped)
    assert sorted(e.id for e in examples.items) == sorted(s.sha256 for s in expected.samples)


def test_the_split_is_the_apps_and_corrections_always_train(tmp_path):
    data = animal_pngs(3, 7)
    examples = from_archive(write_zip(tmp_path / "d.zip", data), tmp_path / "cache")
    train, validation = split(examples, 0.3, seed=4)
    ids = [e.id for e in examples.items]
    labels = [e.label for e in examples.items]
    expected_train, expected_validation = stratified_split(ids, labels, 0.3, 4)
    assert sorted(e.id for e in train) == sorted(expected_train)
    assert sorted(e.id for e in validation) == sorted(expected_validation)
    corrected = [type(e)(e.id, e.label, e.path, True) if e.id in expected_validation[:2] else e for e in examples.items]
    examples.items = corrected
    train, validation = split(examples, 0.3, seed=4)
    assert set(expected_validation[:2]) <= {e.id for e in train}


def _config(**kw) -> TrainConfig:
    return TrainConfig(**{"mode": "last_block", "epochs": 2, "batch_size": 4, "augment": False, "workers": 0, **kw})


def test_a_run_cut_mid_epoch_resumes_to_the_same_weights(artifacts, tmp_path):
    examples = from_archive(write_zip(tmp_path / "d.zip", animal_pngs(2, 7)), tmp_path / "cache")
    config = _config(checkpoint_seconds=0.0)  # a checkpoint after every batch

    def trainer(checkpoint=None, should_stop=None):
        return make_trainer(examples, config, artifacts, checkpoint=checkpoint, should_stop=should_stop)[1]

    uncut = trainer().fit()
    batches = {"n": 0}

    def stop_in_second_epoch():
        batches["n"] += 1
        return batches["n"] > 4  # 10 training images, batch 4: epoch 1 has 3 batches

    checkpoint = tmp_path / "checkpoint.pt"
    with pytest.raises(Cancelled):
        trainer(checkpoint, stop_in_second_epoch).fit()
    saved = torch.load(checkpoint, weights_only=False)
    assert (saved["epoch"], saved["step"]) == (1, 1), "cut after one batch of the second epoch"
    resumed = trainer(checkpoint).fit(resume=checkpoint)
    for (name, a), b in zip(uncut.network.state_dict().items(), resumed.network.state_dict().values(), strict=True):
        assert torch.equal(a, b), name
    assert [e["loss"] for e in resumed.history] == pytest.approx([e["loss"] for e in uncut.history], rel=1e-6)


@pytest.mark.parametrize("mode", ["head", "last_block", "full"])
def test_every_mode_writes_models_that_agree_with_pytorch(artifacts, tmp_path, mode):
    examples = from_archive(write_zip(tmp_path / "d.zip", animal_pngs(3, 5)), tmp_path / "cache")
    summary, result = train_and_write(examples, _config(mode=mode, epochs=1), artifacts, tmp_path / "out")
    assert summary["checks"]["onnx_max_abs_diff"] <= 1e-4 and summary["checks"]["pt_max_abs_diff"] <= 1e-4
    app_model = json.loads((tmp_path / "out" / "app_model.json").read_text())
    parameters = np.fromfile(tmp_path / "out" / "parameters.bin", dtype="<f4")
    assert parameters.size == app_model["parameters"]["length"]
    weight = next(p for p in app_model["layout"] if p["name"].endswith("fc.weight"))
    rows = parameters[weight["offset"] : weight["offset"] + int(np.prod(weight["shape"]))].reshape(weight["shape"])
    if mode == "full":
        assert not rows[3:].any(), "rows past the project's 3 classes stay zero (masked in the app)"
    state = torch.load(tmp_path / "out" / "model.pt", weights_only=True)
    classifier = "classifier.1.weight"
    assert np.allclose(state[classifier].numpy(), rows[:3], atol=1e-6)
    if mode == "full":
        assert app_model["artifacts"]["kind"] == "job" and app_model["mode"] == "head"
        manifest = json.loads((tmp_path / "out" / "artifacts" / "manifest.json").read_text())
        assert manifest["weights"]["kind"] == "file" and manifest["checks"]["backbone_max_abs_diff"] < 1e-3
    else:
        assert app_model["artifacts"]["kind"] == "default" and app_model["mode"] == mode
    assert result.report["count"] == len(result.validation)


def test_tejas_train_end_to_end(artifacts, tmp_path):
    folder = write_folder(tmp_path / "animals", animal_pngs(2, 5))
    out = tmp_path / "out"
    command = [
        TEJAS,
        "train",
        str(folder),
        "--mode",
        "head",
        "--epochs",
        "2",
        "--batch-size",
        "4",
        "--artifacts",
        str(artifacts),
        "--out",
        str(out),
        "--workers",
        "0",
    ]
    run = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr
    assert "epoch 2/2" in run.stderr and "done: validation accuracy" in run.stderr
    for name in ("model.onnx", "model.pt", "metrics.json", "checkpoint.pt"):
        assert (out / name).is_file(), name
    metrics = json.loads((out / "metrics.json").read_text())
    assert len(metrics["history"]) == 2 and metrics["report"]["count"] == 2
    # A folder that cannot train: one line saying why, exit status 1.
    one = write_folder(tmp_path / "one", animal_pngs(1, 3))
    bad = subprocess.run([*command[:2], str(one), *command[3:]], capture_output=True, text=True, timeout=600)
    assert bad.returncode == 1 and "at least 2 classes" in bad.stderr
