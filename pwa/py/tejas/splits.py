"""Deterministic stratified train/validation split: the same samples and seed give the same split.

pwa/features/train/split.js is the same algorithm with the same refusals (schemas/rules.json words them).
"""

from __future__ import annotations

import hashlib
from numbers import Real

from .rules import MAX_EXACT_INTEGER, RULES, format_float, format_number, is_exact_integer, message, quote

__all__ = ["stratified_split"]

_SPLIT = RULES["split"]


def _rank(seed: int, sample_id: str) -> str:
    return hashlib.sha256(f"{seed}:{sample_id}".encode()).hexdigest()


def _check(sample_ids: list, labels: list, validation_share: float, seed: int) -> None:
    messages = _SPLIT["messages"]
    if len(sample_ids) != len(labels):
        raise ValueError(message(messages["length"], ids=len(sample_ids), labels=len(labels)))
    share_ok = isinstance(validation_share, Real) and not isinstance(validation_share, bool)
    if not (share_ok and 0.0 <= validation_share < 1.0):
        raise ValueError(message(messages["share"], share=format_float(validation_share)))
    if not is_exact_integer(seed):
        raise ValueError(message(messages["seed"], max=MAX_EXACT_INTEGER, seed=format_number(seed)))
    seen = set()
    for sample_id in sample_ids:
        if sample_id in seen:
            raise ValueError(message(messages["duplicate"], id=quote(str(sample_id))))
        seen.add(sample_id)


def stratified_split(
    sample_ids: list[str], labels: list[str], validation_share: float = 0.2, seed: int = 0
) -> tuple[list[str], list[str]]:
    """(train ids, validation ids), each class split in the same proportion.

    A class with n ≥ 2 samples puts round(n × share) of them, at least 1 and at most n − 1, into
    validation; a class with one sample trains on it. Samples are ranked by a hash of (seed, id),
    not by a random generator, so adding samples later moves few others between the two sides.
    Refuses (ValueError) lengths that differ, a share outside [0, 1), a seed that is no integer JS
    holds exactly, and repeated ids.
    """
    _check(sample_ids, labels, validation_share, seed)
    by_class: dict = {}
    for sample_id, label in zip(sample_ids, labels, strict=True):
        by_class.setdefault(label, []).append(sample_id)
    validation: set[str] = set()
    for ids in by_class.values():
        n = len(ids)
        take = 0 if n < 2 or validation_share == 0 else min(max(round(n * validation_share), 1), n - 1)
        validation.update(sorted(ids, key=lambda i: _rank(seed, i))[:take])
    train = [i for i in sample_ids if i not in validation]
    return train, [i for i in sample_ids if i in validation]
