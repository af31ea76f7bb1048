"""tejas.bridge, the functions the browser's Python worker calls (pwa/workers/python.js), with the kinds of
values the worker passes (memoryviews for Uint8Arrays, float32 bytes, metadata as JSON text)."""

from __future__ import annotations

import json
import zipfile
from array import array

from tejas.bridge import ArchiveError, export_dataset, import_dataset, read_zip_entries, write_model, write_zip
from tejas.onnx_writer import describe_onnx, write_classifier_onnx

from .images_for_tests import GIF_8x6, png
from .support import raises
from .test_writers import TINY_BIAS, TINY_CLASSES, TINY_WEIGHT, make_tiny_artifacts, read_pt


def test_write_zip_is_deterministic_and_read_zip_entries_picks_the_names_asked(tmp_path):
    entries = [{"name": "project.json", "bytes": memoryview(b"{}")}, {"name": "models/a.bin", "bytes": b"\x00\x01"}]
    write_zip(entries, tmp_path / "a.zip")
    write_zip(entries, tmp_path / "b.zip")
    assert (tmp_path / "a.zip").read_bytes() == (tmp_path / "b.zip").read_bytes()
    with zipfile.ZipFile(tmp_path / "a.zip") as archive:
        assert [(i.filename, i.date_time, i.compress_type) for i in archive.infolist()] == [
            ("project.json", (1980, 1, 1, 0, 0, 0), zipfile.ZIP_STORED),
            ("models/a.bin", (1980, 1, 1, 0, 0, 0), zipfile.ZIP_STORED),
        ]
    wanted = ["models/a.bin", "missing.json", "project.json"]
    assert read_zip_entries(tmp_path / "a.zip", "my.tejas", wanted) == [
        ("models/a.bin", b"\x00\x01"),
        ("project.json", b"{}"),
    ]


def test_read_zip_entries_names_the_file_that_is_no_zip(tmp_path):
    (tmp_path / "x.tejas").write_bytes(b"not a zip")
    with raises(ValueError, match=r"^holiday\.tejas: not a Tejas project file \(not a zip archive\)$"):
        read_zip_entries(tmp_path / "x.tejas", "holiday.tejas", ["project.json"])


def test_dataset_export_import_round_trip_keeps_metadata_exactly(tmp_path):
    samples = [
        {"label": "cat", "name": "one.png", "bytes": memoryview(png(seed=1)), "metadata": json.dumps({"note": None})},
        {"label": "dog", "name": "two", "bytes": GIF_8x6, "metadata": {"source": "webcam", "n": 2}},
        {"label": "cat", "name": "three.png", "bytes": png(seed=3), "metadata": ""},
    ]
    written = export_dataset(["dog", "cat"], samples, tmp_path / "d.zip")
    assert written == ["dog/two.gif", "cat/one.png", "cat/three.png"]
    description, datas = import_dataset(str(tmp_path / "d.zip"))
    result = json.loads(description)
    assert result["classes"] == ["dog", "cat"] and result["skipped"] == [] and result["warnings"] == []
    assert result["samples"] == [
        {"label": "dog", "name": "two.gif", "metadata": {"source": "webcam", "n": 2}},
        {"label": "cat", "name": "one.png", "metadata": {"note": None}},
        {"label": "cat", "name": "three.png", "metadata": {}},
    ]
    assert datas == [GIF_8x6, png(seed=1), png(seed=3)]


def test_import_reports_skipped_files_and_refuses_an_archive_without_images(tmp_path):
    with zipfile.ZipFile(tmp_path / "some.zip", "w") as archive:
        archive.writestr("cat/a.png", png(seed=1))
        archive.writestr("cat/b.png", b"not an image")
        archive.writestr("a|b/c.png", png(seed=2))
    result = json.loads(import_dataset(str(tmp_path / "some.zip"))[0])
    assert [s["path"] for s in result["skipped"]] == ["cat/b.png", "a|b/c.png"]
    assert result["skipped"][1]["reason"] == "class name 'a|b' contains '|' (not allowed in folder names)"
    with zipfile.ZipFile(tmp_path / "empty.zip", "w") as archive:
        archive.writestr("readme.txt", b"hi")
    with raises(ArchiveError, match=r"empty\.zip: no usable images"):
        import_dataset(str(tmp_path / "empty.zip"))


def test_write_model_from_float32_bytes_equals_the_writers(tmp_path):
    artifacts = make_tiny_artifacts(tmp_path / "tiny")
    weight, bias = array("f", TINY_WEIGHT).tobytes(), memoryview(array("f", TINY_BIAS).tobytes())
    write_model("onnx", str(artifacts), weight, bias, TINY_CLASSES, tmp_path / "m.onnx", {})
    write_classifier_onnx(artifacts, TINY_WEIGHT, TINY_BIAS, TINY_CLASSES, tmp_path / "direct.onnx")
    assert (tmp_path / "m.onnx").read_bytes() == (tmp_path / "direct.onnx").read_bytes()
    assert describe_onnx(tmp_path / "m.onnx")["outputs"]
    write_model("pt", str(artifacts), weight, bias, TINY_CLASSES, tmp_path / "m.pt")
    state, _ = read_pt(tmp_path / "m.pt")
    assert state
    with raises(ValueError, match="unknown model kind 'h5'"):
        write_model("h5", str(artifacts), weight, bias, TINY_CLASSES, tmp_path / "m.h5")
