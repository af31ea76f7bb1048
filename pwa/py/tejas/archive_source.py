"""Entries of a dataset archive (zip file or, on CPython, a directory) with only safe paths.

Anything that would write or read outside the archive (../, absolute paths, drive letters) refuses
the whole archive; the per-entry facts (symlink, encrypted, sizes) are left for the caller to judge.
"""

from __future__ import annotations

import os
import stat
import unicodedata
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from .limits import Limits

__all__ = ["ArchiveError", "Entry", "human_size", "list_entries"]


def human_size(n: int) -> str:
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n >= scale:
            return f"{n / scale:.1f} {unit}"
    return f"{n} bytes"


def binary_size(n: int) -> str:
    """Bytes in KiB/MiB/GiB, as zip tools show them: "344 KiB", "1.5 MiB"."""
    for unit, scale in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= scale:
            value = n / scale
            return f"{value:.0f} {unit}" if value >= 10 else f"{value:.1f} {unit}"
    return f"{n} bytes"


class ArchiveError(ValueError):
    """The whole archive is refused; str() names the archive and the reason."""


@dataclass
class Entry:
    path: str  # normalised: forward slashes, NFC, no leading "./"
    is_dir: bool
    is_symlink: bool
    encrypted: bool
    name_ok: bool  # the raw name decoded as UTF-8
    size: int  # uncompressed size as declared
    compressed: int
    read: Callable[[int], bytes]  # read(limit) -> at most limit + 1 bytes


def _safe_path(raw: str, archive: str) -> str:
    path = raw.replace("\\", "/")
    if path.startswith("/") or path.startswith("//"):
        raise ArchiveError(f"{archive}: unsafe path '{raw}' (absolute path)")
    if len(path) >= 2 and path[1] == ":" and path[0].isalpha():
        raise ArchiveError(f"{archive}: unsafe path '{raw}' (drive letter)")
    parts = [p for p in path.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise ArchiveError(f"{archive}: unsafe path '{raw}' (leaves the archive)")
    return unicodedata.normalize("NFC", "/".join(parts))


def _zip_name(info: zipfile.ZipInfo) -> tuple[str, bool]:
    """Entry name and whether it is valid UTF-8 (zips without the UTF-8 flag are decoded as cp437)."""
    if info.flag_bits & 0x800:
        return info.filename, True
    try:
        raw = info.filename.encode("cp437")
    except UnicodeEncodeError:
        return info.filename, True
    try:
        return raw.decode("utf-8"), True
    except UnicodeDecodeError:
        return raw.decode("utf-8", "replace"), False  # shown to the user with U+FFFD


def _zip_reader(archive: zipfile.ZipFile, info: zipfile.ZipInfo) -> Callable[[int], bytes]:
    def read(limit: int) -> bytes:
        with archive.open(info) as f:
            return f.read(limit + 1)

    return read


def _zip_entries(path: Path, limits: Limits) -> tuple[list[Entry], Callable[[], None]]:
    name = path.name
    size = path.stat().st_size
    if size > limits.max_archive_bytes:
        raise ArchiveError(f"{name}: {human_size(size)} archive (limit {human_size(limits.max_archive_bytes)})")
    with open(path, "rb") as f:
        head = f.read(4)
    try:
        archive = zipfile.ZipFile(path)
    except zipfile.BadZipFile:
        if head in (b"PK\x03\x04", b"PK\x05\x06"):
            raise ArchiveError(f"{name}: corrupt or truncated zip archive (central directory unreadable)") from None
        raise ArchiveError(f"{name}: not a zip archive") from None
    except OSError as exc:
        raise ArchiveError(f"{name}: cannot be read ({exc.strerror or exc})") from None
    infos = archive.infolist()
    if len(infos) > limits.max_files:
        archive.close()
        raise ArchiveError(f"{name}: {len(infos)} entries (limit {limits.max_files})")
    entries = []
    try:
        for info in infos:
            decoded, name_ok = _zip_name(info)
            mode = info.external_attr >> 16
            entries.append(
                Entry(
                    path=_safe_path(decoded, name),
                    is_dir=info.is_dir(),
                    is_symlink=stat.S_ISLNK(mode),
                    encrypted=bool(info.flag_bits & 0x1),
                    name_ok=name_ok,
                    size=info.file_size,
                    compressed=info.compress_size,
                    read=_zip_reader(archive, info),
                )
            )
    except ArchiveError:
        archive.close()
        raise
    return entries, archive.close


def _dir_reader(path: str) -> Callable[[int], bytes]:
    def read(limit: int) -> bytes:
        with open(path, "rb") as f:
            return f.read(limit + 1)

    return read


def _dir_entries(root: Path, limits: Limits) -> tuple[list[Entry], Callable[[], None]]:
    entries: list[Entry] = []
    stack = [""]
    while stack:
        rel = stack.pop()
        with os.scandir(root / rel if rel else root) as it:
            for item in sorted(it, key=lambda e: e.name):
                path = f"{rel}/{item.name}" if rel else item.name
                if len(entries) >= limits.max_files:
                    raise ArchiveError(f"{root.name}: more than {limits.max_files} entries (limit {limits.max_files})")
                is_link = item.is_symlink()
                is_dir = item.is_dir(follow_symlinks=False)
                size = 0 if is_dir or is_link else item.stat(follow_symlinks=False).st_size
                # names the file system could not decode come back with surrogate escapes
                name_ok = not any("\udc80" <= ch <= "\udcff" for ch in path)
                entries.append(
                    Entry(
                        path=unicodedata.normalize("NFC", path) if name_ok else path,
                        is_dir=is_dir,
                        is_symlink=is_link,
                        encrypted=False,
                        name_ok=name_ok,
                        size=size,
                        compressed=size,
                        read=_dir_reader(item.path),
                    )
                )
                if is_dir:
                    stack.append(path)
    return entries, lambda: None


def list_entries(source, limits: Limits) -> tuple[list[Entry], Callable[[], None], str]:
    """(entries, close, display name) of a zip file or a directory, refusing unsafe archives whole."""
    path = Path(source)
    archive_bytes = None  # a folder is not compressed: no ratio to judge
    if path.is_dir():
        entries, close = _dir_entries(path, limits)
    elif path.exists():
        entries, close = _zip_entries(path, limits)
        archive_bytes = path.stat().st_size
    else:
        raise ArchiveError(f"{path.name}: no such file")
    total = sum(e.size for e in entries)
    if total > limits.max_total_bytes:
        close()
        raise ArchiveError(
            f"{path.name}: expands to {human_size(total)} (limit {human_size(limits.max_total_bytes)}); "
            "refusing a possible zip bomb"
        )
    for e in entries:
        if e.size > limits.ratio_floor_bytes and e.size > limits.max_ratio * max(e.compressed, 1):
            close()
            raise ArchiveError(
                f"{path.name}: {e.path} expands {e.size // max(e.compressed, 1)}× (limit {limits.max_ratio}×); "
                "refusing a possible zip bomb"
            )
    # The whole archive against the file's real size (not the entries' declared compressed sizes, which
    # overlapping entries repeat): many entries just under the per-entry floor add up like one big one.
    whole = archive_bytes is not None and total > limits.total_ratio_floor_bytes
    if whole and total > limits.max_ratio * max(archive_bytes, 1):
        close()
        raise ArchiveError(
            f"{path.name}: expands {total // max(archive_bytes, 1)}× ({binary_size(total)} from "
            f"{binary_size(archive_bytes)}); at most {limits.max_ratio}× for an archive over "
            f"{binary_size(limits.total_ratio_floor_bytes)}; refusing a possible zip bomb"
        )
    return entries, close, path.name
