"""Dataset archives: ImageFolder layout in and out, and 30+ hostile archives with their exact errors.

Shared: runs under pytest and inside Pyodide (stdlib only).
"""

from __future__ import annotations

import io
import json
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from tejas.dataset import ArchiveError, Sample, iter_archive, read_archive, write_archive
from tejas.images import ImageError, sniff_image
from tejas.limits import Limits

from .images_for_tests import GIF_8x6, WEBP_LOSSLESS_8x6, WEBP_LOSSY_8x6, bmp, jpeg, png, png_header_claiming
from .support import raises


def make_zip(path: Path, entries, compression=zipfile.ZIP_DEFLATED) -> Path:
    """entries: (name, bytes) pairs or (ZipInfo, bytes) pairs."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # zipfile warns about the duplicate names some cases need
        with zipfile.ZipFile(path, "w", compression) as archive:
            for name, data in entries:
                archive.writestr(name, data)
    return path


def basic_entries():
    return [("cat/a.png", png(seed=1)), ("cat/b.jpg", jpeg(1)), ("dog/c.png", png(seed=2)), ("dog/d.bmp", bmp(seed=3))]


# ---- reading the layout ---------------------------------------------------------------------------------


def test_reads_classes_and_images_by_bytes(tmp_path):
    entries = basic_entries() + [("dog/no-extension", png(seed=4)), ("cat/lies.jpg", png(seed=5))]
    dataset = read_archive(make_zip(tmp_path / "d.zip", entries))
    assert dataset.classes == ["cat", "dog"]
    formats = {s.path: (s.info.format, s.info.width, s.info.height) for s in dataset.samples}
    assert formats == {
        "cat/a.png": ("png", 8, 6),
        "cat/b.jpg": ("jpeg", 8, 6),
        "dog/c.png": ("png", 8, 6),
        "dog/d.bmp": ("bmp", 8, 6),
        "dog/no-extension": ("png", 8, 6),
        "cat/lies.jpg": ("png", 8, 6),
    }
    assert dataset.skipped == []


def test_sizes_of_every_format_from_headers():
    for data, kind in [
        (png(13, 7), "png"),
        (jpeg(), "jpeg"),
        (WEBP_LOSSLESS_8x6, "webp"),
        (WEBP_LOSSY_8x6, "webp"),
        (GIF_8x6, "gif"),
        (bmp(5, 9), "bmp"),
    ]:
        info = sniff_image(data, 10**8)
        assert info.format == kind
        assert (info.width, info.height) == ((13, 7) if kind == "png" else (5, 9) if kind == "bmp" else (8, 6))


def test_unwraps_one_root_folder_and_ignores_os_junk(tmp_path):
    entries = [(f"photos/{n}", d) for n, d in basic_entries()] + [
        ("photos/cat/.DS_Store", b"\0\0\0\1Bud1"),
        ("photos/Thumbs.db", b"junk"),
        ("__MACOSX/photos/cat/._a.png", b"\0\5\26\7"),
        ("photos/.hidden/x.png", png(seed=9)),
        ("photos/dog/", b""),
    ]
    dataset = read_archive(make_zip(tmp_path / "d.zip", entries))
    assert dataset.classes == ["cat", "dog"]
    assert sorted(s.path for s in dataset.samples) == ["cat/a.png", "cat/b.jpg", "dog/c.png", "dog/d.bmp"]
    assert dataset.skipped == []


def test_reads_a_directory_too(tmp_path):
    for name, data in basic_entries():
        (tmp_path / "tree" / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / "tree" / name).write_bytes(data)
    dataset = read_archive(tmp_path / "tree")
    assert dataset.classes == ["cat", "dog"] and len(dataset.samples) == 4


def test_iter_archive_yields_description_then_one_sample_at_a_time(tmp_path):
    events = iter_archive(make_zip(tmp_path / "d.zip", basic_entries()))
    header = next(events)
    assert header["classes"] == ["cat", "dog"] and header["warnings"] == []
    first = next(events)
    assert isinstance(first, Sample) and first.path == "cat/a.png"
    assert len(list(events)) == 3


# ---- writing ------------------------------------------------------------------------------------------


def test_round_trip_preserves_classes_labels_bytes_and_metadata(tmp_path):
    source = read_archive(make_zip(tmp_path / "in.zip", basic_entries() + [("bird/e", GIF_8x6)]))
    source.classes = ["dog", "cat", "bird"]  # project order, not alphabetical
    source.samples[0].metadata = {"source": "webcam", "added": "2026-11-23T10:00:00Z"}
    write_archive(source.classes, source.samples, tmp_path / "out.zip")
    again = read_archive(tmp_path / "out.zip")
    assert again.classes == ["dog", "cat", "bird"]
    by_hash = {s.sha256: s for s in again.samples}
    assert len(by_hash) == len(source.samples) == 5
    for sample in source.samples:
        copy = by_hash[sample.sha256]
        assert copy.label == sample.label and copy.data == sample.data and copy.metadata == sample.metadata
    # file names get the extension their bytes call for
    assert sorted(s.path for s in again.samples) == ["bird/e.gif", "cat/a.png", "cat/b.jpg", "dog/c.png", "dog/d.bmp"]


def test_written_zip_is_byte_identical_for_the_same_samples(tmp_path):
    dataset = read_archive(make_zip(tmp_path / "in.zip", basic_entries()))
    first, second = io.BytesIO(), io.BytesIO()
    write_archive(dataset.classes, dataset.samples, first)
    write_archive(dataset.classes, list(reversed(dataset.samples)), second)
    assert first.getvalue() == second.getvalue()


def test_written_names_are_unique_per_class(tmp_path):
    dataset = read_archive(make_zip(tmp_path / "in.zip", [("cat/x", png(seed=1)), ("cat/x.png", png(seed=2))]))
    paths = write_archive(dataset.classes, dataset.samples, tmp_path / "out.zip")
    assert sorted(paths) == ["cat/x-2.png", "cat/x.png"]


def test_written_zip_for_imagefolder(out_dir):
    """CPython loads this file with torchvision's ImageFolder (tests/pycore_cpython)."""
    entries = [
        (f"{c}/{i}.png", png(seed=10 * k + i)) for k, c in enumerate(["zebra", "apple", "mango"]) for i in range(3)
    ]
    entries.append(("apple/j.jpg", jpeg(7)))
    dataset = read_archive(make_zip(out_dir / "in.zip", entries))
    write_archive(["zebra", "apple", "mango"], dataset.samples, out_dir / "imagefolder.zip")


