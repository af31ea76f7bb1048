"""Training data: examples from an ImageFolder zip or folder (read with the core's hostile-input rules)
or from a synced project, the app's split, and torch datasets with the app's preprocessing.

Images are written once to a cache folder named by their sha256 and decoded lazily by the DataLoader's
workers: a 500 MB zip is never held in memory.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path

from tejas.archive_source import ArchiveError
from tejas.dataset import Sample, iter_archive
from tejas.limits import DEFAULT_LIMITS, Limits
from tejas.splits import stratified_split

CORRECTION = "correction"  # a sample's source when the person relabelled a wrong prediction (the app's)


class DataError(ValueError):
    """The data cannot be trained on; the message says why and what to do."""


@dataclass(frozen=True)
class Example:
    id: str  # sha256 of the image bytes (the app's content id)
    label: int
    path: Path
    correction: bool = False


@dataclass
class Examples:
    classes: list[str]
    items: list[Example]
    class_ids: list[str] | None = None  # the project's class ids, in `classes` order
    skipped: list[str] = field(default_factory=list)

    def counts(self) -> list[int]:
        counts = [0] * len(self.classes)
        for item in self.items:
            counts[item.label] += 1
        return counts


def check_trainable(classes: list[str], counts: list[int], what: str = "this data") -> None:
    """The app's refusals: at least 2 classes, each with at least 2 images (`what` names the data)."""
    if len(classes) < 2:
        raise DataError(f"Training needs at least 2 classes ({what} has {len(classes)}).")
    for name, count in zip(classes, counts, strict=True):
        if count < 2:
            raise DataError(f'Class "{name}" has {count} image{"" if count == 1 else "s"}; add at least 2 to train.')


def _cache_file(cache: Path, sha256: str) -> Path:
    return cache / sha256[:2] / sha256


def _write_once(cache: Path, sha256: str, data: bytes) -> Path:
    path = _cache_file(cache, sha256)
    if not path.is_file():
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_name(f".{sha256}.{os.getpid()}.part")
        partial.write_bytes(data)
        os.replace(partial, path)
    return path


def from_archive(source: Path, cache: Path, limits: Limits = DEFAULT_LIMITS) -> Examples:
    """An ImageFolder zip or folder (<class>/<image>), checked by the core's archive rules; unusable files
    are skipped and listed, a hostile archive is refused whole (DataError)."""
    try:
        events = iter_archive(source, limits)
        header = next(events)
        found: list[tuple[str, Sample]] = []
        skipped = []
        for event in events:
            if isinstance(event, Sample):
                found.append((event.label, _write_once(cache, event.sha256, event.data), event.sha256, event.metadata))
            else:
                skipped.append(str(event))
    except ArchiveError as exc:
        raise DataError(str(exc)) from None
    used = {label for label, *_ in found}
    classes = [c for c in header["classes"] if c in used]
    index = {name: i for i, name in enumerate(classes)}
    items = [
        Example(sha, index[label], path, (meta or {}).get("source") == CORRECTION) for label, path, sha, meta in found
    ]
    if not items:
        raise DataError(f"{header['archive']}: no usable images (expected <class>/<image> folders)")
    examples = Examples(classes, items, None, skipped)
    check_trainable(classes, examples.counts())
    return examples


def project_layout(records: list[dict]) -> tuple[list[dict], list[dict]]:
    """(class records in the app's order, the data of the samples in those classes) of a project's live
    records ({kind, id, data})."""
    classes = sorted(
        (r for r in records if r["kind"] == "class"),
        key=lambda r: (r["data"].get("order", 0), r["data"].get("created", ""), r["id"]),
    )
    ids = {r["id"] for r in classes}
    samples = [r["data"] for r in records if r["kind"] == "sample" and r["data"] and r["data"].get("classId") in ids]
    return classes, samples


def check_project(records: list[dict]) -> None:
    """Refuse (DataError) a project that cannot train, before any image is fetched."""
    classes, samples = project_layout(records)
    counts = {r["id"]: 0 for r in classes}
    for data in samples:
        counts[data["classId"]] += 1
    check_trainable([r["data"].get("name", r["id"]) for r in classes], list(counts.values()), "this project")


