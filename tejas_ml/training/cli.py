"""`tejas train DATASET.zip|DIR|TEXTS.csv`: the server's trainer on any machine, with a progress bar (rich).

Writes model.onnx, model.pt, metrics.json (and for --mode full an artifact set) into --out; Ctrl+C
stops after the current batch and leaves the last checkpoint, which `--resume` continues from. A .csv,
.tsv or .txt file is a text dataset (text,label rows, read like the app's import): all-MiniLM-L6-v2 is
fine-tuned whole (mode full).
"""

from __future__ import annotations

import argparse
import sys
import warnings
from pathlib import Path

from tejas.catalog import IMAGE_BACKBONES, MODES

PROG = "tejas train"
TEXT_SUFFIXES = (".csv", ".tsv", ".txt")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog=PROG, description="Train an image or text classifier with PyTorch (GPU when available)."
    )
    p.add_argument(
        "dataset", type=Path, help="an ImageFolder zip or folder (<class>/<image>), or a text CSV (text,label rows)"
    )
    p.add_argument("--mode", choices=list(MODES), default="full", help="what to train (default: full)")
    p.add_argument(
        "--backbone", default="auto", help=f"auto (the artifacts' own), {' or '.join(IMAGE_BACKBONES)} (full only)"
    )
    p.add_argument("--artifacts", type=Path, default=Path("artifacts/default"), help="artifact set to start from")
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--learning-rate", type=float, default=None, help="default: by mode")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--no-augment", dest="augment", action="store_false", help="no random crops/flips/colour")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--validation-share", type=float, default=0.2)
    p.add_argument("--patience", type=int, default=5, help="stop after N epochs without improvement (0: never)")
    p.add_argument("--workers", type=int, default=None, help="DataLoader workers (default: by CPU count)")
    p.add_argument("--device", default=None, help="cpu, cuda, cuda:1 (default: cuda when available)")
    p.add_argument("--max-length", type=int, default=128, help="texts: tokens per text while training (8..128)")
    p.add_argument("--out", type=Path, default=Path("trained"), help="output folder (default: ./trained)")
    p.add_argument("--resume", action="store_true", help="continue from --out/checkpoint.pt")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    warnings.filterwarnings("ignore")
    from rich.console import Console
    from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

    from .data import DataError, from_archive
    from .results import ResultError
    from .run import train_and_write, train_text_and_write
    from .text_data import texts_from_csv
    from .trainer import Cancelled, TrainConfig

    console = Console(stderr=True)
    if not args.dataset.exists():
        console.print(f"{PROG}: error: {args.dataset}: no such file or folder")
        return 2
    config = TrainConfig(
        mode=args.mode,
        epochs=args.epochs,
        learning_rate=args.learning_rate,
        batch_size=args.batch_size,
        augment=args.augment,
        seed=args.seed,
        validation_share=args.validation_share,
        patience=args.patience,
        workers=args.workers,
        device=args.device,
    )
    args.out.mkdir(parents=True, exist_ok=True)
    stop = {"now": False}
    text = args.dataset.is_file() and args.dataset.suffix.lower() in TEXT_SUFFIXES
    what = "texts" if text else "images"
    try:
        examples = texts_from_csv(args.dataset) if text else from_archive(args.dataset, args.out / ".images")
        for line in examples.skipped[:10]:
            console.print(f"skipped {line}")
        counts = ", ".join(f"{c} {n}" for c, n in zip(examples.classes, examples.counts(), strict=True))
        console.print(f"{len(examples.items)} {what} in {len(examples.classes)} classes ({counts})")
        with Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            TextColumn("{task.fields[info]}"),
            TimeRemainingColumn(),
            console=console,
        ) as progress:
            task = progress.add_task("training", total=config.epochs, info="")

            def on_event(kind: str, data: dict) -> None:
                if kind == "started":
                    progress.console.print(
                        f"on {data['device_name']} ({data['device']}): {data['train_images']} training, "
                        f"{data['validation_images']} validation {what}"
                    )
                    if data.get("resumed_from_epoch"):
                        progress.update(task, completed=data["resumed_from_epoch"])
                elif kind == "epoch":
                    va = data["validation_accuracy"]
                    info = (
                        f"loss {data['loss']:.3f} · train {data['train_accuracy']:.1%}"
                        + (f" · validation {va:.1%}" if va is not None else "")
                        + f" · {data['images_per_second'] or 0:.0f} {'texts' if text else 'img'}/s"
                    )
                    progress.update(task, completed=data["epoch"], info=info)
                    progress.console.print(f"epoch {data['epoch']}/{data['epochs']}: {info}")

            common = {
                "checkpoint": args.out / "checkpoint.pt",
                "resume": args.resume,
                "on_event": on_event,
                "should_stop": lambda: stop["now"],
                "progress": lambda stage: progress.console.print(f"… {stage}"),
            }
            if text:
                summary, result = train_text_and_write(examples, config, args.out, max_length=args.max_length, **common)
            else:
                summary, result = train_and_write(
                    examples, config, args.artifacts, args.out, backbone_name=args.backbone, **common
                )
    except KeyboardInterrupt:
        console.print(f"{PROG}: interrupted; `{PROG} {args.dataset} --out {args.out} --resume` continues")
        return 130
    except Cancelled:
        return 130
    except (DataError, ResultError) as exc:
        console.print(f"{PROG}: error: {exc}")
        return 1
    accuracy = summary["validation_accuracy"]
    console.print(
        f"done: validation accuracy {accuracy:.1%}" if accuracy is not None else "done (no validation images)",
        f"· ONNX vs PyTorch max diff {summary['checks']['onnx_max_abs_diff']:.1e} → {args.out}",
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