# ---- hostile input: every case with its exact error ---------------------------------------------------------


@dataclass
class Case:
    id: str
    build: Callable[[Path], Path]
    refused: str | None = None  # the ArchiveError message, exactly
    refused_re: str | None = None  # ... or a pattern, where zlib's output size varies by build
    skipped: dict = field(default_factory=dict)  # path -> reason
    limits: Limits = field(default_factory=Limits)
    imported: int | None = None  # samples that must still come through


def _zip(entries, compression=zipfile.ZIP_DEFLATED):
    return lambda tmp: make_zip(tmp / "data.zip", entries, compression)


def _raw(data: bytes):
    def build(tmp):
        (tmp / "data.zip").write_bytes(data)
        return tmp / "data.zip"

    return build


def _patched(entries, old: bytes, new: bytes):
    """A zip whose bytes get `old` replaced by `new` (same length) after writing."""

    def build(tmp):
        path = make_zip(tmp / "data.zip", entries, zipfile.ZIP_STORED)
        data = path.read_bytes()
        assert data.count(old) >= 1
        path.write_bytes(data.replace(old, new))
        return path

    return build


def _info(name, mode):
    info = zipfile.ZipInfo(name, date_time=(2020, 1, 1, 0, 0, 0))
    info.external_attr = mode << 16
    return info


def _edited(entries, name: str, edit):
    """A zip whose entry `name` is changed in place by edit(data, local_header_offset, info)."""

    def build(tmp):
        path = make_zip(tmp / "data.zip", entries)
        with zipfile.ZipFile(path) as archive:
            info = archive.getinfo(name)
            central = archive.start_dir
        data = bytearray(path.read_bytes())
        edit(data, info.header_offset, info, central)
        path.write_bytes(bytes(data))
        return path

    return build


