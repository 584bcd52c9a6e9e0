"""Which clips train, validate and test a model: the holdout split and leave-one-group-out folds.

Both come from the split stage's columns (``split``, ``fold``), which keep every speaker and every
source video on one side; :func:`check_disjoint` re-checks that for each fold before training.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from seda.errors import ConfigError
from seda.records import SplitRow


@dataclass
class Fold:
    """Row indices of one training run: fit on ``train``, early-stop on ``val``, score ``test``."""

    train: np.ndarray
    val: np.ndarray
    test: np.ndarray


def holdout_fold(rows: Sequence[SplitRow], need_test: bool = True) -> Fold:
    """Rows by their ``split`` column; train and val (and test when needed) must be non-empty."""
    split = np.array([r.split for r in rows])
    fold = Fold(*(np.flatnonzero(split == s) for s in ("train", "val", "test")))
    for name in ("train", "val", "test")[: 3 if need_test else 2]:
        if len(getattr(fold, name)) == 0:
            raise ConfigError(f"the {name} split has no labelled clips: check the split settings")
    return fold


def loso_folds(rows: Sequence[SplitRow]) -> list[Fold]:
    """Leave-one-group-out over the ``fold`` column; fold k+1 (cyclic) validates fold k's model."""
    fold_of = np.array([int(r.fold) for r in rows])
    ids = sorted(set(fold_of.tolist()))
    if len(ids) < 3:
        raise ConfigError(
            f"eval.protocol=loso needs at least 3 folds (test, validation, training), got "
            f"{len(ids)}: use eval.protocol=holdout or more speaker groups"
        )
    folds = []
    for k, test_id in enumerate(ids):
        val_id = ids[(k + 1) % len(ids)]
        folds.append(
            Fold(
                np.flatnonzero((fold_of != test_id) & (fold_of != val_id)),
                np.flatnonzero(fold_of == val_id),
                np.flatnonzero(fold_of == test_id),
            )
        )
    return folds


def check_disjoint(rows: Sequence[SplitRow], fold: Fold) -> None:
    """Refuse a fold where a clip, speaker or source appears in training and test alike."""
    for key in ("clip_id", "speaker", "source_id"):
        train = {getattr(rows[i], key) for i in np.concatenate([fold.train, fold.val])}
        shared = train & {getattr(rows[i], key) for i in fold.test}
        if shared:
            raise ConfigError(
                f"{key} {sorted(shared)[:3]} in both training and test rows: the split leaks"
            )
