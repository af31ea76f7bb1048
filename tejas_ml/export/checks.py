"""Checks every export runs: ONNX equals PyTorch (images and texts), one ORT training step equals one torch step,
ImageNet sanity."""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import onnxruntime as ort
import torch

from .errors import ExportError
from .photos import Photo
from .training import OptimizerConfig

BACKBONE_TOLERANCE = 1e-4
TRAIN_STEP_TOLERANCE = 1e-5
IMAGENET_MIN_HITS = 4


def preprocess(rgb: np.ndarray, resize: int, crop: int, mean, std) -> torch.Tensor:
    """The manifest's rule: shorter side to `resize` with Pillow's antialiased bilinear filter, centre
    crop (torchvision's offsets), scale to [0, 1], normalise. The browser implements the same rule
    bit for bit (pwa/features/embed/preprocess.js); torchvision's own uint8 resize is off by one
    level on ~0.1% of pixels, so Pillow is the reference."""
    from PIL import Image
    from torchvision.transforms.v2 import functional as F

    height, width = rgb.shape[:2]
    if width <= height:
        size = (resize, int(resize * height / width))
    else:
        size = (int(resize * width / height), resize)
    resized = np.asarray(Image.fromarray(rgb).resize(size, Image.Resampling.BILINEAR))
    image = F.center_crop(torch.from_numpy(resized.copy()).permute(2, 0, 1), [crop, crop])
    return F.normalize(image.float() / 255.0, list(mean), list(std))


def session(path: Path, threads: int = 1) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.log_severity_level = 3
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def check_onnx_matches_torch(module: torch.nn.Module, onnx_path: Path, batch: torch.Tensor) -> float:
    """Max abs difference between `module(batch)` and the ONNX file's output; raises past tolerance."""
    with torch.no_grad():
        expected = module(batch).numpy()
    onnx_session = session(onnx_path)
    got = onnx_session.run(None, {onnx_session.get_inputs()[0].name: batch.numpy()})[0]
    diff = float(np.max(np.abs(expected - got)))
    if not diff <= BACKBONE_TOLERANCE:
        raise ExportError(
            f"{onnx_path.name}: ONNX output differs from PyTorch by {diff:.2e} "
            f"(tolerance {BACKBONE_TOLERANCE:.0e}); the export is broken, please report it"
        )
    return diff


def check_imagenet(classifier: torch.nn.Module, features: np.ndarray, photos: list[Photo], categories):
    """Top-1 ImageNet class of each photo from ONNX features + the original classifier."""
    with torch.no_grad():
        top1 = classifier(torch.from_numpy(features)).argmax(1).tolist()
    results = [
        {"photo": p.name, "predicted": categories[i], "correct": i in p.imagenet_classes}
        for p, i in zip(photos, top1, strict=True)
    ]
    hits = sum(r["correct"] for r in results)
    if hits < IMAGENET_MIN_HITS:
        got = ", ".join(f"{r['photo']}→{r['predicted']}" for r in results)
        raise ExportError(
            f"ImageNet sanity check failed: {hits}/{len(photos)} photos classified right "
            f"(need {IMAGENET_MIN_HITS}): {got}; the weights are not ImageNet weights for this "
            "architecture, or preprocessing is wrong"
        )
    return {"hits": hits, "of": len(photos), "photos": results}


def _training_api(art_dir: Path):
    from onnxruntime.training.api import CheckpointState, Module, Optimizer

    state = CheckpointState.load_checkpoint(str(art_dir / "checkpoint"))
    module = Module(str(art_dir / "training_model.onnx"), state, str(art_dir / "eval_model.onnx"), device="cpu")
    optimizer = Optimizer(str(art_dir / "optimizer_model.onnx"), module)
    return state, module, optimizer


def parameter_layout(art_dir: Path, names: list[str]) -> list[dict]:
    """Where each trainable parameter sits in ORT's contiguous parameter buffer.

    onnxruntime-web exposes parameters only as one flat buffer (getContiguousParameters), so the
    browser needs each tensor's offset; found by matching the buffer against the checkpoint.
    """
    state, module, _ = _training_api(art_dir)
    flat = module.get_contiguous_parameters(trainable_only=True).numpy()
    values = {n: np.asarray(state.parameters[n].data) for n in names}
    layout, offset = [], 0
    remaining = list(names)
    while remaining:
        for name in remaining:
            v = values[name].ravel()
            if np.array_equal(flat[offset : offset + v.size], v):
                layout.append({"name": name, "shape": list(values[name].shape), "offset": offset})
                offset += v.size
                remaining.remove(name)
                break
        else:
            raise RuntimeError(f"cannot place parameters {remaining} in the contiguous buffer")
    if offset != flat.size:
        raise RuntimeError(f"contiguous buffer has {flat.size} values, parameters {offset}")
    return layout


