"""The torch modules that get exported: feature extractor, trunk, trainable head, last block, sentence encoder."""

from __future__ import annotations

import copy
from pathlib import Path

import torch
import torch.nn as nn

# Logits of classes outside the project's class mask get this subtracted: exp(-1e4) is 0 in float32,
# so they take no probability mass and no gradient, while the loss stays finite (no -inf * 0 = NaN).
MASK_PENALTY = 10000.0
OPSET = 17


def pooled(x):
    """[B,C,H,W] -> [B,C]: global average pooling, as the backbones' classifiers see their input."""
    return torch.flatten(nn.functional.adaptive_avg_pool2d(x, 1), 1)


class FeatureExtractor(nn.Module):
    """Image [B,3,H,W] -> pooled feature vector [B,F] (the backbone without its classifier)."""

    def __init__(self, trunk: nn.Module, last_block: nn.Module):
        super().__init__()
        self.trunk = trunk
        self.last_block = last_block

    def forward(self, image):
        return pooled(self.last_block(self.trunk(image)))


class MaskedHead(nn.Module):
    """Linear classifier over `max_classes` outputs; `class_mask` (1 = class in use) hides the rest."""

    def __init__(self, feature_size: int, max_classes: int):
        super().__init__()
        self.fc = nn.Linear(feature_size, max_classes)

    def forward(self, features, class_mask):
        return self.fc(features) + (class_mask - 1.0) * MASK_PENALTY


class LastBlockHead(nn.Module):
    """Last block (batch-norm folded into its convolutions) + pooling + masked head."""

    def __init__(self, last_block: nn.Module, head: MaskedHead):
        super().__init__()
        self.last_block = last_block
        self.head = head

    def forward(self, block_input, class_mask):
        return self.head(pooled(self.last_block(block_input)), class_mask)


class LastBlockFeatures(nn.Module):
    """Last block (batch-norm folded) + pooling: block input -> feature vector, as predictions use it."""

    def __init__(self, last_block: nn.Module):
        super().__init__()
        self.last_block = last_block

    def forward(self, block_input):
        return pooled(self.last_block(block_input))


class SentenceEncoder(nn.Module):
    """(input_ids, attention_mask) int64 [B,T] -> L2-normalised mean of the token embeddings [B,F],
    as sentence-transformers' Pooling(mean) + Normalize: padding (mask 0) takes no part.

    token_type_ids are not an input: a text is one segment, whose type ids are all zero."""

    def __init__(self, bert: nn.Module):
        super().__init__()
        self.bert = bert

    def forward(self, input_ids, attention_mask):
        tokens = self.bert(
            input_ids=input_ids, attention_mask=attention_mask, token_type_ids=torch.zeros_like(input_ids)
        ).last_hidden_state
        mask = attention_mask.unsqueeze(-1).to(tokens.dtype)
        mean = (tokens * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
        return nn.functional.normalize(mean, p=2.0, dim=1)


def make_head(feature_size: int, max_classes: int, seed: int) -> MaskedHead:
    """A freshly initialised head; the same seed gives byte-identical artifacts."""
    generator_state = torch.random.get_rng_state()
    torch.manual_seed(seed)
    try:
        return MaskedHead(feature_size, max_classes).eval()
    finally:
        torch.random.set_rng_state(generator_state)


def fold_batch_norm(module: nn.Module) -> nn.Module:
    """Return a copy of `module` with every BatchNorm2d folded into the Conv2d before it.

    Training with frozen batch statistics is what small-batch fine-tuning wants, and it leaves
    plain Conv weights + biases (named after the original convolutions) as the trainable tensors.
    """
    import torch.fx
    from torch.fx.experimental.optimization import fuse

    folded = fuse(torch.fx.symbolic_trace(copy.deepcopy(module).eval()), inplace=True)
    leftover = [n for n, m in folded.named_modules() if isinstance(m, nn.BatchNorm2d)]
    if leftover:
        raise RuntimeError(f"batch norm not folded: {leftover[:3]}")
    # Folding creates conv biases that do not require grad; every folded tensor is trainable.
    for parameter in folded.parameters():
        parameter.requires_grad_(True)
    return folded


def batch_norm_pairs(module: nn.Module) -> dict[str, tuple[str, float]]:
    """{conv module name: (its batch norm's name, eps)} for the Conv2d -> BatchNorm2d pairs that
    `fold_batch_norm` folds (the same pattern torch.fx's `fuse` looks for)."""
    import torch.fx

    traced = torch.fx.symbolic_trace(copy.deepcopy(module).eval())
    modules = dict(traced.named_modules())
    pairs = {}
    for node in traced.graph.nodes:
        if node.op != "call_module" or not isinstance(modules[node.target], nn.BatchNorm2d):
            continue
        source = node.args[0]
        if (
            isinstance(source, torch.fx.Node)
            and source.op == "call_module"
            and isinstance(modules[source.target], nn.Conv2d)
            and len(source.users) == 1
        ):
            pairs[source.target] = (node.target, float(modules[node.target].eps))
    return pairs


def export_onnx(
    module: nn.Module,
    example_inputs: tuple,
    path: Path,
    input_names: list[str],
    output_names: list[str],
    batch_inputs: list[str],
    *,
    trainable: bool = False,
    parameters_as_inputs: bool = False,
    sequence_inputs: tuple[str, ...] = (),
) -> None:
    """Export `module` with a dynamic batch axis on `batch_inputs` and on every output, and a dynamic
    axis 1 ("sequence") on `sequence_inputs` (token ids and masks).

    Inference models are folded (batch-norm into conv, constants computed). Trainable models are
    exported in training mode without folding, so every parameter stays an initializer with its
    torch name; in eval mode the exporter would also merge parameters that happen to hold equal
    values (e.g. zero biases) into one. With `parameters_as_inputs`, the weights are left out and
    every parameter becomes a graph input named as in torch (the caller feeds them).
    """
    dynamic_axes = {name: {0: "batch"} for name in [*batch_inputs, *output_names]}
    for name in sequence_inputs:
        dynamic_axes[name] = {**dynamic_axes.get(name, {}), 1: "sequence"}
    with torch.no_grad():
        torch.onnx.export(
            module,
            example_inputs,
            str(path),
            input_names=input_names,
            output_names=output_names,
            dynamic_axes=dynamic_axes,
            opset_version=OPSET,
            do_constant_folding=not trainable,
            export_params=not parameters_as_inputs,
            training=torch.onnx.TrainingMode.TRAINING if trainable else torch.onnx.TrainingMode.EVAL,
            dynamo=False,
        )
