"""Comparing trained models: one table, one chart and a paired comparison with the best model.

Input: each model's details file (:class:`seda.metrics.MetricsRecord`, written by training) and,
for the paired comparison, its test predictions (``predictions.csv``: ``clip_id, actual,
predicted`` and ``group``). Output pieces:

- :func:`render_markdown`: models sorted by UAR (pooled over the folds of a leave-one-group-out
  run, whose per-fold mean ± SD gets its own column and table), 95% bootstrap intervals, the
  chance levels, the protocol, a warning when a backbone had random weights (its scores then
  measure the pipeline, not the model), and every model against the best one on the same test
  clips: ΔUAR with a paired bootstrap interval (resampling test groups when there are two or
  more) and "no clear difference" when it contains 0;
- :func:`comparison_figure`: accuracy / UAR / macro F1 per model with interval error bars;
- :func:`summary`: the numbers behind both (``comparison.json``; not a DVC metric: the headline
  figures are, once, in each model's metrics file).

A details file that cannot be read is listed under "Skipped" (never dropped silently).
"""

from __future__ import annotations

import csv
import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.figure import Figure

from seda.errors import InputMissingError
from seda.metrics import MetricsRecord, PairedDifference, paired_uar_difference

log = logging.getLogger(__name__)

TABLE_HEADER = (
    "Model",
    "Weights",
    "Accuracy",
    "UAR",
    "Precision",
    "F1",
    "AUC",
    "Sensitivity",
    "Specificity",
    "n",
)
# With a leave-one-group-out run among the models: pooled UAR and the per-fold spread.
LOSO_COLUMNS = ("UAR (pooled)", "UAR per fold (mean ± SD)")
MISSING = "—"
NO_CLEAR_DIFFERENCE = "no clear difference"
# How the report spells out the train stage's ``eval.protocol`` values.
PROTOCOL_TEXT = {
    "holdout": "holdout (fixed train / validation / test split, disjoint by speaker and video)",
    "loso": "loso (leave one speaker/video group out; test predictions pooled over all folds)",
}


@dataclass(frozen=True)
class Predictions:
    """One model's test predictions (label names), by clip; ``groups`` when the file has them."""

    clip_ids: list[str]
    actual: list[str]
    predicted: list[str]
    groups: list[str] | None


@dataclass
class ModelResult:
    """One model's row: its details record, where it came from, and its test predictions."""

    record: MetricsRecord
    path: Path
    predictions: Predictions | None = None
    predictions_problem: str | None = None  # why there are none

    @property
    def model(self) -> str:
        return self.record.model

    @property
    def uar(self) -> float:
        return self.record.uar

    @property
    def labels(self) -> list[str]:
        return self.record.labels

    @property
    def k(self) -> int:
        return len(self.labels)

    @property
    def is_loso(self) -> bool:
        return self.record.protocol == "loso"

    @property
    def is_random(self) -> bool:
        return str(self.record.backbone_weights or "").lower() == "random"


@dataclass(frozen=True)
class Paired:
    """A model against the best one on the same test clips, or why it could not be paired."""

    model: str
    best: str
    difference: PairedDifference | None
    note: str | None = None

    @property
    def verdict(self) -> str | None:
        d = self.difference
        if d is None:
            return None
        if not d.clear:
            return NO_CLEAR_DIFFERENCE
        return f"{'better' if d.delta > 0 else 'worse'} than {self.best}"

    def text(self) -> str:
        """``ΔUAR −0.04 [−0.09, +0.01]: no clear difference``, or the reason it is missing."""
        d = self.difference
        if d is None:
            return f"not paired: {self.note}"
        return f"ΔUAR {signed(d.delta)} [{signed(d.low)}, {signed(d.high)}]: {self.verdict}"


def signed(value: float) -> str:
    """``+0.01`` / ``−0.04`` (a true minus sign)."""
    return f"{value:+.2f}".replace("-", "−")


