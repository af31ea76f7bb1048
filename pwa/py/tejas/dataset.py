"""Dataset archives in the ImageFolder layout (<class>/<image>): read hostile input safely, write deterministically.

A bad *file* is skipped and reported (path + reason); a bad *archive* raises ArchiveError whole.
Reading streams: `iter_archive` yields one sample at a time, so a 500 MB zip is never held in memory.
"""

from __future__ import annotations

import hashlib
import json
import zipfile
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

from . import rules
from .archive_source import ArchiveError, Entry, human_size, list_entries
from .images import EXTENSIONS, ImageError, ImageInfo, sniff_image
from .limits import DEFAULT_LIMITS, Limits

__all__ = [
    "ArchiveError",
    "Dataset",
    "DatasetReader",
    "Sample",
    "Skipped",
    "SIDECAR",
    "iter_archive",
    "read_archive",
    "validate_class_name",
    "write_archive",
]

SIDECAR = "tejas.json"
SIDECAR_FORMAT = "tejas-dataset"
JUNK_NAMES = {".ds_store", "thumbs.db", "desktop.ini"}
ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)


@dataclass
class Sample:
    path: str  # "<class>/<file>" inside the archive
    label: str
    data: bytes
    info: ImageInfo
    sha256: str
    metadata: dict = field(default_factory=dict)


@dataclass(frozen=True)
class Skipped:
    path: str
    reason: str

    def __str__(self) -> str:
        return f"{self.path}: {self.reason}"


@dataclass
class Dataset:
    classes: list[str]
    samples: list[Sample]
    skipped: list[Skipped]
    warnings: list[str] = field(default_factory=list)


def validate_class_name(name: str, limits: Limits = DEFAULT_LIMITS) -> str | None:
    """Why `name` cannot be a class (a folder name on every OS), or None when it can (schemas/rules.json)."""
    return rules.validate_class_name(name, limits.max_name_chars)


def _is_junk(path: str) -> bool:
    """OS litter and hidden files; a name of dots only is no hidden file but a bad class name."""
    parts = path.split("/")
    hidden = any(p.startswith(".") and set(p) != {"."} for p in parts)
    return parts[0] == "__MACOSX" or parts[-1].lower() in JUNK_NAMES or hidden


def _wrapping_root(paths: list[str]) -> str | None:
    """The one folder everything sits in (dataset/cat/a.png), which the layout then ignores."""
    tops = {p.split("/", 1)[0] for p in paths}
    if len(tops) == 1 and any(p.count("/") >= 2 for p in paths):
        return next(iter(tops))
    return None


def _read_sidecar(entry: Entry, limits: Limits, warnings: list[str]) -> dict:
    if entry.size > limits.max_sidecar_bytes:
        warnings.append(f"{SIDECAR}: larger than {human_size(limits.max_sidecar_bytes)}; ignored")
        return {}
    try:
        sidecar = json.loads(entry.read(limits.max_sidecar_bytes).decode("utf-8"))
    except (ValueError, zipfile.BadZipFile, zlib.error):
        warnings.append(f"{SIDECAR}: not valid JSON; ignored (classes taken from folders)")
        return {}
    if not isinstance(sidecar, dict) or sidecar.get("format") != SIDECAR_FORMAT:
        warnings.append(f"{SIDECAR}: not a Tejas dataset description; ignored")
        return {}
    return sidecar


def _read_entry(entry: Entry, limits: Limits) -> bytes:
    """The entry's bytes, or ImageError with the reason it cannot be read."""
    if entry.size > limits.max_file_bytes:
        raise ImageError(f"file too large: {human_size(entry.size)} (limit {human_size(limits.max_file_bytes)})")
    try:
        data = entry.read(limits.max_file_bytes)
    except zipfile.BadZipFile as exc:
        reason = "CRC check failed" if "CRC" in str(exc) else "bad local header"
        raise ImageError(f"corrupt data ({reason})") from None
    except zlib.error:
        raise ImageError("corrupt data (cannot decompress)") from None
    except NotImplementedError:
        raise ImageError("unsupported compression method") from None
    except OSError as exc:
        raise ImageError(f"cannot be read ({exc.strerror or exc})") from None
    if len(data) > limits.max_file_bytes:
        raise ImageError(f"file too large (limit {human_size(limits.max_file_bytes)})")
    return data


