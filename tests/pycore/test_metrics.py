"""Splits and metrics (shared: CPython and Pyodide); equality with scikit-learn is in pycore_cpython."""

from __future__ import annotations

from tejas.metrics import classification_report, confusion_matrix, top_k_accuracy
from tejas.splits import stratified_split

from .support import raises


def test_split_is_stratified_and_deterministic():
    ids = [f"s{i}" for i in range(50)]
    labels = ["a"] * 20 + ["b"] * 10 + ["c"] * 5 + ["d"] * 1 + ["e"] * 14
    train, val = stratified_split(ids, labels, 0.2, seed=7)
    assert (train, val) == stratified_split(ids, labels, 0.2, seed=7)
    assert set(train) | set(val) == set(ids) and not set(train) & set(val)
    label = dict(zip(ids, labels, strict=True))
    counts = {c: sum(label[i] == c for i in val) for c in "abcde"}
    assert counts == {"a": 4, "b": 2, "c": 1, "d": 0, "e": 3}
    assert stratified_split(ids, labels, 0.2, seed=8)[1] != val


def test_split_keeps_most_samples_in_place_when_data_grows():
    ids = [f"s{i}" for i in range(100)]
    _, before = stratified_split(ids, ["x"] * 100, 0.2, seed=1)
    _, after = stratified_split([*ids, "new1", "new2", "new3", "new4", "new5"], ["x"] * 105, 0.2, seed=1)
    assert len(set(before) & set(after)) >= 18


def test_split_rejects_bad_input():
    with raises(ValueError, match="3 sample ids but 2 labels"):
        stratified_split(["a", "b", "c"], ["x", "y"])
    with raises(ValueError, match="must be unique"):
        stratified_split(["a", "a"], ["x", "x"])
    with raises(ValueError, match=r"validation share must be in \[0, 1\)"):
        stratified_split(["a"], ["x"], 1.0)


def test_report_by_hand():
    y_true = [0, 0, 0, 1, 1, 2]
    y_pred = [0, 1, 0, 1, 1, 1]
    report = classification_report(y_true, y_pred, ["cat", "dog", "owl"], sample_ids=list("abcdef"))
    assert report["accuracy"] == 4 / 6
    assert report["confusion_matrix"] == [[2, 1, 0], [0, 2, 0], [0, 1, 0]]
    assert report["cells"] == {"0,0": ["a", "c"], "0,1": ["b"], "1,1": ["d", "e"], "2,1": ["f"]}
    dog = report["per_class"][1]
    assert (dog["precision"], dog["recall"], dog["support"]) == (0.5, 1.0, 2)
    owl = report["per_class"][2]
    assert (owl["precision"], owl["recall"], owl["f1"]) == (0.0, 0.0, 0.0)


def test_top_k_and_ties():
    scores = [[0.1, 0.5, 0.4], [0.3, 0.3, 0.4], [0.2, 0.2, 0.6]]
    assert top_k_accuracy([2, 0, 1], scores, 1) == 0.0
    assert top_k_accuracy([2, 0, 1], scores, 2) == 2 / 3  # ties: higher index ranks first
    assert confusion_matrix([], [], 2) == [[0, 0], [0, 0]]


def test_report_rejects_bad_indices():
    with raises(ValueError, match=r"class index 3 outside 0..1"):
        classification_report([0, 3], [0, 1], ["a", "b"])