def check_inputs(details: Sequence[Path], predictions: Sequence[Path] | None) -> None:
    """Every file named exists, and predictions (when given) pair one to one with details."""
    for path in [*details, *(predictions or [])]:
        if not Path(path).is_file():
            raise InputMissingError(f"{path} not found: run the train stage that writes it first")
    if predictions is not None and len(predictions) != len(details):
        raise InputMissingError(
            f"{len(predictions)} predictions file(s) for {len(details)} details file(s): name "
            "one predictions.csv per details file, in the same order"
        )


def load_results(
    details: Iterable[Path], predictions: Sequence[Path] | None = None
) -> tuple[list[ModelResult], list[dict[str, str]]]:
    """Read the details files (and the predictions paired with them by position); return
    (results sorted by UAR, skipped files with the reason)."""
    details = [Path(p) for p in details]
    results: list[ModelResult] = []
    skipped: list[dict[str, str]] = []
    for i, path in enumerate(details):
        try:
            result = ModelResult(MetricsRecord.read(path), path)
        except (OSError, ValueError) as err:
            reason = " ".join(str(err).replace(str(path), "").strip(": ").split())
            log.warning("compare: skipped %s: %s", path, reason)
            skipped.append({"path": path.as_posix(), "reason": reason})
            continue
        if predictions is not None:
            try:
                result.predictions = read_predictions(Path(predictions[i]))
            except (OSError, ValueError) as err:
                result.predictions_problem = f"{Path(predictions[i]).as_posix()} unreadable: {err}"
                log.warning("compare: %s", result.predictions_problem)
        results.append(result)
    results.sort(key=lambda r: (-r.uar, r.model))
    return results, skipped


