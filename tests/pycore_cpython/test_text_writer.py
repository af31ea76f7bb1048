"""The stdlib core's text classifier ONNX (encoder + head + softmax in one file) checked with real onnxruntime,
written in CPython and in Pyodide from the real artifacts/text (both encoders: float32 and uint8)."""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess

import numpy as np
import onnx
import onnxruntime as ort
import pytest

from tejas.artifacts import ArtifactError
from tejas.bridge import write_model
from tejas.model_export import write_classifier_pt
from tejas.onnx_writer import write_classifier_onnx
from tejas_ml.export.sentences import SENTENCES

from ..conftest import ROOT

TEXT_ARTIFACTS = ROOT / "artifacts" / "text"
ENCODERS = ["encoder.onnx", "encoder_uint8.onnx"]
TOLERANCE = 1e-5
CLASSES = ["ham", "spam", "ünïcode ✓", "四"]
SPAM = [
    "Free entry in 2 a wkly comp to win FA Cup final tkts 21st May 2005. Text FA to 87121",
    "Nah I don't think he goes to usf, he lives around here though",
    "Had your mobile 11 months or more? U R entitled to Update to the latest colour mobiles with camera for Free!",
]


@pytest.fixture(scope="module")
def text_artifacts() -> dict:
    manifest_path = TEXT_ARTIFACTS / "manifest.json"
    if not manifest_path.is_file():
        pytest.fail(f"{manifest_path} missing: run `bash tools/dev.sh test` (it exports artifacts/text)")
    manifest = json.loads(manifest_path.read_text())
    if "encoder_uint8" not in manifest["models"]:
        pytest.fail("artifacts/text predates encoder_uint8.onnx: run `bash tools/dev.sh test` (it re-exports)")
    return manifest


def artifacts_with(tmp_path, encoder: str, link: bool = True):
    """A copy of artifacts/text whose manifest's text.encoder names `encoder` (large files symlinked, or copied
    for Pyodide, whose NODEFS mount cannot follow a link out of it)."""
    folder = tmp_path / f"text-{encoder}"
    folder.mkdir()
    for name in (*ENCODERS, "tokenizer.json"):
        if link:
            (folder / name).symlink_to(TEXT_ARTIFACTS / name)
        else:
            shutil.copyfile(TEXT_ARTIFACTS / name, folder / name)
    manifest = json.loads((TEXT_ARTIFACTS / "manifest.json").read_text())
    manifest["text"]["encoder"] = encoder
    (folder / "manifest.json").write_text(json.dumps(manifest, indent=2))
    return folder


def token_batch(texts: list[str]) -> dict:
    """Python tokenizers on artifacts/text/tokenizer.json, padding off, the batch padded to its longest."""
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(str(TEXT_ARTIFACTS / "tokenizer.json"))
    tokenizer.no_padding()
    ids = [e.ids for e in tokenizer.encode_batch(texts)]
    input_ids = np.zeros((len(ids), max(map(len, ids))), np.int64)
    mask = np.zeros_like(input_ids)
    for row, seq in enumerate(ids):
        input_ids[row, : len(seq)], mask[row, : len(seq)] = seq, 1
    return {"input_ids": input_ids, "attention_mask": mask}


def session(path) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.log_severity_level = 3
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def random_head(seed: int = 0):
    rng = np.random.default_rng(seed)
    # unit-length features: weights of this size give probabilities far from uniform
    weight = rng.normal(0, 3.0, (len(CLASSES), 384)).astype(np.float32)
    bias = rng.normal(0, 0.5, len(CLASSES)).astype(np.float32)
    return weight, bias


@pytest.mark.parametrize("encoder", ENCODERS)
def test_text_model_equals_encoder_then_head(text_artifacts, encoder, tmp_path):
    folder = artifacts_with(tmp_path, encoder)
    weight, bias = random_head()
    dest = tmp_path / "text.onnx"
    info = write_classifier_onnx(folder, weight.ravel().tolist(), bias.tolist(), CLASSES, dest)
    assert info["modality"] == "text" and info["text"]["encoder"] == encoder and "input" not in info

    model = onnx.load(str(dest))
    onnx.checker.check_model(model, full_check=True)
    source = onnx.load(str(folder / encoder))
    assert model.ir_version == source.ir_version <= 10 and list(model.opset_import) == list(source.opset_import)
    assert [i.name for i in model.graph.input] == ["input_ids", "attention_mask"]
    assert [o.name for o in model.graph.output] == ["probabilities", "logits"]  # as the image exports
    metadata = {p.key: p.value for p in model.metadata_props}
    assert json.loads(metadata["class_names"]) == CLASSES
    assert metadata["tejas_modality"] == "text" and "tejas_input" not in metadata
    assert metadata["tejas_num_classes"] == "4" and metadata["tejas_feature_size"] == "384"
    text = json.loads(metadata["tejas_text"])
    assert text == info["text"]
    assert {k: text[k] for k in ("tokenizer", "max_length", "padding", "pad_id", "token_type_ids")} == {
        "tokenizer": "tokenizer.json",
        "max_length": 128,
        "padding": "batch",
        "pad_id": 0,
        "token_type_ids": "zeros",
    }
    assert text["inputs"] == ["input_ids", "attention_mask"] and text["lowercase"] is True
    assert text["tokenizer_sha256"] == hashlib.sha256((TEXT_ARTIFACTS / "tokenizer.json").read_bytes()).hexdigest()

    inputs = token_batch([*SENTENCES, *SPAM])
    assert inputs["input_ids"].shape[1] == 128 and inputs["attention_mask"].sum(1).min() == 2  # long and empty
    features = session(folder / encoder).run(["features"], inputs)[0]
    logits = features @ weight.T + bias
    probabilities = np.exp(logits - logits.max(1, keepdims=True))
    probabilities /= probabilities.sum(1, keepdims=True)
    got_probabilities, got_logits = session(dest).run(["probabilities", "logits"], inputs)
    assert np.abs(got_logits - logits).max() <= TOLERANCE
    assert np.abs(got_probabilities - probabilities).max() <= TOLERANCE
    assert probabilities.max(1).mean() > 0.6 and len(set(probabilities.argmax(1))) >= 3  # a head that decides
    # any batch, e.g. one text alone. (uint8 quantises activations with one scale per batch, so its features
    # move slightly with the batch's other texts: compare with the encoder on the same batch, not with row 32.)
    alone = token_batch([SPAM[1]])
    features = session(folder / encoder).run(["features"], alone)[0]
    assert np.abs(session(dest).run(["logits"], alone)[0] - (features @ weight.T + bias)).max() <= TOLERANCE


