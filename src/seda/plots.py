"""Per-model evaluation plots: CSV data for ``dvc plots`` plus PNG copies for reports.

Files in ``reports/plots/<model>/`` (every file is always written, so DVC outputs and plot
definitions never point at a missing file):

- ``predictions.csv``: ``clip_id, actual, predicted`` (label names; DVC's confusion templates)
  and, when given, ``group`` (the clip's split group, for bootstraps that resample groups).
- ``roc.csv``: ``fpr`` on a fixed grid of 101 points in [0, 1], one ``tpr_<label>`` column per
  class and ``tpr_macro`` (mean over the classes with a defined curve). A fixed grid gives every
  model and every revision the same x values, so ``dvc plots diff`` overlays them; ``tpr_macro``
  lets a ``dvc.yaml`` plot definition stay independent of the dataset's labels. A class without
  a defined curve (absent from the test set, or the only class in it) has empty cells.
- ``history.csv``: ``epoch, train_loss, val_loss, val_uar``; header only for models fitted in
  one step (the scikit-learn baseline), which DVC renders as an empty plot.
- ``reliability.csv``: ``bin, confidence, accuracy, count``, one row per non-empty bin of
  :data:`~seda.metrics.ECE_BINS` equal-width bins of top-label confidence
  (:func:`seda.metrics.reliability_bins`) of the probabilities reported (temperature-scaled for
  the neural heads).
- ``confusion.png``, ``roc.png``, ``history.png``, ``reliability.png`` (the reliability diagram
  with the ECE, before and after temperature scaling when given, and the clips per bin).

Figures use ``matplotlib.figure.Figure`` directly (Agg canvas, no pyplot global state). Every
figure seda writes (these, the dataset figures, the comparison chart, ``seda predict``'s timeline)
goes through :func:`save_figure`, so the same figure always gives the same bytes.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import matplotlib
import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator
from sklearn.metrics import ConfusionMatrixDisplay, confusion_matrix, roc_auc_score, roc_curve

from seda.io import atomic_path, write_csv_atomic
from seda.metrics import (
    ECE_BINS,
    ReliabilityBin,
    check_predictions,
    expected_calibration_error,
    reliability_bins,
)
from seda.palette import label_colours

# Files only, never a window: the same renderer (and so the same pixels) everywhere.
matplotlib.use("Agg")

HISTORY_COLUMNS = ("epoch", "train_loss", "val_loss", "val_uar")
RELIABILITY_COLUMNS = ("bin", "confidence", "accuracy", "count")
FPR_GRID = np.linspace(0.0, 1.0, 101)
DPI = 150
# Metadata that would differ between runs or machines (software version, dates), left out.
_METADATA: dict[str, dict[str, None]] = {
    "png": {"Software": None},
    "svg": {"Creator": None, "Date": None},
    "pdf": {"Creator": None, "Producer": None, "CreationDate": None, "ModDate": None},
}


def write_model_plots(
    model: str,
    y_true: np.ndarray,
    y_prob: np.ndarray,
    labels: Sequence[str],
    clip_ids: Sequence[str],
    history: Sequence[Mapping[str, Any]] | None,
    out_dir: Path,
    *,
    groups: Sequence[str] | None = None,
    unscaled: np.ndarray | None = None,
) -> None:
    """Write the CSV files and PNG figures of one model's test predictions into ``out_dir``.

    ``history``: one mapping per epoch with keys of :data:`HISTORY_COLUMNS` (missing values are
    left empty), or None/empty for a model without epochs. ``groups``: each clip's split group
    (a ``group`` column of predictions.csv). ``unscaled``: the same clips' probabilities before
    temperature scaling (drawn in the reliability diagram beside the reported ones).
    """
    y_true, y_prob = check_predictions(y_true, y_prob, labels)
    if len(clip_ids) != y_true.size:
        raise ValueError(f"got {len(clip_ids)} clip ids for {y_true.size} predictions")
    if groups is not None and len(groups) != y_true.size:
        raise ValueError(f"got {len(groups)} groups for {y_true.size} predictions")
    if unscaled is not None:
        unscaled = check_predictions(y_true, unscaled, labels)[1]
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    labels = [str(label) for label in labels]
    y_pred = y_prob.argmax(axis=1)
    history = list(history or [])

    predictions = [
        {"clip_id": cid, "actual": labels[t], "predicted": labels[p]}
        for cid, t, p in zip(clip_ids, y_true, y_pred, strict=True)
    ]
    columns = ["clip_id", "actual", "predicted"]
    if groups is not None:
        columns.append("group")
        for row, group in zip(predictions, groups, strict=True):
            row["group"] = group
    write_csv_atomic(out_dir / "predictions.csv", predictions, columns)
    curves = roc_on_grid(y_true, y_prob, len(labels))
    write_csv_atomic(out_dir / "roc.csv", _roc_rows(curves, labels), roc_columns(labels))
    write_csv_atomic(out_dir / "history.csv", history, HISTORY_COLUMNS)
    table = reliability_bins(y_true, y_prob, ECE_BINS)
    write_csv_atomic(out_dir / "reliability.csv", reliability_rows(table), RELIABILITY_COLUMNS)

    save_figure(confusion_figure(model, y_true, y_pred, labels), out_dir / "confusion.png")
    save_figure(roc_figure(model, y_true, y_prob, labels), out_dir / "roc.png")
    save_figure(history_figure(model, history), out_dir / "history.png")
    save_figure(
        reliability_figure(model, y_true, y_prob, unscaled=unscaled),
        out_dir / "reliability.png",
    )


def reliability_rows(table: Sequence[ReliabilityBin]) -> list[dict[str, Any]]:
    """Rows of reliability.csv (values rounded to 6 decimals, as in roc.csv)."""
    return [
        {
            "bin": b.bin,
            "confidence": round(b.confidence, 6),
            "accuracy": round(b.accuracy, 6),
            "count": b.count,
        }
        for b in table
    ]


def roc_columns(labels: Sequence[str]) -> list[str]:
    return ["fpr", *(f"tpr_{label}" for label in labels), "tpr_macro"]


def roc_on_grid(y_true: np.ndarray, y_prob: np.ndarray, k: int) -> np.ndarray:
    """One-vs-rest true positive rate of each class at :data:`FPR_GRID`, shape (k, 101).

    Between ROC points the curve is linear; at an fpr where the curve jumps, the upper value is
    taken. Rows are NaN for classes whose curve is undefined (no positives or no negatives).
    """
    out = np.full((k, FPR_GRID.size), np.nan)
    for c in range(k):
        positives = y_true == c
        if positives.all() or not positives.any():
            continue
        fpr, tpr, _ = roc_curve(positives, y_prob[:, c])
        out[c] = _interp_roc(fpr, tpr, FPR_GRID)
    return out


def _interp_roc(fpr: np.ndarray, tpr: np.ndarray, grid: np.ndarray) -> np.ndarray:
    left = np.searchsorted(fpr, grid, side="right") - 1  # last point with fpr <= x: highest tpr
    right = np.minimum(left + 1, fpr.size - 1)  # first point with fpr > x: lowest tpr there
    span = fpr[right] - fpr[left]
    weight = np.divide(grid - fpr[left], span, out=np.zeros_like(grid), where=span > 0)
    return tpr[left] + weight * (tpr[right] - tpr[left])


def _roc_rows(curves: np.ndarray, labels: Sequence[str]) -> list[dict[str, Any]]:
    defined = ~np.isnan(curves[:, 0])
    macro = curves[defined].mean(axis=0) if defined.any() else np.full(FPR_GRID.size, np.nan)
    rows = []
    for i, x in enumerate(FPR_GRID):
        row: dict[str, Any] = {"fpr": round(float(x), 2), "tpr_macro": _cell(macro[i])}
        for c, label in enumerate(labels):
            row[f"tpr_{label}"] = _cell(curves[c, i])
        rows.append(row)
    return rows


def _cell(value: float) -> float | None:
    return None if math.isnan(value) else round(float(value), 6)


def save_figure(
    fig: Figure, path: str | Path, dpi: int = DPI, bbox_inches: str | None = None
) -> None:
    """Save a figure atomically, in the format of the path's suffix (PNG, SVG or PDF).

    Same figure, same bytes: fixed dpi, no software version or dates in the file's metadata, a
    fixed salt for SVG element ids. The temporary file has another suffix, so the format is
    passed explicitly.
    """
    path = Path(path)
    fmt = path.suffix.lstrip(".").lower() or "png"
    if fmt not in _METADATA:
        raise ValueError(f"{path}: save figures as .png, .svg or .pdf")
    with matplotlib.rc_context({"svg.hashsalt": "seda"}), atomic_path(path) as tmp:
        fig.savefig(tmp, format=fmt, dpi=dpi, metadata=_METADATA[fmt], bbox_inches=bbox_inches)


def confusion_figure(
    model: str, y_true: np.ndarray, y_pred: np.ndarray, labels: Sequence[str]
) -> Figure:
    """Row-normalised confusion matrix (share of each actual class), with counts in each cell."""
    k = len(labels)
    counts = confusion_matrix(y_true, y_pred, labels=np.arange(k))
    row_sums = counts.sum(axis=1, keepdims=True)
    shares = np.divide(counts, row_sums, out=np.zeros(counts.shape), where=row_sums > 0)
    side = max(4.8, 1.0 + 0.9 * k)
    fig = Figure(figsize=(side + 1.2, side), layout="constrained")
    ax = fig.add_subplot()
    display = ConfusionMatrixDisplay(shares, display_labels=list(labels))
    display.plot(
        ax=ax, cmap="Blues", colorbar=False, values_format=".0%", im_kw={"vmin": 0, "vmax": 1}
    )
    colorbar = fig.colorbar(display.im_, ax=ax, fraction=0.046, pad=0.04)
    colorbar.set_label("share of actual class")
    colorbar.ax.yaxis.set_major_formatter(lambda v, _pos: f"{v:.0%}")
    fontsize = 11 if k <= 6 else 8
    for i in range(k):
        for j in range(k):
            text = display.text_[i, j]
            text.set_text(f"{shares[i, j]:.0%}\n({counts[i, j]})")
            text.set_fontsize(fontsize)
    ax.set_xlabel("predicted")
    ax.set_ylabel("actual")
    ax.tick_params(axis="x", labelrotation=30 if k > 4 else 0)
    ax.set_title(f"{model}: confusion matrix (n = {int(counts.sum())})")
    return fig


def roc_figure(model: str, y_true: np.ndarray, y_prob: np.ndarray, labels: Sequence[str]) -> Figure:
    """One-vs-rest ROC curve per class (AUC in the legend) and the chance diagonal."""
    fig = Figure(figsize=(6.0, 6.0), layout="constrained")
    ax = fig.add_subplot()
    palette = label_colours(labels)
    colors = [palette[label] for label in labels]
    aucs = []
    for c, label in enumerate(labels):
        positives = y_true == c
        if positives.all() or not positives.any():
            ax.plot([], [], color=colors[c], label=f"{label} (not in test set)")
            continue
        fpr, tpr, _ = roc_curve(positives, y_prob[:, c])
        auc = roc_auc_score(positives, y_prob[:, c])
        aucs.append(auc)
        ax.plot(fpr, tpr, color=colors[c], lw=2, label=f"{label} (AUC {auc:.2f})")
    ax.plot([0, 1], [0, 1], color="0.5", lw=1, ls="--", label="chance (AUC 0.50)")
    ax.set(xlim=(-0.01, 1.01), ylim=(-0.01, 1.01), aspect="equal")
    ax.set_xlabel("false positive rate (1 - specificity)")
    ax.set_ylabel("true positive rate (sensitivity)")
    macro = f", macro AUC {np.mean(aucs):.2f}" if aucs else ""
    ax.set_title(f"{model}: ROC, one class vs rest\n(n = {y_true.size}{macro})")
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right", frameon=True)
    return fig


def reliability_figure(
    model: str,
    y_true: np.ndarray,
    y_prob: np.ndarray,
    *,
    unscaled: np.ndarray | None = None,
    n_bins: int = ECE_BINS,
) -> Figure:
    """Reliability diagram: accuracy against mean top-label confidence per bin (the diagonal is
    perfect calibration; below it, over-confident), the ECE in the legend; the unscaled
    probabilities too when given; below, the number of clips per bin."""
    fig = Figure(figsize=(6.0, 7.0), layout="constrained")
    top, bottom = fig.subplots(2, 1, sharex=True, height_ratios=(3, 1))
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    width = 1.0 / n_bins
    top.plot([0, 1], [0, 1], color="0.5", lw=1, ls="--", label="perfectly calibrated")
    series: list[tuple[str, str, str, np.ndarray, str | None]] = [
        ("tab:blue", "o", "-", y_prob, None)
    ]
    if unscaled is not None:
        series = [
            ("tab:orange", "s", ":", unscaled, "before temperature scaling"),
            ("tab:blue", "o", "-", y_prob, "after temperature scaling"),
        ]
    bar = width / len(series)  # side by side within each bin
    for j, (color, marker, style, prob, name) in enumerate(series):
        table = reliability_bins(y_true, prob, n_bins)
        ece = expected_calibration_error(y_true, prob, n_bins)
        top.plot(
            [b.confidence for b in table],
            [b.accuracy for b in table],
            color=color,
            marker=marker,
            ls=style,
            lw=2,
            ms=5,
            label=f"{name}: ECE {ece:.3f}" if name else f"ECE {ece:.3f}",
        )
        counts = np.zeros(n_bins)
        for b in table:
            counts[b.bin] = b.count
        bottom.bar(edges[:-1] + j * bar, counts, width=bar, align="edge", color=color)
    top.set(xlim=(0, 1), ylim=(0, 1.01))
    top.set_ylabel("accuracy (top label right)")
    top.set_title(f"{model}: reliability, top-label confidence\n(n = {len(y_true)}, {n_bins} bins)")
    top.grid(alpha=0.3)
    top.legend(loc="upper left", frameon=True)
    bottom.set_xlabel("confidence (highest probability)")
    bottom.set_ylabel("clips")
    bottom.yaxis.set_major_locator(MaxNLocator(integer=True, nbins=4))
    bottom.grid(alpha=0.3)
    return fig


def history_figure(model: str, history: Sequence[Mapping[str, Any]]) -> Figure:
    """Training and validation loss per epoch, validation UAR on a second axis."""
    fig = Figure(figsize=(7.2, 5.0), layout="constrained")
    ax = fig.add_subplot()
    ax.set_title(f"{model}: training history")
    if not history:
        ax.text(
            0.5,
            0.5,
            "no training history\n(model fitted in one step, without epochs)",
            ha="center",
            va="center",
            transform=ax.transAxes,
            fontsize=12,
            color="0.35",
        )
        ax.set_axis_off()
        return fig
    epochs = np.array([_num(row.get("epoch")) for row in history])
    if np.isnan(epochs).any():
        epochs = np.arange(1, len(history) + 1, dtype=float)
    handles = []
    for key, color, label in (
        ("train_loss", "tab:blue", "training loss"),
        ("val_loss", "tab:orange", "validation loss"),
    ):
        values = np.array([_num(row.get(key)) for row in history])
        if not np.isnan(values).all():
            handles += ax.plot(epochs, values, color=color, lw=2, marker="o", ms=3, label=label)
    ax.set_xlabel("epoch")
    ax.set_ylabel("cross-entropy loss")
    ax.grid(alpha=0.3)
    uar = np.array([_num(row.get("val_uar")) for row in history])
    if not np.isnan(uar).all():
        twin = ax.twinx()
        handles += twin.plot(
            epochs, uar, color="tab:green", lw=2, ls="--", marker="s", ms=3, label="validation UAR"
        )
        twin.set_ylim(0, 1)
        twin.set_ylabel("validation UAR")
        best = int(np.nanargmax(uar))
        handles.append(
            ax.axvline(
                epochs[best],
                color="tab:green",
                lw=1,
                ls=":",
                label=f"best validation UAR {uar[best]:.2f} (epoch {epochs[best]:g})",
            )
        )
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    if handles:
        fig.legend(handles=handles, loc="outside lower center", ncols=2, frameon=False)
    return fig


def _num(value: Any) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan
