"""A zip of images to predict, in any folder layout, read under the dataset archives' rules.

The archive is refused whole for what refuses a dataset archive (unsafe paths, zip bombs, too many
entries, not a zip: ArchiveError naming it); one bad entry (symlink, encrypted, too large, corrupt,
not an image) only gets its reason, so a batch prediction reports it beside the others. Entries are
read one at a time, on demand: a 2,000-image zip is never held in memory.
"""

from __future__ import annotations

from collections.abc import Iterable

from .archive_source import ArchiveError, Entry, list_entries
from .dataset import _is_junk, _read_entry
from .images import ImageError, ImageInfo, sniff_image
from .limits import DEFAULT_LIMITS, Limits

__all__ = ["ArchiveError", "ImageZip"]


class ImageZip:
    """The files of a zip (or, on CPython, a folder: `tejas predict`) with folders and OS litter left out,
    in archive order; close() when done."""

    def __init__(self, source, limits: Limits = DEFAULT_LIMITS):
        entries, self._close, self.name = list_entries(source, limits)
        self.limits = limits
        self._entries: list[Entry] = [e for e in entries if not e.is_dir and not _is_junk(e.path)]
        self.paths: list[str] = [e.path for e in self._entries]

    def read(self, index: int) -> tuple[bytes, str]:
        """(bytes, MIME type) of entry `index`; ImageError says why it is no usable image."""
        data, info = self.read_image(index)
        return data, info.mime_type

    def read_image(self, index: int) -> tuple[bytes, ImageInfo]:
        """(bytes, what its header says) of entry `index`; ImageError says why it is no usable image."""
        entry = self._entries[index]
        if not entry.name_ok:
            raise ImageError("file name is not valid UTF-8")
        if entry.is_symlink:
            raise ImageError("symbolic link (not followed)")
        if entry.encrypted:
            raise ImageError("encrypted (password-protected entries are not supported)")
        data = _read_entry(entry, self.limits)
        return data, sniff_image(data, self.limits.max_pixels, self.limits.max_aspect_ratio)

    def read_many(self, indices: Iterable[int]) -> list[tuple[bytes | None, str]]:
        """For each index, (bytes, MIME type) or (None, why it is no usable image)."""
        out: list[tuple[bytes | None, str]] = []
        for index in indices:
            try:
                out.append(self.read(index))
            except ImageError as reason:
                out.append((None, str(reason)))
        return out

    def close(self) -> None:
        self._close()

    def __enter__(self) -> ImageZip:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
