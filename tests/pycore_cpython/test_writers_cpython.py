"""The stdlib writers' output checked with the real libraries: onnx.checker, onnxruntime, torch, torchvision.

Real exported artifacts (ResNet18 random, default MobileNetV2 ImageNet) with heads for 3 and 7
classes, and the files the shared tests wrote inside Pyodide (byte-identical to CPython's).
"""

from __future__ import annotations

import json
import zipfile

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
import torchvision

from tejas.model_export import read_pt_metadata, write_classifier_pt
from tejas.onnx_writer import write_classifier_onnx
from tejas.safetensors import read_safetensors
from tejas.torch_writer import write_state_dict_pt
from tejas_ml.export.checks import preprocess
from tejas_ml.export.photos import load_photos

from ..conftest import manifest_of
from ..pycore.test_writers import (
    TINY_BIAS,
    TINY_CLASSES,
    TINY_FEATURES,
    TINY_WEIGHT,
    make_tiny_artifacts,
    tiny_backbone,
    tiny_state,
)
from .test_in_pyodide import pyodide_report  # noqa: F401

ONNX_TOLERANCE = 1e-5
LOGIT_RTOL = 1e-6
TORCH_TOLERANCE = 1e-4
TORCH_DTYPES = {"F32": torch.float32, "I64": torch.int64}


def _session(path) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.intra_op_num_threads = 2
    options.log_severity_level = 3
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def _softmax(logits: np.ndarray) -> np.ndarray:
    shifted = np.exp(logits - logits.max(axis=1, keepdims=True))
    return shifted / shifted.sum(axis=1, keepdims=True)


@pytest.fixture(scope="module")
def photo_batches():
    """Preprocessed real photos per (resize, crop), as the manifest says."""
    photos = load_photos()
    cache = {}

    def batch(manifest: dict) -> np.ndarray:
        spec = manifest["input"]
        key = (spec["resize"]["shorter_side"], spec["size"][0])
        if key not in cache:
            cache[key] = torch.stack([preprocess(p.rgb, *key, spec["mean"], spec["std"]) for p in photos]).numpy()
        return cache[key]

    return batch


@pytest.fixture(params=["resnet18_random", "default_export"])
def artifacts(request):
    value = request.getfixturevalue(request.param)
    return value[0] if isinstance(value, tuple) else value


@pytest.mark.parametrize("num_classes", [3, 7])
def test_real_artifacts_make_matching_onnx_and_pt(artifacts, num_classes, photo_batches, tmp_path):
    manifest = manifest_of(artifacts)
    features_size, architecture = manifest["feature_size"], manifest["architecture"]
    rng = np.random.default_rng(num_classes)
    # Large enough weights that the probabilities are far from uniform (a weak test otherwise).
    weight = rng.normal(0, 0.5 if manifest["weights"]["kind"] == "none" else 0.1, (num_classes, features_size))
    weight = weight.astype(np.float32)
    bias = rng.normal(0, 0.1, num_classes).astype(np.float32)
    classes = [f"class {i} ✓" for i in range(num_classes)]
    onnx_path, pt_path = tmp_path / "classifier.onnx", tmp_path / "classifier.pt"
    write_classifier_onnx(artifacts, weight.ravel().tolist(), bias.tolist(), classes, onnx_path)
    write_classifier_pt(artifacts, weight.ravel().tolist(), bias.tolist(), classes, pt_path)

    loaded = onnx.load(str(onnx_path))
    onnx.checker.check_model(loaded, full_check=True)
    backbone = onnx.load(str(artifacts / "backbone.onnx"), load_external_data=False)
    assert loaded.ir_version == backbone.ir_version <= 10
    assert list(loaded.opset_import) == list(backbone.opset_import)
    metadata = {p.key: p.value for p in loaded.metadata_props}
    assert json.loads(metadata["class_names"]) == classes
    assert metadata["tejas_architecture"] == architecture
    assert [o.name for o in loaded.graph.output] == ["probabilities", "logits"]

    images = photo_batches(manifest)
    probabilities, logits = _session(onnx_path).run(["probabilities", "logits"], {"image": images})
    features = _session(artifacts / "backbone.onnx").run(["features"], {"image": images})[0]
    expected_logits = features @ weight.T + bias
    # With random weights the 512 products summed into a logit reach tens, where float32's spacing is ~4e-6:
    # onnxruntime's GEMM and numpy's BLAS sum them in different orders, so the rounding bound scales with the
    # sum of the products' magnitudes (a dot product's classic error bound), absolute only near zero.
    scale = np.abs(features) @ np.abs(weight).T + np.abs(bias)
    assert (np.abs(logits - expected_logits) <= ONNX_TOLERANCE + LOGIT_RTOL * scale).all()
    assert np.abs(probabilities - _softmax(expected_logits)).max() <= ONNX_TOLERANCE
    assert probabilities.max() > 0.5, "head too weak to make this comparison meaningful"

    state = torch.load(pt_path, weights_only=True)
    net = getattr(torchvision.models, architecture)(num_classes=num_classes)
    net.load_state_dict(state, strict=True)
    net.eval()
    with torch.no_grad():
        torch_probabilities = torch.softmax(net(torch.from_numpy(images)), dim=1).numpy()
    assert np.abs(torch_probabilities - probabilities).max() <= TORCH_TOLERANCE
    assert (torch_probabilities.argmax(1) == probabilities.argmax(1)).all()
    assert read_pt_metadata(pt_path)["class_names"] == classes


