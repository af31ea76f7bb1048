"""`tejas predict` and the core's image reader for prediction: every file of a folder or zip gets a row
(its top-k or its error), the archive's hostile cases are refused whole with the core's message, the
per-file reasons are the dataset reader's, and the probabilities equal the exporter's own reference
(torchvision preprocessing + onnxruntime on the same file), whatever the batch size."""

from __future__ import annotations

import csv
import json
import subprocess
import zipfile
from pathlib import Path

import jsonschema
import numpy as np
import onnxruntime
import pytest

from tejas.artifacts import read_manifest
from tejas.dataset import iter_archive
from tejas.onnx_writer import write_classifier_onnx
from tejas.predictions import REPORT_SCHEMA, ArchiveError, ImageFile, Unreadable, iter_images
from tejas.rules import guard_cell
from tejas_ml.export.checks import preprocess

from ..conftest import TEJAS
from ..pycore.test_dataset import CASES
from ..sync_server.predict_support import image_bytes

CLASSES = ["cat", "dog", "@bird"]
PER_FILE_REASONS = (
    "symbolic link",
    "encrypted",
    "corrupt data",
    "empty file",
    "truncated",
    "image too large",
    "not an image",
    "file name is not valid UTF-8",
)


@pytest.fixture(scope="module")
def model(default_export, tmp_path_factory) -> Path:
    artifacts, _ = default_export
    f = read_manifest(artifacts)["feature_size"]
    rng = np.random.default_rng(3)
    path = tmp_path_factory.mktemp("model") / "model.onnx"
    write_classifier_onnx(artifacts, rng.normal(0, 0.05, 3 * f).tolist(), rng.normal(0, 0.1, 3).tolist(), CLASSES, path)
    return path


def _reference(model: Path, data: bytes) -> np.ndarray:
    """The exporter's reference pipeline: Pillow decode, its preprocess (torchvision crop/normalise), ORT."""
    import io

    from PIL import Image

    spec = json.loads(onnxruntime.InferenceSession(str(model)).get_modelmeta().custom_metadata_map["tejas_input"])
    rgb = np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))
    x = preprocess(rgb, spec["resize"]["shorter_side"], spec["size"][0], spec["mean"], spec["std"])
    session = onnxruntime.InferenceSession(str(model), providers=["CPUExecutionProvider"])
    return session.run(["probabilities"], {"image": x.unsqueeze(0).numpy()})[0][0]


def _folder(tmp: Path) -> dict[str, bytes]:
    files = {
        "a.png": image_bytes(1, (64, 48)),
        "nested/deeper/b.jpg": image_bytes(2, (300, 200), "JPEG"),
        "nested/c.bmp": image_bytes(3, (50, 90), "BMP"),
        "=formula.png": image_bytes(4),
        "notes.txt": b"just text",
        "cut.png": image_bytes(5)[:100],
        ".DS_Store": b"junk",  # OS litter: no row
    }
    for name, data in files.items():
        (tmp / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp / name).write_bytes(data)
    return files