def random_batch(input_shape, max_classes: int, seed: int, batch: int = 8, active: int = 5):
    """A deterministic batch with `active` classes in use: (inputs, class_mask, labels)."""
    rng = np.random.default_rng(seed)
    inputs = rng.standard_normal((batch, *input_shape), dtype=np.float32)
    if len(input_shape) > 1:  # block inputs come after a ReLU: non-negative
        inputs = np.abs(inputs)
    mask = np.zeros(max_classes, np.float32)
    mask[:active] = 1.0
    labels = rng.integers(0, active, batch).astype(np.int64)
    return inputs, mask, labels


def check_train_step(
    torch_module: torch.nn.Module,
    art_dir: Path,
    input_shape,
    max_classes: int,
    optimizer_config: OptimizerConfig,
    seed: int = 0,
) -> dict:
    """One AdamW step in onnxruntime-training and in PyTorch from the same start; compare."""
    inputs, mask, labels = random_batch(input_shape, max_classes, seed)
    state, module, optimizer = _training_api(art_dir)
    optimizer.set_learning_rate(optimizer_config.learning_rate)
    module.train()
    ort_loss = float(module(inputs, mask, labels)[0])
    optimizer.step()
    ort_params = {n: np.asarray(state.parameters[n].data) for n, _ in torch_module.named_parameters()}

    # The reference runs in float64: torch's float32 CPU convolution backward is itself off by up to
    # ~1e-4 (ORT's float32 gradients are ~1e-8 from float64), and Adam's first step turns any
    # gradient-sign noise into a full learning-rate step.
    reference = copy.deepcopy(torch_module).double().train()
    adamw = torch.optim.AdamW(
        reference.parameters(),
        lr=optimizer_config.learning_rate,
        betas=optimizer_config.betas,
        eps=optimizer_config.eps,
        weight_decay=optimizer_config.weight_decay,
    )
    logits = reference(torch.from_numpy(inputs).double(), torch.from_numpy(mask).double())
    loss = torch.nn.functional.cross_entropy(logits, torch.from_numpy(labels))
    loss.backward()
    adamw.step()
    torch_params = {n: p.detach().numpy() for n, p in reference.named_parameters()}
    grads = {n: p.grad.numpy() for n, p in reference.named_parameters()}

    # Where |grad| is near Adam's eps, its first step lr·g/(|g|+eps) turns float32 rounding of g
    # into a visible difference; there only a bound of one learning-rate step is meaningful.
    ill_floor = 100 * optimizer_config.eps
    loss_diff = abs(ort_loss - float(loss.detach()))
    weight_diff, ill_count, ill_diff = 0.0, 0, 0.0
    for name, expected in torch_params.items():
        diff = np.abs(ort_params[name] - expected)
        ill = np.abs(grads[name]) < ill_floor
        weight_diff = max(weight_diff, float(np.max(diff[~ill], initial=0.0)))
        ill_diff = max(ill_diff, float(np.max(diff[ill], initial=0.0)))
        ill_count += int(ill.sum())
    moved = max(float(np.max(np.abs(torch_params[n] - p.detach().numpy()))) for n, p in torch_module.named_parameters())
    if not (
        loss_diff <= TRAIN_STEP_TOLERANCE
        and weight_diff <= TRAIN_STEP_TOLERANCE
        and ill_diff <= optimizer_config.learning_rate
    ):
        raise ExportError(
            f"{art_dir.name}: onnxruntime-training step differs from PyTorch "
            f"(loss {loss_diff:.2e}, weights {weight_diff:.2e}, tolerance {TRAIN_STEP_TOLERANCE:.0e})"
        )
    return {
        "loss": ort_loss,
        "loss_abs_diff": loss_diff,
        "weights_max_abs_diff": weight_diff,
        "weights_max_update": moved,
        "near_zero_gradients": ill_count,
        "near_zero_gradients_max_abs_diff": ill_diff,
    }


TEXT_MIN_COSINE = 0.9999


def pad_batch(token_ids: list[list[int]], pad_id: int) -> tuple[np.ndarray, np.ndarray]:
    """Pad texts' token ids to the longest of them: (input_ids, attention_mask) int64, as the browser does."""
    length = max(len(ids) for ids in token_ids)
    input_ids = np.full((len(token_ids), length), pad_id, np.int64)
    attention_mask = np.zeros((len(token_ids), length), np.int64)
    for row, ids in enumerate(token_ids):
        input_ids[row, : len(ids)] = ids
        attention_mask[row, : len(ids)] = 1
    return input_ids, attention_mask


