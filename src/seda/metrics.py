"""Test-set metrics shared by every model, so that the comparison compares like with like.

All macro averages run over the classes present in ``y_true`` (as scikit-learn's
``balanced_accuracy_score`` does): a class missing from a test split cannot be recalled and would
otherwise pull every model down by the same arbitrary amount. Classes that are absent are still
listed in ``per_class`` with ``support`` 0 and ``null`` where a value is undefined.

Confidence intervals are 95% percentile bootstraps. Clips of one speaker (or one video) are not
independent of each other, so when the test set holds two or more split groups (the ``group``
column of the split: speakers joined by shared videos) the bootstrap resamples whole groups with
replacement and pools their clips (a cluster bootstrap); with a single test group it falls back to
resampling clips, and the record says which (``interval_method``). A difference between two
models smaller than the width of these intervals is not evidence of anything;
:func:`paired_uar_difference` compares two models on the same clips.

Two records, each one typed definition used by its writer and its readers:

- :class:`HeadlineMetrics`, ``reports/metrics/<model>.json``: the few figures a reviewer compares
  (the DVC metric): UAR with its interval, accuracy, macro F1, macro AUC, ``n_test`` and, for a
  leave-one-group-out run, the mean and standard deviation of the per-fold UAR.
- :class:`MetricsRecord`, ``reports/details/<model>.json``: everything else as well (per class,
  intervals of other metrics, per fold, per speaker with its confusion matrix, chance levels,
  calibration: expected calibration error, reliability table and temperature, what was evaluated
  and how); not a DVC metric.

Both hold results only, never timings, so the same inputs give the same bytes.
"""

from __future__ import annotations

import dataclasses
import json
import typing
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.metrics import (
    accuracy_score,
    multilabel_confusion_matrix,
    precision_recall_fscore_support,
    roc_auc_score,
)

from seda.records import RecordFormatError, coerce

CI_LEVEL = 0.95
# Bootstrap resamples are processed in chunks of about this many drawn indices (bounded memory).
_CHUNK_ELEMENTS = 2_000_000
# How an interval was obtained (``MetricsRecord.interval_method``).
INTERVAL_GROUPS = "group bootstrap: test groups (speakers) resampled"
INTERVAL_CLIPS = "clip bootstrap: fewer than 2 test groups, clips resampled"
INTERVAL_NONE = "none: n_bootstrap is 0"


def check_predictions(
    y_true: np.ndarray, y_prob: np.ndarray, labels: Sequence[str]
) -> tuple[np.ndarray, np.ndarray]:
    """Validate and return ``(y_true as int64 (n,), y_prob as float64 (n, k))``.

    Raises ValueError with one message naming what is wrong (shapes, label range, non-finite
    scores), since a silent broadcast here would produce plausible but wrong numbers.
    """
    y_true = np.asarray(y_true)
    y_prob = np.asarray(y_prob, dtype=np.float64)
    k = len(labels)
    if k < 2:
        raise ValueError(f"need at least 2 class labels, got {list(labels)}")
    if len(set(labels)) != k:
        raise ValueError(f"class labels must be unique, got {list(labels)}")
    if y_true.ndim != 1 or y_true.size == 0:
        raise ValueError(f"y_true must be a non-empty 1-d array, got shape {y_true.shape}")
    if not np.issubdtype(y_true.dtype, np.integer):
        if not np.all(np.mod(y_true, 1) == 0):
            raise ValueError("y_true must hold integer class indices")
        y_true = y_true.astype(np.int64)
    if y_prob.shape != (y_true.size, k):
        raise ValueError(
            f"y_prob must have shape (n, k) = ({y_true.size}, {k}), got {y_prob.shape}"
        )
    if y_true.min() < 0 or y_true.max() >= k:
        raise ValueError(f"y_true values must lie in [0, {k}), got {y_true.min()}..{y_true.max()}")
    if not np.all(np.isfinite(y_prob)):
        raise ValueError("y_prob holds NaN or infinite values")
    return y_true.astype(np.int64), y_prob


