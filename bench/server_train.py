#!/usr/bin/env python3
"""The server's trainer (tejas_ml/training) against a minimal hand-written PyTorch loop: images/s.

Both train the same network (built by the trainer's own `build_classifier`) on the same images, read
from the same PNG files on disk through a DataLoader with the same transforms (the trainer's
`transforms`, augmentation on, as users get it), batch size, worker count, pin_memory and prefetching,
on the same device. The hand loop is what a person would write: `model.train()`, AdamW (same learning
rate and weight decay), CrossEntropyLoss, and on CUDA the trainer's autocast dtype and channels-last;
nothing else (no metrics, no scheduler, no checkpoints). The trainer runs twice: with a checkpoint
written every epoch (as server jobs and `tejas train` do) and with `checkpoint=None`. Neither gets a
validation split (the hand loop has none): both train on every image. Throughput is the images trained
in the timed epochs divided by their wall time (checkpoints included), after one warm-up epoch.

Runs (`--runs`): ARCH:MODE with ARCH `auto` (the artifacts' own backbone) or a torchvision name for
`full`; a backbone without ImageNet weights on this machine is used with random weights (throughput does
not depend on the weights) and the JSON says so.

    python bench/server_train.py      # CPU-sized: MobileNetV2 full + head, ResNet18 full; 20 images, batch 5
    python bench/server_train.py --device cuda --images 2000 --batch-size 128 --epochs 3 \
        --runs resnet18:full,auto:full,auto:head --out bench/results/server_train_cuda.json   # a GPU machine
Writes bench/results/server_train.json (or --out); bench/readme_tables.py shows both files.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.report import _git, machine_facts, new_report, write_report  # noqa: E402

# Code the numbers depend on besides bench/ (report.py's list covers bench/, pwa/, tools/).
TRAINER_PATHS = ("tejas_ml/training",)
GOAL_RATIO = 0.95  # trainer ÷ hand loop (issue 13)
GPU_GOAL_IMAGES_PER_SECOND = 5000  # ResNet18 224² full fine-tune, AMP + channels-last, one H100 (issue 13)
DEFAULT_RUNS = "auto:full,auto:head,resnet18:full"


def animal_folder(root: Path, images: int, classes: int, size: int) -> tuple[Path, dict]:
    """An ImageFolder of Animal-MNIST drawings resized to size² RGB PNGs (testkit/animals.py)."""
    from testkit.animals import animal_pngs, write_folder

    per_class = max(2, images // classes)
    data = animal_pngs(classes=classes, per_class=per_class, size=size)
    folder = write_folder(root / "images", data)
    count = sum(len(v) for v in data.values())
    sizes = [len(p) for v in data.values() for p in v]
    return folder, {
        "source": "Animal-MNIST (PyPI animal-mnist 0.4), 28×28 grey drawings",
        "prepared": f"resized to {size}×{size} (bilinear) and saved as RGB PNG files before the run, so each "
        "epoch decodes full-size images as real data would",
        "format": "PNG",
        "image_size": [size, size],
        "classes": classes,
        "per_class": per_class,
        "images": count,
        "mean_file_bytes": round(sum(sizes) / len(sizes)),
    }


def make_network(backbone_name: str, mode: str, examples, config, artifacts: Path):
    """(network, backbone, weights, weights_note, manifest) from the trainer's own `prepare`; a backbone
    without ImageNet weights here gets random ones (build_classifier from an empty state dict)."""
    from tejas.artifacts import read_manifest
    from tejas_ml.export.backbones import BACKBONES
    from tejas_ml.training.data import DataError
    from tejas_ml.training.run import prepare
    from tejas_ml.training.trainer import build_classifier

    manifest = read_manifest(artifacts)
    try:
        backbone, network, manifest, _, _ = prepare(examples, config, artifacts, backbone_name)
    except DataError as error:
        if "weights" not in str(error):
            raise
        backbone = BACKBONES[backbone_name]
        network = build_classifier(backbone, {}, mode, len(examples.classes), manifest["max_classes"], config.seed)
        note = f"random initialisation: {error} (throughput does not depend on the weights)"
        return network, backbone, "none", note, manifest
    if backbone.name == manifest["architecture"]:
        weights = manifest.get("weights", {}).get("kind", "imagenet")
        note = f"the artifact set's own ({manifest.get('weights', {}).get('origin', weights)})"
    else:
        weights, note = "imagenet", "ImageNet weights found on this machine"
    return network, backbone, weights, note, manifest


def now() -> tuple[float, float]:
    """(wall clock, this process's CPU time: all its threads, not DataLoader worker processes)."""
    return time.perf_counter(), time.process_time()


class EpochClock:
    """Wall-clock end of each epoch from the trainer's events: its `epoch` event, or the end-of-epoch
    `checkpoint` that follows it when checkpoints are on."""

    def __init__(self):
        self.ends: dict[int, tuple[float, float]] = {}
        self.checkpoint_seconds: list[float] = []
        self._epoch_at: dict[int, tuple[float, float]] = {}

    def __call__(self, kind: str, data: dict) -> None:
        at = now()
        if kind == "epoch":
            self.ends[data["epoch"]] = self._epoch_at[data["epoch"]] = at
        elif kind == "checkpoint" and data["step"] == 0 and data["epoch"] in self._epoch_at:
            self.ends[data["epoch"]] = at
            self.checkpoint_seconds.append(at[0] - self._epoch_at[data["epoch"]][0])


def sync(device) -> None:
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize(device)


def hand_loop(network, train_dataset, trainer_like, args, epochs: int) -> list[tuple[float, float]]:
    """The minimal loop; returns the end of each epoch (`now()`)."""
    import torch
    import torch.nn as nn

    device, memory_format, amp_dtype, loader_args = trainer_like
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    model = network.to(device, memory_format=memory_format)
    optimizer = torch.optim.AdamW(
        [p for p in model.parameters() if p.requires_grad], lr=args.lr, weight_decay=args.weight_decay
    )
    scaler = torch.amp.GradScaler("cuda", enabled=amp_dtype == torch.float16)
    loss_fn = nn.CrossEntropyLoss()
    loader = torch.utils.data.DataLoader(
        train_dataset, batch_size=args.batch_size, shuffle=True, drop_last=args.drop_last, **loader_args
    )
    ends = []
    model.train()
    for _ in range(epochs):
        for images, labels in loader:
            images = images.to(device, non_blocking=True, memory_format=memory_format)
            labels = labels.to(device, non_blocking=True)
            with torch.autocast(device.type, dtype=amp_dtype, enabled=amp_dtype is not None):
                loss = loss_fn(model(images).float(), labels)
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
        sync(device)
        ends.append(now())
    return ends


def rate(ends: list[tuple[float, float]], start: tuple[float, float], per_epoch: int, warmup: int) -> dict:
    """Images/s over the epochs after `warmup` (wall clock, and per second of this process's CPU time:
    steadier than the wall clock on a shared machine), and each epoch's seconds."""
    marks = [start, *ends]
    seconds = [b[0] - a[0] for a, b in zip(marks, marks[1:], strict=False)]
    timed, cpu = marks[-1][0] - marks[warmup][0], marks[-1][1] - marks[warmup][1]
    images = per_epoch * (len(ends) - warmup)
    return {
        "images_per_second": images / timed,
        "images_per_cpu_second": images / cpu,
        "timed_seconds": round(timed, 3),
        "timed_cpu_seconds": round(cpu, 3),
        "epoch_seconds": [round(s, 3) for s in seconds],
    }


def run_one(index: int, spec: str, args, examples, artifacts: Path, work: Path) -> dict:
    import torch

    from tejas_ml.training.data import ImageDataset, transforms
    from tejas_ml.training.trainer import TrainConfig, Trainer

    arch, mode = spec.split(":")
    epochs = args.warmup_epochs + args.epochs
    config = TrainConfig(
        mode=mode,
        epochs=epochs,
        batch_size=args.batch_size,
        augment=True,
        seed=0,
        patience=0,
        workers=args.workers,
        device=args.device,
    )
    train = list(examples.items)
    row: dict = {"run": spec, "mode": mode}
    measured: dict[str, list[dict]] = {"hand": [], "trainer": [], "trainer_no_checkpoint": []}
    order = ["hand", "trainer", "trainer_no_checkpoint"]
    for repeat in range(args.repeats):
        # a different variant first in each run and repeat: a burst of other work does not always hit the same one
        turn = (index + repeat) % 3
        for variant in (order[turn:] + order[:turn]) if repeat % 2 == 0 else (order[turn:] + order[:turn])[::-1]:
            network, backbone, weights, note, manifest = make_network(arch, mode, examples, config, artifacts)
            checkpoint = work / f"{backbone.name}-{mode}-checkpoint.pt" if variant == "trainer" else None
            clock = EpochClock()
            trainer = Trainer(
                network, config, manifest["input"], examples.classes, train, [], checkpoint=checkpoint, on_event=clock
            )
            if args.amp == "off":
                trainer.amp_dtype = None
                trainer.scaler = torch.amp.GradScaler("cuda", enabled=False)
            per_epoch = len(train) - (len(train) % config.batch_size if trainer.train_loader.drop_last else 0)
            if variant == "hand":
                loader = trainer.train_loader
                loader_args = {"num_workers": loader.num_workers, "pin_memory": loader.pin_memory,
                               "persistent_workers": loader.persistent_workers}  # fmt: skip
                if loader.num_workers > 0:
                    loader_args["prefetch_factor"] = loader.prefetch_factor
                facts = (trainer.device, trainer.memory_format, trainer.amp_dtype, loader_args)
                args.lr, args.weight_decay, args.drop_last = config.lr(), config.weight_decay, loader.drop_last
                train_tf, _ = transforms(manifest["input"], True)
                del trainer  # the hand loop gets a fresh copy of the network, untouched by the trainer
                network, *_ = make_network(arch, mode, examples, config, artifacts)
                torch.manual_seed(0)
                start = now()
                ends = hand_loop(network, ImageDataset(train, train_tf), facts, args, epochs)
                result = rate(ends, start, per_epoch, args.warmup_epochs)
            else:
                start = now()
                trainer.fit()
                result = rate([clock.ends[e] for e in range(1, epochs + 1)], start, per_epoch, args.warmup_epochs)
                if checkpoint is not None:
                    result["checkpoint_bytes"] = checkpoint.stat().st_size
                    result["checkpoint_seconds"] = [round(s, 3) for s in clock.checkpoint_seconds]
                    checkpoint.unlink()
                row.update(
                    architecture=backbone.name,
                    weights=weights,
                    weights_note=note,
                    input_size=list(manifest["input"]["size"]),
                    artifacts=artifacts.name,
                    device=trainer.device.type,
                    amp=str(trainer.amp_dtype).replace("torch.", "") if trainer.amp_dtype else None,
                    channels_last=trainer.memory_format == torch.channels_last,
                    workers=trainer.train_loader.num_workers,
                    pin_memory=trainer.train_loader.pin_memory,
                    learning_rate=config.lr(),
                    train_images_per_epoch=per_epoch,
                )
            measured[variant].append(result)
            print(f"{spec:>22} {variant:>22}: {result['images_per_second']:9.2f} img/s, "
                  f"{result['images_per_cpu_second']:.2f} per CPU-s "
                  f"(epochs {result['epoch_seconds']} s)", file=sys.stderr)  # fmt: skip
    for variant, results in measured.items():
        row[variant] = {
            key: round(statistics.median(r[key] for r in results), 3)
            for key in ("images_per_second", "images_per_cpu_second")
        }
        row[variant]["repeats"] = results
    hand, hand_cpu = row["hand"]["images_per_second"], row["hand"]["images_per_cpu_second"]
    row["ratio"] = round(row["trainer"]["images_per_second"] / hand, 3)
    row["ratio_no_checkpoint"] = round(row["trainer_no_checkpoint"]["images_per_second"] / hand, 3)
    row["cpu_time_ratio"] = round(row["trainer"]["images_per_cpu_second"] / hand_cpu, 3)
    row["cpu_time_ratio_no_checkpoint"] = round(row["trainer_no_checkpoint"]["images_per_cpu_second"] / hand_cpu, 3)
    return row


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--artifacts", type=Path, default=ROOT / "artifacts" / "default")
    parser.add_argument("--runs", default=DEFAULT_RUNS, help=f"ARCH:MODE,… (default {DEFAULT_RUNS})")
    parser.add_argument("--device", default="cpu", help="cpu (default), cuda, cuda:1")
    parser.add_argument("--images", type=int, default=20, help="images in all (default 20: CPU-sized)")
    parser.add_argument("--classes", type=int, default=5)
    parser.add_argument("--image-size", type=int, default=224, help="side of the PNG files (default 224)")
    parser.add_argument("--epochs", type=int, default=2, help="timed epochs (default 2)")
    parser.add_argument("--warmup-epochs", type=int, default=1)
    parser.add_argument(
        "--batch-size", type=int, default=5, help="default 5: CPU-sized (the trainer's own default is 32)"
    )
    parser.add_argument("--workers", type=int, default=None, help="DataLoader workers (default: the trainer's)")
    parser.add_argument(
        "--amp",
        choices=["auto", "off"],
        default="auto",
        help="auto: the trainer's choice (bfloat16/float16 autocast + channels-last on CUDA, none on CPU); "
        "off: no autocast in either loop",
    )
    parser.add_argument(
        "--threads", type=int, default=None, help="torch CPU threads (default: torch's own, as the trainer gets)"
    )
    parser.add_argument("--repeats", type=int, default=1, help="runs of each loop, alternating order (median)")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "server_train.json")
    args = parser.parse_args(argv)
    if not (args.artifacts / "manifest.json").is_file():
        print(f"server_train: error: no artifacts in {args.artifacts}; run `tejas export` first", file=sys.stderr)
        return 1
    runs = [r.strip() for r in args.runs.split(",") if r.strip()]
    for r in runs:
        if r.count(":") != 1 or r.split(":")[1] not in ("head", "last_block", "full"):
            parser.error(f"--runs: {r!r} is not ARCH:MODE (MODE head, last_block or full)")

    import torch

    from tejas_ml.training.data import from_archive
    from tejas_ml.training.trainer import default_workers, device_name, pick_device

    if args.threads:
        torch.set_num_threads(args.threads)
    device = pick_device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        print("server_train: error: --device cuda but CUDA is not available here", file=sys.stderr)
        return 1
    load_before = [round(x, 2) for x in os.getloadavg()]
    with tempfile.TemporaryDirectory(prefix="tejas-server-train-") as tmp:
        work = Path(tmp)
        folder, data = animal_folder(work, args.images, args.classes, args.image_size)
        # the trainer's own ingestion (core archive rules, images cached by sha256): both loops read these files
        examples = from_archive(folder, work / "cache")
        data["read_by_both_from"] = "the trainer's image cache on local disk (tejas_ml.training.data.from_archive)"
        results = [run_one(i, spec, args, examples, args.artifacts, work) for i, spec in enumerate(runs)]
    dirty = _git("status", "--porcelain", "--untracked-files=all", "--", *TRAINER_PATHS)
    gpu = None
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        gpu = {"name": device_name(device), "memory_gib": round(props.total_memory / 2**30, 1),
               "cuda": torch.version.cuda, "cudnn": torch.backends.cudnn.version()}  # fmt: skip
    report = new_report(
        "server_train",
        config={
            "device": device.type,
            "images": data["images"],
            "classes": args.classes,
            "batch_size": args.batch_size,
            "warmup_epochs": args.warmup_epochs,
            "timed_epochs": args.epochs,
            "workers": default_workers() if args.workers is None else args.workers,
            "workers_default": args.workers is None,
            "amp": args.amp,
            "augment": True,
            "validation_split": None,
            "repeats": args.repeats,
            "torch_threads": torch.get_num_threads(),
            "torch_threads_default": args.threads is None,
        },
        data=data,
        goals={
            "ratio": GOAL_RATIO,
            "gpu_images_per_second": GPU_GOAL_IMAGES_PER_SECOND,
            "gpu_goal_run": "resnet18:full, 224², AMP + channels-last, one H100",
        },
        machine={
            **machine_facts(onnxruntime=False),
            "load_average_start": load_before,
            "gpu": gpu,
            "torchvision": _version("torchvision"),
        },
        trainer_git_modified=[line[3:] for line in dirty.splitlines()] if dirty else [],
        results=results,
    )
    write_report(args.out, report)
    for r in results:
        print(
            f"{r['run']:>18}: hand {r['hand']['images_per_second']:.1f}, "
            f"trainer {r['trainer']['images_per_second']:.1f} "
            f"(×{r['ratio']:.3f}), without checkpoints {r['trainer_no_checkpoint']['images_per_second']:.1f} "
            f"(×{r['ratio_no_checkpoint']:.3f}) img/s",
            file=sys.stderr,
        )
    return 0


def _version(name: str) -> str | None:
    import importlib.metadata

    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


if __name__ == "__main__":
    sys.exit(main())
