"""What a finished text run leaves in its output folder (docs/jobs.md "Text jobs"):

- artifacts/: a text artifact set made by the exporter's own pipeline (tejas_ml/export/text.py) from
  the fine-tuned encoder: encoder.onnx (checked against it), tokenizer.json, the head's training
  artifacts, manifest.json (modality text), so the app embeds with it and keeps training offline;
- model.onnx: that encoder.onnx with the trained head and a softmax appended by the core's writer
  (inputs input_ids, attention_mask; outputs probabilities, logits), metadata class_names and
  tejas_text; model.pt: the state dict and what loading it needs; tokenizer.json beside them;
- metrics.json (the app's report on the validation split), app_model.json + parameters.bin.

model.onnx and model.pt are checked against the trained network on validation texts (max probability
difference ≤ 1e-4), or the run fails.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path

import numpy as np
import torch

from tejas.artifacts import sha256_file
from tejas.catalog import MAX_CLASSES
from tejas.safetensors import float32_tensor

from .results import _floats, _head, agreement, app_options, finish_results
from .text import DEFAULT_MAX_LENGTH, TextClassifier
from .text_data import encode, pad
from .trainer import RunResult, TrainConfig

CHECK_TEXTS = 32
PT_FORMAT = "tejas-text-classifier/1"


def export_text_artifacts(network: TextClassifier, folder: Path, out: Path, seed: int, job: str | None, progress):
    """The exporter's text pipeline run on the fine-tuned encoder (saved as a model folder like the
    package's) into `out`; returns its manifest (also written as out/manifest.json)."""
    from tejas_ml.export.export import ExportConfig
    from tejas_ml.export.text import MODEL_FILES, run_text_pipeline

    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="tejas-finetuned-") as tmp:
        model_folder = Path(tmp)
        network.encoder.bert.save_pretrained(model_folder, safe_serialization=True)
        for name in MODEL_FILES:
            if not (model_folder / name).is_file():
                shutil.copyfile(folder / name, model_folder / name)
        # The exporter's own checks are left out: model.onnx is this encoder.onnx with the head appended, and
        # check_text_model compares it with the trained network.
        config = ExportConfig(out=out, modality="text", max_classes=MAX_CLASSES, checks=False, seed=seed)
        manifest = run_text_pipeline(config, model_folder, out, progress)
    manifest["name"] = f"job-{job}" if job else "fine-tuned"
    manifest["weights"]["kind"] = "fine-tuned"
    manifest["weights"]["origin"] = (
        f"fine-tuned by Tejas{f' server job {job}' if job else ''} from {manifest['weights']['origin']}"
    )
    _float_encoder_only(manifest, out)
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    return manifest


def _float_encoder_only(manifest: dict, out: Path) -> None:
    """The app embeds with the float32 encoder of a fine-tuned set: the very model the job checked, so the
    app's predictions are model.onnx's (a quantised variant the exporter adds is dropped, unmeasured for
    fine-tuned weights)."""
    from tejas_ml.export.text import ENCODER_FILE

    for key, model in list(manifest["models"].items()):
        if key != "encoder":
            (out / model["file"]).unlink(missing_ok=True)
            manifest["files"].pop(model["file"], None)
            manifest["models"].pop(key)
            manifest.get("checks", {}).pop(key, None)
    manifest["text"]["encoder"] = ENCODER_FILE


def _text_metadata(artifacts: Path, manifest: dict) -> dict:
    """tejas_text as the app's own text exports write it (the core's text_metadata)."""
    from tejas.model_export import text_metadata

    return text_metadata(artifacts, manifest)


def write_text_onnx(artifacts: Path, manifest: dict, weight, bias, classes: list[str], dest: Path) -> dict:
    """The float32 encoder of `artifacts` + head + softmax as one model (the core's writer, as image jobs)."""
    from tejas import protobuf as pb
    from tejas.onnx_writer import classifier_onnx_chunks

    encoder = (artifacts / manifest["models"]["encoder"]["file"]).read_bytes()
    k, features = len(classes), manifest["feature_size"]
    metadata = {
        "class_names": json.dumps(classes, ensure_ascii=False),
        "tejas_architecture": manifest["architecture"],
        "tejas_num_classes": str(k),
        "tejas_feature_size": str(features),
        "tejas_modality": "text",
        "tejas_text": json.dumps(_text_metadata(artifacts, manifest), sort_keys=True, ensure_ascii=False),
        "tejas_manifest_sha256": sha256_file(artifacts / "manifest.json"),
        "tejas_trained": "full",
    }
    chunks = classifier_onnx_chunks(
        encoder, float32_tensor(_floats(weight), (k, features)), float32_tensor(_floats(bias), (k,)), metadata
    )
    with open(dest, "wb") as f:
        pb.write_chunks(chunks, f)
    return metadata


