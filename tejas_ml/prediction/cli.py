"""`tejas predict MODEL.onnx FOLDER|ZIP`: classify every image of a folder or zip with onnxruntime, the
preprocessing read from the model's metadata; a progress bar (rich) on stderr, the report (CSV or JSON by
--out's extension; CSV on stdout without --out) with the error of each file that could not be read."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

PROG = "tejas predict"


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog=PROG, description="Predict every image of a folder or zip with a Tejas ONNX model."
    )
    p.add_argument("model", type=Path, help="a classifier exported by the app, `tejas train` or a server job (.onnx)")
    p.add_argument("source", type=Path, help="a folder or zip of images (any layout)")
    p.add_argument("--out", type=Path, default=None, help="report.csv or report.json (default: CSV on stdout)")
    p.add_argument("--top-k", type=int, default=3, help="classes per image (default: 3)")
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--threads", type=int, default=None, help="onnxruntime threads (default: up to 4)")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    from tejas.predictions import ArchiveError, count_images, write_csv

    from .batch import Throughput, predict_source, write_reports
    from .model import Classifier, ModelError

    console = Console(stderr=True)  # the progress bar; messages are plain lines (rich would wrap them)

    def say(line: str) -> None:
        print(line, file=sys.stderr, flush=True)

    if args.top_k < 1 or args.batch_size < 1:
        say(f"{PROG}: error: --top-k and --batch-size must be at least 1")
        return 2
    if args.out is not None and args.out.suffix.lower() not in (".csv", ".json"):
        say(f"{PROG}: error: --out {args.out}: name a .csv or .json file")
        return 2
    for path in (args.model, args.source):
        if not path.exists():
            say(f"{PROG}: error: {path}: no such file or folder")
            return 2
    try:
        classifier = Classifier(args.model, args.threads)
        total = count_images(args.source)
    except (ModelError, ArchiveError) as exc:
        say(f"{PROG}: error: {exc}")
        return 1
    rows = []
    speed = Throughput()
    try:
        with Progress(
            TextColumn("predicting"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[info]}"),
            TimeRemainingColumn(),
            console=console,
            transient=args.out is None,
        ) as progress:
            task = progress.add_task("predict", total=total, info="")
            for row in predict_source(classifier, args.source, top_k=args.top_k, batch_size=args.batch_size):
                rows.append(row)
                progress.update(task, completed=len(rows), info=f"{speed.rate(len(rows)):.0f} img/s")
    except ArchiveError as exc:
        say(f"{PROG}: error: {exc}")
        return 1
    except KeyboardInterrupt:
        say(f"{PROG}: interrupted after {len(rows)} of {total} images; nothing written")
        return 130
    failed = [r for r in rows if r["error"]]
    if args.out is None:
        write_csv(rows, max(1, min(args.top_k, len(classifier.classes))), sys.stdout)
    else:
        suffix = args.out.suffix.lower()
        write_reports(
            rows,
            classifier,
            args.top_k,
            args.out if suffix == ".json" else None,
            args.out if suffix == ".csv" else None,
        )
    for row in failed[:10]:
        say(f"could not read {row['file']}: {row['error']}")
    more = f" (and {len(failed) - 10} more)" if len(failed) > 10 else ""
    say(
        f"{len(rows) - len(failed)} of {len(rows)} images predicted at {speed.rate(len(rows)):.0f} img/s"
        + (f"; {len(failed)} could not be read{more}" if failed else "")
        + (f" → {args.out}" if args.out else "")
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
