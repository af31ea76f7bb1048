"""onnxruntime-training artifacts (training, eval and optimizer models + checkpoint) for a trainable module."""

from __future__ import annotations

import contextlib
import copy
import os
import struct
import sys
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

import onnx
import torch
from onnxruntime.training import artifacts, onnxblock
from onnxruntime.training.onnxblock import _graph_utils
from onnxruntime.training.onnxblock.optim.optim import AdamWOptimizer

from .models import export_onnx


@dataclass(frozen=True)
class OptimizerConfig:
    """AdamW as torch.optim.AdamW defines it; baked into optimizer_model.onnx as node attributes."""

    name: str = "AdamW"
    learning_rate: float = 1e-3  # fed at run time; the default the browser uses
    betas: tuple[float, float] = (0.9, 0.999)
    eps: float = 1e-8
    weight_decay: float = 0.01
    mode: str = "torch"  # ORT adam_mode 0: torch.optim.AdamW's update rule


class _TorchAdamW(AdamWOptimizer):
    """ORT's AdamWOptimizer node in adam_mode 0 (torch.optim.AdamW), not 1 (Hugging Face)."""

    def build(self, learning_rate_name, step_name, params, grads, first_moments, second_moments):
        attributes = {
            "alpha": self._betas[0],
            "beta": self._betas[1],
            "epsilon": self._eps,
            "weight_decay": self._weight_decay,
            "correct_bias": 1 if self._bias_correction else 0,
            "adam_mode": 0,
        }
        return self._build_optimizer_node(
            [learning_rate_name, step_name, params, grads, first_moments, second_moments],
            _graph_utils.generate_graph_name("adamw.updated_flag"),
            "AdamWOptimizer",
            attributes,
        )


def _optimizer_block(config: OptimizerConfig) -> onnxblock.optim.AdamW:
    block = onnxblock.optim.AdamW()
    block._adamw = _TorchAdamW(
        bias_correction=True, betas=config.betas, eps=config.eps, weight_decay=config.weight_decay
    )
    return block


@dataclass(frozen=True)
class TrainableSpec:
    """Inputs and outputs of one trainable model, as the manifest records them."""

    input_name: str  # "features" for the head, "block_input" for the last block
    input_shape: tuple  # without the batch axis
    parameters: list  # [(name, shape)] in checkpoint order
    learning_rate_scale_offset: int  # byte offset of the float32 scale in optimizer_model.onnx
    weight_decay_offset: int  # byte offset of the AdamW node's float32 weight_decay attribute