def test_backbone_state_is_the_full_torchvision_state(artifacts):
    """The shipped state dict has every key of the architecture, incl. bn statistics and the ImageNet fc."""
    manifest = manifest_of(artifacts)
    entry = manifest["state_dict"]
    tensors, _ = read_safetensors(artifacts / entry["file"])
    reference = getattr(torchvision.models, manifest["architecture"])().state_dict()
    assert list(tensors) == list(reference)
    for name, value in reference.items():
        assert tensors[name].shape == tuple(value.shape) and TORCH_DTYPES[tensors[name].dtype] == value.dtype, name
    assert tensors[entry["classifier"]["weight"]].shape == (1000, manifest["feature_size"])
    tracked = [n for n in tensors if n.endswith("num_batches_tracked")]
    assert tracked and all(tensors[n].dtype == "I64" for n in tracked)


def test_pt_loads_with_mmap_and_computed_offsets(tmp_path):
    """torch can compute storage offsets without the central directory, which needs miniz's exact layout."""
    from torch.utils.serialization import config

    torch.manual_seed(0)
    reference = torchvision.models.resnet18().state_dict()
    tensors = {name: _tensor(value) for name, value in reference.items()}
    path = tmp_path / "resnet18.pt"
    write_state_dict_pt(tensors, path)
    previous = config.load.calculate_storage_offsets
    try:
        for computed in (False, True):
            config.load.calculate_storage_offsets = computed
            for mmap in (False, True):
                loaded = torch.load(path, weights_only=True, mmap=mmap)
                assert list(loaded) == list(reference)
                assert all(torch.equal(loaded[k], v) and loaded[k].dtype == v.dtype for k, v in reference.items())
    finally:
        config.load.calculate_storage_offsets = previous


def _tensor(value: torch.Tensor):
    from tejas.safetensors import Tensor

    dtype = {torch.float32: "F32", torch.int64: "I64"}[value.dtype]
    return Tensor(dtype, tuple(value.shape), value.contiguous().numpy().tobytes())