def check_text_encoder(
    encoder: torch.nn.Module, onnx_path: Path, token_ids: list[list[int]], pad_id: int, batch_size: int = 8
) -> dict:
    """The ONNX encoder on padded batches vs PyTorch on each text alone (no padding, so padding and
    the attention mask are checked too): cosine of every text's features; raises below TEXT_MIN_COSINE."""
    got = encode_batches(onnx_path, token_ids, pad_id, batch_size)
    with torch.no_grad():
        expected = np.concatenate(
            [encoder(torch.tensor([ids]), torch.ones(1, len(ids), dtype=torch.int64)).numpy() for ids in token_ids]
        )
    cosines = np.sum(got * expected, 1) / (np.linalg.norm(got, axis=1) * np.linalg.norm(expected, axis=1))
    worst = int(np.argmin(cosines))
    if not cosines[worst] >= TEXT_MIN_COSINE:
        raise ExportError(
            f"{onnx_path.name}: ONNX features differ from PyTorch (cosine {cosines[worst]:.6f} on text {worst}, "
            f"need {TEXT_MIN_COSINE}); the export is broken, please report it"
        )
    return {
        "texts": len(token_ids),
        "batch_size": batch_size,
        "min_cosine": float(cosines[worst]),
        "max_abs_diff": float(np.max(np.abs(got - expected))),
        "max_norm_error": float(np.max(np.abs(np.linalg.norm(got, axis=1) - 1.0))),
    }


# The uint8 encoder computes in float32 from uint8 weights (quantise.py): measured min 0.9987, mean 0.9995 on any CPU.
TEXT_UINT8_MIN_COSINE = 0.99
TEXT_UINT8_MEAN_COSINE = 0.995


def encode_batches(onnx_path: Path, token_ids: list[list[int]], pad_id: int, batch_size: int = 8) -> np.ndarray:
    """Features of texts from an ONNX encoder, `batch_size` texts at a time padded to their longest."""
    onnx_session = session(onnx_path)
    got = []
    for start in range(0, len(token_ids), batch_size):
        input_ids, attention_mask = pad_batch(token_ids[start : start + batch_size], pad_id)
        got.append(onnx_session.run(None, {"input_ids": input_ids, "attention_mask": attention_mask})[0])
    return np.concatenate(got)


def check_quantised_encoder(
    reference_path: Path, quantised_path: Path, token_ids: list[list[int]], pad_id: int, batch_size: int = 8
) -> dict:
    """The quantised encoder vs the float32 one on the same padded batches: cosine of every text's features;
    raises when the worst or the mean falls below TEXT_UINT8_MIN_COSINE / TEXT_UINT8_MEAN_COSINE."""
    expected = encode_batches(reference_path, token_ids, pad_id, batch_size)
    got = encode_batches(quantised_path, token_ids, pad_id, batch_size)
    cosines = np.sum(got * expected, 1) / (np.linalg.norm(got, axis=1) * np.linalg.norm(expected, axis=1))
    worst = int(np.argmin(cosines))
    if not (cosines[worst] >= TEXT_UINT8_MIN_COSINE and cosines.mean() >= TEXT_UINT8_MEAN_COSINE):
        raise ExportError(
            f"{quantised_path.name}: quantised features differ from {reference_path.name} (cosine "
            f"{cosines[worst]:.4f} on text {worst}, mean {cosines.mean():.4f}; need {TEXT_UINT8_MIN_COSINE} and "
            f"{TEXT_UINT8_MEAN_COSINE}); the uint8 weights are broken, please report it"
        )
    return {
        "texts": len(token_ids),
        "batch_size": batch_size,
        "reference": reference_path.name,
        "min_cosine": float(cosines[worst]),
        "mean_cosine": float(cosines.mean()),
    }


BACKBONE_UINT8_MIN_COSINE = 0.95


def _row_cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.sum(a * b, 1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))


def check_quantised_backbone(reference_path: Path, quantised_path: Path, batch: torch.Tensor) -> dict:
    """The uint8 backbone vs the float32 one on the same photos: cosine of each photo's features; and the
    uint8 backbone on each photo alone vs in one batch (its activations are quantised per batch, so a photo's
    features depend a little on its batch companions). Raises when a cosine falls below
    BACKBONE_UINT8_MIN_COSINE (a broken quantisation; accuracy drift is bench/variants.py's to measure)."""
    images = batch.numpy()
    expected = session(reference_path).run(None, {"image": images})[0]
    quantised = session(quantised_path)
    got = quantised.run(None, {"image": images})[0]
    alone = np.concatenate([quantised.run(None, {"image": images[i : i + 1]})[0] for i in range(len(images))])
    cosines = _row_cosines(got, expected)
    batch_cosines = _row_cosines(got, alone)
    worst = int(np.argmin(cosines))
    if not min(cosines[worst], batch_cosines.min()) >= BACKBONE_UINT8_MIN_COSINE:
        raise ExportError(
            f"{quantised_path.name}: uint8 features differ from float32 (cosine {cosines[worst]:.4f} on photo {worst}; "
            f"batch vs alone {batch_cosines.min():.4f}; need {BACKBONE_UINT8_MIN_COSINE}): this backbone does not "
            "quantise well; export it without --quantize"
        )
    return {
        "photos": len(images),
        "reference": "backbone.onnx in float32 before quantisation",
        "min_cosine": float(cosines[worst]),
        "mean_cosine": float(cosines.mean()),
        "batch_vs_alone_min_cosine": float(batch_cosines.min()),
    }
