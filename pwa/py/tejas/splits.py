"""Deterministic stratified train/validation split: the same samples and seed give the same split."""

from __future__ import annotations

import hashlib
from collections import defaultdict

__all__ = ["stratified_split"]


def _rank(seed: int, sample_id: str) -> str:
    return hashlib.sha256(f"{seed}:{sample_id}".encode()).hexdigest()


def stratified_split(
    sample_ids: list[str], labels: list[str], validation_share: float = 0.2, seed: int = 0
) -> tuple[list[str], list[str]]:
    """(train ids, validation ids), each class split in the same proportion.

    A class with n ≥ 2 samples puts round(n × share) of them, at least 1 and at most n − 1, into
    validation; a class with one sample trains on it. Samples are ranked by a hash of (seed, id),
    not by a random generator, so adding samples later moves few others between the two sides.
    """
    if len(sample_ids) != len(labels):
        raise ValueError(f"{len(sample_ids)} sample ids but {len(labels)} labels")
    if not 0.0 <= validation_share < 1.0:
        raise ValueError(f"validation share must be in [0, 1), got {validation_share}")
    if len(set(sample_ids)) != len(sample_ids):
        raise ValueError("sample ids must be unique")
    by_class: dict[str, list[str]] = defaultdict(list)
    for sample_id, label in zip(sample_ids, labels, strict=True):
        by_class[label].append(sample_id)
    validation: set[str] = set()
    for ids in by_class.values():
        n = len(ids)
        take = 0 if n < 2 or validation_share == 0 else min(max(round(n * validation_share), 1), n - 1)
        validation.update(sorted(ids, key=lambda i: _rank(seed, i))[:take])
    train = [i for i in sample_ids if i not in validation]
    return train, [i for i in sample_ids if i in validation]
