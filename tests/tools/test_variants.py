"""Backbone variants: `tejas export --quantize uint8` and `--input-size`, what their manifests record, and that
their cached features can never be taken for another variant's."""

from __future__ import annotations

import json

import jsonschema
import numpy as np
import onnx
import pytest

from tejas.artifacts import SCHEMA_PATH, verify_artifacts

from ..conftest import _export, manifest_of, offline_env, run_export

pytestmark = pytest.mark.slow


def backbone_id(folder) -> str:
    """What the app keys cached features by (pwa/features/artifacts.js backboneId)."""
    return manifest_of(folder)["files"]["backbone.onnx"]["sha256"][:16]


@pytest.fixture(scope="module")
def variants(tmp_path_factory, mobilenet_v2_224) -> dict:
    """MobileNetV2-ImageNet (head only) in float32 at 224² (the session's export, shared with the browser
    bench) and 160², and with uint8 weights at 224²."""
    tmp = tmp_path_factory.mktemp("variants")
    common = ["--backbone", "mobilenet_v2", "--max-classes", "10"]
    return {
        "float32-224": mobilenet_v2_224,
        "float32-160": _export(tmp, "f160", [*common, "--input-size", "160"]),
        "uint8-224": _export(tmp, "u224", [*common, "--input-size", "224", "--quantize", "uint8"]),
    }


def test_uint8_manifest_records_the_quantisation_and_its_check(variants):
    folder = variants["uint8-224"]
    manifest = manifest_of(folder)
    jsonschema.validate(manifest, json.loads(SCHEMA_PATH.read_text()))
    verify_artifacts(folder)
    assert manifest["models"]["backbone"]["quantization"] == "uint8-dynamic"
    assert "quantization" not in manifest_of(variants["float32-224"])["models"]["backbone"]
    check = manifest["checks"]["backbone_uint8"]
    assert 0.95 <= check["min_cosine"] <= check["mean_cosine"] < 1.0
    assert check["batch_vs_alone_min_cosine"] >= 0.95
    assert manifest["checks"]["imagenet"]["hits"] >= 4  # the ImageNet check ran on the uint8 file
    # no float32 copy is shipped; the file really holds uint8 weights in QUInt8 kernels
    assert set(manifest["files"]) == {p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()} - {
        "manifest.json"
    }
    ops = {node.op_type for node in onnx.load(str(folder / "backbone.onnx")).graph.node}
    assert "ConvInteger" in ops and "DynamicQuantizeLinear" in ops
    uint8 = [
        t for t in onnx.load(str(folder / "backbone.onnx")).graph.initializer if t.data_type == onnx.TensorProto.UINT8
    ]
    assert uint8, "no uint8 weights"
    assert (folder / "backbone.onnx").stat().st_size < 0.4 * (variants["float32-224"] / "backbone.onnx").stat().st_size


def test_uint8_backbone_runs_in_native_onnxruntime_close_to_float32(variants):
    from tejas_ml.export.checks import session

    images = np.random.default_rng(0).random((2, 3, 224, 224), dtype=np.float32)
    got = session(variants["uint8-224"] / "backbone.onnx").run(None, {"image": images})[0]
    expected = session(variants["float32-224"] / "backbone.onnx").run(None, {"image": images})[0]
    cosine = np.sum(got * expected, 1) / (np.linalg.norm(got, axis=1) * np.linalg.norm(expected, axis=1))
    assert got.shape == (2, 1280) and np.all(cosine > 0.9)


def test_input_size_160_preprocesses_at_160_with_the_224_ratio(variants):
    manifest = manifest_of(variants["float32-160"])
    jsonschema.validate(manifest, json.loads(SCHEMA_PATH.read_text()))
    assert manifest["input"]["size"] == [160, 160]
    assert manifest["input"]["resize"]["shorter_side"] == 183  # round(160 * 256 / 224), as 224 has 256
    assert manifest["models"]["backbone"]["inputs"][0]["shape"] == ["batch", 3, 160, 160]
    assert manifest["checks"]["backbone_max_abs_diff"] <= 1e-4 and manifest["checks"]["imagenet"]["hits"] >= 4


def test_every_variant_has_its_own_embedding_cache_key(variants):
    ids = {name: backbone_id(folder) for name, folder in variants.items()}
    assert len(set(ids.values())) == len(ids), ids


def test_quantize_with_last_block_training_is_refused(tmp_path):
    out = tmp_path / "x"
    result = run_export(
        ["--backbone", "mobilenet_v2", "--quantize", "uint8", "--train", "last-block", "--out", str(out)],
        offline_env(tmp_path),
    )
    assert result.returncode == 1
    assert "--quantize uint8 quantises backbone.onnx, which only head training uses" in result.stderr.splitlines()[-1]
    assert not out.exists()


def test_quantize_is_for_images_only(tmp_path):
    result = run_export(
        ["--modality", "text", "--quantize", "uint8", "--out", str(tmp_path / "x")], offline_env(tmp_path)
    )
    assert result.returncode == 1 and "drop --quantize uint8" in result.stderr
