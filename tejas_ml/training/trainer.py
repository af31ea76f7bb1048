"""The training loop, one for every entry point (server jobs, `tejas train`, bench/server_train.py).

Modes, as in the app: `head` trains a classifier on the frozen backbone's features; `last_block` also
trains the backbone's last block with batch norm folded into its convolutions (the app's last-block
artifacts, so the trained tensors drop into the app's layout by name); `full` fine-tunes the whole
torchvision network (batch norm training). On CUDA: AMP (bfloat16 where supported, else float16 with
a grad scaler), channels-last, cuDNN autotuning, pinned memory. A checkpoint is written at the end of
every epoch and every `checkpoint_seconds` within one; `fit(resume=...)` carries on from the batch it
was at, with the same shuffling.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.nn as nn

from tejas import job_events
from tejas.catalog import MODES
from tejas.metrics import classification_report
from tejas_ml.export.backbones import Backbone
from tejas_ml.export.models import FeatureExtractor, LastBlockHead, fold_batch_norm, make_head

from .checkpoints import CheckpointWriter, EpochSampler, History, detached, read_checkpoint
from .data import Example, ImageDataset, transforms
from .network import Classifier, default_workers, device_name, parameter_groups, pick_device

DEFAULT_LEARNING_RATE = {"head": 3e-3, "last_block": 1e-3, "full": 1e-3}


class Cancelled(Exception):
    """The run was asked to stop."""


@dataclass
class TrainConfig:
    mode: str = "head"
    epochs: int = 10
    learning_rate: float | None = None  # None: DEFAULT_LEARNING_RATE[mode]
    batch_size: int = 32
    augment: bool = True
    seed: int = 0
    validation_share: float = 0.2
    patience: int = 5  # epochs without a better validation accuracy before stopping early; 0: never
    weight_decay: float = 0.01
    # `full`: the pretrained layers learn at this fraction of the learning rate, the new classifier at all
    # of it. 1 by default: on Animal-MNIST (5 classes × 12 images, 4 epochs, MobileNetV2) one rate of
    # 1e-3 reached 0.9–1.0 validation accuracy, 3e-3 with 0.1× for the backbone 0.9, 5e-4 0.7–0.9.
    backbone_lr_scale: float = 1.0
    workers: int | None = None  # DataLoader workers; None: by the machine's CPU count
    checkpoint_seconds: float = 120.0
    device: str | None = None  # None: cuda when available, else cpu

    def lr(self) -> float:
        return self.learning_rate if self.learning_rate is not None else DEFAULT_LEARNING_RATE[self.mode]


def build_classifier(backbone: Backbone, state_dict: dict, mode: str, num_classes: int, max_classes: int, seed: int):
    """The network for `mode`, from a torchvision state dict of `backbone` (its ImageNet classifier is
    ignored). head/last_block use the exporter's own modules, so parameter names match the app's layout."""
    if mode not in MODES:
        raise ValueError(f"unknown mode {mode!r} (choose from {', '.join(MODES)})")
    model = backbone.build()
    own = {k: v for k, v in state_dict.items() if not k.startswith(backbone.classifier_prefix)}
    model.load_state_dict(own, strict=False)
    if mode == "full":
        torch.manual_seed(seed)
        if backbone.name == "resnet18":
            model.fc = nn.Linear(model.fc.in_features, num_classes)
        else:
            model.classifier[1] = nn.Linear(model.classifier[1].in_features, num_classes)
        return Classifier(None, model, num_classes, masked=False)
    trunk, last_block, _ = backbone.split(model.eval())
    head = make_head(backbone.feature_size, max_classes, seed)
    if mode == "head":
        return Classifier(FeatureExtractor(trunk, last_block).eval(), head, num_classes, masked=True)
    return Classifier(trunk.eval(), LastBlockHead(fold_batch_norm(last_block), head), num_classes, masked=True)


@dataclass
class RunResult:
    network: Classifier
    history: list[dict]
    report: dict  # the app's classification report on the validation split
    probabilities: list[list[float]]  # validation probabilities, in validation order
    train: list[Example]
    validation: list[Example]
    device: str
    device_name: str
    images_per_second: float
    stopped_early: bool


class Trainer:
    """Train `network` on (train, validation) examples; `on_event(kind, data)` hears started, epoch and
    checkpoint; `should_stop()` is asked between batches (True → Cancelled; when it also has a true
    `keep_progress` attribute, a checkpoint of the epoch so far is written first)."""

    def __init__(
        self,
        network: Classifier,
        config: TrainConfig,
        input_spec: dict,
        classes: list[str],
        train: list[Example],
        validation: list[Example],
        checkpoint: Path | None = None,
        on_event: Callable[[str, dict], None] | None = None,
        on_checkpoint: Callable[[Path, int], None] | None = None,
        should_stop: Callable[[], bool] | None = None,
    ):
        self.config = config
        self.classes = classes
        self.train_examples, self.validation_examples = train, validation
        self.checkpoint = checkpoint
        self.on_event = on_event or (lambda kind, data: None)
        self.on_checkpoint = on_checkpoint or (lambda path, epoch: None)
        self.should_stop = should_stop or (lambda: False)
        self.device = pick_device(config.device)
        cuda = self.device.type == "cuda"
        if cuda:
            torch.backends.cudnn.benchmark = True
        self.memory_format = torch.channels_last if cuda else torch.contiguous_format
        self.network = network.to(self.device, memory_format=self.memory_format)
        self.amp_dtype = None
        if cuda:
            self.amp_dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.amp_dtype == torch.float16)
        self.optimizer = torch.optim.AdamW(parameter_groups(self.network, config), weight_decay=config.weight_decay)
        self.scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(self.optimizer, T_max=max(1, config.epochs))
        train_set, validation_set, collate = self.datasets(input_spec, train, validation)
        workers = default_workers() if config.workers is None else config.workers
        loader_args = {"num_workers": workers, "pin_memory": cuda, "persistent_workers": workers > 0}
        if workers > 0:
            loader_args["prefetch_factor"] = 4
        if collate is not None:
            loader_args["collate_fn"] = collate
        self.sampler = EpochSampler(len(train), config.seed)
        # A batch of one breaks batch norm in training mode: drop a lone last image (full mode only).
        drop_last = self.drop_lone_last and config.mode == "full" and len(train) % config.batch_size == 1
        self.train_loader = torch.utils.data.DataLoader(
            train_set,
            batch_size=config.batch_size,
            sampler=self.sampler,
            drop_last=drop_last,
            **loader_args,
        )
        self.validation_loader = torch.utils.data.DataLoader(
            validation_set, batch_size=max(config.batch_size, 64), shuffle=False, **loader_args
        )
        self.history = History()
        self._writer: CheckpointWriter | None = None
        self.best_state: dict | None = None
        self.epoch = 0  # epochs completed
        self.step = 0  # batches done in the current epoch
        self.partial = {"loss": 0.0, "correct": 0, "seen": 0, "seconds": 0.0}

    # what a subclass for other inputs (text) changes
    drop_lone_last = True  # batch norm (images) cannot train on a batch of one

    def datasets(self, input_spec: dict, train: list[Example], validation: list[Example]):
        """(train dataset, validation dataset, collate_fn or None): images with the manifest's preprocessing."""
        train_tf, eval_tf = transforms(input_spec, self.config.augment)
        return ImageDataset(train, train_tf), ImageDataset(validation, eval_tf), None

    def _to_device(self, inputs, labels):
        """(network inputs as a tuple, labels) on the training device."""
        inputs = inputs.to(self.device, non_blocking=True, memory_format=self.memory_format)
        return (inputs,), labels.to(self.device, non_blocking=True)

    # -- checkpoints --------------------------------------------------------------------------------

    def _state(self) -> dict:
        return {
            "format": 1,
            "config": asdict(self.config),
            "epoch": self.epoch,
            "step": self.step,
            "partial": dict(self.partial),
            "network": self._trainable_state(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "scaler": self.scaler.state_dict(),
            "history": asdict(self.history),
            "best_state": self.best_state,
        }

    def _trainable_state(self) -> dict:
        """The tensors that change (the frozen part is the same as at the start, so it is not saved)."""
        return {k: v for k, v in self.network.state_dict().items() if not k.startswith("frozen.")}

    def save_checkpoint(self) -> None:
        """Snapshot the state (copied off the device and out of the optimizer's reach) and write it in a
        background thread: the next batches train while the file is written and stored."""
        if self.checkpoint is None:
            return
        state = detached(self._state())
        self.wait_for_checkpoint()
        epoch, step = self.epoch, self.step

        def write() -> None:
            partial = self.checkpoint.with_name(self.checkpoint.name + ".part")
            torch.save(state, partial)
            os.replace(partial, self.checkpoint)
            self.on_checkpoint(self.checkpoint, epoch)
            self.on_event(*job_events.checkpoint(epoch, step))

        self._writer = CheckpointWriter(write)
        self._writer.start()

    def wait_for_checkpoint(self) -> None:
        """Let the checkpoint in flight finish; its error, if any, is raised here."""
        if self._writer is not None:
            self._writer.join()
            writer, self._writer = self._writer, None
            if writer.error is not None:
                raise writer.error

    def load_checkpoint(self, path: Path) -> None:
        state = read_checkpoint(path, self.device)
        self.network.load_state_dict(state["network"], strict=False)
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.scaler.load_state_dict(state["scaler"])
        self.history = History(**state["history"])
        self.best_state = state["best_state"]
        self.epoch, self.step, self.partial = state["epoch"], state["step"], state["partial"]

    # -- the loop -----------------------------------------------------------------------------------

    def _autocast(self):
        if self.amp_dtype is None:
            return torch.autocast("cpu", enabled=False)
        return torch.autocast("cuda", dtype=self.amp_dtype)

    def _train_epoch(self) -> None:
        self.network.train()
        self.sampler.epoch, self.sampler.skip = self.epoch, self.step * self.config.batch_size
        last_checkpoint = time.monotonic()
        started = time.monotonic() - self.partial["seconds"]
        loss_fn = nn.CrossEntropyLoss()
        # summed on the device and read only when needed: no CPU-GPU wait per step
        loss_sum = torch.zeros((), device=self.device)
        correct = torch.zeros((), dtype=torch.int64, device=self.device)
        seen = 0

        def settle() -> None:
            nonlocal loss_sum, correct, seen
            self.partial["loss"] += float(loss_sum)
            self.partial["correct"] += int(correct)
            self.partial["seen"] += seen
            loss_sum.zero_()
            correct.zero_()
            seen = 0

        for inputs, labels in self.train_loader:
            if self.should_stop():
                # a worker asked to stop (SIGTERM) keeps what this epoch did so far for the one that resumes
                if getattr(self.should_stop, "keep_progress", False) and self.step > 0 and seen:
                    settle()
                    self.partial["seconds"] = time.monotonic() - started
                    self.save_checkpoint()
                raise Cancelled()
            inputs, labels = self._to_device(inputs, labels)
            with self._autocast():
                logits = self.network(*inputs)
                loss = loss_fn(logits.float(), labels)
            self.optimizer.zero_grad(set_to_none=True)
            self.scaler.scale(loss).backward()
            self.scaler.step(self.optimizer)
            self.scaler.update()
            loss_sum += loss.detach() * len(labels)
            correct += (logits.detach().argmax(1) == labels).sum()
            seen += len(labels)
            self.step += 1
            if time.monotonic() - last_checkpoint >= self.config.checkpoint_seconds:
                settle()
                self.partial["seconds"] = time.monotonic() - started
                self.save_checkpoint()
                last_checkpoint = time.monotonic()
        settle()
        self.partial["seconds"] = time.monotonic() - started

    @torch.no_grad()
    def predict(self, loader) -> tuple[list[int], list[list[float]]]:
        self.network.eval()
        predicted, probabilities = [], []
        for inputs, labels in loader:
            inputs, _ = self._to_device(inputs, labels)
            with self._autocast():
                logits = self.network(*inputs)
            p = torch.softmax(logits.float(), dim=1)
            predicted += p.argmax(1).tolist()
            probabilities += p.tolist()
        return predicted, probabilities

    def _improved(self, accuracy: float | None, loss: float) -> bool:
        h = self.history
        better = (accuracy, -loss) > (h.best_accuracy, -h.best_loss) if accuracy is not None else loss < h.best_loss
        if better:
            h.best_accuracy, h.best_loss, h.best_epoch, h.bad_epochs = (
                accuracy if accuracy is not None else -1,
                loss,
                self.epoch,
                0,
            )
        else:
            h.bad_epochs += 1
        return better

    def fit(self, resume: Path | None = None) -> RunResult:
        try:
            return self._fit(resume)
        finally:
            self.wait_for_checkpoint()

    def fit_and_write(self, resume: bool, write: Callable[[RunResult], dict]) -> tuple[dict, RunResult]:
        """Train (from the checkpoint when `resume` and one exists), then write(result) → the results summary,
        with the validation accuracy and speed added; returns (summary, result)."""
        checkpoint = self.checkpoint
        result = self.fit(resume=checkpoint if resume and checkpoint is not None and checkpoint.is_file() else None)
        summary = write(result)
        summary["validation_accuracy"] = result.report["accuracy"] if result.validation else None
        summary["images_per_second"] = result.images_per_second
        return summary, result

    def _fit(self, resume: Path | None) -> RunResult:
        if resume is not None:
            self.load_checkpoint(resume)
        self.on_event(
            *job_events.started(
                device=self.device.type,
                device_name=device_name(self.device),
                train_images=len(self.train_examples),
                validation_images=len(self.validation_examples),
                classes=self.classes,
                resumed_from_epoch=self.epoch if resume is not None else None,
            )
        )
        stopped_early = False
        labels = [e.label for e in self.validation_examples]
        while self.epoch < self.config.epochs:
            if self.history.bad_epochs >= self.config.patience > 0:
                stopped_early = True
                break
            self._train_epoch()
            seen = max(1, self.partial["seen"])
            loss, train_accuracy = self.partial["loss"] / seen, self.partial["correct"] / seen
            seconds = self.partial["seconds"]
            accuracy = None
            if self.validation_examples:
                predicted, _ = self.predict(self.validation_loader)
                accuracy = sum(p == t for p, t in zip(predicted, labels, strict=True)) / len(labels)
            self.scheduler.step()
            self.epoch += 1
            self.step = 0
            self.partial = {"loss": 0.0, "correct": 0, "seen": 0, "seconds": 0.0}
            if self._improved(accuracy, loss):
                self.best_state = {k: v.detach().to("cpu", copy=True) for k, v in self._trainable_state().items()}
            done = [e["seconds"] for e in self.history.epochs] + [seconds]
            kind, entry = job_events.epoch(
                epoch=self.epoch,
                epochs=self.config.epochs,
                loss=loss,
                train_accuracy=train_accuracy,
                validation_accuracy=accuracy,
                images_per_second=seen / seconds if seconds > 0 else None,
                seconds=seconds,
                eta_seconds=(self.config.epochs - self.epoch) * sum(done) / len(done),
            )
            self.history.epochs.append(entry)
            self.on_event(kind, entry)
            self.save_checkpoint()
        if self.best_state is not None:
            self.network.load_state_dict(self.best_state, strict=False)
        predicted, probabilities = self.predict(self.validation_loader) if self.validation_examples else ([], [])
        report = classification_report(labels, predicted, self.classes, [e.id for e in self.validation_examples])
        rates = [e["images_per_second"] for e in self.history.epochs if e["images_per_second"]]
        return RunResult(
            self.network.cpu().eval(),
            self.history.epochs,
            report,
            probabilities,
            self.train_examples,
            self.validation_examples,
            self.device.type,
            device_name(self.device),
            sum(rates) / len(rates) if rates else 0.0,
            stopped_early,
        )
