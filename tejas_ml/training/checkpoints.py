"""What the trainer needs to resume a run where it stopped: its history, the epochs' shuffling (the same
for a seed, from any batch), and checkpoints read back with weights_only (a changed file cannot run
code), snapshotted off the device and written by a background thread while training goes on."""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass, field
from pathlib import Path

import torch


class EpochSampler(torch.utils.data.Sampler):
    """The same shuffle for (seed, epoch) every time, starting after `skip` items (a resumed epoch)."""

    def __init__(self, n: int, seed: int):
        self.n, self.seed, self.epoch, self.skip = n, seed, 0, 0

    def order(self) -> list[int]:
        generator = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
        return torch.randperm(self.n, generator=generator).tolist()

    def __iter__(self):
        return iter(self.order()[self.skip :])

    def __len__(self) -> int:
        return self.n - self.skip


@dataclass
class History:
    epochs: list[dict] = field(default_factory=list)
    best_accuracy: float = -1.0
    best_loss: float = math.inf
    best_epoch: int = 0
    bad_epochs: int = 0


class CheckpointError(Exception):
    """A stored checkpoint that cannot be used (damaged, changed, or holding more than tensors and plain
    values): the job starts over instead of resuming from it."""


def read_checkpoint(path: Path, device) -> dict:
    """A checkpoint's state, read with `torch.load(weights_only=True)`: tensors, numbers, strings, lists
    and dicts only, so a checkpoint someone changed cannot run code in the worker."""
    try:
        state = torch.load(path, map_location=device, weights_only=True)
    except Exception as exc:  # UnpicklingError, a damaged zip, …: all say "not this file"
        raise CheckpointError(f"The stored checkpoint cannot be used ({type(exc).__name__}).") from exc
    if not isinstance(state, dict) or state.get("format") != 1 or "network" not in state:
        raise CheckpointError("The stored checkpoint cannot be used (not a checkpoint of this trainer).")
    return state


def detached(value):
    """A copy of a (nested) state with every tensor cloned to the CPU."""
    if isinstance(value, torch.Tensor):
        return value.detach().to("cpu", copy=True)
    if isinstance(value, dict):
        return {k: detached(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(detached(v) for v in value)
    return value


class CheckpointWriter(threading.Thread):
    """Runs `work` (writing a checkpoint) beside training; its error is kept for the training thread."""

    def __init__(self, work):
        super().__init__(daemon=True, name="tejas-checkpoint")
        self.work, self.error = work, None

    def run(self) -> None:
        try:
            self.work()
        except BaseException as exc:  # raised again by wait_for_checkpoint on the training thread
            self.error = exc
