"""Evaluate a learner on unseen speakers and videos, then write its model, metrics and plots.

``holdout``: train / val / test columns of the split. ``loso``: leave-one-group-out over the
``fold`` column (the next fold is the validation fold; test predictions are pooled over folds).
Early stopping and every other choice use validation rows only; test rows are predicted once,
after training. The model written is always the one trained on the holdout train split (the
deployable one); the metrics follow the protocol.

A learner (probe, finetune, baseline) is anything with ``fit(train, val) -> history``,
``predict_proba(rows) -> (n, k)`` and ``save(folder) -> model card fields``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from seda.errors import ConfigError
from seda.features.store import load_features
from seda.metrics import MetricsRecord, classification_metrics
from seda.models.card import FeatureShape, ModelCard, TrainedOn
from seda.models.folds import Fold, check_disjoint, holdout_fold, loso_folds
from seda.plots import write_model_plots
from seda.records import UNLABELLED, SplitRow

log = logging.getLogger(__name__)

PROTOCOLS = ("holdout", "loso")


@dataclass
class EvalSettings:
    """The ``eval`` section."""

    protocol: str = "holdout"  # holdout | loso
    n_bootstrap: int = 1000

    def __post_init__(self) -> None:
        if self.protocol not in PROTOCOLS:
            raise ConfigError(f"eval.protocol must be holdout or loso, got {self.protocol!r}")


@dataclass
class LabelledData:
    """Labelled rows of one model's input, with stored features (probe, baseline) or without
    (finetune reads the clips); ``y`` indexes ``labels`` (sorted)."""

    rows: list[SplitRow]
    y: np.ndarray
    labels: list[str]
    features: np.ndarray | None = None
    meta: dict[str, Any] = field(default_factory=dict)


def labelled_data(
    rows: Sequence[SplitRow],
    features: np.ndarray | None = None,
    meta: Mapping[str, Any] | None = None,
) -> LabelledData:
    """The rows with an emotion label (unlabelled clips are left out: they train nothing)."""
    keep = [i for i, r in enumerate(rows) if r.label and r.label != UNLABELLED]
    if len(keep) < len(rows):
        log.info("train: %d unlabelled clip(s) left out", len(rows) - len(keep))
    labels = sorted({rows[i].label for i in keep})
    if len(labels) < 2:
        raise ConfigError(f"need at least two emotion labels to train, got {labels}")
    kept = [rows[i] for i in keep]
    y = np.array([labels.index(r.label) for r in kept])
    x = None if features is None else features[keep]
    return LabelledData(kept, y, labels, x, dict(meta or {}))


def load_labelled_features(feature_dir: Path) -> LabelledData:
    """The labelled rows of a feature store with their features."""
    features, rows, meta = load_features(feature_dir)
    return labelled_data(rows, features, meta)


class Learner(Protocol):
    def fit(self, train: np.ndarray, val: np.ndarray) -> list[dict[str, Any]]: ...

    def predict_proba(self, idx: np.ndarray) -> np.ndarray: ...

    def save(self, out_dir: Path) -> dict[str, Any]: ...


@dataclass
class Evaluation:
    """The deployable learner (trained on the holdout fold) and the protocol's test predictions."""

    learner: Learner
    history: list[dict[str, Any]]
    fold: Fold
    folds: list[Fold]
    test_idx: np.ndarray
    prob: np.ndarray
    train_seconds: float


@dataclass
class TrainOutputs:
    """Where a trained model goes: its folder, its metrics file and its plots folder."""

    model_dir: Path
    metrics: Path
    plots: Path


def fit_fold(
    data: LabelledData, make_learner: Callable[[], Learner], fold: Fold
) -> tuple[Learner, list[dict[str, Any]], float]:
    """A fitted learner on one fold (train rows, early stopping on its val rows), its history and
    the seconds it took."""
    check_disjoint(data.rows, fold)
    start = time.perf_counter()
    learner = make_learner()
    history = learner.fit(fold.train, fold.val)
    return learner, history, time.perf_counter() - start


def evaluate(data: LabelledData, make_learner: Callable[[], Learner], protocol: str) -> Evaluation:
    """Train the deployable model and predict the protocol's test rows."""
    fold = holdout_fold(data.rows, need_test=protocol == "holdout")
    learner, history, seconds = fit_fold(data, make_learner, fold)
    if protocol == "holdout":
        return Evaluation(
            learner, history, fold, [fold], fold.test, learner.predict_proba(fold.test), seconds
        )
    folds = loso_folds(data.rows)
    parts = []
    for k, f in enumerate(folds):
        fold_learner = fit_fold(data, make_learner, f)[0]
        parts.append(fold_learner.predict_proba(f.test))
        log.info("train: fold %d/%d done", k + 1, len(folds))
    test_idx = np.concatenate([f.test for f in folds])
    return Evaluation(learner, history, fold, folds, test_idx, np.concatenate(parts), seconds)


def best_epoch(history: Sequence[Mapping[str, Any]]) -> int | None:
    if not history:
        return None
    best = max(history, key=lambda h: (h["val_uar"], -h["val_loss"]))
    return int(best["epoch"])


def write_outputs(
    name: str,
    mode: str,
    data: LabelledData,
    result: Evaluation,
    *,
    settings: EvalSettings,
    seed: int,
    backbone: tuple[str, str] | None,
    card_fields: Mapping[str, Any],
    outputs: TrainOutputs,
) -> dict[str, Any]:
    """Write the model folder (weights + :class:`ModelCard`), the :class:`MetricsRecord` and the
    plots of one evaluation; ``backbone`` is (weights, checkpoint), None for the baseline."""
    y_true = data.y[result.test_idx]
    scores = classification_metrics(
        y_true, result.prob, data.labels, n_bootstrap=settings.n_bootstrap, seed=seed
    )
    weights, checkpoint = backbone if backbone else (None, None)
    metrics = MetricsRecord.from_scores(
        scores,
        model=name,
        backbone_weights=weights,
        checkpoint=checkpoint,
        protocol=settings.protocol,
        mode=mode,
        n_train=int(np.mean([len(f.train) for f in result.folds])),
        n_val=int(np.mean([len(f.val) for f in result.folds])),
        n_folds=len(result.folds),
    )
    outputs.model_dir.mkdir(parents=True, exist_ok=True)
    saved = result.learner.save(outputs.model_dir)
    shape = None
    if data.meta:
        shape = FeatureShape(
            **{k: data.meta.get(k) for k in ("shape", "dtype", "pooling", "sample_rate")}
        )
    card = ModelCard(
        model=name,
        mode=mode,
        labels=data.labels,
        features=shape,
        trained_on=TrainedOn(
            split="train",
            early_stopping="val UAR",
            n_train=len(result.fold.train),
            n_val=len(result.fold.val),
            best_epoch=best_epoch(result.history),
        ),
        seed=seed,
        **{**card_fields, **saved},
    )
    card.write(outputs.model_dir / "model.json")
    metrics.write(outputs.metrics)
    write_model_plots(
        name,
        y_true,
        result.prob,
        data.labels,
        [data.rows[i].clip_id for i in result.test_idx],
        result.history,
        outputs.plots,
    )
    summary = {
        "model": name,
        "uar": metrics.uar,
        "protocol": settings.protocol,
        "mode": mode,
        "n_test": len(result.test_idx),
        "train_seconds": round(result.train_seconds, 2),
    }
    log.info("train %s: %s", name, summary)
    return summary
