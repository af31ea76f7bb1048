"""One training run from examples to result files, for images (`train_and_write`) and texts
(`train_text_and_write`): what server jobs, `tejas train` and the benchmarks call."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import torch

from tejas.artifacts import read_manifest
from tejas.catalog import MODES
from tejas.safetensors import read_safetensors
from tejas_ml.export.backbones import BACKBONES, Backbone, find_imagenet_weights, load_state_dict_file

from .data import DataError, Examples, split
from .network import Classifier
from .results import write_results
from .text import DEFAULT_MAX_LENGTH, MAX_CLASSES, TextTrainer, build_text_classifier, text_config, text_model_folder
from .text_results import write_text_results
from .trainer import TrainConfig, Trainer, build_classifier

_DTYPES = {"F32": torch.float32, "I64": torch.int64}


def artifacts_state_dict(artifacts_dir: Path, manifest: dict) -> dict[str, torch.Tensor]:
    """The torchvision state dict the artifact set was exported from (backbone_state.safetensors)."""
    tensors, _ = read_safetensors(Path(artifacts_dir) / manifest["state_dict"]["file"])
    return {
        name: torch.frombuffer(bytearray(t.data), dtype=_DTYPES[t.dtype]).reshape(t.shape).clone()
        for name, t in tensors.items()
    }


def resolve_backbone(name: str, mode: str, artifacts_dir: Path) -> tuple[Backbone, dict, dict]:
    """(backbone, its starting state dict, the artifact manifest). `auto` is the artifact set's own
    architecture; another one is only for `full` (its result gets an artifact set of its own)."""
    manifest = read_manifest(artifacts_dir)
    if mode not in MODES:
        raise DataError(f"unknown mode {mode!r} (choose from {', '.join(MODES)})")
    own = manifest["architecture"]
    if name in ("auto", own):
        return BACKBONES[own], artifacts_state_dict(artifacts_dir, manifest), manifest
    if name not in BACKBONES:
        raise DataError(f"unknown backbone {name!r} (choose from auto, {', '.join(BACKBONES)})")
    if mode != "full":
        raise DataError(
            f"{mode} training keeps the app's backbone ({own}); choose backbone auto, or mode full to fine-tune {name}"
        )
    backbone = BACKBONES[name]
    path, why = find_imagenet_weights(backbone, allow_download=False)
    if path is None:
        raise DataError(f"ImageNet weights for {name} are not available on this server ({why}); choose backbone auto")
    return backbone, load_state_dict_file(path), manifest


def prepare(examples: Examples, config: TrainConfig, artifacts_dir: Path, backbone_name: str = "auto"):
    """(backbone, network, manifest, train, validation) for a run."""
    backbone, state, manifest = resolve_backbone(backbone_name, config.mode, artifacts_dir)
    if len(examples.classes) > manifest["max_classes"]:
        raise DataError(f"{len(examples.classes)} classes; these artifacts serve at most {manifest['max_classes']}")
    train, validation = split(examples, config.validation_share, config.seed)
    network = build_classifier(
        backbone, state, config.mode, len(examples.classes), manifest["max_classes"], config.seed
    )
    return backbone, network, manifest, train, validation


def make_trainer(
    examples: Examples, config: TrainConfig, artifacts_dir: Path, backbone_name: str = "auto", **hooks
) -> tuple[Backbone, Trainer]:
    """(backbone, the run's Trainer) before it fits; `hooks` are the Trainer's (checkpoint, on_event,
    on_checkpoint, should_stop)."""
    backbone, network, manifest, train, validation = prepare(examples, config, artifacts_dir, backbone_name)
    return backbone, Trainer(network, config, manifest["input"], examples.classes, train, validation, **hooks)


def train_and_write(
    examples: Examples,
    config: TrainConfig,
    artifacts_dir: Path,
    out: Path,
    *,
    backbone_name: str = "auto",
    checkpoint: Path | None = None,
    resume: bool = False,
    job: str | None = None,
    on_event: Callable[[str, dict], None] | None = None,
    on_checkpoint: Callable[[Path, int], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
    progress: Callable[[str], None] = lambda stage: None,
) -> tuple[dict, object]:
    """Train and write the results into `out`; returns (results summary, RunResult)."""
    backbone, trainer = make_trainer(
        examples,
        config,
        artifacts_dir,
        backbone_name,
        checkpoint=checkpoint,
        on_event=on_event,
        on_checkpoint=on_checkpoint,
        should_stop=should_stop,
    )
    return trainer.fit_and_write(
        resume,
        lambda result: write_results(
            result,
            backbone=backbone,
            artifacts_dir=artifacts_dir,
            classes=examples.classes,
            class_ids=examples.class_ids,
            config=config,
            out=out,
            job=job,
            progress=progress,
        ),
    )


def train_text_and_write(
    examples: Examples,
    config: TrainConfig,
    out: Path,
    *,
    max_length: int = DEFAULT_MAX_LENGTH,
    checkpoint: Path | None = None,
    resume: bool = False,
    job: str | None = None,
    on_event: Callable[[str, dict], None] | None = None,
    on_checkpoint: Callable[[Path, int], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
    progress: Callable[[str], None] = lambda stage: None,
) -> tuple[dict, object]:
    """Fine-tune on `examples` and write the results into `out`; returns (results summary, RunResult)."""
    if not 8 <= max_length <= DEFAULT_MAX_LENGTH:
        raise DataError(f"max_length {max_length}: choose 8 to {DEFAULT_MAX_LENGTH} tokens")
    if len(examples.classes) > MAX_CLASSES:
        raise DataError(f"{len(examples.classes)} classes; a text classifier here has at most {MAX_CLASSES}")
    config = text_config(config)
    folder = text_model_folder()
    train, validation = split(examples, config.validation_share, config.seed)
    network = build_text_classifier(len(examples.classes), config.seed, folder)
    trainer = TextTrainer(
        network,
        config,
        {},
        examples.classes,
        train,
        validation,
        checkpoint=checkpoint,
        on_event=on_event,
        on_checkpoint=on_checkpoint,
        should_stop=should_stop,
        tokenizer=folder / "tokenizer.json",
        max_length=max_length,
    )
    return trainer.fit_and_write(
        resume,
        lambda result: write_text_results(
            result,
            folder=folder,
            classes=examples.classes,
            class_ids=examples.class_ids,
            config=config,
            max_length=max_length,
            out=out,
            job=job,
            progress=progress,
        ),
    )


__all__ = ["Classifier", "make_trainer", "prepare", "resolve_backbone", "train_and_write", "train_text_and_write"]
