"""Turn exported artifacts + a trained head into a full PyTorch classifier (.pt state dict), stdlib only.

The backbone's original tensors (batch-norm unfolded, as torchvision names them) come from the
artifacts' `backbone_state.safetensors`; the trained head replaces the ImageNet classifier, so the
file loads with `torchvision.models.<architecture>(num_classes=N).load_state_dict(torch.load(path,
weights_only=True))`. Class names and preprocessing travel inside the archive as `extra/tejas.json`
(torch.load ignores it; read it with `read_pt_metadata`).

Text artifacts have no PyTorch path here (a server training job writes a text model's .pt); their ONNX
classifier is the encoder + head (onnx_writer), described by `text_metadata`.

A model trained in last-block mode also replaces the last block's tensors. They were trained with
batch norm folded into the convolutions, so each folded bias goes into the batch norm that follows
(weight 1, running_mean 0, running_var 1 - eps): torchvision's unchanged module computes the same.
"""

from __future__ import annotations

import hashlib
import json
from array import array
from pathlib import Path

from .artifacts import MANIFEST, ArtifactError, read_manifest
from .safetensors import SafetensorsError, Tensor, float32_tensor, read_safetensors
from .torch_writer import read_extra_json, write_state_dict_pt

__all__ = [
    "PT_METADATA",
    "Head",
    "check_head",
    "classifier_state",
    "floats",
    "last_block_state",
    "last_block_tensors",
    "model_metadata",
    "read_pt_metadata",
    "text_metadata",
    "write_classifier_pt",
]

PT_METADATA = "extra/tejas.json"
_REEXPORT = "re-export with `tejas export --force`"


class Head:
    """A trained linear head for N classes: weight [N, F] row-major float32, bias [N], class names."""

    def __init__(self, weight, bias, class_names, feature_size: int):
        self.class_names = [str(name) for name in class_names]
        n = len(self.class_names)
        if n < 2:
            raise ValueError(f"a classifier needs at least 2 class names (got {n})")
        if len(set(self.class_names)) != n or not all(self.class_names):
            raise ValueError("class names must be distinct and non-empty")
        if len(weight) != n * feature_size:
            raise ValueError(
                f"head weight has {len(weight)} values; {n} classes x {feature_size} features need {n * feature_size}"
            )
        if len(bias) != n:
            raise ValueError(f"head bias has {len(bias)} values; {n} classes need {n}")
        self.weight = float32_tensor(weight, (n, feature_size))
        self.bias = float32_tensor(bias, (n,))

    @property
    def num_classes(self) -> int:
        return len(self.class_names)


def check_head(artifacts_dir, head_weight, head_bias, class_names) -> tuple[dict, str, Head]:
    """Read the manifest and validate the head against its feature size; (manifest, its sha256, head)."""
    folder = Path(artifacts_dir)
    manifest = read_manifest(folder)
    digest = hashlib.sha256((folder / MANIFEST).read_bytes()).hexdigest()
    return manifest, digest, Head(head_weight, head_bias, class_names, int(manifest["feature_size"]))


def is_text(manifest: dict) -> bool:
    return manifest.get("modality", "image") == "text"


def model_metadata(manifest: dict, digest: str, head: Head, last_block=None, text=None) -> dict:
    """What a written model says about itself: classes, architecture, preprocessing (an image's `input`,
    or `text` from text_metadata), provenance, and what was trained (the head, or with `last_block`
    tensors given, the last block too)."""
    info = {
        "class_names": head.class_names,
        "num_classes": head.num_classes,
        "modality": "text" if is_text(manifest) else "image",
        "architecture": manifest["architecture"],
        "feature_size": manifest["feature_size"],
        "tejas_manifest_sha256": digest,
        "artifacts": manifest.get("name"),
        "trained": "last_block" if last_block else "head",
    }
    if text is not None:
        info["text"] = text
    else:
        info["input"] = manifest["input"]
    return info


def text_metadata(artifacts_dir, manifest: dict) -> dict:
    """How to turn texts into a text model's inputs: the manifest's text section (tokenizer file name,
    max_length, padding, pad_id, ...) plus the encoder's input names, whether the tokenizer lowercases,
    and tokenizer.json's sha256 (the model works only with that tokenizer). Reads tokenizer.json."""
    folder = Path(artifacts_dir)
    text = dict(manifest["text"])
    path = folder / text["tokenizer"]
    try:
        data = path.read_bytes()
        tokenizer = json.loads(data)
    except FileNotFoundError:
        raise ArtifactError(f"{path}: missing; re-export with `tejas export --modality text --force`") from None
    except ValueError as exc:
        raise ArtifactError(
            f"{path}: not valid JSON ({exc}); re-export with `tejas export --modality text --force`"
        ) from None
    encoder = next((m for m in manifest["models"].values() if m.get("file") == text["encoder"]), None)
    if encoder is None:
        raise ArtifactError(f"{folder / MANIFEST}: text.encoder {text['encoder']!r} is not among its models")
    text["inputs"] = [i["name"] for i in encoder["inputs"]]
    text["lowercase"] = _lowercases(tokenizer.get("normalizer"))
    text["tokenizer_sha256"] = hashlib.sha256(data).hexdigest()
    text["truncation"] = "a longer text keeps its first max_length - 1 tokens and its final [SEP]"
    return text


def _lowercases(normalizer) -> bool:
    """Whether a tokenizer.json normalizer lowercases (BertNormalizer's flag, Lowercase, or in a Sequence)."""
    if not isinstance(normalizer, dict):
        return False
    kind = normalizer.get("type")
    if kind == "Sequence":
        return any(_lowercases(n) for n in normalizer.get("normalizers", []))
    return kind == "Lowercase" or (kind == "BertNormalizer" and bool(normalizer.get("lowercase")))


