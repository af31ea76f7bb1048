"""The export's stages over a loaded model: ONNX files, training artifacts, checks, manifest."""

from __future__ import annotations

import copy
import datetime
from pathlib import Path

import onnx
import torch

from . import checks
from .backbones import IMAGENET_MEAN, IMAGENET_STD, Backbone, WeightsSource
from .manifest import class_mask, describe_model, file_list, schema_id, training_set, versions
from .models import (
    OPSET,
    FeatureExtractor,
    LastBlockFeatures,
    LastBlockHead,
    batch_norm_pairs,
    export_onnx,
    fold_batch_norm,
    make_head,
)
from .photos import load_photos
from .training import OptimizerConfig

STATE_FILE = "backbone_state.safetensors"
_SAFETENSORS_DTYPES = {torch.float32: "F32", torch.int64: "I64"}


def _write_state_dict(model, classifier, path: Path) -> dict:
    """Save the full torchvision state dict (batch-norm unfolded, ImageNet classifier included) as
    safetensors, so the stdlib core can later write a .pt classifier (tejas.model_export); returns
    the manifest entry."""
    from tejas.safetensors import Tensor, write_safetensors

    tensors = {}
    for name, value in model.state_dict().items():
        if value.dtype not in _SAFETENSORS_DTYPES:
            raise RuntimeError(f"state dict entry {name} has dtype {value.dtype}, not float32/int64")
        array = value.detach().cpu().contiguous().numpy()
        data = array.astype(array.dtype.newbyteorder("<"), copy=False).tobytes()  # safetensors is little-endian
        tensors[name] = Tensor(_SAFETENSORS_DTYPES[value.dtype], tuple(value.shape), data)
    write_safetensors(tensors, path)
    prefix = next(name for name, module in model.named_modules() if module is classifier)
    return {
        "file": path.name,
        "format": "safetensors",
        "classifier": {"weight": f"{prefix}.weight", "bias": f"{prefix}.bias"},
    }


LAST_BLOCK_FILE = "last_block.onnx"
_LAST_BLOCK_SCOPE = "tejas_last_block"


def _export_last_block(folded, block_input, root: Path, parameter_names: list[str]) -> dict:
    """last_block.onnx: block_input + the block's parameters (graph inputs, no weights inside) -> features.

    The browser feeds a trained model's parameters to it for predictions; the stdlib core appends it
    to backbone_trunk.onnx to write a standalone model, so every internal name is put in its own
    scope and cannot clash with the trunk's.
    """
    path = root / LAST_BLOCK_FILE
    module = LastBlockFeatures(folded)
    export_onnx(
        module,
        (block_input,),
        path,
        ["block_input"],
        ["features"],
        ["block_input"],
        trainable=True,
        parameters_as_inputs=True,
    )
    model = onnx.load(str(path))
    graph = model.graph
    keep = {v.name for v in graph.input} | {v.name for v in graph.output} | {""}
    missing = set(parameter_names) - keep
    if missing:
        raise RuntimeError(f"{LAST_BLOCK_FILE}: parameters not graph inputs: {sorted(missing)[:3]}")

    def scoped(name: str) -> str:
        return name if name in keep else f"{_LAST_BLOCK_SCOPE}/{name.lstrip('/')}"

    for index, node in enumerate(graph.node):
        node.name = scoped(node.name or f"{node.op_type}_{index}")
        node.input[:] = [scoped(n) for n in node.input]
        node.output[:] = [scoped(n) for n in node.output]
    del graph.value_info[:]
    onnx.save(model, str(path))
    entry = describe_model(path, root, set(parameter_names))
    entry["parameters"] = parameter_names
    return entry


def _last_block_state_dict(model, last_block, folded, parameter_names: list[str]) -> dict:
    """How the folded last block's tensors map back onto torchvision's state dict (for .pt files):
    each folded convolution, the convolution and batch norm it came from, and the batch norm's eps."""
    where = {id(m): name for name, m in model.named_modules()}
    original = {child: where[id(module)] for child, module in last_block.named_children()}

    def torchvision_name(name: str) -> str:
        first, _, rest = name.partition(".")
        return f"{original[first]}.{rest}" if rest else original[first]

    pairs = batch_norm_pairs(last_block)
    convolutions = {}
    for name, module in folded.named_modules():
        if isinstance(module, torch.nn.Conv2d):
            bn = pairs.get(name)
            convolutions[f"last_block.{name}"] = {
                "conv": torchvision_name(name),
                "batch_norm": torchvision_name(bn[0]) if bn else None,
                "eps": bn[1] if bn else None,
            }
    covered = {f"{conv}.{kind}" for conv in convolutions for kind in ("weight", "bias")}
    uncovered = [n for n in parameter_names if not n.startswith("head.") and n not in covered]
    if uncovered:
        raise RuntimeError(f"last-block tensors with no state-dict mapping: {uncovered[:3]}")
    return {"head": "head.fc", "convolutions": convolutions}


def quantise_backbone(source: Path, target: Path) -> None:
    """Dynamic quantisation of `source`: Conv/MatMul weights to uint8 per tensor, activations quantised at run
    time (per batch). QUInt8, not QInt8: QInt8 weights make ConvInteger nodes native onnxruntime cannot run
    (NOT_IMPLEMENTED: ConvInteger(10)) and that run ~4x slower in onnxruntime-web."""
    import logging

    from onnxruntime.quantization import QuantType, quantize_dynamic

    root = logging.getLogger()  # quantize_dynamic advises "pre-processing" on the root logger; not needed here
    level = root.level
    root.setLevel(logging.ERROR)
    try:
        quantize_dynamic(str(source), str(target), weight_type=QuantType.QUInt8)
    finally:
        root.setLevel(level)


