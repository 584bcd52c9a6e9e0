"""Test-set metrics shared by every model, so that the comparison compares like with like.

All macro averages run over the classes present in ``y_true`` (as scikit-learn's
``balanced_accuracy_score`` does): a class missing from a test split cannot be recalled and would
otherwise pull every model down by the same arbitrary amount. Classes that are absent are still
listed in ``per_class`` with ``support`` 0 and ``null`` where a value is undefined.

Confidence intervals are 95% percentile bootstraps over test items: the test sets here are
small (tens to hundreds of clips), and a difference between two models smaller than the width
of these intervals is not evidence of anything.

:class:`MetricsRecord` is one model's metrics file (``reports/metrics/<model>.json``): the train
stage writes it and the comparison reads it, through this one definition. It holds results
only, never timings, so the same inputs give the same bytes.
"""

from __future__ import annotations

import dataclasses
import json
import math
import types
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

CI_LEVEL = 0.95
# Bootstrap resamples are processed in chunks of about this many drawn indices (bounded memory).
_CHUNK_ELEMENTS = 2_000_000


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
) -> dict[str, Any]:
    """Accuracy, UAR, macro precision/recall/F1/AUC/sensitivity/specificity, per-class values and
    bootstrap intervals, as plain JSON-ready Python values.

    ``y_true``: class indices in ``[0, k)``; ``y_prob``: (n, k) class probabilities (only their
    argmax and per-class ranking matter). ``n_bootstrap=0`` skips the intervals (``null``).
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
        "per_class": per_class,
    }
    result.update(bootstrap_intervals(y_true, y_pred, k, n_bootstrap=n_bootstrap, seed=seed))
    return result


def bootstrap_intervals(
    y_true: np.ndarray, y_pred: np.ndarray, k: int, *, n_bootstrap: int = 1000, seed: int = 0
) -> dict[str, list[float] | None]:
    """95% percentile bootstrap intervals of accuracy, UAR and macro F1 (``*_ci`` keys).

    Each resample draws n test items with replacement; UAR and F1 of a resample average over the
    classes present in that resample, as the point estimates do.
    """
    keys = ("accuracy_ci", "uar_ci", "f1_ci")
    if n_bootstrap <= 0:
        return dict.fromkeys(keys)
    rng = np.random.default_rng(seed)
    n = y_true.size
    correct = (y_true == y_pred).astype(np.int64)
    stats: dict[str, list[np.ndarray]] = {key: [] for key in keys}
    chunk = max(1, _CHUNK_ELEMENTS // n)
    for start in range(0, n_bootstrap, chunk):
        b = min(chunk, n_bootstrap - start)
        idx = rng.integers(0, n, size=(b, n))
        rows = np.repeat(np.arange(b), n)
        true_c = y_true[idx].ravel()
        pred_c = y_pred[idx].ravel()
        hit = correct[idx].ravel()
        true_n = np.bincount(rows * k + true_c, minlength=b * k).reshape(b, k)
        pred_n = np.bincount(rows * k + pred_c, minlength=b * k).reshape(b, k)
        tp = np.bincount(rows * k + true_c, weights=hit, minlength=b * k).reshape(b, k)
        present = true_n > 0
        recall = np.divide(tp, true_n, out=np.zeros((b, k)), where=present)
        denom = true_n + pred_n
        f1 = np.divide(2 * tp, denom, out=np.zeros((b, k)), where=denom > 0)
        n_present = present.sum(axis=1)
        stats["accuracy_ci"].append(hit.reshape(b, n).mean(axis=1))
        stats["uar_ci"].append((recall * present).sum(axis=1) / n_present)
        stats["f1_ci"].append((f1 * present).sum(axis=1) / n_present)
    alpha = (1.0 - CI_LEVEL) / 2.0
    out: dict[str, list[float] | None] = {}
    for key, parts in stats.items():
        low, high = np.quantile(np.concatenate(parts), [alpha, 1.0 - alpha])
        out[key] = [float(low), float(high)]
    return out


# ---------------------------------------------------------------------------------------------
# The metrics record


class MetricsFormatError(ValueError):
    """A metrics file that is not a :class:`MetricsRecord`; the message says what is wrong."""


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


@dataclass(frozen=True)
class MetricsRecord:
    """``reports/metrics/<model>.json``: :func:`classification_metrics` of the test predictions
    plus what was evaluated (model, weights, protocol, mode and the fold sizes)."""

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
    chance_uar: float
    per_class: dict[str, ClassMetrics]
    accuracy_ci: list[float] | None
    uar_ci: list[float] | None
    f1_ci: list[float] | None
    model: str
    backbone_weights: str | None  # random | pretrained; None for the baseline
    checkpoint: str | None
    protocol: str  # holdout | loso
    mode: str  # probe | finetune | baseline
    n_train: int  # mean over folds
    n_val: int
    n_folds: int

    @classmethod
    def from_scores(cls, scores: Mapping[str, Any], **described: Any) -> MetricsRecord:
        """The record of :func:`classification_metrics` output plus the descriptive fields."""
        return cls.from_json({**scores, **described})

    def to_json(self) -> dict[str, Any]:
        """Plain JSON values, keys in field order."""
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, data: Any) -> MetricsRecord:
        """Check types and keys; :class:`MetricsFormatError` names the first problem."""
        if not isinstance(data, Mapping):
            raise MetricsFormatError("a metrics record must be a JSON object")
        names = [f.name for f in dataclasses.fields(cls)]
        missing = [n for n in names if n not in data]
        unknown = sorted(set(data) - set(names))
        if missing or unknown:
            what = [f"lacks {', '.join(missing)}"] if missing else []
            what += [f"has unknown key(s) {', '.join(unknown)}"] if unknown else []
            raise MetricsFormatError(f"the metrics record {' and '.join(what)}")
        hints = typing.get_type_hints(cls)
        values = {n: _checked(n, data[n], hints[n]) for n in names if n != "per_class"}
        per_class = data["per_class"]
        if not isinstance(per_class, Mapping) or len(per_class) < 2:
            raise MetricsFormatError("per_class must map at least 2 class labels to metrics")
        values["per_class"] = {
            str(label): _class_metrics(str(label), m) for label, m in per_class.items()
        }
        return cls(**values)

    def write(self, path: str | Path) -> None:
        from seda.io import write_json_atomic

        write_json_atomic(path, self.to_json())

    @classmethod
    def read(cls, path: str | Path) -> MetricsRecord:
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


def _class_metrics(label: str, data: Any) -> ClassMetrics:
    if not isinstance(data, Mapping):
        raise MetricsFormatError(f"per_class[{label!r}] must be a JSON object")
    names = [f.name for f in dataclasses.fields(ClassMetrics)]
    if sorted(data) != sorted(names):
        raise MetricsFormatError(f"per_class[{label!r}] must have exactly {', '.join(names)}")
    hints = typing.get_type_hints(ClassMetrics)
    return ClassMetrics(**{n: _checked(f"{label}.{n}", data[n], hints[n]) for n in names})


def _checked(name: str, value: Any, hint: Any) -> Any:
    """``value`` if it is of type ``hint`` (ints pass as floats, never bools as numbers)."""
    union = isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union
    args = typing.get_args(hint) if union else ()
    if value is None:
        if type(None) in args:
            return None
        raise MetricsFormatError(f"{name} must not be null")
    base = next((a for a in args if a is not type(None)), hint) if args else hint
    origin = typing.get_origin(base)
    if origin is list:
        ok = isinstance(value, list) and len(value) == 2 and all(_is_number(v) for v in value)
        if not ok:
            raise MetricsFormatError(f"{name} must be a [low, high] pair of numbers")
        return [float(v) for v in value]
    if base is float:
        if not _is_number(value) or not math.isfinite(value):
            raise MetricsFormatError(f"{name} must be a finite number, got {value!r}")
        return value
    if base is int:
        if not isinstance(value, int) or isinstance(value, bool):
            raise MetricsFormatError(f"{name} must be an integer, got {value!r}")
        return value
    if base is str:
        if not isinstance(value, str):
            raise MetricsFormatError(f"{name} must be a string, got {value!r}")
        return value
    raise TypeError(f"no check for {hint}")  # pragma: no cover - a field type added above


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)
