"""Which clips train, validate and test a model: the holdout split and leave-one-group-out folds.

Both come from the split stage's columns (``split``, ``fold``), which keep every speaker and every
source video on one side; :func:`check_disjoint` re-checks that for each fold before training.
:class:`TrainingRows` adds to a fold's train rows the augmented copies of exactly those rows
(:mod:`seda.augment`) and, when asked, repeats rows of the smaller classes; validation and test
rows are never augmented or repeated.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from seda.augment import AugmentSettings
from seda.errors import ConfigError
from seda.features.store import load_augmented
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


@dataclass(frozen=True)
class TrainingRows:
    """How a fold's training rows are assembled. A learner's rows are its ``n`` labelled rows
    followed by the augmented copies: copy ``j`` is row ``n + j``, made from labelled row
    ``base[j]``. ``oversample``: balance the classes by repeating training rows, drawn with
    ``seed``."""

    base: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    oversample: bool = False
    seed: int = 0

    def rows(self, train: np.ndarray, y: np.ndarray) -> np.ndarray:
        """The rows that fit a fold whose labelled training rows are ``train``; ``y``: the labels
        of all rows, copies included. Without copies or oversampling: ``train`` itself."""
        n = len(y) - len(self.base)
        rows = np.concatenate([train, n + np.flatnonzero(np.isin(self.base, train))])
        return oversample(rows, y, self.seed) if self.oversample else rows

    def origins(self, rows: np.ndarray, n_labelled: int) -> tuple[np.ndarray, np.ndarray]:
        """For each of ``rows`` (as :meth:`rows` returns them, of ``n_labelled`` labelled rows
        and the copies after them): the labelled row it is, or was copied from, and whether it
        is a copy."""
        copy = rows >= n_labelled
        clip = rows.copy()
        clip[copy] = self.base[rows[copy] - n_labelled]
        return clip, copy


def oversample(rows: np.ndarray, y: np.ndarray, seed: int) -> np.ndarray:
    """``rows`` plus rows of each smaller class, drawn from that class's ``rows`` (without
    repeats while they last), until every class present has as many rows as the largest."""
    rng = np.random.default_rng(seed)
    classes, counts = np.unique(y[rows], return_counts=True)
    extra = []
    for c, count in zip(classes, counts, strict=True):
        pool = rows[y[rows] == c]
        need = int(counts.max() - count)
        while need > 0:
            take = min(need, len(pool))
            extra.append(rng.choice(pool, take, replace=False))
            need -= take
    return np.concatenate([rows, *extra]) if extra else rows


def stack_augmented(
    feature_dir: str | Path,
    clip_ids: Sequence[str],
    x: np.ndarray,
    y: np.ndarray,
    settings: AugmentSettings,
) -> tuple[np.ndarray, np.ndarray, TrainingRows]:
    """Features and labels of the labelled rows (``clip_ids``, ``x``, ``y``) followed by those of
    their augmented copies in the store ``feature_dir``, and how a fold uses them. Copies are
    used only when ``settings.copies`` asks for them."""
    if settings.copies == 0:
        return x, y, TrainingRows(oversample=settings.oversample, seed=settings.seed)
    copies, base, _ = load_augmented(feature_dir, clip_ids)
    if len(base) == 0:
        raise ConfigError(
            f"augment.copies is {settings.copies} but {feature_dir} holds no augmented copies of "
            "these clips: re-run the featurize stage with the same augment settings"
        )
    return (
        np.concatenate([x, copies.astype(x.dtype)]),
        np.concatenate([y, y[base]]),
        TrainingRows(base, settings.oversample, settings.seed),
    )