def run_pipeline(
    config, backbone: Backbone, source: WeightsSource, model, classifier_loaded: bool, root: Path, step
) -> dict:
    crop = config.input_size
    resize = round(crop * 256 / 224)
    trunk, last_block, classifier = backbone.split(model)
    extractor = FeatureExtractor(trunk, last_block).eval()

    step(f"writing {STATE_FILE}")
    state_dict = _write_state_dict(model, classifier, root / STATE_FILE)

    step("exporting backbone.onnx")
    dummy = torch.zeros(1, 3, crop, crop)
    export_onnx(extractor, (dummy,), root / "backbone.onnx", ["image"], ["features"], ["image"])
    models = {"backbone": describe_model(root / "backbone.onnx", root)}
    if config.train == "last-block":
        step("exporting backbone_trunk.onnx")
        export_onnx(trunk, (dummy,), root / "backbone_trunk.onnx", ["image"], ["block_input"], ["image"])
        models["backbone_trunk"] = describe_model(root / "backbone_trunk.onnx", root)

    result_checks = {}
    if config.checks:
        step("checking ONNX against PyTorch on real photos")
        photos = load_photos()
        batch = torch.stack([checks.preprocess(p.rgb, resize, crop, IMAGENET_MEAN, IMAGENET_STD) for p in photos])
        result_checks["backbone_max_abs_diff"] = checks.check_onnx_matches_torch(
            extractor, root / "backbone.onnx", batch
        )
        if "backbone_trunk" in models:
            result_checks["backbone_trunk_max_abs_diff"] = checks.check_onnx_matches_torch(
                trunk, root / "backbone_trunk.onnx", batch
            )
    if config.quantize == "uint8":
        step("quantising backbone.onnx to uint8 weights")
        float32 = root / "backbone_float32.onnx"  # the reference of the check only; not shipped
        (root / "backbone.onnx").rename(float32)
        quantise_backbone(float32, root / "backbone.onnx")
        if config.checks:
            step("checking the uint8 backbone against float32 on real photos")
            result_checks["backbone_uint8"] = checks.check_quantised_backbone(float32, root / "backbone.onnx", batch)
        float32.unlink()
        models["backbone"] = {**describe_model(root / "backbone.onnx", root), "quantization": "uint8-dynamic"}
    if config.checks:
        if source.kind == "imagenet" or (source.kind == "file" and classifier_loaded):
            step("checking ImageNet predictions")
            session = checks.session(root / "backbone.onnx")
            features = session.run(None, {"image": batch.numpy()})[0]
            categories = _imagenet_categories()
            try:
                result_checks["imagenet"] = checks.check_imagenet(classifier, features, photos, categories)
            except checks.ExportError:
                if source.kind == "imagenet":
                    raise
                # A user's own classifier need not be an ImageNet one; record, don't refuse.
                result_checks["imagenet"] = "not an ImageNet classifier"

    optimizer = OptimizerConfig()
    head = make_head(backbone.feature_size, config.max_classes, config.seed)
    step("building head training artifacts")
    training = {
        "head": training_set(
            "training",
            head,
            torch.zeros(2, backbone.feature_size),
            root,
            config.max_classes,
            optimizer,
            config.checks,
            "head",
        )
    }
    if config.train == "last-block":
        step("building last-block training artifacts")
        with torch.no_grad():
            block_input = trunk(torch.zeros(2, 3, crop, crop))
        folded = fold_batch_norm(last_block)
        trainable = LastBlockHead(folded, copy.deepcopy(head))
        training["last_block"] = training_set(
            "training_last_block",
            trainable,
            block_input,
            root,
            config.max_classes,
            optimizer,
            config.checks,
            backbone.last_block,
        )
        names = [p["name"] for p in training["last_block"]["parameters"]]
        training["last_block"]["state_dict"] = _last_block_state_dict(model, last_block, folded, names)
        step(f"exporting {LAST_BLOCK_FILE}")
        models["last_block"] = _export_last_block(
            folded, block_input, root, [n for n in names if n.startswith("last_block.")]
        )

    files = file_list(root)
    return {
        "$schema": schema_id(),
        "schema_version": 1,
        "modality": "image",
        "created": datetime.datetime.now(datetime.UTC).replace(microsecond=0).isoformat(),
        "architecture": backbone.name,
        "weights": {
            "kind": source.kind,
            "origin": source.origin,
            "file": source.path.name if source.path else None,
            "sha256": source.sha256,
        },
        "input": {
            "name": "image",
            "layout": "NCHW",
            "channels": "RGB",
            "dtype": "float32",
            "size": [crop, crop],
            "resize": {
                "shorter_side": resize,
                "interpolation": "bilinear",
                "antialias": True,
                "implementation": "pillow",
            },
            "crop": "center",
            "scale": 1 / 255,
            "mean": list(IMAGENET_MEAN),
            "std": list(IMAGENET_STD),
        },
        "feature_size": backbone.feature_size,
        "max_classes": config.max_classes,
        "class_mask": class_mask(),
        "opset": OPSET,
        "models": models,
        "state_dict": state_dict,
        "training": training,
        "files": files,
        "versions": versions(),
        "checks": result_checks,
    }


def _imagenet_categories() -> list[str]:
    import torchvision

    return torchvision.models.ResNet18_Weights.IMAGENET1K_V1.meta["categories"]