def classification_metrics(
    y_true: np.ndarray,
    y_prob: np.ndarray,
    labels: Sequence[str],
    *,
    n_bootstrap: int = 1000,
    seed: int = 0,
    groups: Sequence[str] | None = None,
) -> dict[str, Any]:
    """Accuracy, UAR, macro precision/recall/F1/AUC/sensitivity/specificity, per-class values,
    chance levels and bootstrap intervals, as plain JSON-ready Python values.

    ``y_true``: class indices in ``[0, k)``; ``y_prob``: (n, k) class probabilities (only their
    argmax and per-class ranking matter). ``groups``: each clip's split group; with two or more
    distinct groups the intervals resample groups, else clips. ``n_bootstrap=0`` skips the
    intervals (``null``).
    """
    y_true, y_prob = check_predictions(y_true, y_prob, labels)
    k = len(labels)
    n = y_true.size
    y_pred = y_prob.argmax(axis=1)
    all_classes = np.arange(k)
    support = np.bincount(y_true, minlength=k)
    present = all_classes[support > 0]

    precision, recall, f1, _ = precision_recall_fscore_support(
        y_true, y_pred, labels=all_classes, average=None, zero_division=0
    )
    mcm = multilabel_confusion_matrix(y_true, y_pred, labels=all_classes)
    tn, fp = mcm[:, 0, 0], mcm[:, 0, 1]
    specificity = np.divide(tn, tn + fp, out=np.zeros(k), where=(tn + fp) > 0)

    auc = np.full(k, np.nan)
    for c in all_classes:
        if 0 < support[c] < n:  # one-vs-rest AUC needs positives and negatives
            auc[c] = roc_auc_score(y_true == c, y_prob[:, c])
    auc_usable = ~np.isnan(auc)

    per_class: dict[str, dict[str, Any]] = {}
    for c, label in enumerate(labels):
        has = bool(support[c])
        per_class[str(label)] = {
            "precision": float(precision[c]),
            "recall": float(recall[c]) if has else None,
            "f1": float(f1[c]),
            "sensitivity": float(recall[c]) if has else None,
            "specificity": float(specificity[c]),
            "auc": float(auc[c]) if auc_usable[c] else None,
            "support": int(support[c]),
        }

    uar = float(recall[present].mean())
    majority = int(support.argmax())
    result: dict[str, Any] = {
        "accuracy": float(accuracy_score(y_true, y_pred)),
        "uar": uar,
        "precision": float(precision[present].mean()),
        "recall": uar,
        "f1": float(f1[present].mean()),
        "auc": float(auc[auc_usable].mean()) if auc_usable.any() else None,
        "auc_classes": int(auc_usable.sum()),
        "sensitivity": uar,
        "specificity": float(specificity[present].mean()),
        "n_test": int(n),
        "n_classes": int(k),
        "classes_present": int(present.size),
        "chance_uar": 1.0 / k,
        "majority_class": str(labels[majority]),
        "majority_accuracy": float(support[majority] / n),
        "per_class": per_class,
    }
    if groups is not None and len(groups) != n:
        raise ValueError(f"got {len(groups)} groups for {n} predictions")
    n_groups = len(set(groups)) if groups is not None else 0
    by_group = n_groups >= 2
    result.update(
        bootstrap_intervals(
            y_true,
            y_pred,
            k,
            n_bootstrap=n_bootstrap,
            seed=seed,
            groups=groups if by_group else None,
        )
    )
    result["interval_method"] = (
        INTERVAL_NONE if n_bootstrap <= 0 else INTERVAL_GROUPS if by_group else INTERVAL_CLIPS
    )
    result["n_test_groups"] = n_groups
    return result


# ---------------------------------------------------------------------------------------------
# Bootstraps: clips or whole groups (a cluster bootstrap), and paired differences


