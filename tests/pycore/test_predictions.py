"""tejas.predictions and tejas.image_zip, what the app's "Many images", `tejas predict` and the server's
batches read images with: every file of any layout gets a row (its bytes, or the reason it cannot be
one), OS litter gets none, a hostile archive is refused whole; the CSV report neutralises formula cells
and quotes per RFC 4180. Runs in CPython and in Pyodide."""

from __future__ import annotations

import csv
import io
import zipfile

from tejas.image_zip import ImageZip
from tejas.predictions import ArchiveError, ImageFile, Unreadable, count_images, iter_images, write_csv

from .images_for_tests import GIF_8x6, png
from .support import raises


def _zip(path, entries):
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in entries:
            archive.writestr(name, data)
    return path


def test_every_file_of_any_layout_gets_a_row_in_path_order(tmp_path):
    archive = _zip(
        tmp_path / "photos.zip",
        [
            ("z.png", png(seed=1)),
            ("deep/er/a.gif", GIF_8x6),
            ("notes.txt", b"plain text"),
            ("cut.png", png(seed=2)[:60]),
            ("__MACOSX/._z.png", b"litter"),
            ("deep/.DS_Store", b"litter"),
        ],
    )
    assert count_images(archive) == 4
    rows = list(iter_images(archive))
    assert [r.path for r in rows] == ["cut.png", "deep/er/a.gif", "notes.txt", "z.png"]
    assert [type(r) for r in rows] == [Unreadable, ImageFile, Unreadable, ImageFile]
    assert rows[0].reason == "truncated PNG (IEND chunk missing)"
    assert rows[2].reason == "not an image (not PNG, JPEG, WebP, GIF or BMP)"
    assert rows[1].data == GIF_8x6 and rows[1].info.format == "gif" and len(rows[1].sha256) == 64
    with ImageZip(archive) as files:  # the app's reader: archive order, read one entry on demand
        assert files.paths == ["z.png", "deep/er/a.gif", "notes.txt", "cut.png"]
        assert files.read(1) == (GIF_8x6, "image/gif")
        assert files.read_many([2, 0])[0] == (None, "not an image (not PNG, JPEG, WebP, GIF or BMP)")


def test_a_hostile_archive_is_refused_whole(tmp_path):
    archive = _zip(tmp_path / "evil.zip", [("ok.png", png(seed=1)), ("../../etc/evil.png", png(seed=2))])
    with raises(ArchiveError, match=r"^evil\.zip: unsafe path '\.\./\.\./etc/evil\.png' \(leaves the archive\)$"):
        list(iter_images(archive))
    (tmp_path / "not.zip").write_bytes(b"hello")
    with raises(ArchiveError, match=r"^not\.zip: not a zip archive$"):
        count_images(tmp_path / "not.zip")


def test_the_csv_report_quotes_and_neutralises_formulas():
    rows = [
        {
            "file": "=HYPERLINK(1).png",
            "top": [{"class": "@cat", "probability": 0.75}, {"class": "dog", "probability": 0.25}],
        },
        {"file": 'a,"b"\nc.png', "top": [], "error": "not an image (not PNG, JPEG, WebP, GIF or BMP)"},
    ]
    out = io.StringIO()
    write_csv(rows, 2, out)
    table = list(csv.reader(io.StringIO(out.getvalue())))
    assert table[0] == ["file", "predicted", "confidence", "class_1", "probability_1", "class_2", "probability_2",
                        "error"]  # fmt: skip
    assert table[1] == ["'=HYPERLINK(1).png", "'@cat", "0.750000", "'@cat", "0.750000", "dog", "0.250000", ""]
    assert table[2] == ['a,"b"\nc.png', "", "", "", "", "", "", "not an image (not PNG, JPEG, WebP, GIF or BMP)"]
    assert out.getvalue().endswith("\r\n")
