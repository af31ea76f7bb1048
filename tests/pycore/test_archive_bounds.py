"""Archives: the expansion bound holds for the archive as a whole, not only for its large entries.

A zip of 300 entries of exactly 1 MiB each (893× expansion) passed the per-entry ratio check (only entries
over 1 MiB were looked at) and a worker wrote 300 MiB to its cache. The whole archive's uncompressed size
and ratio are now judged before any entry is read. Shared: runs under pytest and inside Pyodide.
"""

from __future__ import annotations

import os
import struct
import zipfile
from pathlib import Path

from tejas.archive_source import list_entries
from tejas.dataset import ArchiveError, iter_archive, read_archive
from tejas.image_zip import ImageZip
from tejas.limits import DEFAULT_LIMITS, Limits
from tejas.predictions import count_images

from .images_for_tests import bmp
from .support import raises

MiB = 1 << 20


def padded_bmp(seed: int, size: int, filler=None) -> bytes:
    """A real BMP followed by `filler(n)` (zeros by default) up to exactly `size` bytes: readers stop at the
    pixels' end, the zip sees the whole size."""
    head = bmp(8 + seed, 6)
    rest = size - len(head)
    return head + (filler(rest) if filler else b"\0" * rest)


def flat_bmp(width: int, height: int, color: tuple[int, int, int]) -> bytes:
    """A drawing of one flat colour, as a paint program saves it: compresses ~1000×."""
    row = bytes(color[::-1]) * width
    row += b"\0" * ((4 - len(row) % 4) % 4)
    pixels = row * height
    header = struct.pack("<2sIHHI", b"BM", 54 + len(pixels), 0, 0, 54)
    info = struct.pack("<IiiHHIIiiII", 40, width, height, 1, 24, 0, len(pixels), 2835, 2835, 0, 0)
    return header + info + pixels


def drawings(path: Path) -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for i in range(40):
            archive.writestr(f"{('circle', 'square')[i % 2]}/{i}.bmp", flat_bmp(256, 256, (i, 255 - i, 128)))
    return path


def bomb_300(path: Path) -> Path:
    """300 images of exactly 1 MiB in two classes: each compresses ~1000×, none is over 1 MiB."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for i in range(300):
            archive.writestr(f"{('cat', 'dog')[i % 2]}/{i:03}.bmp", padded_bmp(i, MiB))
    return path


def ratio(path: Path) -> float:
    with zipfile.ZipFile(path) as archive:
        total = sum(i.file_size for i in archive.infolist())
    return total / path.stat().st_size


def test_300_entries_of_1_mib_are_refused_before_any_entry_is_read(tmp_path):
    path = bomb_300(tmp_path / "photos.zip")
    assert 500 < ratio(path) < 1100, "like the archive of the report (893×)"
    # every entry is at most 1 MiB: the per-entry check alone lets each of them through
    with zipfile.ZipFile(path) as archive:
        assert max(i.file_size for i in archive.infolist()) == MiB
    expected = (
        r"^photos\.zip: expands \d{3,4}× \(300 MiB from \d{3} KiB\); at most 200× for an archive over 64 MiB; "
        r"refusing a possible zip bomb$"
    )
    events = iter_archive(path)
    with raises(ArchiveError, match=expected):
        next(events)  # the first event (the header) comes only after the archive is judged whole
    with raises(ArchiveError, match=expected):
        read_archive(path)
    with raises(ArchiveError, match=expected):
        count_images(path)  # a batch prediction's zip is judged by the same rule
    with raises(ArchiveError, match=expected):
        ImageZip(path)


def test_photos_that_barely_compress_pass_over_the_floor(tmp_path):
    """Photos hardly compress: an archive far over the floor at ~1× is read in full."""
    limits = Limits(total_ratio_floor_bytes=256 * 1024)
    path = tmp_path / "holiday.zip"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for i in range(24):
            archive.writestr(f"{('sea', 'hills')[i % 2]}/{i}.bmp", padded_bmp(i, 64 * 1024, os.urandom))
    assert ratio(path) < 1.1
    dataset = read_archive(path, limits)
    assert len(dataset.samples) == 24 and dataset.classes == ["hills", "sea"]


def test_small_flat_drawings_pass_whatever_their_ratio(tmp_path):
    """Flat drawings saved as BMP compress hundreds of times, but a small archive cannot hurt: the total ratio
    is judged only for archives that expand past the floor (64 MiB)."""
    path = drawings(tmp_path / "drawings.zip")
    assert ratio(path) > DEFAULT_LIMITS.max_ratio, "the drawings must compress past the ratio to test the floor"
    dataset = read_archive(path)
    assert len(dataset.samples) == 40 and dataset.skipped == []


def test_the_same_archive_is_refused_once_it_expands_past_the_floor(tmp_path):
    """The floor, not the content, decides: the drawings archive judged with a lower floor is refused."""
    path = drawings(tmp_path / "drawings.zip")
    with raises(ArchiveError, match=r"^drawings\.zip: expands \d+× \(7\.5 MiB from \d+ KiB\); at most 200×"):
        read_archive(path, Limits(total_ratio_floor_bytes=MiB))


def test_the_ratio_is_taken_against_the_file_not_the_declared_compressed_sizes(tmp_path):
    """Entries that share their compressed bytes (overlapping entries, the "better zip bomb") each declare an
    honest ~1× ratio, but their sum exceeds the file 300 times: the ratio uses the archive's real size."""
    inner = tmp_path / "one.zip"
    with zipfile.ZipFile(inner, "w", zipfile.ZIP_STORED) as archive:
        archive.writestr("cat/0.bmp", padded_bmp(0, MiB, os.urandom))
    data = inner.read_bytes()
    # the central directory's one record repeated 300 times, every copy pointing at the one local entry
    eocd_at = data.rfind(b"PK\x05\x06")
    cd_size = int.from_bytes(data[eocd_at + 12 : eocd_at + 16], "little")
    cd_at = int.from_bytes(data[eocd_at + 16 : eocd_at + 20], "little")
    records = data[cd_at : cd_at + cd_size] * 300
    eocd = bytearray(data[eocd_at:])
    eocd[8:10] = eocd[10:12] = (300).to_bytes(2, "little")
    eocd[12:16] = len(records).to_bytes(4, "little")
    path = tmp_path / "overlap.zip"
    path.write_bytes(data[:cd_at] + records + bytes(eocd))
    with zipfile.ZipFile(path) as archive:
        infos = archive.infolist()
        assert len(infos) == 300 and sum(i.compress_size for i in infos) > 250 * path.stat().st_size
    with raises(ArchiveError, match=r"^overlap\.zip: expands 2\d\d× \(300 MiB from 1\.0 MiB\); at most 200×"):
        list_entries(path, DEFAULT_LIMITS)