def _set_encrypted(data, local, info, central):
    data[local + 6] |= 0x1  # general purpose flag, bit 0: encrypted
    at = data.index(b"PK\x01\x02" + bytes(data[central + 4 : central + 8]), central)
    while data[at + 46 : at + 46 + len(info.filename)] != info.filename.encode():
        at = data.index(b"PK\x01\x02", at + 4)
    data[at + 8] |= 0x1


def _break_deflate(data, local, info, central):
    name_len, extra_len = (
        int.from_bytes(data[local + 26 : local + 28], "little"),
        int.from_bytes(data[local + 28 : local + 30], "little"),
    )
    start = local + 30 + name_len + extra_len
    data[start] = 0x07  # final block with block type 3, which deflate does not have


def _truncated(tmp):
    path = make_zip(tmp / "data.zip", basic_entries())
    path.write_bytes(path.read_bytes()[:-30])
    return path


GOOD = [("cat/ok.png", png(seed=100)), ("dog/ok.png", png(seed=101))]
BIG_PNG = png(300, 300, seed=5, level=0)  # ~270 kB, stored without compression inside the PNG

CASES = [
    Case("not_a_zip", _raw(b"hello, I am a text file"), refused="data.zip: not a zip archive"),
    Case("zero_byte_archive", _raw(b""), refused="data.zip: not a zip archive"),
    Case(
        "truncated_zip", _truncated, refused="data.zip: corrupt or truncated zip archive (central directory unreadable)"
    ),
    Case(
        "zip_bomb_ratio",
        _zip(GOOD + [("cat/bomb.png", b"\0" * (8 << 20))]),
        refused_re=r"^data.zip: cat/bomb.png expands 10\d\d× \(limit 200×\); refusing a possible zip bomb$",
    ),
    Case(
        "zip_bomb_total_size",
        _zip([(f"cat/{i}.png", BIG_PNG + bytes([i])) for i in range(4)]),
        refused="data.zip: expands to 1.1 MB (limit 1.0 MB); refusing a possible zip bomb",
        limits=Limits(max_total_bytes=1_000_000),
    ),
    Case(
        "traversal_dotdot",
        _zip([("../evil.png", png())]),
        refused="data.zip: unsafe path '../evil.png' (leaves the archive)",
    ),
    Case(
        "traversal_inside_path",
        _zip(GOOD + [("cat/../../evil.png", png())]),
        refused="data.zip: unsafe path 'cat/../../evil.png' (leaves the archive)",
    ),
    Case(
        "traversal_backslashes",
        _zip(GOOD + [("cat\\..\\..\\evil.png", png())]),
        refused="data.zip: unsafe path 'cat\\..\\..\\evil.png' (leaves the archive)",
    ),
    Case(
        "absolute_path",
        _zip(GOOD + [("/etc/evil.png", png())]),
        refused="data.zip: unsafe path '/etc/evil.png' (absolute path)",
    ),
    Case(
        "drive_letter",
        _zip(GOOD + [("C:/evil.png", png())]),
        refused="data.zip: unsafe path 'C:/evil.png' (drive letter)",
    ),
    Case("backslash_separators_are_fine", _zip([("cat\\a.png", png(seed=1)), ("dog\\b.png", png(seed=2))]), imported=2),
    Case(
        "symlink_entry",
        _zip(GOOD + [(_info("cat/link.png", mode=0o120777), b"../../../etc/passwd")]),
        skipped={"cat/link.png": "symbolic link (not followed)"},
        imported=2,
    ),
    Case(
        "names_differing_by_case",
        _zip(GOOD + [("cat/A.png", png(seed=1)), ("cat/a.png", png(seed=2))]),
        skipped={"cat/a.png": "same name as cat/A.png apart from case"},
        imported=3,
    ),
    Case(
        "duplicate_entry_names",
        _zip(GOOD + [("cat/a.png", png(seed=1)), ("cat/a.png", png(seed=2))]),
        skipped={"cat/a.png": "duplicate entry"},
        imported=3,
    ),
    Case(
        "encrypted_entry",
        _edited(GOOD + [("cat/secret.png", png(seed=3))], "cat/secret.png", _set_encrypted),
        skipped={"cat/secret.png": "encrypted (password-protected entries are not supported)"},
        imported=2,
    ),
    Case(
        "crc_mismatch",
        _patched(GOOD + [("cat/flip.png", png(seed=7) + b"TAILDATA")], b"TAILDATA", b"TAILDATB"),
        skipped={"cat/flip.png": "corrupt data (CRC check failed)"},
        imported=2,
    ),
    Case(
        "zero_byte_image",
        _zip(GOOD + [("cat/empty.png", b"")]),
        skipped={"cat/empty.png": "empty file (0 bytes)"},
        imported=2,
    ),
    Case(
        "truncated_png",
        _zip(GOOD + [("cat/cut.png", png(seed=3)[:-20])]),
        skipped={"cat/cut.png": "truncated PNG (IEND chunk missing)"},
        imported=2,
    ),
    Case(
        "truncated_jpeg",
        _zip(GOOD + [("cat/cut.jpg", jpeg(3)[:-40])]),
        skipped={"cat/cut.jpg": "truncated JPEG (end-of-image marker missing)"},
        imported=2,
    ),
    Case(
        "decompression_bomb_dimensions",
        _zip(GOOD + [("cat/huge.png", png_header_claiming(100_000, 100_000))]),
        skipped={"cat/huge.png": "image too large: 100000×100000 pixels (limit 64 megapixels)"},
        imported=2,
    ),
    Case(
        "text_with_image_extension",
        _zip(GOOD + [("cat/notes.png", b"just some text, not a picture")]),
        skipped={"cat/notes.png": "not an image (not PNG, JPEG, WebP, GIF or BMP)"},
        imported=2,
    ),
    Case(
        "zip_inside_zip",
        _zip(GOOD + [("cat/more.zip", b"PK\x05\x06" + b"\0" * 18)]),
        skipped={"cat/more.zip": "not an image (not PNG, JPEG, WebP, GIF or BMP)"},
        imported=2,
    ),
    Case(
        "too_many_files",
        _zip([(f"cat/{i}.png", png(seed=i)) for i in range(7)]),
        refused="data.zip: 7 entries (limit 5)",
        limits=Limits(max_files=5),
    ),
    Case(
        "too_many_classes",
        _zip([(f"class{i}/a.png", png(seed=i)) for i in range(3)]),
        refused="data.zip: more than 2 classes (limit 2)",
        limits=Limits(max_classes=2),
    ),
    Case(
        "class_name_only_dots",
        _zip(GOOD + [(".../a.png", png(seed=1))]),
        skipped={".../a.png": "class name '...' is only dots"},
        imported=2,
    ),
    Case(
        "class_name_reserved",
        _zip(GOOD + [("CON/a.png", png(seed=1)), ("lpt3.x/b.png", png(seed=2))]),
        skipped={
            "CON/a.png": "class name 'CON' is reserved on Windows",
            "lpt3.x/b.png": "class name 'lpt3.x' is reserved on Windows",
        },
        imported=2,
    ),
    Case(
        "class_name_too_long",
        _zip(GOOD + [("x" * 101 + "/a.png", png(seed=1))]),
        skipped={"x" * 101 + "/a.png": "class name is longer than 100 characters"},
        imported=2,
    ),
    Case(
        "class_name_empty",
        _zip(GOOD + [("  /a.png", png(seed=1))]),
        skipped={"  /a.png": "class name is empty"},
        imported=2,
    ),
    Case(
        "class_name_forbidden_character",
        _zip(GOOD + [("a|b/a.png", png(seed=1))]),
        skipped={"a|b/a.png": "class name 'a|b' contains '|' (not allowed in folder names)"},
        imported=2,
    ),
    Case(
        "class_name_trailing_dot",
        _zip(GOOD + [("cats./a.png", png(seed=1))]),
        skipped={"cats./a.png": "class name 'cats.' ends with a space or dot"},
        imported=2,
    ),
    Case(
        "class_name_not_utf8",
        _patched(GOOD + [("cafX/a.png", png(seed=1))], b"cafX/a.png", b"caf\xe9/a.png"),
        skipped={"caf\ufffd/a.png": "file name is not valid UTF-8"},
        imported=2,
    ),
    Case(
        "nested_class_folders",
        _zip(GOOD + [("cat/kitten/a.png", png(seed=1))]),
        skipped={"cat/kitten/a.png": "nested folder (expected <class>/<image>)"},
        imported=2,
    ),
    Case(
        "file_at_root",
        _zip(GOOD + [("stray.png", png(seed=1))]),
        skipped={"stray.png": "file at the top level (expected <class>/<image>)"},
        imported=2,
    ),
    Case(
        "same_image_twice",
        _zip(GOOD + [("cat/copy.png", png(seed=100)), ("dog/copy.png", png(seed=100))]),
        skipped={"cat/copy.png": "same image as cat/ok.png", "dog/copy.png": "same image as cat/ok.png"},
        imported=2,
    ),
    Case(
        "class_folders_differing_by_case",
        _zip(GOOD + [("Cat/x.png", png(seed=1))]),
        skipped={"Cat/x.png": "class folder 'Cat' differs from 'cat' only by case"},
        imported=2,
    ),
    Case(
        "file_over_size_limit",
        _zip(GOOD + [("cat/big.png", BIG_PNG)]),
        skipped={"cat/big.png": "file too large: 270.4 kB (limit 100.0 kB)"},
        limits=Limits(max_file_bytes=100_000),
        imported=2,
    ),
    Case(
        "only_junk",
        _zip([("__MACOSX/x", b"1"), (".DS_Store", b"2"), ("cat/notes.txt", b"3")]),
        refused="data.zip: no usable images (expected <class>/<image> folders)",
    ),
    Case("corrupt_sidecar_is_ignored", _zip(GOOD + [("tejas.json", b"{not json")]), imported=2),
]


