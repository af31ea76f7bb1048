"""DatasetReader, the browser's import of big zips in batches: the same classes, samples, skips and
refusals as read_archive, but the archive is checked whole before any batch and read a batch at a time.

Shared: runs under pytest and inside Pyodide (stdlib only).
"""

from __future__ import annotations

import json

from tejas.bridge import open_dataset_zip
from tejas.dataset import ArchiveError, DatasetReader, read_archive

from .images_for_tests import jpeg, png
from .support import raises
from .test_dataset import basic_entries, make_zip


def entries_with_problems():
    return [
        *basic_entries(),
        ("dog/broken.png", b"not an image"),
        ("bird/only-bad.png", b"still not"),  # a class with no usable image is no class
        ("cat/again.png", png(seed=1)),  # the same bytes as cat/a.png
        *[(f"fish/{i}.png", png(seed=10 + i)) for i in range(7)],
        ("fish/j.jpg", jpeg(2)),
    ]


def read_all(reader: DatasetReader, n: int):
    batches = []
    while batch := reader.read_batch(n):
        assert len(batch) <= n
        batches.append(batch)
    return batches


def test_batches_hold_what_read_archive_reads(tmp_path):
    path = make_zip(tmp_path / "d.zip", entries_with_problems())
    whole = read_archive(path)
    reader = DatasetReader(path)
    try:
        assert reader.classes == whole.classes == ["cat", "dog", "fish"]
        assert reader.count == len(whole.samples)
        assert reader.skipped == whole.skipped
        batches = read_all(reader, 3)
    finally:
        reader.close()
    assert [len(b) for b in batches] == [3, 3, 3, 3]  # 12 usable of 15
    samples = [s for b in batches for s in b]
    assert [(s.path, s.data, s.metadata) for s in samples] == [(s.path, s.data, s.metadata) for s in whole.samples]


def test_refused_archives_are_refused_before_any_batch(tmp_path):
    bad = make_zip(tmp_path / "bad.zip", [("a/x.png", b"no image"), ("top.png", png(seed=1))])
    with raises(ArchiveError, "bad.zip: no usable images"):
        DatasetReader(bad)
    not_zip = tmp_path / "plain.zip"
    not_zip.write_bytes(b"hello")
    with raises(ArchiveError, "plain.zip: not a zip archive"):
        open_dataset_zip(not_zip)


def test_bridge_describes_then_hands_over_bytes(tmp_path):
    sidecar = {
        "format": "tejas-dataset",
        "version": 1,
        "classes": ["dog", "cat"],
        "samples": [{"path": "dog/c.png", "metadata": {"source": "webcam", "added": None}}],
    }
    path = make_zip(tmp_path / "d.zip", [*basic_entries(), ("tejas.json", json.dumps(sidecar).encode())])
    opened = open_dataset_zip(path)
    try:
        description = json.loads(opened.description)
        assert description == {"classes": ["dog", "cat"], "warnings": [], "skipped": [], "count": 4}
        rows = []
        while True:
            described, datas = opened.read_batch(3)
            if not datas:
                break
            rows += [
                (d["label"], d["name"], d["metadata"], bytes(b))
                for d, b in zip(json.loads(described), datas, strict=True)
            ]
    finally:
        opened.close()
    assert [(label, name) for label, name, *_ in rows] == [
        ("cat", "a.png"),
        ("cat", "b.jpg"),
        ("dog", "c.png"),
        ("dog", "d.bmp"),
    ]
    assert rows[2][2] == {"source": "webcam", "added": None}
    assert rows[0][3] == dict(basic_entries())["cat/a.png"]


def test_batches_stop_at_a_byte_budget(tmp_path):
    path = make_zip(tmp_path / "d.zip", entries_with_problems())
    reader = DatasetReader(path)
    try:
        first = reader.read_batch(100, max_bytes=len(png(seed=1)) + 1)  # cat/a.png, then the budget is spent
        rest = read_all(reader, 100)
    finally:
        reader.close()
    assert [s.path for s in first] == ["cat/a.png", "cat/b.jpg"]
    assert sum(len(b) for b in rest) == reader.count - 2
