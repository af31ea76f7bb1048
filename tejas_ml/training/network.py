"""The network a run trains (a frozen part and a trainable part), its optimiser's parameter groups, and
the device it trains on."""

from __future__ import annotations

import os

import torch
import torch.nn as nn


def pick_device(requested: str | None = None) -> torch.device:
    if requested:
        return torch.device(requested)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    import platform

    return platform.processor() or platform.machine() or "CPU"


def default_workers() -> int:
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return 0 if cpus < 4 else min(8, cpus // 2)


class Classifier(nn.Module):
    """A frozen part (run without gradients, always in eval mode) followed by a trainable part.

    `trainable(x)` gives logits over `max_classes` (the app's masked head) or exactly K classes (`full`);
    `forward` returns the K classes' logits."""

    def __init__(self, frozen: nn.Module | None, trainable: nn.Module, num_classes: int, masked: bool):
        super().__init__()
        self.frozen = frozen
        self.trainable = trainable
        self.num_classes = num_classes
        self.masked = masked
        if masked:
            mask = torch.zeros(self.head.out_features)
            mask[:num_classes] = 1.0
            self.register_buffer("class_mask", mask, persistent=False)

    @property
    def head(self) -> nn.Linear:
        """The classifier layer: the K-class Linear (`full`) or the masked head's `max_classes` Linear."""
        model = self.trainable
        if not self.masked:
            return model.fc if hasattr(model, "fc") else model.classifier[1]
        return model.head.fc if hasattr(model, "head") else model.fc

    def train(self, mode: bool = True):
        super().train(mode)
        if self.frozen is not None:
            self.frozen.eval()
        return self

    def forward(self, image):
        x = image
        if self.frozen is not None:
            with torch.no_grad():
                x = self.frozen(x)
        if self.masked:
            return self.trainable(x, self.class_mask.expand(x.shape[0], -1))[:, : self.num_classes]
        return self.trainable(x)


def parameter_groups(network: Classifier, config) -> list[dict]:
    """One group per learning rate (`config`: the run's TrainConfig): in `full` mode the classifier at the
    rate, the rest scaled down."""
    trainable = [(n, p) for n, p in network.named_parameters() if p.requires_grad]
    if config.mode != "full" or config.backbone_lr_scale == 1:
        return [{"params": [p for _, p in trainable], "lr": config.lr()}]
    head_ids = {id(p) for p in network.head.parameters()}
    return [
        {"params": [p for _, p in trainable if id(p) in head_ids], "lr": config.lr()},
        {"params": [p for _, p in trainable if id(p) not in head_ids], "lr": config.lr() * config.backbone_lr_scale},
    ]