def read_predictions(path: Path) -> Predictions:
    """A ``predictions.csv``: ``clip_id, actual, predicted`` and optionally ``group``."""
    with open(path, newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    if not rows:
        raise ValueError("no predictions")
    lacking = [c for c in ("clip_id", "actual", "predicted") if c not in rows[0]]
    if lacking:
        raise ValueError(f"lacks column(s) {', '.join(lacking)}")
    has_groups = "group" in rows[0]
    return Predictions(
        [r["clip_id"] for r in rows],
        [r["actual"] for r in rows],
        [r["predicted"] for r in rows],
        [r["group"] for r in rows] if has_groups else None,
    )


def paired_with_best(results: Sequence[ModelResult]) -> list[Paired]:
    """Every other model against the best one (the first), with the best one's bootstrap
    settings (``n_bootstrap``, seed) from its details."""
    best, out = results[0], []
    for r in results[1:]:
        difference, note = _pair(r, best)
        out.append(Paired(r.model, best.model, difference, note))
    return out


def _pair(r: ModelResult, best: ModelResult) -> tuple[PairedDifference | None, str | None]:
    if r.predictions is None or best.predictions is None:
        problem = r.predictions_problem or best.predictions_problem
        return None, problem or "no predictions to pair"
    if r.labels != best.labels:
        return None, "evaluated on another label set"
    theirs = r.predictions
    mine = {
        c: (a, p) for c, a, p in zip(theirs.clip_ids, theirs.actual, theirs.predicted, strict=True)
    }
    ours = best.predictions
    same = len(mine) == len(ours.clip_ids) and all(
        c in mine and mine[c][0] == a for c, a in zip(ours.clip_ids, ours.actual, strict=True)
    )
    if not same:
        return None, f"tested on other clips than {best.model}"
    index = {label: i for i, label in enumerate(best.labels)}
    try:
        y = np.array([index[a] for a in ours.actual])
        pred_best = np.array([index[p] for p in ours.predicted])
        pred_r = np.array([index[mine[c][1]] for c in ours.clip_ids])
    except KeyError as err:
        return None, f"a prediction names an unknown class {err}"
    n_bootstrap = best.record.n_bootstrap
    if n_bootstrap <= 0:
        return None, "no bootstrap (eval.n_bootstrap is 0)"
    difference = paired_uar_difference(
        y,
        pred_r,
        pred_best,
        best.k,
        groups=ours.groups,
        n_bootstrap=n_bootstrap,
        seed=best.record.bootstrap_seed,
    )
    return difference, None


def weights_text(result: ModelResult) -> str:
    """What the backbone started from, as the table shows it."""
    weights = str(result.record.backbone_weights or "").strip()
    checkpoint = result.record.checkpoint
    if weights.lower() in ("", "none", "n/a", MISSING):
        return MISSING
    if weights.lower() == "random":
        return "random (tiny, untrained)"
    if weights.lower() == "pretrained":
        return f"pretrained: {checkpoint}" if checkpoint else "pretrained"
    return weights


def fmt(value: Any, ci: Any = None) -> str:
    """``0.62`` or ``0.62 [0.55, 0.69]``; a dash for a missing value."""
    if not isinstance(value, int | float) or not np.isfinite(value):
        return MISSING
    text = f"{value:.2f}"
    if isinstance(ci, Sequence) and len(ci) == 2 and all(isinstance(v, int | float) for v in ci):
        text += f" [{ci[0]:.2f}, {ci[1]:.2f}]"
    return text


def fold_text(record: MetricsRecord) -> str:
    """``0.61 ± 0.12`` (mean ± SD of the per-fold UAR), a dash for a holdout run."""
    if record.uar_fold_mean is None or record.uar_fold_sd is None:
        return MISSING
    return f"{record.uar_fold_mean:.2f} ± {record.uar_fold_sd:.2f}"


def table_header(results: Sequence[ModelResult]) -> list[str]:
    header = list(TABLE_HEADER)
    if any(r.is_loso for r in results):
        header[3:4] = LOSO_COLUMNS
    return header


def table_rows(results: Sequence[ModelResult]) -> list[list[str]]:
    loso = any(r.is_loso for r in results)
    rows = []
    for r in results:
        m = r.record
        uar = [fmt(m.uar, m.uar_ci), *([fold_text(m)] if loso else [])]
        rows.append(
            [
                r.model,
                weights_text(r),
                fmt(m.accuracy, m.accuracy_ci),
                *uar,
                fmt(m.precision),
                fmt(m.f1),
                fmt(m.auc),
                fmt(m.sensitivity),
                fmt(m.specificity),
                str(m.n_test),
            ]
        )
    return rows


def _markdown_table(header: Sequence[str], rows: Iterable[Sequence[str]], left: int) -> list[str]:
    return [
        "| " + " | ".join(header) + " |",
        "|" + "|".join(["---"] * left + ["---:"] * (len(header) - left)) + "|",
        *("| " + " | ".join(row) + " |" for row in rows),
    ]


def render_markdown(
    results: Sequence[ModelResult],
    skipped: Sequence[Mapping[str, str]],
    png_name: str,
    paired: Sequence[Paired] = (),
) -> str:
    """The comparison report: table, notes, per-fold table, paired comparison, skipped files."""
    lines = ["# Model comparison", ""]
    random_models = [r.model for r in results if r.is_random]
    if random_models:
        lines += [
            f"> **Warning:** {', '.join(random_models)} used randomly initialised (untrained) "
            "backbones: these scores test the pipeline, not the models. Run "
            "`dvc exp run -S backbone_weights=pretrained` for the real comparison.",
            "",
        ]
    lines += _markdown_table(table_header(results), table_rows(results), 2)
    lines += ["", *_notes(results), ""]
    lines += _fold_table(results)
    if paired:
        lines += [f"## Each model against the best one ({results[0].model})", ""]
        lines += [f"- {p.model}: {p.text()}" for p in paired]
        lines += ["", _paired_note(results[0], paired), ""]
    if skipped:
        lines += ["## Skipped details files", ""]
        lines += [f"- `{row['path']}`: {row['reason']}" for row in skipped]
        lines.append("")
    lines += [f"![accuracy, UAR and F1 per model]({png_name})", ""]
    return "\n".join(lines)


def _notes(results: Sequence[ModelResult]) -> list[str]:
    """Markdown bullet lines under the table: how to read it, chance, protocol, caveats."""
    first = results[0].record
    notes = [
        f"Chance level: UAR 1/k = {first.chance_uar:.2f} for k = {first.n_classes} classes "
        f"({', '.join(first.labels)}); always answering the most frequent test class "
        f"({first.majority_class}) gives accuracy {first.majority_accuracy:.2f}.",
    ]
    protocols = {r.model: r.record.protocol for r in results}
    notes.append(
        _grouped_line("Protocol", {m: PROTOCOL_TEXT.get(str(p), p) for m, p in protocols.items()})
    )
    notes.append(_grouped_line("Mode", {r.model: r.record.mode for r in results}))
    notes.append(_grouped_line("Intervals", {r.model: r.record.interval_method for r in results}))
    if any(r.labels != results[0].labels for r in results):
        notes.append(
            "**Models were evaluated on different label sets:** "
            + "; ".join(f"{r.model}: {', '.join(r.labels)}" for r in results)
            + ". Their scores are not comparable."
        )
    if len({r.record.n_test for r in results}) > 1:
        notes.append(
            "**Models were tested on different numbers of clips** (column n): check that they "
            "used the same split."
        )
    notes.append(
        "Sorted by UAR (unweighted average recall = macro recall = macro sensitivity); "
        "precision, F1, AUC (one-vs-rest), sensitivity and specificity are macro averages over "
        "the classes in the test set. Brackets: 95% percentile bootstrap intervals, over test "
        "groups (speakers) when there are two or more, else over test clips."
    )
    if any(r.is_loso for r in results):
        notes.append(
            "Leave-one-group-out: UAR (pooled) scores the test predictions of all folds "
            "together; per fold: the mean ± sample SD of the folds' own UAR (one held-out group "
            "each), which shows how much the figure depends on whose speech is tested."
        )
    return [f"- {note}" for note in notes]


def _fold_table(results: Sequence[ModelResult]) -> list[str]:
    """UAR of each held-out fold (rows) for each leave-one-group-out model (columns)."""
    loso = [r for r in results if r.is_loso and r.record.folds]
    if not loso:
        return []
    held_out: dict[int, str] = {}
    for r in loso:
        for f in r.record.folds:
            held_out.setdefault(f.fold, ", ".join(f.speakers))
    rows = []
    for fold in sorted(held_out):
        cells = []
        for r in loso:
            match = [f for f in r.record.folds if f.fold == fold]
            cells.append(f"{match[0].uar:.2f} ({match[0].n})" if match else MISSING)
        rows.append([str(fold), held_out[fold], *cells])
    rows.append(["", "mean ± SD", *(fold_text(r.record) for r in loso)])
    header = ["Fold", "Held-out speakers", *(r.model for r in loso)]
    return [
        "## UAR per held-out fold",
        "",
        *_markdown_table(header, rows, 2),
        "",
        "Cells: the fold's test UAR (its number of clips).",
        "",
    ]


def _paired_note(best: ModelResult, paired: Sequence[Paired]) -> str:
    done = [p.difference for p in paired if p.difference is not None]
    if not done:
        return "No model could be paired with the best one on the same test clips."
    units = {f"{d.n_units} test {d.resampled}" for d in done}
    return (
        f"ΔUAR = UAR(model) − UAR({best.model}) on the same test clips, with a 95% paired "
        f"bootstrap interval resampling {' / '.join(sorted(units))} "
        f"({best.record.n_bootstrap} resamples): both models are scored on each resample, so the "
        'interval measures their difference. "No clear difference": the interval contains 0.'
    )


def _grouped_line(name: str, values: Mapping[str, Any]) -> str:
    """``Mode: probe (hubert, wavlm); sklearn (baseline).`` or ``Mode: probe.`` when all agree."""
    groups: dict[str, list[str]] = {}
    for model, value in values.items():
        groups.setdefault(str(value) if value else "not recorded", []).append(model)
    if len(groups) == 1:
        return f"{name}: {next(iter(groups))}."
    return f"{name}: " + "; ".join(f"{v} ({', '.join(ms)})" for v, ms in groups.items()) + "."


def comparison_figure(results: Sequence[ModelResult]) -> Figure:
    """Grouped bars of accuracy, UAR and macro F1 per model with 95% intervals and chance."""
    measures = (("accuracy", "accuracy"), ("uar", "UAR"), ("f1", "macro F1"))
    colors = ("#9ecae1", "#3182bd", "#fd8d3c")
    x = np.arange(len(results))
    width = 0.26
    fig = Figure(figsize=(max(6.5, 1.6 * len(results) + 2.5), 4.8), layout="constrained")
    ax = fig.add_subplot()
    for i, ((key, name), color) in enumerate(zip(measures, colors, strict=True)):
        values = np.array([float(getattr(r.record, key)) for r in results])
        errors = np.zeros((2, len(results)))
        for j, r in enumerate(results):
            ci = getattr(r.record, f"{key}_ci")
            if ci is not None:
                errors[:, j] = [max(0.0, values[j] - ci[0]), max(0.0, ci[1] - values[j])]
        ax.bar(
            x + (i - 1) * width,
            values,
            width,
            yerr=errors,
            color=color,
            label=name,
            edgecolor="white",
            capsize=3,
            error_kw={"elinewidth": 1, "ecolor": "0.25"},
        )
    chance = 1 / results[0].k
    ax.axhline(chance, color="tab:red", ls="--", lw=1.2, label=f"chance UAR (1/{results[0].k})")
    ax.set_xticks(x, [f"{r.model}\n(random weights)" if r.is_random else r.model for r in results])
    ax.set_ylim(0, 1)
    ax.set_ylabel("score on the test set")
    ax.yaxis.grid(alpha=0.3)
    ax.set_axisbelow(True)
    sizes = sorted({r.record.n_test for r in results})
    n_text = f"n = {sizes[0]}" if len(sizes) == 1 else f"n = {sizes[0]}..{sizes[-1]}"
    ax.set_title(f"Model comparison on the test set ({n_text} clips; error bars: 95% bootstrap)")
    fig.legend(loc="outside lower center", ncols=4, frameon=False)
    return fig


def summary(
    results: Sequence[ModelResult],
    skipped: Sequence[Mapping[str, str]],
    paired: Sequence[Paired] = (),
) -> dict[str, Any]:
    """The numbers of the report, JSON-ready (``comparison.json``)."""
    keys = ("accuracy", "uar", "precision", "f1", "auc", "sensitivity", "specificity", "n_test")
    models = {}
    for r in results:
        m = r.record
        row: dict[str, Any] = {key: getattr(m, key) for key in keys}
        for key in ("accuracy_ci", "uar_ci", "f1_ci"):
            ci = getattr(m, key)
            if ci is not None:
                row[f"{key}_low"], row[f"{key}_high"] = ci
        row.update(
            uar_fold_mean=m.uar_fold_mean,
            uar_fold_sd=m.uar_fold_sd,
            protocol=m.protocol,
            interval_method=m.interval_method,
            backbone_weights=m.backbone_weights,
        )
        models[r.model] = row
    pairs: dict[str, dict[str, Any]] = {}
    for p in paired:
        d = p.difference
        pairs[p.model] = {"vs": p.best, "text": p.text()}
        if d is not None:
            pairs[p.model].update(
                delta_uar=d.delta,
                low=d.low,
                high=d.high,
                verdict=p.verdict,
                resampled=d.resampled,
                n_units=d.n_units,
            )
    first = results[0].record
    return {
        "best_model": results[0].model,
        "n_classes": first.n_classes,
        "chance_uar": first.chance_uar,
        "majority_accuracy": first.majority_accuracy,
        "models": models,
        "paired": pairs,
        "skipped": list(skipped),
    }
