"""Classification metrics (scikit-learn's definitions) plus, per confusion cell, the samples in it.

pwa/features/train/metrics.js computes the same report with the same refusals (schemas/rules.json) and the
same floating-point operations in the same order, so both give the same numbers to the last bit.
"""

from __future__ import annotations

from numbers import Integral

from .rules import RULES, format_number, message

__all__ = ["classification_report", "confusion_matrix", "top_k_accuracy"]


def confusion_matrix(y_true: list[int], y_pred: list[int], n_classes: int) -> list[list[int]]:
    """matrix[true][predicted] counts, as sklearn.metrics.confusion_matrix(labels=range(n))."""
    matrix = [[0] * n_classes for _ in range(n_classes)]
    for t, p in zip(y_true, y_pred, strict=True):
        matrix[t][p] += 1
    return matrix


def top_k_accuracy(y_true: list[int], scores: list[list[float]], k: int) -> float:
    """Share of samples whose true class is among the k highest scores.

    Ties rank the higher class index first, as sklearn.metrics.top_k_accuracy_score does.
    """
    if not y_true:
        return 0.0
    hits = 0
    for label, row in zip(y_true, scores, strict=True):
        ranked = sorted(range(len(row)), key=lambda c: (row[c], c), reverse=True)
        hits += label in ranked[:k]
    return hits / len(y_true)


def _ratio(numerator: float, denominator: float) -> float:
    return numerator / denominator if denominator else 0.0  # sklearn's zero_division=0


def classification_report(
    y_true: list[int],
    y_pred: list[int],
    class_names: list[str],
    sample_ids: list[str] | None = None,
    scores: list[list[float]] | None = None,
    top_k: tuple[int, ...] = (1, 3, 5),
) -> dict:
    """Accuracy, per-class precision/recall/F1/support, macro and weighted averages, the confusion
    matrix and the sample ids in each of its cells, and top-k accuracy when scores are given."""
    n = len(class_names)
    messages = RULES["metrics"]["messages"]
    if len(y_true) != len(y_pred) or (sample_ids is not None and len(sample_ids) != len(y_true)):
        raise ValueError(messages["length"])
    for v in (*y_true, *y_pred):
        if not (isinstance(v, Integral) and not isinstance(v, bool) and 0 <= v < n):
            raise ValueError(message(messages["index"], index=format_number(v), last=n - 1))
    matrix = confusion_matrix(y_true, y_pred, n)
    per_class = []
    for c, name in enumerate(class_names):
        tp = matrix[c][c]
        predicted = sum(matrix[t][c] for t in range(n))
        support = sum(matrix[c])
        precision, recall = _ratio(tp, predicted), _ratio(tp, support)
        f1 = _ratio(2 * precision * recall, precision + recall)
        per_class.append({"class": name, "precision": precision, "recall": recall, "f1": f1, "support": support})
    total = len(y_true)

    def average(key: str, weighted: bool) -> float:
        # a plain left-to-right sum, as JS adds: sum() of floats compensates from Python 3.12 on
        added = 0.0
        for row in per_class:
            added += row[key] * row["support"] if weighted else row[key]
        return _ratio(added, total if weighted else n)

    cells: dict[str, list[str]] = {}
    if sample_ids is not None:
        for sample_id, t, p in zip(sample_ids, y_true, y_pred, strict=True):
            cells.setdefault(f"{t},{p}", []).append(sample_id)
    report = {
        "accuracy": _ratio(sum(matrix[c][c] for c in range(n)), total),
        "per_class": per_class,
        "macro": {k: average(k, False) for k in ("precision", "recall", "f1")},
        "weighted": {k: average(k, True) for k in ("precision", "recall", "f1")},
        "confusion_matrix": matrix,
        "cells": cells,  # "true,predicted" -> sample ids, for showing the images in a cell
        "count": total,
    }
    if scores is not None:
        report["top_k_accuracy"] = {str(k): top_k_accuracy(y_true, scores, k) for k in top_k if k < n}
    return report