def test_tejas_predict_on_a_folder_and_a_zip(model, tmp_path):
    folder = tmp_path / "photos"
    files = _folder(folder)
    archive = tmp_path / "photos.zip"
    with zipfile.ZipFile(archive, "w") as z:
        for name, data in files.items():
            z.writestr(f"photos/{name}", data)

    reports = {}
    for source, out, batch in ((folder, "folder.json", "16"), (archive, "zip.json", "2")):
        result = subprocess.run(
            [
                TEJAS,
                "predict",
                str(model),
                str(source),
                "--out",
                str(tmp_path / out),
                "--top-k",
                "2",
                "--batch-size",
                batch,
            ],
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert result.returncode == 0, result.stderr
        assert "4 of 6 images predicted" in result.stderr and "2 could not be read" in result.stderr
        reports[out] = json.loads((tmp_path / out).read_text())
        jsonschema.validate(reports[out], REPORT_SCHEMA)  # the one report format the app writes too

    folder_rows = reports["folder.json"]["rows"]
    zip_rows = reports["zip.json"]["rows"]
    assert [r["file"] for r in folder_rows] == sorted(n for n in files if n != ".DS_Store")
    assert [r["file"] for r in zip_rows] == [f"photos/{r['file']}" for r in folder_rows]
    for row, other in zip(folder_rows, zip_rows, strict=True):
        assert row["top"] == other["top"] and row["error"] == other["error"]  # batch size changes nothing
        data = files[row["file"]]
        if row["file"] == "notes.txt":
            assert row["error"] == "not an image (not PNG, JPEG, WebP, GIF or BMP)" and row["top"] == []
        elif row["file"] == "cut.png":
            assert row["error"].startswith("truncated PNG")
        else:
            assert row["error"] is None and len(row["top"]) == 2
            expected = _reference(model, data)
            best = np.argsort(-expected)[:2]
            assert [t["class"] for t in row["top"]] == [CLASSES[i] for i in best]
            assert np.allclose([t["probability"] for t in row["top"]], expected[best], atol=1e-5)
    report = reports["folder.json"]
    assert report["images"] == 6 and report["failed"] == 2 and report["model"]["classes"] == CLASSES

    # CSV on stdout: the same rows, formula cells neutralised
    result = subprocess.run([TEJAS, "predict", str(model), str(folder)], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    table = list(csv.reader(result.stdout.splitlines()))
    assert table[0] == [
        "file",
        "predicted",
        "confidence",
        "class_1",
        "probability_1",
        "class_2",
        "probability_2",
        "class_3",
        "probability_3",
        "error",
    ]
    assert table[1][0] == "'=formula.png"
    assert all(c != "@bird" for row in table[1:] for c in row)  # shown as '@bird
    by_file = {r["file"]: r for r in folder_rows}
    for cells in table[1:]:
        name = cells[0].removeprefix("'")
        if by_file[name]["error"] is None:
            assert cells[1].removeprefix("'") == by_file[name]["top"][0]["class"]
            assert abs(float(cells[2]) - by_file[name]["top"][0]["probability"]) < 1e-6


def test_tejas_predict_says_what_is_wrong(model, tmp_path, default_export):
    artifacts, _ = default_export
    images = tmp_path / "images"
    images.mkdir()
    (images / "a.png").write_bytes(image_bytes(1))

    def run(*args):
        return subprocess.run([TEJAS, "predict", *map(str, args)], capture_output=True, text=True, timeout=300)

    result = run(model, tmp_path / "missing")
    assert result.returncode == 2 and "missing: no such file or folder" in result.stderr
    result = run(artifacts / "backbone.onnx", images)
    assert result.returncode == 1 and "not a Tejas classifier" in result.stderr
    (tmp_path / "garbage.onnx").write_bytes(b"no model")
    result = run(tmp_path / "garbage.onnx", images)
    assert result.returncode == 1 and "not an ONNX model" in result.stderr
    (tmp_path / "bad.zip").write_bytes(b"PK\x03\x04 not really")
    result = run(model, tmp_path / "bad.zip")
    assert result.returncode == 1 and "bad.zip: corrupt or truncated zip archive" in result.stderr
    result = run(model, images, "--out", tmp_path / "report.xlsx")
    assert result.returncode == 2 and "name a .csv or .json file" in result.stderr
    result = run(model, images, "--top-k", "0")
    assert result.returncode == 2


@pytest.mark.parametrize("case", [c for c in CASES if c.limits == CASES[0].limits], ids=lambda c: c.id)
def test_the_core_reads_hostile_archives_for_prediction_as_for_datasets(case, tmp_path):
    """Refused whole exactly when the dataset reader refuses whole; the per-file reasons that are about
    the file (not about ImageFolder's class layout) are the same sentences."""
    archive = case.build(tmp_path)
    try:
        list(iter_archive(archive))  # the dataset reader's whole-archive rules (read_archive adds "no images")
        refused = None
    except ArchiveError as exc:
        refused = str(exc)
    if refused:
        with pytest.raises(ArchiveError) as caught:
            list(iter_images(archive))
        assert str(caught.value) == refused
        return
    items = list(iter_images(archive))
    unreadable = {u.path: u.reason for u in items if isinstance(u, Unreadable)}
    for path, reason in case.skipped.items():
        if reason.startswith(PER_FILE_REASONS):
            found = [r for p, r in unreadable.items() if p == path or p.endswith("/" + path)]
            assert found == [reason], (path, unreadable)
    assert all(isinstance(i, ImageFile | Unreadable) for i in items)


def test_formula_cells_are_neutralised():
    # the one rule of every CSV cell (rules.json spreadsheet_cell): a plain number like +1 or -1 stays a number
    assert [guard_cell(v) for v in ("=1+1", "+1", "-1", "@x", "cat", "", None, "a=b")] == [
        "'=1+1",
        "+1",
        "-1",
        "'@x",
        "cat",
        "",
        "",
        "a=b",
    ]
