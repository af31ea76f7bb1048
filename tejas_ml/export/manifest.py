"""Manifest pieces every export shares (image and text): model descriptions, the head's training set,
the file list and the versions."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import onnx
import torch

from tejas.artifacts import sha256_file

from . import checks
from .training import (
    NARROW_HEAD_WIDTHS,
    ORT_DEFAULT_LEARNING_RATE,
    generate_training_artifacts,
    narrow_head,
    optimizer_manifest,
)


def schema_id() -> str:
    from tejas.artifacts import SCHEMA_PATH

    return json.loads(SCHEMA_PATH.read_text())["$id"]


def class_mask() -> dict:
    from .models import MASK_PENALTY

    return {"input": "class_mask", "active": 1.0, "inactive": 0.0, "penalty": MASK_PENALTY}


def _io(values) -> list[dict]:
    """Name, dtype and shape of graph inputs/outputs; the optimizer's inputs are tensor sequences."""

    def describe(value):
        kind = value.type.WhichOneof("value")
        tensor = value.type.sequence_type.elem_type.tensor_type if kind == "sequence_type" else value.type.tensor_type
        dtype = onnx.helper.tensor_dtype_to_np_dtype(tensor.elem_type).name
        entry = {"name": value.name, "dtype": f"sequence<{dtype}>" if kind == "sequence_type" else dtype}
        if kind == "tensor_type":
            entry["shape"] = [d.dim_param or d.dim_value for d in tensor.shape.dim]
        return entry

    return [describe(v) for v in values]


def describe_model(path: Path, root: Path, trainable: set | frozenset = frozenset()) -> dict:
    """File name, IR version and graph inputs/outputs (parameters as graph inputs left out)."""
    model = onnx.load(str(path), load_external_data=False)
    return {
        "file": path.relative_to(root).as_posix(),
        "ir_version": model.ir_version,
        "opset": next(o.version for o in model.opset_import if o.domain in ("", "ai.onnx")),
        "inputs": _io(i for i in model.graph.input if i.name not in trainable),
        "outputs": _io(o for o in model.graph.output if not o.name.endswith("_grad.accumulation.out")),
    }


def training_set(name, module, example, root, max_classes, optimizer, check, what) -> dict:
    """Build onnxruntime-training artifacts for `module` in root/name and return their manifest entry;
    with `check`, one AdamW step is compared with PyTorch (checks.check_train_step). A head (`what`
    "head") also gets its narrower copies (`narrow`, built in root/<name>_narrow)."""
    entry = _training_set(name, module, example, root, max_classes, optimizer, check, what)
    widths = [w for w in NARROW_HEAD_WIDTHS if w < max_classes]
    if what == "head" and widths:
        entry["narrow"] = _narrow_head_sets(f"{name}_narrow", module, example, root, widths, entry, optimizer, check)
    return entry


def _narrow_head_sets(name, head, example, root, widths, wide, optimizer, check) -> dict:
    """Training sets of `head` cut to each width, and the wide head's initial parameters (float32,
    little-endian, in the wide set's parameter layout): the browser trains the narrowest set that holds
    a project's classes and puts its rows back into the wide layout, the rest as the wide run leaves them."""
    (root / name).mkdir(parents=True, exist_ok=True)
    initial = root / name / "initial_parameters.bin"
    tensors = dict(head.named_parameters())
    buffer = bytearray(4 * wide["parameter_count"])
    for p in wide["parameters"]:
        values = tensors[p["name"]].detach().contiguous().numpy().astype("<f4")
        buffer[4 * p["offset"] : 4 * p["offset"] + values.nbytes] = values.tobytes()
    initial.write_bytes(bytes(buffer))
    sets = []
    for width in widths:
        entry = _training_set(
            f"{name}/{width}", narrow_head(head, width), example, root, width, optimizer, check, "head"
        )
        sets.append({"max_classes": width, **entry})
    return {
        "initial_parameters": {"file": initial.relative_to(root).as_posix(), "dtype": "float32"},
        "sets": sets,
    }


def _training_set(name, module, example, root, max_classes, optimizer, check, what) -> dict:
    art_dir = root / name
    spec = generate_training_artifacts(
        module, example, "features" if example.dim() == 2 else "block_input", max_classes, art_dir, optimizer
    )
    names = [n for n, _ in spec.parameters]
    layout = checks.parameter_layout(art_dir, names)
    entry = {
        "trains": what,
        "input": {"name": spec.input_name, "shape": ["batch", *spec.input_shape]},
        "models": {
            kind: describe_model(art_dir / f"{kind}.onnx", root, set(names))
            for kind in ("training_model", "eval_model", "optimizer_model")
        },
        "checkpoint": f"{name}/checkpoint",
        "parameters": layout,
        "parameter_count": sum(int(torch.tensor(p["shape"]).prod()) for p in layout),
        "optimizer": {
            **optimizer_manifest(optimizer),
            "learning_rate_scale": {
                "file": f"{name}/optimizer_model.onnx",
                "offset": spec.learning_rate_scale_offset,
                "dtype": "float32",
                "runtime_default_learning_rate": ORT_DEFAULT_LEARNING_RATE,
            },
            "weight_decay_value": {
                "file": f"{name}/optimizer_model.onnx",
                "offset": spec.weight_decay_offset,
                "dtype": "float32",
            },
        },
    }
    if check:
        entry["check"] = checks.check_train_step(module, art_dir, spec.input_shape, max_classes, optimizer)
    return entry


def file_list(root: Path) -> dict:
    """Every file under root (the manifest is written after): relative path -> sha256 and size."""
    return {
        p.relative_to(root).as_posix(): {"sha256": sha256_file(p), "size": p.stat().st_size}
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def versions() -> dict:
    from importlib.metadata import PackageNotFoundError, version

    import onnx
    import onnxruntime
    import torch
    import torchvision

    try:
        tejas = version("tejas")
    except PackageNotFoundError:
        tejas = "unknown"
    return {
        "python": sys.version.split()[0],
        "torch": torch.__version__,
        "torchvision": torchvision.__version__,
        "onnx": onnx.__version__,
        "onnxruntime_training": onnxruntime.__version__,
        "tejas": tejas,
    }