def write_text_pt(network: TextClassifier, artifacts: Path, manifest: dict, classes: list[str], dest: Path) -> None:
    """model.pt, loadable with torch.load(weights_only=True): docs/jobs.md shows how to run it."""
    weight, bias = _head(network)
    state = {f"bert.{k}": v.detach().clone() for k, v in network.encoder.bert.state_dict().items()}
    state["head.weight"], state["head.bias"] = weight.detach().clone(), bias.detach().clone()
    torch.save(
        {
            "format": PT_FORMAT,
            "architecture": manifest["architecture"],
            "bert_config": network.encoder.bert.config.to_json_string(),
            "state_dict": state,
            "class_names": list(classes),
            "text": _text_metadata(artifacts, manifest),
            "pooling": "mean, then L2 normalisation; padding (attention_mask 0) excluded",
        },
        dest,
    )


def load_text_pt(path: Path):
    """(a torch module (input_ids, attention_mask) -> probabilities, the file's dict), from model.pt alone."""
    import transformers

    from tejas_ml.export.models import SentenceEncoder

    saved = torch.load(path, weights_only=True)
    config = transformers.BertConfig.from_dict(json.loads(saved["bert_config"]))
    bert = transformers.BertModel(config, add_pooling_layer=False)
    state = saved["state_dict"]
    bert.load_state_dict({k.removeprefix("bert."): v for k, v in state.items() if k.startswith("bert.")}, strict=True)
    encoder = SentenceEncoder(bert).eval()
    head = torch.nn.Linear(state["head.weight"].shape[1], state["head.weight"].shape[0])
    head.load_state_dict({"weight": state["head.weight"], "bias": state["head.bias"]}, strict=True)

    def probabilities(input_ids, attention_mask):
        with torch.no_grad():
            return torch.softmax(head(encoder(input_ids, attention_mask)), dim=1)

    return probabilities, saved


def check_text_model(network: TextClassifier, texts: list[str], tokenizer: Path, onnx_path: Path, pt_path: Path):
    """model.onnx (onnxruntime) and model.pt vs the trained network on `texts`, one padded batch as the app
    tokenises; ResultError past TOLERANCE."""
    import onnxruntime

    input_ids, attention_mask = pad(encode(tokenizer, texts, DEFAULT_MAX_LENGTH))
    with torch.no_grad():
        expected = torch.softmax(network.eval()(input_ids, attention_mask).float(), dim=1).numpy()
    session = onnxruntime.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    got = session.run(["probabilities"], {"input_ids": input_ids.numpy(), "attention_mask": attention_mask.numpy()})[0]
    onnx_diff = float(np.abs(got - expected).max())
    run_pt, _ = load_text_pt(pt_path)
    pt_diff = float(np.abs(run_pt(input_ids, attention_mask).numpy() - expected).max())
    return {**agreement(onnx_diff, pt_diff), "texts": len(texts)}


def write_text_results(
    result: RunResult,
    *,
    folder: Path,
    classes: list[str],
    class_ids: list[str] | None,
    config: TrainConfig,
    max_length: int,
    out: Path,
    job: str | None = None,
    progress=lambda stage: None,
) -> dict:
    """Write every result file into `out`; returns {files: {name: {size, sha256}}, checks, app_model}."""
    out.mkdir(parents=True, exist_ok=True)
    network = result.network.cpu().eval()
    progress("making a text artifact set from the fine-tuned encoder")
    artifacts = out / "artifacts"
    manifest = export_text_artifacts(network, folder, artifacts, config.seed, job, progress)
    shutil.copyfile(artifacts / "tokenizer.json", out / "tokenizer.json")
    weight, bias = _head(network)
    progress("writing model.onnx and model.pt")
    write_text_onnx(artifacts, manifest, weight, bias, classes, out / "model.onnx")
    write_text_pt(network, artifacts, manifest, classes, out / "model.pt")
    progress("checking model.onnx and model.pt against PyTorch")
    examples = (result.validation or result.train)[:CHECK_TEXTS]
    checks = check_text_model(
        network, [e.text for e in examples], out / "tokenizer.json", out / "model.onnx", out / "model.pt"
    )

    artifacts = {"kind": "job", "modality": "text", "files": sorted(manifest["files"]) + ["manifest.json"]}
    return finish_results(
        out,
        result,
        checks=checks,
        classes=classes,
        class_ids=class_ids,
        layout=manifest["training"]["head"]["parameters"],
        tensors={"fc.weight": weight, "fc.bias": bias},
        server={"job": job, "mode": config.mode, "backbone": manifest["architecture"]},
        app={
            "mode": "head",
            "modality": "text",
            "options": app_options(config, maxLength=max_length),
            "artifacts": artifacts,
        },
    )
