"""Evaluate a learner on unseen speakers and videos, then write its model, metrics and plots.

``holdout``: train / val / test columns of the split. ``loso``: leave-one-group-out over the
``fold`` column (the next fold is the validation fold; test predictions are pooled over folds).
Early stopping and every other choice use validation rows only; test rows are predicted once,
after training. The model written is always the one trained on the holdout train split (the
deployable one); the metrics follow the protocol: the pooled test predictions, each fold's
(``loso``) and each test speaker's scores, with intervals that resample test groups
(:mod:`seda.metrics`). The headline figures go to the metrics file, everything to the details file.

A learner (probe, finetune, baseline) is anything with ``fit(train, val) -> history``,
``predict_proba(rows) -> (n, k)`` and ``save(folder) -> model card fields``. A learner that also
has ``predict_logits(rows)`` and a ``temperature`` (:class:`ScaledLearner`: the neural heads, which
fit it on their validation rows) reports ``softmax(logits / T)`` and, in the calibration record,
the expected calibration error before and after that scaling.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np

from seda.errors import ConfigError
from seda.features.store import load_features
from seda.metrics import (
    MetricsRecord,
    calibration_metrics,
    classification_metrics,
    fold_metrics,
    fold_spread,
    softmax,
    speaker_metrics,
)
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


@runtime_checkable
class ScaledLearner(Learner, Protocol):
    """A learner whose probabilities are ``softmax(logits / temperature)``, the temperature
    fitted in ``fit`` on the validation rows."""

    temperature: float

    def predict_logits(self, idx: np.ndarray) -> np.ndarray: ...


@dataclass
class Evaluation:
    """The deployable learner (trained on the holdout fold) and the protocol's test predictions:
    ``prob`` as reported (temperature-scaled for a :class:`ScaledLearner`), ``unscaled`` the
    same rows' plain softmax (None for other learners) and ``temperatures`` the temperature of
    each model that predicted them (one per fold; empty for other learners)."""

    learner: Learner
    history: list[dict[str, Any]]
    fold: Fold
    folds: list[Fold]
    test_idx: np.ndarray
    prob: np.ndarray
    train_seconds: float
    unscaled: np.ndarray | None = None
    temperatures: list[float] = field(default_factory=list)


@dataclass
class TrainOutputs:
    """Where a trained model goes: its folder, its headline metrics file
    (:class:`~seda.metrics.HeadlineMetrics`), its details file (:class:`MetricsRecord`) and its
    plots folder."""

    model_dir: Path
    metrics: Path
    details: Path
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


def test_predictions(
    learner: Learner, idx: np.ndarray
) -> tuple[np.ndarray, np.ndarray | None, float | None]:
    """A fitted learner's probabilities of rows ``idx``, as reported and before temperature
    scaling, and its temperature (the last two None for a learner without one)."""
    if isinstance(learner, ScaledLearner):
        logits = learner.predict_logits(idx)
        return softmax(logits, learner.temperature), softmax(logits), learner.temperature
    return learner.predict_proba(idx), None, None


def evaluate(data: LabelledData, make_learner: Callable[[], Learner], protocol: str) -> Evaluation:
    """Train the deployable model and predict the protocol's test rows."""
    fold = holdout_fold(data.rows, need_test=protocol == "holdout")
    learner, history, seconds = fit_fold(data, make_learner, fold)
    if protocol == "holdout":
        folds, parts = [fold], [test_predictions(learner, fold.test)]
    else:
        folds, parts = loso_folds(data.rows), []
        for k, f in enumerate(folds):
            parts.append(test_predictions(fit_fold(data, make_learner, f)[0], f.test))
            log.info("train: fold %d/%d done", k + 1, len(folds))
    unscaled = [u for _, u, _ in parts if u is not None]
    return Evaluation(
        learner,
        history,
        fold,
        folds,
        np.concatenate([f.test for f in folds]),
        np.concatenate([p for p, _, _ in parts]),
        seconds,
        unscaled=np.concatenate(unscaled) if len(unscaled) == len(parts) else None,
        temperatures=[t for _, _, t in parts if t is not None],
    )


def best_epoch(history: Sequence[Mapping[str, Any]]) -> int | None:
    if not history:
        return None
    best = max(history, key=lambda h: (h["val_uar"], -h["val_loss"]))
    return int(best["epoch"])


def details_record(
    name: str,
    mode: str,
    data: LabelledData,
    result: Evaluation,
    *,
    settings: EvalSettings,
    seed: int,
    backbone: tuple[str, str] | None,
) -> MetricsRecord:
    """The details record of one evaluation's test predictions: pooled scores with intervals
    over test groups, per speaker, per fold (``loso``), calibration, and what was evaluated."""
    rows = [data.rows[i] for i in result.test_idx]
    y_true = data.y[result.test_idx]
    y_pred = result.prob.argmax(axis=1)
    k = len(data.labels)
    groups = [r.group for r in rows]
    speakers = [r.speaker for r in rows]
    scores = classification_metrics(
        y_true,
        result.prob,
        data.labels,
        n_bootstrap=settings.n_bootstrap,
        seed=seed,
        groups=groups,
    )
    folds = []
    if settings.protocol == "loso":
        folds = fold_metrics(y_true, y_pred, k, [int(r.fold) for r in rows], groups, speakers)
    mean, sd = fold_spread(folds)
    weights, checkpoint = backbone if backbone else (None, None)
    calibration = calibration_metrics(
        y_true,
        result.prob,
        unscaled=result.unscaled,
        temperature=getattr(result.learner, "temperature", None),
        fold_temperatures=result.temperatures,
    )
    return MetricsRecord.from_scores(
        scores,
        uar_fold_mean=mean,
        uar_fold_sd=sd,
        folds=[dataclasses.asdict(f) for f in folds],
        speakers=[
            dataclasses.asdict(s) for s in speaker_metrics(y_true, y_pred, k, speakers, groups)
        ],
        model=name,
        backbone_weights=weights,
        checkpoint=checkpoint,
        protocol=settings.protocol,
        mode=mode,
        n_train=int(np.mean([len(f.train) for f in result.folds])),
        n_val=int(np.mean([len(f.val) for f in result.folds])),
        n_folds=len(result.folds),
        n_bootstrap=settings.n_bootstrap,
        bootstrap_seed=seed,
        calibration=dataclasses.asdict(calibration),
    )


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
    """Write the model folder (weights + :class:`ModelCard`), the headline metrics, the details
    (:class:`MetricsRecord`) and the plots of one evaluation; ``backbone`` is (weights,
    checkpoint), None for the baseline."""
    y_true = data.y[result.test_idx]
    details = details_record(
        name, mode, data, result, settings=settings, seed=seed, backbone=backbone
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
    details.headline().write(outputs.metrics)
    details.write(outputs.details)
    write_model_plots(
        name,
        y_true,
        result.prob,
        data.labels,
        [data.rows[i].clip_id for i in result.test_idx],
        result.history,
        outputs.plots,
        groups=[data.rows[i].group for i in result.test_idx],
        unscaled=result.unscaled,
    )
    summary = {
        "model": name,
        "uar": details.uar,
        "protocol": settings.protocol,
        "mode": mode,
        "n_test": len(result.test_idx),
        "train_seconds": round(result.train_seconds, 2),
    }
    if details.uar_fold_mean is not None:
        summary["uar_fold_mean"] = details.uar_fold_mean
        summary["uar_fold_sd"] = details.uar_fold_sd
    if details.calibration is not None:
        summary["ece"] = round(details.calibration.ece, 4)
        if details.calibration.ece_before_scaling is not None:
            summary["ece_before_scaling"] = round(details.calibration.ece_before_scaling, 4)
            summary["temperature"] = details.calibration.temperature
    log.info("train %s: %s", name, summary)
    return summary