class _Scan:
    """The per-entry rules, applied in order; a rule that fails skips the file with its reason."""

    def __init__(self, limits: Limits):
        self.limits = limits
        self.names: dict[str, str] = {}  # casefolded path -> path
        self.classes: dict[str, str] = {}  # casefolded class -> class as first seen
        self.contents: dict[str, str] = {}  # sha256 -> path
        self.bad_classes: dict[str, str] = {}

    def check_path(self, entry: Entry, rel: str) -> tuple[str, str]:
        """(label, file name) or ImageError."""
        if not entry.name_ok:
            raise ImageError("file name is not valid UTF-8")
        parts = rel.split("/")
        if len(parts) == 1:
            raise ImageError("file at the top level (expected <class>/<image>)")
        if len(parts) > 2:
            raise ImageError("nested folder (expected <class>/<image>)")
        label, name = parts
        reason = validate_class_name(label, self.limits)
        if reason:
            raise ImageError(reason)
        first = self.classes.setdefault(label.casefold(), label)
        if first != label:
            raise ImageError(f"class folder {label!r} differs from {first!r} only by case")
        if len(self.classes) > self.limits.max_classes:
            raise ArchiveError(f"more than {self.limits.max_classes} classes (limit {self.limits.max_classes})")
        key = rel.casefold()
        if key in self.names:
            same = self.names[key] == rel
            raise ImageError("duplicate entry" if same else f"same name as {self.names[key]} apart from case")
        self.names[key] = rel
        return label, name

    def check_entry(self, entry: Entry) -> None:
        if entry.is_symlink:
            raise ImageError("symbolic link (not followed)")
        if entry.encrypted:
            raise ImageError("encrypted (password-protected entries are not supported)")

    def check_content(self, rel: str, data: bytes) -> tuple[ImageInfo, str]:
        info = sniff_image(data, self.limits.max_pixels, self.limits.max_aspect_ratio)
        digest = hashlib.sha256(data).hexdigest()
        if digest in self.contents:
            raise ImageError(f"same image as {self.contents[digest]}")
        self.contents[digest] = rel
        return info, digest


def iter_archive(source, limits: Limits = DEFAULT_LIMITS) -> Iterator[Sample | Skipped | dict]:
    """Yield the archive's description first (a dict: classes, warnings), then Samples and Skipped.

    Only one image's bytes are in memory at a time. Raises ArchiveError for an archive refused whole.
    """
    entries, close, name = list_entries(source, limits)
    try:
        files = [e for e in entries if not e.is_dir and not _is_junk(e.path)]
        root = _wrapping_root([e.path for e in files])
        prefix = f"{root}/" if root else ""
        warnings: list[str] = []
        sidecar: dict = {}
        images = []
        for e in files:
            rel = e.path[len(prefix) :] if root else e.path
            if rel == SIDECAR:
                sidecar = _read_sidecar(e, limits, warnings)
            else:
                images.append((rel, e))
        labels = {rel.split("/")[0] for rel, _ in images if rel.count("/") == 1}
        order = [c for c in sidecar.get("classes", []) if isinstance(c, str) and c in labels]
        classes = order + sorted(labels - set(order))
        metadata = {s.get("path"): s.get("metadata", {}) for s in sidecar.get("samples", []) if isinstance(s, dict)}
        yield {"archive": name, "classes": classes, "warnings": warnings}

        scan = _Scan(limits)
        for rel, entry in images:
            try:
                label, _ = scan.check_path(entry, rel)
                scan.check_entry(entry)
                data = _read_entry(entry, limits)
                info, digest = scan.check_content(rel, data)
            except ImageError as reason:
                yield Skipped(rel, str(reason))
                continue
            except ArchiveError as exc:
                raise ArchiveError(f"{name}: {exc}") from None
            yield Sample(rel, label, data, info, digest, dict(metadata.get(rel) or {}))
    finally:
        close()