def test_text_writer_refuses_what_it_cannot_write(text_artifacts, tmp_path):
    folder = artifacts_with(tmp_path, "encoder_uint8.onnx")
    weight, bias = (b.ravel().tolist() for b in random_head())
    with pytest.raises(ArtifactError, match="a text model has no PyTorch export here: download its ONNX model"):
        write_classifier_pt(folder, weight, bias, CLASSES, tmp_path / "m.pt")
    with pytest.raises(ArtifactError, match="a text model has no PyTorch export here"):
        write_model("pt", str(folder), np.float32(weight).tobytes(), np.float32(bias).tobytes(), CLASSES, "x.pt")
    with pytest.raises(ArtifactError, match="a text model trains its head only"):
        write_classifier_onnx(folder, weight, bias, CLASSES, tmp_path / "m.onnx", {"x": [0.0]})
    with pytest.raises(ValueError, match="4 classes x 384 features need 1536"):
        write_classifier_onnx(folder, weight[:-1], bias, CLASSES, tmp_path / "m.onnx")
    (folder / "tokenizer.json").unlink()
    with pytest.raises(ArtifactError, match=r"tokenizer.json: missing; re-export with `tejas export --modality text"):
        write_classifier_onnx(folder, weight, bias, CLASSES, tmp_path / "m.onnx")
    manifest = json.loads((folder / "manifest.json").read_text())
    manifest["text"]["encoder"] = "nowhere.onnx"
    (folder / "manifest.json").write_text(json.dumps(manifest))
    (folder / "tokenizer.json").symlink_to(TEXT_ARTIFACTS / "tokenizer.json")
    with pytest.raises(ArtifactError, match="text.encoder 'nowhere.onnx' is not among its models"):
        write_classifier_onnx(folder, weight, bias, CLASSES, tmp_path / "m.onnx")
    assert not (tmp_path / "m.onnx").exists() and not (tmp_path / "m.pt").exists()


PYODIDE_SCRIPT = """
import json, os, shutil, time
import pyodide_js
from tejas.bridge import write_model
from array import array

def heap():
    return pyodide_js._module.HEAP8.length

report = {"heap_start": heap()}
weight, bias = array("f", WEIGHT).tobytes(), array("f", BIAS).tobytes()
for encoder in ENCODERS:
    # as the app does: the artifact files in Pyodide's memory file system, the model written there and read back
    src, dest = f"/work/text-{encoder}", f"/tmp/text-{encoder}"
    shutil.copytree(src, dest)
    started = time.perf_counter()
    write_model("onnx", dest, weight, bias, CLASSES, "/tmp/model.onnx", {})
    seconds = time.perf_counter() - started
    with open("/tmp/model.onnx", "rb") as f:
        written = f.read()
    with open(f"/work/pyodide-{encoder}", "wb") as f:
        f.write(written)
    report[encoder] = {"seconds": seconds, "bytes": len(written), "heap_after": heap()}
    del written
    os.unlink("/tmp/model.onnx")
    shutil.rmtree(dest)
print("REPORT " + json.dumps(report))
"""


def test_text_model_written_in_pyodide_equals_cpython(text_artifacts, tmp_path):
    """Both encoders' classifiers come out of Pyodide byte-identical to CPython's (so they compute what the test
    above checked); the time and the WebAssembly heap it took are printed for the record."""
    work = tmp_path / "work"
    work.mkdir()
    weight, bias = random_head(1)
    for encoder in ENCODERS:
        folder = artifacts_with(work, encoder, link=False)
        write_classifier_onnx(folder, weight.ravel().tolist(), bias.tolist(), CLASSES, work / f"cpython-{encoder}")
    script = tmp_path / "write.py"
    script.write_text(
        f"WEIGHT, BIAS = {weight.ravel().tolist()!r}, {bias.tolist()!r}\n"
        f"ENCODERS, CLASSES = {ENCODERS!r}, {CLASSES!r}\n" + PYODIDE_SCRIPT
    )
    run = subprocess.run(
        ["node", str(ROOT / "bench" / "pyodide_exec.mjs"), str(ROOT), str(work), str(script)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    report = json.loads(next(line[7:] for line in run.stdout.splitlines() if line.startswith("REPORT ")))
    print(json.dumps(report))
    for encoder in ENCODERS:
        assert (work / f"pyodide-{encoder}").read_bytes() == (work / f"cpython-{encoder}").read_bytes(), encoder
        assert report[encoder]["bytes"] > (TEXT_ARTIFACTS / encoder).stat().st_size