def generate_training_artifacts(
    module: torch.nn.Module,
    example_input: torch.Tensor,
    input_name: str,
    max_classes: int,
    out_dir: Path,
    optimizer: OptimizerConfig,
) -> TrainableSpec:
    """Export `module(input, class_mask) -> logits` and build its ORT training artifacts in out_dir.

    Every parameter of `module` is trainable. The training and eval models take
    (input, class_mask, labels) and return (loss, logits).
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    forward_path = out_dir / "_forward.onnx"
    mask = torch.ones(max_classes)
    export_onnx(
        module,
        (example_input, mask),
        forward_path,
        input_names=[input_name, "class_mask"],
        output_names=["logits"],
        batch_inputs=[input_name],
        trainable=True,
    )
    forward = onnx.load(str(forward_path))
    forward_path.unlink()
    names = [name for name, _ in module.named_parameters()]
    initializers = {init.name for init in forward.graph.initializer}
    absent = [n for n in names if n not in initializers]
    if absent:
        raise RuntimeError(f"parameters renamed by the ONNX export: {absent[:3]}")
    frozen = sorted(initializers - set(names))
    with _quiet_native_stderr():
        artifacts.generate_artifacts(
            forward,
            requires_grad=names,
            frozen_params=frozen,
            loss=artifacts.LossType.CrossEntropyLoss,
            optimizer=_optimizer_block(optimizer),
            artifact_directory=str(out_dir),
            additional_output_names=["logits"],
        )
    scale_offset, decay_offset = make_optimizer_patchable(out_dir / "optimizer_model.onnx", optimizer.weight_decay)
    shapes = dict(module.named_parameters())
    return TrainableSpec(
        input_name=input_name,
        input_shape=tuple(example_input.shape[1:]),
        parameters=[(n, list(shapes[n].shape)) for n in names],
        learning_rate_scale_offset=scale_offset,
        weight_decay_offset=decay_offset,
    )


# ORT's training Optimizer starts at this learning rate; onnxruntime-web 1.19.2 cannot change it.
ORT_DEFAULT_LEARNING_RATE = 1e-3
_SCALE_SENTINEL = struct.pack("<f", 0.123456789)
_DECAY_SENTINEL = struct.pack("<f", 0.987654321)


def make_optimizer_patchable(path: Path, weight_decay: float) -> tuple[int, int]:
    """Make the optimizer's learning rate and weight decay settable by overwriting 4 bytes each;
    returns their byte offsets (learning-rate scale, weight decay) in the rewritten file.

    onnxruntime-web 1.19.2 has no learning-rate setter, so without this every browser run would
    train at ORT's default 1e-3: the optimizer now uses learning_rate × scale, `scale` a float32
    initializer (1.0). The weight decay is the AdamW node's float32 attribute. Both are found by
    writing sentinels, then the real values back.
    """
    model = onnx.load(str(path))
    graph = model.graph
    scale = onnx.helper.make_tensor("learning_rate_scale", onnx.TensorProto.FLOAT, [1], _SCALE_SENTINEL, raw=True)
    graph.initializer.append(scale)
    adamw = next(n for n in graph.node if n.op_type == "AdamWOptimizer")
    assert adamw.input[0] == "learning_rate"
    adamw.input[0] = "learning_rate_scaled"
    graph.node.insert(
        0, onnx.helper.make_node("Mul", ["learning_rate", "learning_rate_scale"], ["learning_rate_scaled"])
    )
    decay = next(a for a in adamw.attribute if a.name == "weight_decay")
    decay.f = struct.unpack("<f", _DECAY_SENTINEL)[0]
    data = bytearray(model.SerializeToString())
    offsets = []
    for sentinel, value, what in (
        (_SCALE_SENTINEL, 1.0, "learning-rate scale"),
        (_DECAY_SENTINEL, weight_decay, "weight decay"),
    ):
        if data.count(sentinel) != 1:
            raise RuntimeError(f"cannot locate the {what} in the optimizer model")
        offsets.append(data.index(sentinel))
        struct.pack_into("<f", data, offsets[-1], value)
    path.write_bytes(bytes(data))
    return offsets[0], offsets[1]


@contextlib.contextmanager
def _quiet_native_stderr():
    """Hold back native stderr (ORT's gradient builder logs each graph pass at INFO level, ignoring
    set_default_logger_severity); replay it only if the block fails."""
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as captured:
        os.dup2(captured.fileno(), 2)
        try:
            yield
        except BaseException:
            os.dup2(saved, 2)
            captured.seek(0)
            sys.stderr.write(captured.read().decode(errors="replace")[-4000:])
            raise
        finally:
            os.dup2(saved, 2)
            os.close(saved)


# Narrower copies of the head the browser trains instead of the max_classes-wide one when a project has
# few classes: a step's cost grows with the head's width (measured in Chromium, 1 thread, batch 16,
# MobileNetV2 features: ~6 ms at 100 classes, ~0.6 ms at 8-32), while the class mask makes the rows
# past the project's classes take no part in training (exp(-penalty) = 0: no probability, no gradient).
NARROW_HEAD_WIDTHS = (8, 16, 32)


def narrow_head(head: torch.nn.Module, width: int) -> torch.nn.Module:
    """A copy of the masked head `head` keeping its first `width` classes (rows), same initial values."""
    narrow = copy.deepcopy(head)
    fc = narrow.fc  # sliced, not re-created: a new Linear would draw from (and move) torch's generator
    fc.weight = torch.nn.Parameter(fc.weight.detach()[:width].clone())
    fc.bias = torch.nn.Parameter(fc.bias.detach()[:width].clone())
    fc.out_features = width
    return narrow.eval()


def optimizer_manifest(config: OptimizerConfig) -> dict:
    data = asdict(config)
    data["betas"] = list(config.betas)
    return data