def _units(n: int, groups: Sequence[str] | None) -> tuple[np.ndarray, int]:
    """Each clip's resampling unit (its group, or itself) as an index, and the number of units."""
    if groups is None:
        return np.arange(n), n
    names, units = np.unique(np.asarray([str(g) for g in groups]), return_inverse=True)
    return units.astype(np.int64), len(names)


def _unit_sums(units: np.ndarray, n_units: int, columns: np.ndarray) -> np.ndarray:
    """(n_units, m): the sum of each column of ``columns`` (n, m) over each unit's clips."""
    out = np.zeros((n_units, columns.shape[1]))
    np.add.at(out, units, columns)
    return out


def _resampled_sums(table: np.ndarray, n_bootstrap: int, seed: int) -> np.ndarray:
    """(n_bootstrap, m): per resample, the column sums of ``table`` (n_units, m) over n_units
    units drawn with replacement (seeded; drawn in chunks of bounded size)."""
    n_units = table.shape[0]
    rng = np.random.default_rng(seed)
    chunk = max(1, _CHUNK_ELEMENTS // n_units)
    parts = []
    for start in range(0, n_bootstrap, chunk):
        b = min(chunk, n_bootstrap - start)
        idx = rng.integers(0, n_units, size=(b, n_units))
        rows = np.repeat(np.arange(b), n_units)
        weights = np.bincount(rows * n_units + idx.ravel(), minlength=b * n_units)
        # Integer counts times integer sums: exact in float64, whatever the summation order.
        parts.append(weights.reshape(b, n_units).astype(np.float64) @ table)
    return np.concatenate(parts)


def _class_columns(y: np.ndarray, k: int) -> np.ndarray:
    return (y[:, None] == np.arange(k)[None, :]).astype(np.float64)


def _macro_uar(true_n: np.ndarray, tp: np.ndarray) -> np.ndarray:
    """Mean recall over the classes present, per row of (b, k) counts."""
    present = true_n > 0
    recall = np.divide(tp, true_n, out=np.zeros(true_n.shape), where=present)
    return (recall * present).sum(axis=1) / present.sum(axis=1)


def _interval(values: np.ndarray) -> list[float]:
    alpha = (1.0 - CI_LEVEL) / 2.0
    low, high = np.quantile(values, [alpha, 1.0 - alpha])
    return [float(low), float(high)]


def bootstrap_intervals(
    y_true: np.ndarray,
    y_pred: np.ndarray,
    k: int,
    *,
    n_bootstrap: int = 1000,
    seed: int = 0,
    groups: Sequence[str] | None = None,
) -> dict[str, list[float] | None]:
    """95% percentile bootstrap intervals of accuracy, UAR and macro F1 (``*_ci`` keys).

    Without ``groups`` each resample draws n test clips with replacement. With ``groups`` (one
    name per clip) it draws as many groups as there are, with replacement, and pools their clips
    (a cluster bootstrap: clips of one speaker rise and fall together). UAR and F1 of a resample
    average over the classes present in that resample, as the point estimates do.
    """
    keys = ("accuracy_ci", "uar_ci", "f1_ci")
    if n_bootstrap <= 0:
        return dict.fromkeys(keys)
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    units, n_units = _units(y_true.size, groups)
    hit = (y_true == y_pred).astype(np.float64)
    columns = np.concatenate(
        [
            _class_columns(y_true, k),  # true_n
            _class_columns(y_pred, k),  # pred_n
            _class_columns(y_true, k) * hit[:, None],  # tp
            hit[:, None],
            np.ones((y_true.size, 1)),
        ],
        axis=1,
    )
    sums = _resampled_sums(_unit_sums(units, n_units, columns), n_bootstrap, seed)
    true_n, pred_n, tp = sums[:, :k], sums[:, k : 2 * k], sums[:, 2 * k : 3 * k]
    present = true_n > 0
    denom = true_n + pred_n
    f1 = np.divide(2 * tp, denom, out=np.zeros(tp.shape), where=denom > 0)
    return {
        "accuracy_ci": _interval(sums[:, 3 * k] / sums[:, 3 * k + 1]),
        "uar_ci": _interval(_macro_uar(true_n, tp)),
        "f1_ci": _interval((f1 * present).sum(axis=1) / present.sum(axis=1)),
    }


@dataclass(frozen=True)
class PairedDifference:
    """UAR(a) − UAR(b) on the same clips and its 95% paired bootstrap interval."""

    delta: float
    low: float
    high: float
    resampled: str  # groups | clips
    n_units: int  # groups or clips resampled

    @property
    def clear(self) -> bool:
        """Whether the interval excludes 0."""
        return self.low > 0 or self.high < 0


def paired_uar_difference(
    y_true: np.ndarray,
    pred_a: np.ndarray,
    pred_b: np.ndarray,
    k: int,
    *,
    groups: Sequence[str] | None = None,
    n_bootstrap: int = 2000,
    seed: int = 0,
) -> PairedDifference:
    """UAR of predictions ``a`` minus UAR of ``b`` on the same clips, with a paired bootstrap.

    Each resample scores both models on the same draw (of groups when ``groups`` names two or
    more, else of clips), so the interval measures the difference, not the spread of the test
    set.
    """
    y_true, pred_a, pred_b = map(np.asarray, (y_true, pred_a, pred_b))
    if not y_true.size == pred_a.size == pred_b.size:
        raise ValueError("paired predictions must cover the same clips")
    by_group = groups is not None and len(set(groups)) >= 2
    units, n_units = _units(y_true.size, groups if by_group else None)
    true_c = _class_columns(y_true, k)
    columns = np.concatenate(
        [true_c, true_c * (pred_a == y_true)[:, None], true_c * (pred_b == y_true)[:, None]],
        axis=1,
    )
    whole = columns.sum(axis=0)[None, :]

    def delta(sums: np.ndarray) -> np.ndarray:
        true_n = sums[:, :k]
        return _macro_uar(true_n, sums[:, k : 2 * k]) - _macro_uar(true_n, sums[:, 2 * k :])

    point = float(delta(whole)[0])
    if n_bootstrap <= 0:
        low = high = point
    else:
        sums = _resampled_sums(_unit_sums(units, n_units, columns), n_bootstrap, seed)
        low, high = _interval(delta(sums))
    return PairedDifference(point, low, high, "groups" if by_group else "clips", n_units)


# ---------------------------------------------------------------------------------------------
# By speaker and by fold


def subset_scores(y_true: np.ndarray, y_pred: np.ndarray, k: int) -> dict[str, Any]:
    """``n``, ``uar`` (over the classes present), ``accuracy`` and the confusion matrix (rows
    actual, columns predicted) of some predictions."""
    confusion = np.zeros((k, k), dtype=np.int64)
    np.add.at(confusion, (y_true, y_pred), 1)
    true_n = confusion.sum(axis=1)
    uar = _macro_uar(true_n[None, :].astype(float), np.diag(confusion)[None, :].astype(float))
    return {
        "n": int(y_true.size),
        "uar": float(uar[0]),
        "accuracy": float(np.trace(confusion) / y_true.size),
        "confusion": confusion.tolist(),
    }


@dataclass(frozen=True)
class SpeakerMetrics:
    """One test speaker's clips; ``confusion``: rows actual, columns predicted, in the order of
    the record's ``per_class``."""

    speaker: str
    group: str
    n: int
    uar: float
    accuracy: float
    confusion: list[list[int]]


@dataclass(frozen=True)
class FoldMetrics:
    """One leave-one-group-out fold: the groups and speakers it held out and its test UAR."""

    fold: int
    groups: list[str]
    speakers: list[str]
    n: int
    uar: float
    accuracy: float


def speaker_metrics(
    y_true: np.ndarray,
    y_pred: np.ndarray,
    k: int,
    speakers: Sequence[str],
    groups: Sequence[str],
) -> list[SpeakerMetrics]:
    """Scores per test speaker, sorted by speaker."""
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    speakers_arr = np.asarray([str(s) for s in speakers])
    out = []
    for speaker in sorted(set(speakers_arr.tolist())):
        mask = speakers_arr == speaker
        group = sorted({str(g) for g, m in zip(groups, mask, strict=True) if m})
        out.append(
            SpeakerMetrics(
                speaker=speaker,
                group="+".join(group),
                **subset_scores(y_true[mask], y_pred[mask], k),
            )
        )
    return out


def fold_metrics(
    y_true: np.ndarray,
    y_pred: np.ndarray,
    k: int,
    folds: Sequence[int],
    groups: Sequence[str],
    speakers: Sequence[str],
) -> list[FoldMetrics]:
    """Scores per held-out fold (each clip's fold id), sorted by fold."""
    y_true, y_pred, fold_arr = np.asarray(y_true), np.asarray(y_pred), np.asarray(folds)
    out = []
    for fold in sorted(set(fold_arr.tolist())):
        mask = fold_arr == fold
        scores = subset_scores(y_true[mask], y_pred[mask], k)
        out.append(
            FoldMetrics(
                fold=int(fold),
                groups=sorted({str(g) for g, m in zip(groups, mask, strict=True) if m}),
                speakers=sorted({str(s) for s, m in zip(speakers, mask, strict=True) if m}),
                n=scores["n"],
                uar=scores["uar"],
                accuracy=scores["accuracy"],
            )
        )
    return out


def fold_spread(folds: Sequence[FoldMetrics]) -> tuple[float | None, float | None]:
    """Mean and sample standard deviation (n − 1) of the per-fold UAR; None without two folds."""
    if len(folds) < 2:
        return None, None
    uar = np.array([f.uar for f in folds])
    return float(uar.mean()), float(uar.std(ddof=1))


# ---------------------------------------------------------------------------------------------
# Calibration: does a top probability of 0.8 come true 80% of the time?

# Equal-width bins of top-label confidence for the ECE and the reliability table.
ECE_BINS = 15
# What made a record's test probabilities (``CalibrationMetrics.method``).
CALIBRATION_TEMPERATURE = "temperature"  # neural heads: softmax(logits / T), T fitted on val
CALIBRATION_NONE = "none"  # the model's own probabilities (the baseline's are Platt-scaled)
# Temperatures searched (a bounded search over 1/T); rounded to this many significant digits.
TEMPERATURE_RANGE = (0.05, 20.0)
TEMPERATURE_DIGITS = 4


@dataclass(frozen=True)
class ReliabilityBin:
    """The test clips whose top-label confidence (highest probability) lies in bin ``bin`` of
    ``n_bins`` equal-width bins, ``(bin / n_bins, (bin + 1) / n_bins]``: their mean confidence,
    their accuracy (share whose top label is right) and their number."""

    bin: int
    confidence: float
    accuracy: float
    count: int


def _top_label(
    y_true: np.ndarray, proba: np.ndarray, n_bins: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Each clip's top-label confidence, whether its top label is right, and its bin."""
    if n_bins < 1:
        raise ValueError(f"n_bins must be >= 1, got {n_bins}")
    proba = np.asarray(proba, dtype=np.float64)
    k = proba.shape[1] if proba.ndim == 2 else 0
    y_true, proba = check_predictions(y_true, proba, [str(c) for c in range(max(k, 2))])
    confidence = proba.max(axis=1)
    correct = (proba.argmax(axis=1) == y_true).astype(np.float64)
    # Right-closed bins: a confidence on an edge belongs to the bin below it.
    interior = np.linspace(0.0, 1.0, n_bins + 1)[1:-1]
    return confidence, correct, np.searchsorted(interior, confidence, side="left")


def reliability_bins(
    y_true: np.ndarray, proba: np.ndarray, n_bins: int = ECE_BINS
) -> list[ReliabilityBin]:
    """The reliability table of top-label predictions: one row per non-empty bin, in order (a
    bin without clips has no confidence or accuracy). A calibrated model's rows lie on the
    diagonal (accuracy = confidence); below it, the model is over-confident."""
    confidence, correct, bins = _top_label(y_true, proba, n_bins)
    out = []
    for b in range(n_bins):
        mask = bins == b
        if mask.any():
            out.append(
                ReliabilityBin(
                    bin=b,
                    confidence=float(confidence[mask].mean()),
                    accuracy=float(correct[mask].mean()),
                    count=int(mask.sum()),
                )
            )
    return out


def expected_calibration_error(
    y_true: np.ndarray, proba: np.ndarray, n_bins: int = ECE_BINS
) -> float:
    """Top-label expected calibration error with ``n_bins`` equal-width bins (Guo et al. 2017):
    the mean over clips of |accuracy − mean confidence| of the clip's bin, i.e. the sum over
    bins of (count / n) · |accuracy − confidence|. 0 is perfectly calibrated; at most 1."""
    table = reliability_bins(y_true, proba, n_bins)
    n = sum(b.count for b in table)
    return float(sum(b.count * abs(b.accuracy - b.confidence) for b in table) / n)


def mean_nll(y_true: np.ndarray, proba: np.ndarray) -> float:
    """Mean negative log-likelihood of the true class (probabilities clipped at 1e-12)."""
    proba = np.asarray(proba, dtype=np.float64)
    y_true = np.asarray(y_true, dtype=np.int64)
    picked = proba[np.arange(y_true.size), y_true]
    return float(-np.mean(np.log(np.clip(picked, 1e-12, 1.0))))


def softmax(logits: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    """Row-wise softmax of ``logits / temperature`` in float64 (argmax never changes with T)."""
    if not temperature > 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    z = np.asarray(logits, dtype=np.float64) / temperature
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def fit_temperature(logits: np.ndarray, y: np.ndarray) -> float:
    """The temperature T > 0 that minimises the mean NLL of ``softmax(logits / T)`` on the rows
    (validation rows: temperature scaling, Guo et al. 2017), within :data:`TEMPERATURE_RANGE`
    and rounded to :data:`TEMPERATURE_DIGITS` significant digits.

    The mean NLL is convex in 1/T (a log-sum-exp of linear functions minus a linear one), so a
    bounded Brent search over 1/T finds its one minimum; the search is deterministic. A single
    T divides every logit alike: the argmax, and so accuracy, UAR and F1, stay the same (and a
    2-class AUC; a one-vs-rest AUC of more classes may move slightly, since a class's scaled
    probability is not a monotone function of its unscaled one across clips). Without rows,
    T = 1.
    """
    from scipy.optimize import minimize_scalar
    from scipy.special import logsumexp

    z = np.asarray(logits, dtype=np.float64)
    y = np.asarray(y, dtype=np.int64)
    if z.ndim != 2 or y.shape != (z.shape[0],):
        raise ValueError(f"need (n, k) logits and n labels, got {z.shape} and {y.shape}")
    if z.shape[0] == 0:
        return 1.0
    if not np.all(np.isfinite(z)):
        raise ValueError("logits hold NaN or infinite values")
    z = z - z.max(axis=1, keepdims=True)
    z_true = z[np.arange(y.size), y]

    def nll(beta: float) -> float:
        return float(np.mean(logsumexp(beta * z, axis=1) - beta * z_true))

    low, high = TEMPERATURE_RANGE
    found = minimize_scalar(
        nll, bounds=(1.0 / high, 1.0 / low), method="bounded", options={"xatol": 1e-7}
    )
    return float(f"{1.0 / float(found.x):.{TEMPERATURE_DIGITS}g}")


@dataclass(frozen=True)
class CalibrationMetrics:
    """How well the test probabilities' confidence matches their accuracy.

    ``method``: :data:`CALIBRATION_TEMPERATURE` (probe and finetune: one temperature per trained
    model, fitted on its own validation rows, divides the logits) or :data:`CALIBRATION_NONE`
    (the baseline's own probabilities, already Platt-scaled inside its training folds).
    ``ece``, ``nll`` and ``reliability`` describe the probabilities reported (after scaling);
    ``*_before_scaling`` the unscaled softmax (temperature only). ``temperature``: the
    deployable model's (the one in model.json); ``fold_temperatures``: the temperature of each
    model that predicted test rows (one per leave-one-group-out fold, in fold order; the
    holdout model's alone otherwise).
    """

    method: str
    n_bins: int
    ece: float
    nll: float
    ece_before_scaling: float | None
    nll_before_scaling: float | None
    temperature: float | None
    fold_temperatures: list[float]
    reliability: list[ReliabilityBin]


def calibration_metrics(
    y_true: np.ndarray,
    proba: np.ndarray,
    *,
    unscaled: np.ndarray | None = None,
    temperature: float | None = None,
    fold_temperatures: Sequence[float] = (),
    n_bins: int = ECE_BINS,
) -> CalibrationMetrics:
    """The calibration record of test probabilities ``proba``; ``unscaled``: the same rows'
    probabilities before temperature scaling (neural heads), None for a model without it."""
    scaled = unscaled is not None
    return CalibrationMetrics(
        method=CALIBRATION_TEMPERATURE if scaled else CALIBRATION_NONE,
        n_bins=n_bins,
        ece=expected_calibration_error(y_true, proba, n_bins),
        nll=mean_nll(y_true, proba),
        ece_before_scaling=expected_calibration_error(y_true, unscaled, n_bins) if scaled else None,
        nll_before_scaling=mean_nll(y_true, unscaled) if scaled else None,
        temperature=temperature,
        fold_temperatures=[float(t) for t in fold_temperatures],
        reliability=reliability_bins(y_true, proba, n_bins),
    )


# ---------------------------------------------------------------------------------------------
# The records


class MetricsFormatError(RecordFormatError):
    """A metrics file that is not a :class:`HeadlineMetrics` / :class:`MetricsRecord`; the
    message says what is wrong."""


@dataclass(frozen=True)
class ClassMetrics:
    """One class, one-vs-rest; ``None`` where undefined (a class absent from the test set)."""

    precision: float
    recall: float | None
    f1: float
    sensitivity: float | None
    specificity: float
    auc: float | None
    support: int


class JsonRecord:
    """Reading and writing a frozen dataclass as one JSON object, with its types checked."""

    # Keys left out of the file when None (fields with a default: a reader accepts them absent).
    OPTIONAL: typing.ClassVar[tuple[str, ...]] = ()

    def to_json(self) -> dict[str, Any]:
        """Plain JSON values, keys in field order."""
        data = dataclasses.asdict(self)  # type: ignore[call-overload]
        return {k: v for k, v in data.items() if not (k in self.OPTIONAL and v is None)}

    @classmethod
    def from_json(cls, data: Any) -> Any:
        """Check types and keys; :class:`MetricsFormatError` names the first problem."""
        return coerce(data, cls, "", MetricsFormatError)

    def write(self, path: str | Path) -> None:
        from seda.io import write_json_atomic

        write_json_atomic(path, self.to_json())

    @classmethod
    def read(cls, path: str | Path) -> Any:
        """Read a metrics file; OSError when unreadable, MetricsFormatError when malformed."""
        path = Path(path)
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as err:
            raise MetricsFormatError(f"{path} is not valid JSON: {err}") from err
        try:
            return cls.from_json(data)
        except MetricsFormatError as err:
            raise MetricsFormatError(f"{path}: {err}") from err


@dataclass(frozen=True)
class HeadlineMetrics(JsonRecord):
    """``reports/metrics/<model>.json``, the DVC metric: one flat record of numbers.

    ``uar_low``/``uar_high``: its 95% bootstrap interval (null when no bootstrap ran);
    ``auc``: macro one-vs-rest AUC (null when no class has one); ``uar_fold_mean`` and
    ``uar_fold_sd``: leave-one-group-out runs only (absent from the file otherwise).
    """

    OPTIONAL: typing.ClassVar[tuple[str, ...]] = ("uar_fold_mean", "uar_fold_sd")

    uar: float
    uar_low: float | None
    uar_high: float | None
    accuracy: float
    f1: float
    auc: float | None
    n_test: int
    uar_fold_mean: float | None = None
    uar_fold_sd: float | None = None


@dataclass(frozen=True)
class MetricsRecord(JsonRecord):
    """``reports/details/<model>.json``: :func:`classification_metrics` of the test predictions,
    the per-fold and per-speaker tables, and what was evaluated (model, weights, protocol, mode,
    fold sizes, bootstrap settings), and the calibration of the test probabilities
    (:class:`CalibrationMetrics`; absent from a record made without it). Its :meth:`headline` is
    the metrics file."""

    OPTIONAL: typing.ClassVar[tuple[str, ...]] = ("calibration",)

    accuracy: float
    uar: float
    precision: float
    recall: float
    f1: float
    auc: float | None
    auc_classes: int
    sensitivity: float
    specificity: float
    n_test: int
    n_classes: int
    classes_present: int
    chance_uar: float  # 1/k: the UAR of guessing, or of always answering one class
    majority_class: str  # the test set's most frequent class
    majority_accuracy: float  # accuracy of always answering it
    per_class: dict[str, ClassMetrics]
    accuracy_ci: list[float] | None
    uar_ci: list[float] | None
    f1_ci: list[float] | None
    interval_method: str  # INTERVAL_GROUPS | INTERVAL_CLIPS | INTERVAL_NONE
    n_test_groups: int
    uar_fold_mean: float | None  # leave-one-group-out: mean of the per-fold UAR
    uar_fold_sd: float | None  # ... and their sample standard deviation
    folds: list[FoldMetrics]  # leave-one-group-out only (empty for holdout)
    speakers: list[SpeakerMetrics]
    model: str
    backbone_weights: str | None  # random | pretrained; None for the baseline
    checkpoint: str | None
    protocol: str  # holdout | loso
    mode: str  # probe | finetune | baseline
    n_train: int  # mean over folds
    n_val: int
    n_folds: int
    n_bootstrap: int
    bootstrap_seed: int
    calibration: CalibrationMetrics | None = None

    def __post_init__(self) -> None:
        if len(self.per_class) < 2:
            raise MetricsFormatError("per_class must map at least 2 class labels to metrics")
        for name in ("accuracy_ci", "uar_ci", "f1_ci"):
            interval = getattr(self, name)
            if interval is not None and len(interval) != 2:
                raise MetricsFormatError(f"{name} must be a [low, high] pair of numbers")

    @classmethod
    def from_scores(cls, scores: Mapping[str, Any], **described: Any) -> MetricsRecord:
        """The record of :func:`classification_metrics` output plus the other fields."""
        return cls.from_json({**scores, **described})

    @property
    def labels(self) -> list[str]:
        return list(self.per_class)

    def headline(self) -> HeadlineMetrics:
        """The review figures, rounded to :data:`HEADLINE_DECIMALS` (the details keep full
        precision): a third decimal is below any interval's width, and shorter numbers keep
        ``dvc metrics show`` within 120 columns."""
        low, high = self.uar_ci if self.uar_ci is not None else (None, None)
        return HeadlineMetrics(
            uar=_round(self.uar),
            uar_low=_round(low),
            uar_high=_round(high),
            accuracy=_round(self.accuracy),
            f1=_round(self.f1),
            auc=_round(self.auc),
            n_test=self.n_test,
            uar_fold_mean=_round(self.uar_fold_mean),
            uar_fold_sd=_round(self.uar_fold_sd),
        )


HEADLINE_DECIMALS = 3


def _round(value: float | None) -> float | None:
    return None if value is None else round(float(value), HEADLINE_DECIMALS)
