"""What a finished run leaves in its output folder (docs/jobs.md lists the files):

- model.onnx / model.pt, written by the stdlib core (the same writers as the app's exports) from an
  artifact set + the trained tensors, then checked against the PyTorch network: the ONNX with
  onnxruntime, the .pt loaded into torchvision with strict=True; max probability difference ≤ 1e-4,
  or the run fails;
- metrics.json (the app's report, history, split), app_model.json + parameters.bin (an ordinary model
  for the app, in the artifact set's own parameter layout);
- for `full`: artifacts/, a new artifact set the exporter makes from the fine-tuned network, so the
  app predicts with it and keeps training its head on the device.
"""

from __future__ import annotations

import json
import logging
from array import array
from pathlib import Path

import numpy as np
import torch

from tejas.artifacts import read_manifest, sha256_file
from tejas.model_export import write_classifier_pt
from tejas.onnx_writer import write_classifier_onnx
from tejas_ml.export.backbones import Backbone

from .data import ImageDataset, transforms
from .network import Classifier
from .trainer import RunResult, TrainConfig

log = logging.getLogger("tejas.training")

TOLERANCE = 1e-4
CHECK_IMAGES = 32


class ResultError(RuntimeError):
    """A written model does not compute what the trained network computes."""


def _floats(tensor: torch.Tensor) -> array:
    values = array("f")
    values.frombytes(tensor.detach().cpu().contiguous().float().numpy().astype("<f4").tobytes())
    return values


def _head(network: Classifier) -> tuple[torch.Tensor, torch.Tensor]:
    """The trained classifier's weight [K, F] and bias [K] (the masked head's first K rows)."""
    k = network.num_classes
    return network.head.weight[:k], network.head.bias[:k]


def _parameters_in_layout(tensors: dict[str, torch.Tensor], layout: list[dict]) -> np.ndarray:
    """One float32 buffer with every tensor of `layout` at its offset (rows past K stay zero)."""
    size = max(p["offset"] + int(np.prod(p["shape"])) for p in layout)
    buffer = np.zeros(size, dtype="<f4")
    for p in layout:
        value = tensors[p["name"]].detach().cpu().float().numpy()
        shape = tuple(p["shape"])
        block = np.zeros(shape, dtype="<f4")
        block[tuple(slice(0, n) for n in value.shape)] = value
        buffer[p["offset"] : p["offset"] + block.size] = block.ravel()
    return buffer


def _export_full_artifacts(network: Classifier, backbone: Backbone, config_input: dict, max_classes: int, out: Path):
    """The exporter's artifact set from the fine-tuned network (its weights given as a state-dict file)."""
    from tejas_ml.export.export import ExportConfig, export_artifacts

    weights = out.parent / "finetuned_state.pt"
    torch.save(network.trainable.state_dict(), weights)
    export_artifacts(
        ExportConfig(
            out=out,
            backbone=backbone.name,
            weights=str(weights),
            train="head",
            max_classes=max_classes,
            input_size=config_input["size"][0],
            force=True,
            checks=True,
            allow_download=False,
        )
    )
    weights.unlink()
    return read_manifest(out)


def _check_against_torch(
    network: Classifier, result: RunResult, input_spec: dict, onnx_path: Path, pt_path: Path, backbone: Backbone
) -> dict:
    import onnxruntime
    import torchvision

    _, evaluation = transforms(input_spec, augment=False)
    examples = (result.validation or result.train)[:CHECK_IMAGES]
    batch = torch.stack([ImageDataset(examples, evaluation)[i][0] for i in range(len(examples))])
    with torch.no_grad():
        expected = torch.softmax(network.eval()(batch).float(), dim=1).numpy()
    session = onnxruntime.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    got = session.run(["probabilities"], {"image": batch.numpy()})[0]
    onnx_diff = float(np.abs(got - expected).max())
    model = getattr(torchvision.models, backbone.name)(num_classes=network.num_classes)
    model.load_state_dict(torch.load(pt_path, weights_only=True), strict=True)
    with torch.no_grad():
        pt_probabilities = torch.softmax(model.eval()(batch), dim=1).numpy()
    pt_diff = float(np.abs(pt_probabilities - expected).max())
    return {**agreement(onnx_diff, pt_diff), "images": len(examples)}


def agreement(onnx_diff: float, pt_diff: float) -> dict:
    """The written files' largest probability differences from the trained network; raises past TOLERANCE."""
    if onnx_diff > TOLERANCE or pt_diff > TOLERANCE:
        raise ResultError(
            f"the written model disagrees with the trained network (ONNX max diff {onnx_diff:.2e}, "
            f".pt {pt_diff:.2e}; allowed {TOLERANCE:.0e})"
        )
    return {"onnx_max_abs_diff": onnx_diff, "pt_max_abs_diff": pt_diff}