def test_files_written_in_pyodide_equal_cpython_and_load(pyodide_report, tmp_path):  # noqa: F811
    results, out_host = pyodide_report
    assert results["test_writers::test_write_tiny_models"]["ok"]
    pyodide_dir = out_host / "test_write_tiny_models"
    artifacts = make_tiny_artifacts(tmp_path / "artifacts")
    write_classifier_onnx(artifacts, TINY_WEIGHT, TINY_BIAS, TINY_CLASSES, tmp_path / "tiny.onnx")
    write_classifier_pt(artifacts, TINY_WEIGHT, TINY_BIAS, TINY_CLASSES, tmp_path / "tiny.pt")
    write_state_dict_pt(tiny_state(), tmp_path / "tiny_state.pt")
    for name in (
        "tiny.onnx",
        "tiny.pt",
        "tiny_state.pt",
        "artifacts/backbone.onnx",
        "artifacts/backbone_state.safetensors",
    ):
        assert (pyodide_dir / name).read_bytes() == (tmp_path / name).read_bytes(), name

    # The tiny backbone and classifier run in onnxruntime and compute what they say.
    tiny = onnx.load(str(pyodide_dir / "tiny.onnx"))
    onnx.checker.check_model(tiny, full_check=True)
    assert json.loads({p.key: p.value for p in tiny.metadata_props}["class_names"]) == TINY_CLASSES
    image = np.random.default_rng(0).normal(size=(4, 3, 4, 4)).astype(np.float32)
    backbone = onnx.load_from_string(b"".join(bytes(c) for c in tiny_backbone()))
    projection = onnx.numpy_helper.to_array(backbone.graph.initializer[0])
    features = image.mean(axis=(2, 3)) @ projection
    assert (
        np.abs(_session(pyodide_dir / "artifacts/backbone.onnx").run(None, {"image": image})[0] - features).max() < 1e-6
    )
    weight = np.array(TINY_WEIGHT, np.float32).reshape(len(TINY_CLASSES), TINY_FEATURES)
    logits = features @ weight.T + np.array(TINY_BIAS, np.float32)
    probabilities, got_logits = _session(pyodide_dir / "tiny.onnx").run(None, {"image": image})
    assert np.abs(got_logits - logits).max() <= ONNX_TOLERANCE
    assert np.abs(probabilities - _softmax(logits)).max() <= ONNX_TOLERANCE

    # The .pt files load in torch with exactly the written values.
    state = tiny_state()
    loaded = torch.load(pyodide_dir / "tiny_state.pt", weights_only=True)
    assert list(loaded) == list(state)
    for name, tensor in state.items():
        expected = torch.frombuffer(bytearray(bytes(tensor.data)), dtype=TORCH_DTYPES[tensor.dtype]).reshape(
            tensor.shape
        )
        assert torch.equal(loaded[name], expected) and loaded[name].dtype == expected.dtype, name
    assert loaded["bn.num_batches_tracked"].item() == 12345 and loaded["bn.num_batches_tracked"].dtype == torch.int64
    classifier = torch.load(pyodide_dir / "tiny.pt", weights_only=True)
    assert torch.equal(classifier["fc.weight"], torch.from_numpy(weight))
    assert torch.equal(classifier["fc.bias"], torch.tensor(TINY_BIAS))
    assert torch.equal(classifier["conv.weight"], loaded["conv.weight"])
    with zipfile.ZipFile(pyodide_dir / "tiny.pt") as archive:
        assert json.loads(archive.read("archive/extra/tejas.json"))["class_names"] == TINY_CLASSES


def test_resnet18_sized_writes_complete_in_pyodide(pyodide_report):  # noqa: F811
    """Whole ResNet18-sized files come out of Pyodide (their speed is bench/pycore.py's business)."""
    results, out_host = pyodide_report
    assert results["test_writers::test_resnet18_sized_writes"]["ok"]
    timings = json.loads((out_host / "test_resnet18_sized_writes" / "timings.json").read_text())
    assert timings["onnx_bytes"] > 44_000_000 and timings["pt_bytes"] > 44_000_000, timings


def test_real_resnet18_files_written_in_pyodide_equal_cpython(resnet18_random, tmp_path):
    """The full ResNet18 classifier written inside Pyodide is byte-identical to CPython's, so it loads
    in torch (strict) and onnxruntime exactly as the CPython-written files checked above do."""
    import random
    import shutil
    import subprocess

    from ..conftest import ROOT

    work = tmp_path / "work"
    shutil.copytree(resnet18_random, work / "artifacts")
    rng = random.Random(3)
    weight = [rng.uniform(-0.05, 0.05) for _ in range(4 * 512)]
    names = ["ant", "bee", "cicada", "dragonfly"]
    script = tmp_path / "write.py"
    script.write_text(
        "from tejas.onnx_writer import write_classifier_onnx\n"
        "from tejas.model_export import write_classifier_pt\n"
        f"weight, bias, names = {weight!r}, [0.0, 0.1, 0.2, 0.3], {names!r}\n"
        "write_classifier_onnx('/work/artifacts', weight, bias, names, '/work/pyodide.onnx')\n"
        "write_classifier_pt('/work/artifacts', weight, bias, names, '/work/pyodide.pt')\n"
    )
    run = subprocess.run(
        ["node", str(ROOT / "bench" / "pyodide_exec.mjs"), str(ROOT), str(work), str(script)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    write_classifier_onnx(work / "artifacts", weight, [0.0, 0.1, 0.2, 0.3], names, work / "cpython.onnx")
    write_classifier_pt(work / "artifacts", weight, [0.0, 0.1, 0.2, 0.3], names, work / "cpython.pt")
    assert (work / "pyodide.onnx").read_bytes() == (work / "cpython.onnx").read_bytes()
    assert (work / "pyodide.pt").read_bytes() == (work / "cpython.pt").read_bytes()
    model = torchvision.models.resnet18(num_classes=4)
    model.load_state_dict(torch.load(work / "pyodide.pt", weights_only=True), strict=True)
    onnx.checker.check_model(str(work / "pyodide.onnx"))
