"""Job events: what a job's event stream (GET /api/jobs/{id}/events, docs/jobs.md) carries, made in one place.

Every emitter builds its events here (the server's job rows, the trainer, batch prediction), so an event's
kind and fields are spelt once; schemas/job_events.json describes the same events for readers (the app's
watcher, tests). Each constructor returns (kind, data): `kind` is the SSE event name, `data` its JSON.
"""

from __future__ import annotations

from pathlib import Path

SCHEMA_PATH = Path(__file__).parent / "schemas" / "job_events.json"
TERMINAL = ("done", "failed", "cancelled")  # a job's last event; its status takes the same name

Event = tuple[str, dict]


def queued(position: int) -> Event:
    """The job waits in the queue, `position` jobs ahead of it."""
    return "queued", {"position": position}


def started(
    *,
    device: str,
    device_name: str,
    train_images: int,
    validation_images: int,
    classes: list[str],
    resumed_from_epoch: int | None,
) -> Event:
    """A training run began on `device` (cpu or cuda); `resumed_from_epoch` when it goes on from a checkpoint."""
    return "started", {
        "device": device,
        "device_name": device_name,
        "images": train_images + validation_images,
        "train_images": train_images,
        "validation_images": validation_images,
        "classes": classes,
        "resumed_from_epoch": resumed_from_epoch,
    }


def prediction_started(images: int) -> Event:
    """A batch prediction began on a zip of `images` files."""
    return "started", {"images": images}


# fmt: off
def epoch(*, epoch: int, epochs: int, loss: float, train_accuracy: float, validation_accuracy: float | None,
          images_per_second: float | None, seconds: float, eta_seconds: float) -> Event:
    """An epoch ended (`validation_accuracy` None without a validation split); the fields in this order."""
    return "epoch", dict(locals())
# fmt: on


def checkpoint(epoch: int, step: int | None = None) -> Event:
    """A checkpoint of `epoch` epochs done (and `step` batches into the next, where the trainer says) was stored."""
    return "checkpoint", {"epoch": epoch} if step is None else {"epoch": epoch, "step": step}


def progress(*, done: int, total: int, failed: int, images_per_second: float) -> Event:
    """A batch prediction's progress: `done` of `total` files, `failed` of them unreadable."""
    return "progress", {"done": done, "total": total, "failed": failed, "images_per_second": images_per_second}


def trained(*, validation_accuracy: float | None, files: list[str]) -> Event:
    """A training job ended with its result files (names for /api/jobs/{id}/files/)."""
    return "done", {"validation_accuracy": validation_accuracy, "files": files}


def predicted(*, images: int, failed: int, files: list[str], images_per_second: float) -> Event:
    """A batch prediction ended with its reports."""
    return "done", {"images": images, "failed": failed, "files": files, "images_per_second": images_per_second}


def failed(reason: str) -> Event:
    """The job ended without a result; `reason` is a sentence for a person."""
    return "failed", {"reason": reason}


def cancelled() -> Event:
    """The job was cancelled by its owner."""
    return "cancelled", {}


def notice(message: str) -> Event:
    """Something the user should know that does not end the job (the queue is away, a refused checkpoint)."""
    return "notice", {"message": message}


def released(message: str) -> Event:
    """The job's worker stopped; the job is queued again and resumes from its last checkpoint."""
    return "released", {"message": message}
