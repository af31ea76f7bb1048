"""The `tejas` command's dispatch and `tejas verify`."""

from __future__ import annotations

import json
import subprocess

from .conftest import TEJAS


def tejas(*args):
    return subprocess.run([TEJAS, *args], capture_output=True, text=True, timeout=120)


def test_usage_and_unknown_command():
    assert tejas("--help").returncode == 0
    result = tejas("frobnicate")
    usage = "usage: tejas {serve,server,export,verify,train,predict,worker,stream-worker}"
    assert result.returncode == 2 and usage in result.stderr


def test_verify_ok_and_missing(resnet18_random, tmp_path):
    ok = tejas("verify", str(resnet18_random))
    files = len(json.loads((resnet18_random / "manifest.json").read_text())["files"])
    assert ok.returncode == 0 and f"ok (resnet18, none weights, {files} files)" in ok.stdout
    missing = tejas("verify", str(tmp_path))
    assert missing.returncode == 1
    assert "manifest.json: missing (export artifacts with `tejas export`)" in missing.stderr
    (tmp_path / "manifest.json").write_text("{not json")
    assert "not valid JSON" in tejas("verify", str(tmp_path)).stderr


def test_export_help_goes_through_tejas():
    result = tejas("export", "--help")
    assert result.returncode == 0 and "--max-classes" in result.stdout


def test_verify_flags_a_manifest_from_an_older_exporter(resnet18_random, tmp_path):
    import json
    import shutil

    copy = tmp_path / "old"
    shutil.copytree(resnet18_random, copy)
    manifest = json.loads((copy / "manifest.json").read_text())
    del manifest["state_dict"]
    (copy / "manifest.json").write_text(json.dumps(manifest))
    result = tejas("verify", str(copy))
    assert result.returncode == 1
    assert "made by an older exporter (no state_dict); re-export with `tejas export --force`" in result.stderr


def test_verify_flags_last_block_artifacts_without_last_block_onnx(resnet18_random, tmp_path):
    import json
    import shutil

    copy = tmp_path / "old"
    shutil.copytree(resnet18_random, copy)
    manifest = json.loads((copy / "manifest.json").read_text())
    del manifest["models"]["last_block"]
    (copy / "manifest.json").write_text(json.dumps(manifest))
    result = tejas("verify", str(copy))
    assert result.returncode == 1
    assert "last-block training without last_block.onnx" in result.stderr