def check_case(case, tmp_path):
    archive = case.build(tmp_path)
    before = sorted(p.name for p in tmp_path.parent.iterdir())
    if case.refused or case.refused_re:
        with raises(ArchiveError, match=case.refused_re) as error:
            read_archive(archive, case.limits)
        if case.refused:
            assert str(error.value) == case.refused, str(error.value)
    else:
        dataset = read_archive(archive, case.limits)
        got = {s.path: s.reason for s in dataset.skipped}
        assert got == case.skipped, got
        if case.imported is not None:
            assert len(dataset.samples) == case.imported, [s.path for s in dataset.samples]
    # nothing is ever written beside the archive
    assert sorted(p.name for p in tmp_path.parent.iterdir()) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data.zip"]


def test_sidecar_warning_is_reported(tmp_path):
    dataset = read_archive(make_zip(tmp_path / "d.zip", GOOD + [("tejas.json", b"{not json")]))
    assert dataset.warnings == ["tejas.json: not valid JSON; ignored (classes taken from folders)"]


def test_sniff_rejects_truncated_headers():
    with raises(ImageError, match=r"^truncated PNG \(header incomplete\)$"):
        sniff_image(png()[:20], 10**8)
    with raises(ImageError, match=r"^truncated WebP"):
        sniff_image(WEBP_LOSSY_8x6[:-10], 10**8)
    with raises(ImageError, match=r"^truncated BMP"):
        sniff_image(bmp()[:-10], 10**8)
    with raises(ImageError, match=r"^truncated GIF \(trailer missing\)$"):
        sniff_image(GIF_8x6[:-5], 10**8)


def test_broken_deflate_stream_skips_only_that_file(tmp_path):
    build = _edited(GOOD + [("cat/z.png", png(seed=8))], "cat/z.png", _break_deflate)
    dataset = read_archive(build(tmp_path))
    assert [s.path for s in dataset.samples] == ["cat/ok.png", "dog/ok.png"]
    assert [str(s) for s in dataset.skipped] == ["cat/z.png: corrupt data (cannot decompress)"]


def test_sidecar_class_order_survives_json(tmp_path):
    sidecar = {"format": "tejas-dataset", "version": 1, "classes": ["dog", "cat"], "samples": []}
    dataset = read_archive(make_zip(tmp_path / "d.zip", GOOD + [("tejas.json", json.dumps(sidecar).encode())]))
    assert dataset.classes == ["dog", "cat"]
