"""The core against the references it must agree with: scikit-learn's metrics, torchvision's
ImageFolder (for zips written in CPython and in Pyodide), and bounded memory on big archives."""

from __future__ import annotations

import random
import tracemalloc
import zipfile

import numpy as np
import pytest
from sklearn import metrics as sk
from torchvision.datasets import ImageFolder

from tejas.dataset import Sample, iter_archive
from tejas.metrics import classification_report

from ..pycore import test_dataset as shared
from ..pycore.images_for_tests import png
from .test_in_pyodide import pyodide_report  # noqa: F401  (session fixture)


@pytest.mark.parametrize("seed", range(5))
def test_metrics_equal_scikit_learn(seed):
    rng = random.Random(seed)
    n_classes = rng.randint(3, 8)
    y_true = [rng.randrange(n_classes) for _ in range(rng.randint(20, 300))]
    y_pred = [t if rng.random() < 0.6 else rng.randrange(n_classes) for t in y_true]
    scores = [[rng.random() for _ in range(n_classes)] for _ in y_true]
    names = [f"c{i}" for i in range(n_classes)]
    report = classification_report(
        y_true, y_pred, names, sample_ids=[str(i) for i in range(len(y_true))], scores=scores
    )
    labels = list(range(n_classes))
    assert report["accuracy"] == pytest.approx(sk.accuracy_score(y_true, y_pred), abs=1e-12)
    assert report["confusion_matrix"] == sk.confusion_matrix(y_true, y_pred, labels=labels).tolist()
    p, r, f, s = sk.precision_recall_fscore_support(y_true, y_pred, labels=labels, zero_division=0)
    for c, row in enumerate(report["per_class"]):
        assert (row["precision"], row["recall"], row["f1"], row["support"]) == pytest.approx((p[c], r[c], f[c], s[c]))
    for avg in ("macro", "weighted"):
        expected = sk.precision_recall_fscore_support(y_true, y_pred, labels=labels, average=avg, zero_division=0)
        got = report[avg]
        assert (got["precision"], got["recall"], got["f1"]) == pytest.approx(expected[:3])
    for k, value in report["top_k_accuracy"].items():
        assert value == pytest.approx(sk.top_k_accuracy_score(y_true, np.array(scores), k=int(k), labels=labels))
    # every sample is in exactly the cell of its (true, predicted) pair
    for key, ids in report["cells"].items():
        t, p_ = map(int, key.split(","))
        assert len(ids) == report["confusion_matrix"][t][p_]


def test_ties_in_top_k_equal_scikit_learn():
    scores = np.array([[0.3, 0.3, 0.4], [0.2, 0.2, 0.6], [0.5, 0.5, 0.0], [0.1, 0.1, 0.1]])
    y_true = [0, 1, 0, 1]
    report = classification_report(y_true, [2, 2, 0, 0], ["a", "b", "c"], scores=scores.tolist(), top_k=(1, 2))
    for k in (1, 2):
        assert report["top_k_accuracy"][str(k)] == sk.top_k_accuracy_score(y_true, scores, k=k, labels=[0, 1, 2])


def _check_imagefolder(zip_path, tmp_path):
    with zipfile.ZipFile(zip_path) as archive:
        archive.extractall(tmp_path / "x")
    folder = ImageFolder(tmp_path / "x")
    assert folder.classes == ["apple", "mango", "zebra"]  # ImageFolder sorts; tejas.json keeps project order
    counts = {c: sum(1 for _, label in folder.samples if folder.classes[label] == c) for c in folder.classes}
    assert counts == {"apple": 4, "mango": 3, "zebra": 3}
    image, label = folder[0]
    assert image.size == (8, 6)


def test_imagefolder_loads_zip_written_in_cpython(tmp_path):
    out = tmp_path / "cpython"
    out.mkdir()
    shared.test_written_zip_for_imagefolder(out)
    _check_imagefolder(out / "imagefolder.zip", tmp_path)


def test_imagefolder_loads_zip_written_in_pyodide_and_bytes_match_cpython(pyodide_report, tmp_path):  # noqa: F811
    results, pyodide_out = pyodide_report
    assert results["test_dataset::test_written_zip_for_imagefolder"]["ok"]
    written = pyodide_out / "test_written_zip_for_imagefolder" / "imagefolder.zip"
    _check_imagefolder(written, tmp_path)
    ours = tmp_path / "cpython"
    ours.mkdir()
    shared.test_written_zip_for_imagefolder(ours)
    assert written.read_bytes() == (ours / "imagefolder.zip").read_bytes()


@pytest.mark.slow
def test_streaming_a_big_archive_holds_one_image_at_a_time(tmp_path):
    """~300 MB of 3 MB images: iterating keeps Python allocations far below the archive's size."""
    path = tmp_path / "big.zip"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as archive:
        for i in range(100):
            archive.writestr(f"class{i % 4}/{i}.png", png(1000, 1000, seed=i, level=0))
    assert path.stat().st_size > 290e6
    tracemalloc.start()
    count = 0
    for event in iter_archive(path):
        if isinstance(event, Sample):
            count += 1
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert count == 100
    assert peak < 40e6, f"peak {peak / 1e6:.0f} MB"
