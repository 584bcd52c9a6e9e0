"""Comparing trained models: one table and one chart of every model's test metrics.

Input: the metrics files ``train@<model>`` writes (:func:`seda.metrics.classification_metrics`
plus ``model``, ``backbone_weights``, ``checkpoint``, ``protocol``, ``mode``). Output pieces:

- :func:`render_markdown`: models sorted by UAR, 95% bootstrap intervals for accuracy and UAR,
  the chance level, the protocol, and a warning when a backbone had random weights (its scores
  then measure the pipeline, not the model);
- :func:`comparison_figure`: accuracy / UAR / macro F1 per model with interval error bars;
- :func:`summary`: the numbers behind both, for ``dvc metrics``.

A metrics file that cannot be read is listed under "Skipped" (never dropped silently).
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.figure import Figure

from seda.errors import InputMissingError

log = logging.getLogger(__name__)

REQUIRED_KEYS = (
    "accuracy",
    "uar",
    "precision",
    "f1",
    "sensitivity",
    "specificity",
    "n_test",
    "per_class",
)
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
MISSING = "—"
# How the report spells out the train stage's ``eval.protocol`` values.
PROTOCOL_TEXT = {
    "holdout": "holdout (fixed train / validation / test split, disjoint by speaker and video)",
    "loso": "loso (leave one speaker/video group out; test predictions pooled over all folds)",
}


@dataclass
class ModelResult:
    """One model's row: the metrics file's values, with the few derived ones the report needs."""

    model: str
    metrics: dict[str, Any]
    path: Path
    labels: list[str] = field(default_factory=list)

    @property
    def uar(self) -> float:
        return float(self.metrics["uar"])

    @property
    def k(self) -> int:
        return len(self.labels)

    @property
    def is_random(self) -> bool:
        return str(self.metrics.get("backbone_weights") or "").lower() == "random"


def metrics_files(paths: Iterable[str | Path]) -> list[Path]:
    """The metrics files named: files as given, folders as their ``*.json`` (sorted)."""
    files: list[Path] = []
    for path in map(Path, paths):
        if path.is_dir():
            files += sorted(path.glob("*.json"))
        elif path.is_file():
            files.append(path)
        else:
            raise InputMissingError(f"{path} not found: run the train stage that writes it first")
    return files


def load_results(files: Iterable[Path]) -> tuple[list[ModelResult], list[dict[str, str]]]:
    """Read the metrics files; return (results sorted by UAR, skipped files with the reason)."""
    results: list[ModelResult] = []
    skipped: list[dict[str, str]] = []
    for path in files:
        try:
            results.append(read_result(path))
        except (OSError, ValueError) as err:
            reason = " ".join(str(err).split())
            log.warning("compare: skipped %s: %s", path, reason)
            skipped.append({"path": path.as_posix(), "reason": reason})
    results.sort(key=lambda r: (-r.uar, r.model))
    return results, skipped


def read_result(path: Path) -> ModelResult:
    """One metrics file; ValueError naming the problem when it is not a usable metrics file."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise ValueError(f"not valid JSON ({err})") from err
    if not isinstance(data, dict):
        raise ValueError("not a JSON object")
    missing = [key for key in REQUIRED_KEYS if key not in data]
    if missing:
        raise ValueError(f"missing key(s) {', '.join(missing)}")
    for key in ("accuracy", "uar", "precision", "f1", "sensitivity", "specificity"):
        value = data[key]
        if not isinstance(value, int | float) or not math.isfinite(value):
            raise ValueError(f"{key} is not a finite number: {value!r}")
    if not isinstance(data["per_class"], dict) or len(data["per_class"]) < 2:
        raise ValueError("per_class must map at least 2 class labels to their metrics")
    model = str(data.get("model") or path.stem)
    return ModelResult(model=model, metrics=data, path=path, labels=list(data["per_class"]))


def weights_text(result: ModelResult) -> str:
    """What the backbone started from, as the table shows it."""
    weights = str(result.metrics.get("backbone_weights") or "").strip()
    checkpoint = result.metrics.get("checkpoint")
    if weights.lower() in ("", "none", "n/a", MISSING):
        return MISSING
    if weights.lower() == "random":
        return "random (tiny, untrained)"
    if weights.lower() == "pretrained":
        return f"pretrained: {checkpoint}" if checkpoint else "pretrained"
    return weights


def fmt(value: Any, ci: Any = None) -> str:
    """``0.62`` or ``0.62 [0.55, 0.69]``; a dash for a missing value."""
    if not isinstance(value, int | float) or not math.isfinite(value):
        return MISSING
    text = f"{value:.2f}"
    if isinstance(ci, Sequence) and len(ci) == 2 and all(isinstance(v, int | float) for v in ci):
        text += f" [{ci[0]:.2f}, {ci[1]:.2f}]"
    return text