def last_block_tensors(manifest: dict, values: dict) -> dict[str, Tensor]:
    """A last-block model's tensors ({name: floats}, head excluded) checked against the manifest."""
    entry = manifest.get("training", {}).get("last_block")
    if not entry:
        raise ArtifactError("these artifacts were exported without --train last-block; re-export with it")
    head = entry["state_dict"]["head"] + "."
    shapes = {p["name"]: p["shape"] for p in entry["parameters"] if not p["name"].startswith(head)}
    missing, unexpected = sorted(set(shapes) - set(values)), sorted(set(values) - set(shapes))
    if missing or unexpected:
        raise ValueError(
            f"last-block tensors do not match the artifacts: missing {missing[:3]}, unexpected {unexpected[:3]}"
        )
    tensors = {}
    for name, shape in shapes.items():
        try:
            tensors[name] = float32_tensor(values[name], shape)
        except ValueError as exc:
            raise ValueError(f"last-block tensor {name}: {exc}") from None
    return tensors


def last_block_state(manifest: dict, tensors: dict[str, Tensor]) -> dict[str, Tensor]:
    """torchvision state-dict entries for trained last-block tensors (see the module's docstring)."""
    replacements = {}
    for folded, target in manifest["training"]["last_block"]["state_dict"]["convolutions"].items():
        weight, bias = tensors[f"{folded}.weight"], tensors[f"{folded}.bias"]
        replacements[f"{target['conv']}.weight"] = weight
        if target["batch_norm"] is None:
            replacements[f"{target['conv']}.bias"] = bias
            continue
        n, bn = bias.shape[0], target["batch_norm"]
        replacements[f"{bn}.weight"] = float32_tensor([1.0] * n, (n,))
        replacements[f"{bn}.bias"] = bias
        replacements[f"{bn}.running_mean"] = float32_tensor([0.0] * n, (n,))
        replacements[f"{bn}.running_var"] = float32_tensor([1.0 - target["eps"]] * n, (n,))
    return replacements


def classifier_state(artifacts_dir, manifest: dict, head: Head, replacements=None) -> dict[str, Tensor]:
    """The backbone's state dict with the trained head in place of the ImageNet classifier (and any
    `replacements`, e.g. from `last_block_state`, in place of the tensors they name)."""
    folder = Path(artifacts_dir)
    entry = manifest.get("state_dict")
    if not isinstance(entry, dict) or entry.get("format") != "safetensors":
        raise ArtifactError(f"{folder / MANIFEST}: no backbone state dict recorded; {_REEXPORT}")
    path = folder / entry["file"]
    if not path.is_file():
        raise ArtifactError(f"{path}: missing; {_REEXPORT}")
    try:
        tensors, _ = read_safetensors(path)
    except SafetensorsError as exc:
        raise ArtifactError(f"{exc}; {_REEXPORT}") from None
    names = entry["classifier"]
    old = tensors.get(names["weight"])
    if old is None or names["bias"] not in tensors:
        raise ArtifactError(f"{path}: classifier tensors {names['weight']}/{names['bias']} missing; {_REEXPORT}")
    if len(old.shape) != 2 or old.shape[1] != head.weight.shape[1]:
        raise ArtifactError(
            f"{path}: classifier {names['weight']} has shape {list(old.shape)}, expected "
            f"[*, {head.weight.shape[1]}]; {_REEXPORT}"
        )
    replacements = dict(replacements or {})
    for name, tensor in replacements.items():
        if name not in tensors or tuple(tensors[name].shape) != tuple(tensor.shape):
            found = list(tensors[name].shape) if name in tensors else "nothing"
            raise ArtifactError(f"{path}: {name} is {found}, the trained model has {list(tensor.shape)}; {_REEXPORT}")
    replacements[names["weight"]], replacements[names["bias"]] = head.weight, head.bias
    # Keep the file's order (torchvision's), replacing tensors in place.
    return {name: replacements.get(name, tensor) for name, tensor in tensors.items()}


def write_classifier_pt(artifacts_dir, head_weight, head_bias, class_names, dest, last_block=None) -> dict:
    """Write a torchvision state dict (backbone + trained head for len(class_names) classes) to `dest`.

    head_weight: N*F floats (row-major [N, F], list or array('f')); head_bias: N floats; last_block:
    {tensor name: floats} of a model trained in last-block mode (names as in the manifest's
    training.last_block.parameters, head excluded). Returns the metadata stored in the archive as
    extra/tejas.json.
    """
    manifest, digest, head = check_head(artifacts_dir, head_weight, head_bias, class_names)
    if is_text(manifest):
        raise ArtifactError(
            "a text model has no PyTorch export here: download its ONNX model instead (encoder, head and "
            "softmax in one file), or train it on a server, whose job writes a .pt"
        )
    replacements = last_block_state(manifest, last_block_tensors(manifest, last_block)) if last_block else None
    state = classifier_state(artifacts_dir, manifest, head, replacements)
    metadata = model_metadata(manifest, digest, head, last_block)
    metadata["load"] = (
        f"torchvision.models.{manifest['architecture']}(num_classes={head.num_classes})"
        ".load_state_dict(torch.load(path, weights_only=True))"
    )
    extra = {PT_METADATA: json.dumps(metadata, indent=1, sort_keys=True).encode("utf-8")}
    write_state_dict_pt(state, dest, extra)
    return metadata


def read_pt_metadata(path) -> dict:
    """The class names etc. that write_classifier_pt stored inside a .pt file."""
    return read_extra_json(path, PT_METADATA)


def floats(tensor: Tensor) -> array:
    """A float32 Tensor's values as array('f') (for tests and small tensors)."""
    values = array("f")
    values.frombytes(bytes(tensor.data))
    return values