def read_archive(source, limits: Limits = DEFAULT_LIMITS) -> Dataset:
    """The whole archive in memory (the browser path): classes in order, samples, skipped files."""
    events = iter_archive(source, limits)
    header = next(events)
    samples, skipped = [], []
    for event in events:
        (samples if isinstance(event, Sample) else skipped).append(event)
    if not samples:
        raise ArchiveError(f"{header['archive']}: no usable images (expected <class>/<image> folders)")
    used = {s.label for s in samples}
    classes = [c for c in header["classes"] if c in used]
    return Dataset(classes, samples, skipped, header["warnings"])


class DatasetReader:
    """An archive read in batches (the browser's import of thousands of images): the first pass checks
    every entry as `read_archive` does but keeps no bytes, so `description` is final and an archive
    refused whole is refused before anything is stored; `read_batch(n)` then yields the next n samples'
    bytes. Memory: one batch, whatever the archive's size."""

    def __init__(self, source, limits: Limits = DEFAULT_LIMITS):
        self._source, self._limits = source, limits
        events = iter_archive(source, limits)
        header = next(events)
        used: set[str] = set()
        self.count = 0
        self.skipped: list[Skipped] = []
        for event in events:
            if isinstance(event, Sample):
                used.add(event.label)
                self.count += 1
            else:
                self.skipped.append(event)
        if not self.count:
            raise ArchiveError(f"{header['archive']}: no usable images (expected <class>/<image> folders)")
        self.classes = [c for c in header["classes"] if c in used]
        self.warnings = header["warnings"]
        self._events = iter_archive(source, limits)
        next(self._events)

    def read_batch(self, n: int, max_bytes: int | None = None) -> list[Sample]:
        """The next `n` samples in archive order, fewer once they hold `max_bytes` (big photos) or at the
        end (at least one until done; none when done)."""
        batch: list[Sample] = []
        size = 0
        while len(batch) < n and (max_bytes is None or size < max_bytes):
            event = next(self._events, None)
            if event is None:
                break
            if isinstance(event, Sample):
                batch.append(event)
                size += len(event.data)
        return batch

    def close(self) -> None:
        self._events.close()


def _file_name(sample: Sample, taken: set[str]) -> str:
    """The sample's file name with an extension that matches its bytes, unique within its class."""
    name = sample.path.rsplit("/", 1)[-1]
    stem, dot, ext = name.rpartition(".")
    if not dot:
        stem, ext = name, ""
    wanted = EXTENSIONS[sample.info.format]
    if f".{ext.lower()}" not in (wanted, ".jpeg" if wanted == ".jpg" else wanted):
        stem, ext = name, wanted[1:]
    candidate, n = f"{stem}.{ext}", 1
    while candidate.casefold() in taken:
        n += 1
        candidate = f"{stem}-{n}.{ext}"
    taken.add(candidate.casefold())
    return candidate


def write_archive(classes: list[str], samples: Iterable[Sample], dest) -> list[str]:
    """Write an ImageFolder zip plus the tejas.json sidecar; the same input gives the same bytes.

    Entries are stored (images are compressed already) with fixed timestamps, in class order then
    file name. Returns the paths written. `dest` is a path or a writable binary file.
    """
    samples = list(samples)
    index = {c: i for i, c in enumerate(classes)}
    missing = sorted({s.label for s in samples} - set(index))
    if missing:
        raise ValueError(f"samples with labels not in classes: {missing[:3]}")
    taken: dict[str, set[str]] = {c: set() for c in classes}
    named = sorted(((s.label, _file_name(s, taken[s.label]), s) for s in samples), key=lambda t: (index[t[0]], t[1]))
    records = []
    with zipfile.ZipFile(dest, "w", zipfile.ZIP_STORED) as archive:
        for label, file_name, sample in named:
            path = f"{label}/{file_name}"
            archive.writestr(_zip_info(path), sample.data)
            records.append({"path": path, "label": label, "sha256": sample.sha256, "metadata": sample.metadata})
        sidecar = {"format": SIDECAR_FORMAT, "version": 1, "classes": list(classes), "samples": records}
        archive.writestr(_zip_info(SIDECAR), json.dumps(sidecar, indent=1, sort_keys=True, ensure_ascii=False))
    return [r["path"] for r in records]


def _zip_info(path: str) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(path, date_time=ZIP_EPOCH)
    info.external_attr = 0o100644 << 16
    info.create_system = 3  # unix, whichever OS (or Pyodide) wrote it
    info.compress_type = zipfile.ZIP_STORED
    return info