def table_rows(results: Sequence[ModelResult]) -> list[list[str]]:
    rows = []
    for r in results:
        m = r.metrics
        rows.append(
            [
                r.model,
                weights_text(r),
                fmt(m["accuracy"], m.get("accuracy_ci")),
                fmt(m["uar"], m.get("uar_ci")),
                fmt(m["precision"]),
                fmt(m["f1"]),
                fmt(m.get("auc")),
                fmt(m["sensitivity"]),
                fmt(m["specificity"]),
                str(m["n_test"]),
            ]
        )
    return rows


def render_markdown(
    results: Sequence[ModelResult], skipped: Sequence[Mapping[str, str]], png_name: str
) -> str:
    """The comparison report: table, chance level, protocol, warnings, skipped files."""
    lines = ["# Model comparison", ""]
    random_models = [r.model for r in results if r.is_random]
    if random_models:
        lines += [
            f"> **Warning:** {', '.join(random_models)} used randomly initialised (untrained) "
            "backbones: these scores test the pipeline, not the models. Run "
            "`dvc exp run -S backbone_weights=pretrained` for the real comparison.",
            "",
        ]
    lines += [
        "| " + " | ".join(TABLE_HEADER) + " |",
        "|" + "|".join(["---"] * 2 + ["---:"] * (len(TABLE_HEADER) - 2)) + "|",
    ]
    lines += ["| " + " | ".join(row) + " |" for row in table_rows(results)]
    lines += ["", *_notes(results), ""]
    if skipped:
        lines += ["## Skipped metrics files", ""]
        lines += [f"- `{row['path']}`: {row['reason']}" for row in skipped]
        lines.append("")
    lines += [f"![accuracy, UAR and F1 per model]({png_name})", ""]
    return "\n".join(lines)


def _notes(results: Sequence[ModelResult]) -> list[str]:
    """Markdown bullet lines under the table: how to read it, chance, protocol, caveats."""
    first = results[0]
    notes = [
        f"Chance level: UAR 1/k = {1 / first.k:.2f} for k = {first.k} classes "
        f"({', '.join(first.labels)}){_majority_text(first)}.",
    ]
    protocols = {r.model: r.metrics.get("protocol") for r in results}
    notes.append(
        _grouped_line("Protocol", {m: PROTOCOL_TEXT.get(str(p), p) for m, p in protocols.items()})
    )
    notes.append(_grouped_line("Mode", {r.model: r.metrics.get("mode") for r in results}))
    if any(r.labels != first.labels for r in results):
        notes.append(
            "**Models were evaluated on different label sets:** "
            + "; ".join(f"{r.model}: {', '.join(r.labels)}" for r in results)
            + ". Their scores are not comparable."
        )
    if len({r.metrics["n_test"] for r in results}) > 1:
        notes.append(
            "**Models were tested on different numbers of clips** (column n): check that they "
            "used the same split."
        )
    notes.append(
        "Sorted by UAR (unweighted average recall = macro recall = macro sensitivity); "
        "precision, F1, AUC (one-vs-rest), sensitivity and specificity are macro averages over "
        "the classes in the test set. Brackets: 95% percentile bootstrap intervals over test "
        "clips; a model whose UAR interval overlaps the best one's is not clearly worse."
    )
    return [f"- {note}" for note in notes]


def _majority_text(result: ModelResult) -> str:
    support = [c.get("support") for c in result.metrics["per_class"].values()]
    if not all(isinstance(v, int) for v in support) or sum(support) == 0:
        return ""
    majority = max(support) / sum(support)
    return f"; always predicting the most frequent class gives accuracy {majority:.2f}"


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
        values = np.array([float(r.metrics[key]) for r in results])
        errors = np.zeros((2, len(results)))
        for j, r in enumerate(results):
            ci = r.metrics.get(f"{key}_ci")
            if isinstance(ci, Sequence) and len(ci) == 2:
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
    sizes = sorted({int(r.metrics["n_test"]) for r in results})
    n_text = f"n = {sizes[0]}" if len(sizes) == 1 else f"n = {sizes[0]}..{sizes[-1]}"
    ax.set_title(f"Model comparison on the test set ({n_text} clips; error bars: 95% bootstrap)")
    fig.legend(loc="outside lower center", ncols=4, frameon=False)
    return fig


def summary(results: Sequence[ModelResult], skipped: Sequence[Mapping[str, str]]) -> dict:
    """The numbers of the report, JSON-ready (``dvc metrics show reports/comparison.json``)."""
    keys = ("accuracy", "uar", "precision", "f1", "auc", "sensitivity", "specificity", "n_test")
    models = {}
    for r in results:
        row = {key: r.metrics.get(key) for key in keys}
        for key in ("accuracy_ci", "uar_ci", "f1_ci"):
            ci = r.metrics.get(key)
            if isinstance(ci, Sequence) and len(ci) == 2:
                row[f"{key}_low"], row[f"{key}_high"] = ci
        row["backbone_weights"] = r.metrics.get("backbone_weights")
        models[r.model] = row
    return {
        "best_model": results[0].model,
        "n_classes": results[0].k,
        "chance_uar": 1 / results[0].k,
        "models": models,
        "skipped": list(skipped),
    }