def write_results(
    result: RunResult,
    *,
    backbone: Backbone,
    artifacts_dir: Path,
    classes: list[str],
    class_ids: list[str] | None,
    config: TrainConfig,
    out: Path,
    job: str | None = None,
    progress=lambda stage: None,
) -> dict:
    """Write every result file into `out`; returns {files: {name: {size, sha256}}, checks, app_model}."""
    out.mkdir(parents=True, exist_ok=True)
    network = result.network.cpu().eval()
    manifest = read_manifest(artifacts_dir)
    input_spec = manifest["input"]
    weight, bias = _head(network)
    if config.mode == "full":
        progress("making an artifact set from the fine-tuned network")
        model_artifacts = out / "artifacts"
        own_manifest = _export_full_artifacts(network, backbone, input_spec, manifest["max_classes"], model_artifacts)
        layout = own_manifest["training"]["head"]["parameters"]
        tensors = {"fc.weight": weight, "fc.bias": bias}
        app_mode, last_block = "head", None
    else:
        model_artifacts = artifacts_dir
        own_manifest = manifest
        layout = manifest["training"][config.mode]["parameters"]
        tensors = dict(network.trainable.named_parameters())
        app_mode = config.mode
        last_block = (
            {name: _floats(t) for name, t in tensors.items() if name.startswith("last_block.")}
            if config.mode == "last_block"
            else None
        )
    progress("writing model.onnx and model.pt")
    write_classifier_onnx(model_artifacts, _floats(weight), _floats(bias), classes, out / "model.onnx", last_block)
    write_classifier_pt(model_artifacts, _floats(weight), _floats(bias), classes, out / "model.pt", last_block)
    progress("checking model.onnx and model.pt against PyTorch")
    checks = _check_against_torch(network, result, input_spec, out / "model.onnx", out / "model.pt", backbone)

    artifacts = (
        {"kind": "job", "files": sorted(own_manifest["files"]) + ["manifest.json"]}
        if config.mode == "full"
        else {"kind": "default", "backbone_sha256": manifest["files"]["backbone.onnx"]["sha256"]}
    )
    return finish_results(
        out,
        result,
        checks=checks,
        classes=classes,
        class_ids=class_ids,
        layout=layout,
        tensors=tensors,
        server={"job": job, "mode": config.mode, "backbone": backbone.name},
        app={"mode": app_mode, "options": app_options(config, augment=config.augment), "artifacts": artifacts},
    )


def app_options(config: TrainConfig, **own) -> dict:
    """The run's options as the app records a training run's, with `own`: those of one kind of job only."""
    return {
        "mode": config.mode,
        "epochs": config.epochs,
        "learningRate": config.lr(),
        "batchSize": config.batch_size,
        "validationShare": config.validation_share,
        "seed": config.seed,
        **own,
    }


def finish_results(out: Path, result, *, checks, classes, class_ids, layout, tensors, server: dict, app: dict) -> dict:
    """parameters.bin (`tensors` in the artifact set's `layout`), metrics.json, app_model.json (the model record
    the app imports: `app` holds what differs between kinds of job — mode, options, artifacts, modality) and the
    listing of every result file; image and text jobs alike."""
    parameters = _parameters_in_layout(tensors, layout)
    (out / "parameters.bin").write_bytes(parameters.tobytes())
    history = [
        {
            "epoch": e["epoch"],
            "loss": e["loss"],
            "trainAccuracy": e["train_accuracy"],
            **({"validationAccuracy": e["validation_accuracy"]} if e["validation_accuracy"] is not None else {}),
        }
        for e in result.history
    ]
    split = {"train": [e.id for e in result.train], "validation": [e.id for e in result.validation]}
    (out / "metrics.json").write_text(
        json.dumps({"report": result.report, "history": result.history, "split": split, "checks": checks})
    )
    app_model = {
        **app,
        "classes": [{"id": i, "name": n} for i, n in zip(class_ids or classes, classes, strict=True)],
        "layout": layout,
        "parameters": {"file": "parameters.bin", "length": int(parameters.size)},
        "history": history,
        "metrics": result.report,
        "split": split,
        "sampleCount": len(result.train) + len(result.validation),
        "server": {
            **server,
            "device": result.device,
            "device_name": result.device_name,
            "stopped_early": result.stopped_early,
        },
    }
    (out / "app_model.json").write_text(json.dumps(app_model))
    files = {}
    for path in sorted(out.rglob("*")):
        if path.is_file():
            files[path.relative_to(out).as_posix()] = {"size": path.stat().st_size, "sha256": sha256_file(path)}
    return {"files": files, "checks": checks, "app_model": app_model}
