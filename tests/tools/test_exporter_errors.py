"""Every user error of the exporter: one clear line on stderr, non-zero exit, nothing clobbered."""

from __future__ import annotations

import shutil

import pytest
import torch
import torchvision

from ..conftest import manifest_of, offline_env, run_export


def one_line_error(result) -> str:
    """The error is one line, the last one (progress lines of stages already run may precede it)."""
    assert result.returncode != 0
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    errors = [line for line in lines if "error:" in line]
    assert len(errors) == 1 and errors[0] == lines[-1], result.stderr
    assert "Traceback" not in result.stderr
    return errors[0]


def test_unknown_backbone(tmp_path):
    result = run_export(["--backbone", "vgg16", "--out", str(tmp_path / "x")], offline_env(tmp_path))
    assert "unknown backbone 'vgg16' (choose from auto, resnet18, mobilenet_v2)" in one_line_error(result)
    assert not (tmp_path / "x").exists()


def test_max_classes_below_two(tmp_path):
    args = ["--backbone", "resnet18", "--weights", "none", "--max-classes", "1", "--out", str(tmp_path / "x")]
    assert "--max-classes must be at least 2 (got 1)" in one_line_error(run_export(args, offline_env(tmp_path)))


def test_missing_weights_file(tmp_path):
    args = ["--backbone", "resnet18", "--weights", str(tmp_path / "nope.pth"), "--out", str(tmp_path / "x")]
    assert "nope.pth: no such file" in one_line_error(run_export(args, offline_env(tmp_path)))


def test_unreadable_weights_file(tmp_path):
    bad = tmp_path / "garbage.pth"
    bad.write_bytes(b"this is not a checkpoint" * 10)
    args = ["--backbone", "resnet18", "--weights", str(bad), "--out", str(tmp_path / "x")]
    line = one_line_error(run_export(args, offline_env(tmp_path)))
    assert "garbage.pth: cannot be read as a PyTorch checkpoint" in line


def test_weights_file_that_is_not_a_state_dict(tmp_path):
    odd = tmp_path / "list.pth"
    torch.save([1, 2, 3], odd)
    args = ["--backbone", "resnet18", "--weights", str(odd), "--out", str(tmp_path / "x")]
    assert "list.pth: not a PyTorch state_dict" in one_line_error(run_export(args, offline_env(tmp_path)))


def test_mismatched_weights_file(tmp_path):
    mobilenet = tmp_path / "mobilenet.pth"
    torch.save(torchvision.models.mobilenet_v2().state_dict(), mobilenet)
    args = ["--backbone", "resnet18", "--weights", str(mobilenet), "--out", str(tmp_path / "x")]
    line = one_line_error(run_export(args, offline_env(tmp_path)))
    assert "mobilenet.pth: does not match resnet18" in line
    assert "missing keys (e.g. conv1.weight)" in line and "unexpected keys" in line


def test_weights_with_wrong_shapes(tmp_path):
    state = torchvision.models.resnet18().state_dict()
    state["layer1.0.conv1.weight"] = torch.zeros(3, 3, 3, 3)
    path = tmp_path / "bent.pth"
    torch.save(state, path)
    args = ["--backbone", "resnet18", "--weights", str(path), "--out", str(tmp_path / "x")]
    assert "1 shape mismatches (e.g. layer1.0.conv1.weight" in one_line_error(run_export(args, offline_env(tmp_path)))


def test_unwritable_output_dir(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    args = ["--backbone", "resnet18", "--weights", "none", "--out", str(blocker / "sub")]
    assert f"cannot write artifacts to {blocker / 'sub'}" in one_line_error(run_export(args, offline_env(tmp_path)))


def test_out_that_is_a_file(tmp_path):
    target = tmp_path / "file"
    target.write_text("x")
    args = ["--backbone", "resnet18", "--weights", "none", "--out", str(target)]
    assert "it is a file, not a directory" in one_line_error(run_export(args, offline_env(tmp_path)))


def test_auto_with_other_weights_is_refused(tmp_path):
    args = ["--weights", "none", "--out", str(tmp_path / "x")]
    assert "--backbone auto picks ImageNet weights" in one_line_error(run_export(args, offline_env(tmp_path)))


def test_usage_error_is_one_line(tmp_path):
    result = run_export(["--max-classes", "many"], offline_env(tmp_path))
    assert "invalid int value: 'many'" in one_line_error(result)


def test_out_holding_other_files_is_refused_even_with_force(tmp_path):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "notes.txt").write_text("precious")
    args = ["--backbone", "resnet18", "--weights", "none", "--out", str(out)]
    for extra in ([], ["--force"]):
        line = one_line_error(run_export(args + extra, offline_env(tmp_path)))
        assert f"{out} holds files that are not Tejas artifacts; choose another --out" in line
    assert (out / "notes.txt").read_text() == "precious"


@pytest.mark.slow
def test_out_holding_artifacts_is_refused_unless_force(resnet18_random, tmp_path):
    out = tmp_path / "existing"
    shutil.copytree(resnet18_random, out)
    before = (out / "manifest.json").read_text()
    args = ["--backbone", "resnet18", "--weights", "none", "--no-checks", "--max-classes", "5", "--out", str(out)]
    line = one_line_error(run_export(args, offline_env(tmp_path)))
    assert f"{out} already holds artifacts; pass --force to replace them" in line
    assert (out / "manifest.json").read_text() == before

    forced = run_export([*args, "--force"], offline_env(tmp_path))
    assert forced.returncode == 0, forced.stderr
    assert manifest_of(out)["max_classes"] == 5
    assert not (out / "training_last_block").exists()  # replaced whole, no leftovers
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".existing")] == []


@pytest.mark.slow
def test_auto_picks_resnet18_when_its_weights_are_cached_and_checks_them(tmp_path):
    """With resnet18 weights in the torch hub cache, auto picks ResNet18; these are not ImageNet
    weights (random), and the ImageNet check refuses them instead of shipping a broken default."""
    env = offline_env(tmp_path)
    cache = tmp_path / "torch-home" / "hub" / "checkpoints"
    cache.mkdir(parents=True)
    torch.save(torchvision.models.resnet18().state_dict(), cache / "resnet18-f37072fd.pth")
    result = run_export(["--out", str(tmp_path / "x")], env)
    assert "chose resnet18" in result.stderr and "torch hub cache" in result.stderr
    assert "ImageNet sanity check failed" in result.stderr and result.returncode == 1
    assert not (tmp_path / "x").exists()


def test_imagenet_weights_missing_gives_a_hint(tmp_path):
    args = ["--backbone", "resnet18", "--weights", "imagenet", "--out", str(tmp_path / "x")]
    line = one_line_error(run_export(args, offline_env(tmp_path)))
    assert "ImageNet weights for resnet18 unavailable" in line and "--weights PATH" in line