def project_examples(records: list[dict], example) -> Examples:
    """A synced project's live records ({kind, id, data}) as Examples, refused (DataError) when it cannot train;
    `example(content_id, label, correction)` makes each sample's example, in the project's order."""
    check_project(records)
    classes, samples = project_layout(records)
    index = {r["id"]: i for i, r in enumerate(classes)}
    items = [example(d["contentId"], index[d["classId"]], d.get("source") == CORRECTION) for d in samples]
    items.sort(key=lambda e: e.id)
    return Examples([r["data"]["name"] for r in classes], items, [r["id"] for r in classes])


def fetch_checked(fetch_blob, sha256: str, what: str) -> bytes:
    """The bytes of blob `sha256` from `fetch_blob(sha256)` (an iterator of byte chunks), checked against
    their sha256 (DataError naming `what`, e.g. image, when they differ)."""
    digest, chunks = hashlib.sha256(), []
    for chunk in fetch_blob(sha256):
        digest.update(chunk)
        chunks.append(chunk)
    if digest.hexdigest() != sha256:
        raise DataError(f"{what} {sha256[:12]}… of the project is damaged on the server; sync the project again")
    return b"".join(chunks)


def from_project(records: list[dict], fetch_blob, cache: Path) -> Examples:
    """A synced project's live records ({kind, id, data}) with its images fetched by `fetch_blob(sha256)`
    (an iterator of byte chunks) into `cache`, each checked against its sha256."""

    def example(sha: str, label: int, correction: bool) -> Example:
        path = _cache_file(cache, sha)
        if not path.is_file():
            _write_once(cache, sha, fetch_checked(fetch_blob, sha, "image"))
        return Example(sha, label, path, correction)

    return project_examples(records, example)


def split(examples: Examples, validation_share: float, seed: int) -> tuple[list[Example], list[Example]]:
    """The app's split: stratified by a hash of (seed, id); corrections are always trained on."""
    plain = [e for e in examples.items if not e.correction]
    try:
        train_ids, _ = stratified_split([e.id for e in plain], [e.label for e in plain], validation_share, seed)
    except ValueError as exc:
        raise DataError(str(exc)) from None
    train_set = set(train_ids)
    train = [e for e in plain if e.id in train_set] + [e for e in examples.items if e.correction]
    validation = [e for e in plain if e.id not in train_set]
    return train, validation


# -- torch side ------------------------------------------------------------------------------------


def transforms(input_spec: dict, augment: bool):
    """(train, eval) transforms: the manifest's preprocessing (resize the shorter side with antialiasing,
    centre crop, scale, normalise); augmentation adds random resized crops, flips and colour jitter."""
    from torchvision import transforms as T

    crop = tuple(input_spec["size"])
    resize = input_spec["resize"]["shorter_side"]
    normalise = [T.ToTensor(), T.Normalize(input_spec["mean"], input_spec["std"])]
    evaluation = T.Compose(
        [T.Resize(resize, interpolation=T.InterpolationMode.BILINEAR, antialias=True), T.CenterCrop(crop), *normalise]
    )
    if not augment:
        return evaluation, evaluation
    train = T.Compose(
        [
            T.RandomResizedCrop(crop, scale=(0.5, 1.0), antialias=True),
            T.RandomHorizontalFlip(),
            T.ColorJitter(0.2, 0.2, 0.2),
            *normalise,
        ]
    )
    return train, evaluation


class ImageDataset:
    """(image tensor, label) per example, decoded with Pillow in the DataLoader's workers."""

    def __init__(self, examples: list[Example], transform):
        self.paths = [str(e.path) for e in examples]
        self.ids = [e.id for e in examples]
        self.labels = [e.label for e in examples]
        self.transform = transform

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int):
        from ..imaging import ImageError, decoded_rgb

        what = f"image {self.ids[i][:12]}…"
        try:
            with open(self.paths[i], "rb") as f:
                data = f.read()
        except OSError as exc:  # the message of an OSError names the path: the user gets its reason only
            raise DataError(f"{what} cannot be read ({exc.strerror}); start the job again") from None
        try:
            # the core's image rule first (every frame's size, pixels, sides' ratio), then Pillow
            with decoded_rgb(data) as image:
                return self.transform(image), self.labels[i]
        except ImageError as exc:
            reason = str(exc) if str(exc).startswith("cannot") else f"is refused: {exc}"
            raise DataError(f"{what} {reason}; remove it from the data and start again") from None
