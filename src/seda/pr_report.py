"""``seda report --base REV``: this change's results against a base revision, for a reviewer.

Writes ``report.md`` (into ``reports/pr/`` unless ``--out`` says otherwise) and the PNG images it
names:

- the params that changed (``params.yaml`` at ``REV`` against the working tree),
- per model, UAR with its 95% interval before and after and a verdict in plain words: "better",
  "worse" or "no clear change". Where base and head were tested on the same clips
  (``predictions.csv`` joined on ``clip_id``), a paired bootstrap of the UAR difference decides:
  its 95% percentile interval (fixed seed) excluding 0 is a change. Where the clips differ, the two
  UAR intervals decide: they must not overlap. The third decimal never does.
- the other headline metrics that moved, and the plots of each changed model (confusion matrix
  from ``predictions.csv``, ROC from ``roc.csv``), base and head side by side, plus a chart of
  every model's UAR interval before and after. A model whose files did not change gets one line.

Base files are read with ``git show REV:path``; head files are the working tree (after
``dvc repro``). Model names are the ``*.json`` files in the metrics folder at base and head.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import math
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from seda.errors import UserError

BETTER, WORSE, NO_CLEAR_CHANGE = "better", "worse", "no clear change"
NEW, REMOVED = "new", "removed"
HEADLINE_KEYS = (
    "uar",
    "accuracy",
    "f1",
    "auc",
    "n_test",
    "uar_fold_mean",
    "uar_fold_sd",
)
LEVEL = 0.95
MISSING = "—"


class ReportError(UserError):
    """The base revision or the repository cannot be read."""


# --- reading a revision -----------------------------------------------------------------------


@dataclass(frozen=True)
class Side:
    """Files at a git revision, or in the working tree when ``rev`` is None (paths from cwd)."""

    rev: str | None
    label: str

    def read(self, path: str | Path) -> bytes | None:
        path = Path(path).as_posix()
        if self.rev is None:
            file = Path(path)
            return file.read_bytes() if file.is_file() else None
        done = subprocess.run(
            ["git", "show", f"{self.rev}:./{path}"], capture_output=True, check=False
        )
        return done.stdout if done.returncode == 0 else None

    def json_names(self, folder: str | Path) -> set[str]:
        """Stems of the ``*.json`` files directly in ``folder``."""
        folder = Path(folder)
        if self.rev is None:
            return {p.stem for p in folder.glob("*.json")} if folder.is_dir() else set()
        done = subprocess.run(
            ["git", "ls-tree", "--name-only", self.rev, f"./{folder.as_posix()}/"],
            capture_output=True,
            text=True,
            check=False,
        )
        names = (Path(line) for line in done.stdout.splitlines())
        return {p.stem for p in names if p.suffix == ".json"}


def resolve_base(rev: str) -> Side:
    """The base side; a revision git does not know is the user's to fix."""
    done = subprocess.run(
        ["git", "rev-parse", "--verify", "--quiet", f"{rev}^{{commit}}"],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise ReportError(
            f"{rev!r} is not a commit of this git repository (for a pull request's base, "
            "check out with full history: git fetch origin <base branch>)"
        )
    short = done.stdout.strip()[:7]
    return Side(rev, f"base {rev}" if short.startswith(rev[:7]) else f"base {rev} ({short})")


# --- headline metrics -------------------------------------------------------------------------


@dataclass(frozen=True)
class Headline:
    """A model's headline figures; any of them may be absent (None)."""

    values: dict[str, float | None]
    uar_low: float | None = None
    uar_high: float | None = None

    @property
    def uar(self) -> float | None:
        return self.values.get("uar")

    @property
    def interval(self) -> tuple[float, float] | None:
        if self.uar_low is None or self.uar_high is None:
            return None
        return self.uar_low, self.uar_high


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return None if math.isnan(value) else float(value)


def parse_headline(raw: bytes) -> Headline:
    """The flat record (``uar_low``/``uar_high``), or the older one with ``uar_ci: [low, high]``."""
    try:
        record = json.loads(raw)
    except ValueError as err:
        raise ReportError(f"a metrics file is not JSON: {err}") from err
    if not isinstance(record, dict):
        raise ReportError("a metrics file does not hold a JSON object")
    low, high = _number(record.get("uar_low")), _number(record.get("uar_high"))
    ci = record.get("uar_ci")
    if (low is None or high is None) and isinstance(ci, list | tuple) and len(ci) == 2:
        low, high = _number(ci[0]), _number(ci[1])
    return Headline({k: _number(record.get(k)) for k in HEADLINE_KEYS}, low, high)


# --- predictions and the paired bootstrap -----------------------------------------------------


def parse_predictions(raw: bytes) -> dict[str, tuple[str, str]]:
    """``clip_id -> (actual, predicted)`` from a ``predictions.csv``."""
    reader = csv.DictReader(io.StringIO(raw.decode("utf-8")))
    return {row["clip_id"]: (row["actual"], row["predicted"]) for row in reader}


def uar_per_resample(y: np.ndarray, correct: np.ndarray, k: int) -> np.ndarray:
    """UAR (mean recall over the classes present) of each row of resampled labels/hits."""
    support = np.stack([(y == c).sum(axis=1) for c in range(k)], axis=1)
    hits = np.stack([((y == c) & correct).sum(axis=1) for c in range(k)], axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        recall = np.where(support > 0, hits / np.maximum(support, 1), np.nan)
    return np.nanmean(recall, axis=1)


def paired_uar_difference(
    actual: Sequence[str],
    base: Sequence[str],
    head: Sequence[str],
    n_boot: int = 2000,
    seed: int = 0,
    level: float = LEVEL,
) -> tuple[float, float, float]:
    """UAR(head) - UAR(base) on the same clips, and its percentile bootstrap interval.

    Each resample draws clips with replacement and scores both models on the same draw, so the
    interval reflects the change, not the spread of the test set.
    """
    labels = sorted(set(actual))
    code = {label: i for i, label in enumerate(labels)}
    y = np.array([code[a] for a in actual])
    ok_base = np.array(base) == np.array(actual)
    ok_head = np.array(head) == np.array(actual)
    k, n = len(labels), y.size
    whole = np.arange(n)[None, :]
    point = float(
        uar_per_resample(y[whole], ok_head[whole], k)[0]
        - uar_per_resample(y[whole], ok_base[whole], k)[0]
    )
    rng = np.random.default_rng(seed)
    diffs = []
    rows = max(1, 2_000_000 // max(n, 1))
    for start in range(0, n_boot, rows):
        idx = rng.integers(0, n, size=(min(rows, n_boot - start), n))
        diffs.append(
            uar_per_resample(y[idx], ok_head[idx], k) - uar_per_resample(y[idx], ok_base[idx], k)
        )
    tail = (1.0 - level) / 2.0 * 100.0
    low, high = np.percentile(np.concatenate(diffs), [tail, 100.0 - tail])
    return point, float(low), float(high)


# --- one model --------------------------------------------------------------------------------


@dataclass
class ModelChange:
    model: str
    verdict: str
    how: str
    base: Headline | None
    head: Headline | None
    unchanged: bool = False
    difference: tuple[float, float, float] | None = None  # point, low, high
    images: list[tuple[str, str]] = field(default_factory=list)  # (alt text, file name)


@dataclass(frozen=True)
class ModelFiles:
    metrics: bytes | None
    predictions: bytes | None
    roc: bytes | None


def read_model(side: Side, model: str, metrics_dir: Path, plots_dir: Path) -> ModelFiles:
    return ModelFiles(
        side.read(metrics_dir / f"{model}.json"),
        side.read(plots_dir / model / "predictions.csv"),
        side.read(plots_dir / model / "roc.csv"),
    )


def _predictions(files: ModelFiles) -> dict[str, tuple[str, str]] | None:
    return parse_predictions(files.predictions) if files.predictions is not None else None


def judge(model: str, base: ModelFiles, head: ModelFiles, n_boot: int, seed: int) -> ModelChange:
    """The verdict for one model (no images yet)."""
    b = parse_headline(base.metrics) if base.metrics is not None else None
    h = parse_headline(head.metrics) if head.metrics is not None else None
    if b is None:
        return ModelChange(model, NEW, "no metrics at base", None, h)
    if h is None:
        return ModelChange(model, REMOVED, "no metrics in this change", b, None)
    if base == head:
        return ModelChange(model, NO_CLEAR_CHANGE, "identical results", b, h, unchanged=True)
    pb, ph = _predictions(base), _predictions(head)
    if pb and ph and pb.keys() == ph.keys() and all(pb[c][0] == ph[c][0] for c in pb):
        clips = sorted(pb)
        diff = paired_uar_difference(
            [pb[c][0] for c in clips],
            [pb[c][1] for c in clips],
            [ph[c][1] for c in clips],
            n_boot=n_boot,
            seed=seed,
        )
        verdict = BETTER if diff[1] > 0 else WORSE if diff[2] < 0 else NO_CLEAR_CHANGE
        how = f"paired bootstrap over the same {len(clips)} test clips"
        if base.predictions == head.predictions:
            how = f"same predictions on the same {len(clips)} test clips"
        return ModelChange(model, verdict, how, b, h, difference=diff)
    why = "test clips differ" if pb and ph else "no predictions to pair"
    bi, hi = b.interval, h.interval
    if bi is None or hi is None:
        return ModelChange(model, NO_CLEAR_CHANGE, f"{why}; no UAR interval to compare", b, h)
    verdict = BETTER if hi[0] > bi[1] else WORSE if hi[1] < bi[0] else NO_CLEAR_CHANGE
    apart = "overlap" if verdict == NO_CLEAR_CHANGE else "do not overlap"
    return ModelChange(model, verdict, f"{why}; UAR intervals {apart}", b, h)


# --- params -----------------------------------------------------------------------------------


def flatten(tree: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(tree, Mapping):
        out: dict[str, Any] = {}
        for key, value in tree.items():
            out.update(flatten(value, f"{prefix}{key}."))
        return out
    return {prefix[:-1]: tree} if prefix else {}


class _Absent:
    def __repr__(self) -> str:
        return "ABSENT"


ABSENT = _Absent()  # a key one side of a params diff does not have


def params_diff(base: bytes | None, head: bytes | None) -> list[tuple[str, Any, Any]]:
    """``(key, base value, head value)`` for every dotted key whose value differs."""
    old = flatten(yaml.safe_load(base) or {}) if base else {}
    new = flatten(yaml.safe_load(head) or {}) if head else {}
    rows = []
    for key in sorted(old.keys() | new.keys()):
        a, b = old.get(key, ABSENT), new.get(key, ABSENT)
        if a != b:
            rows.append((key, a, b))
    return rows


# --- figures ----------------------------------------------------------------------------------


def _save(fig: Any, path: Path) -> None:
    try:
        from seda.plots import save_figure
    except ImportError:
        fig.savefig(path, dpi=150, metadata={"Software": None})
    else:
        save_figure(fig, path)


def _figure(width: float, height: float, panels: int = 2) -> tuple[Any, list[Any]]:
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), layout="constrained")
    return fig, [fig.add_subplot(1, panels, i + 1) for i in range(panels)]


def _absent(ax: Any, text: str) -> None:
    ax.text(0.5, 0.5, text, ha="center", va="center", transform=ax.transAxes, color="0.4")
    ax.set_axis_off()


def confusion_pair(
    model: str, sides: Sequence[tuple[str, dict[str, tuple[str, str]] | None]], path: Path
) -> None:
    """Row-normalised confusion matrices (counts in each cell), one panel per side."""
    labels = sorted(
        {label for _, preds in sides if preds for pair in preds.values() for label in pair}
    )
    k = len(labels)
    side_in = max(3.6, 1.2 + 0.75 * k)
    fig, axes = _figure(2 * side_in + 1.0, side_in)
    image = None
    for ax, (title, preds) in zip(axes, sides, strict=True):
        if not preds:
            _absent(ax, f"{title}:\nno predictions.csv")
            continue
        code = {label: i for i, label in enumerate(labels)}
        counts = np.zeros((k, k), dtype=int)
        for actual, predicted in preds.values():
            counts[code[actual], code[predicted]] += 1
        rows = counts.sum(axis=1, keepdims=True)
        shares = np.divide(counts, rows, out=np.zeros(counts.shape), where=rows > 0)
        image = ax.imshow(shares, cmap="Blues", vmin=0.0, vmax=1.0)
        for i in range(k):
            for j in range(k):
                colour = "white" if shares[i, j] > 0.6 else "black"
                ax.text(
                    j,
                    i,
                    f"{shares[i, j]:.0%}\n({counts[i, j]})",
                    ha="center",
                    va="center",
                    fontsize=9 if k <= 6 else 7,
                    color=colour,
                )
        ax.set_xticks(range(k), labels, rotation=30 if k > 4 else 0)
        ax.set_yticks(range(k), labels)
        ax.set_xlabel("predicted")
        ax.set_ylabel("actual")
        ax.set_title(f"{title} (n = {int(counts.sum())})")
    if image is not None:
        fig.colorbar(image, ax=axes, fraction=0.03, pad=0.02, label="share of actual class")
    fig.suptitle(f"{model}: confusion matrix (test set)")
    _save(fig, path)


def _roc_table(raw: bytes) -> dict[str, np.ndarray]:
    reader = csv.DictReader(io.StringIO(raw.decode("utf-8")))
    columns: dict[str, list[float]] = {name: [] for name in reader.fieldnames or []}
    for row in reader:
        for name in columns:
            cell = row.get(name) or ""
            columns[name].append(float(cell) if cell.strip() else math.nan)
    return {name: np.array(values) for name, values in columns.items()}


def roc_pair(model: str, sides: Sequence[tuple[str, bytes | None]], path: Path) -> None:
    """Per-class ROC curves (thin) and the macro average (bold), one panel per side."""
    from seda.palette import label_colours

    fig, axes = _figure(11.0, 5.4)
    for ax, (title, raw) in zip(axes, sides, strict=True):
        table = _roc_table(raw) if raw is not None else {}
        if "fpr" not in table:
            _absent(ax, f"{title}:\nno roc.csv")
            continue
        fpr = table["fpr"]
        classes = [c.removeprefix("tpr_") for c in table if c.startswith("tpr_")]
        classes = [c for c in classes if c != "macro"]
        colours = label_colours(classes)
        for label in classes:
            ax.plot(fpr, table[f"tpr_{label}"], lw=1.2, color=colours[label], label=label)
        if "tpr_macro" in table:
            ax.plot(fpr, table["tpr_macro"], lw=2.5, color="black", label="macro average")
        ax.plot([0, 1], [0, 1], color="0.6", lw=1, ls="--", label="chance")
        ax.set(xlim=(-0.01, 1.01), ylim=(-0.01, 1.01), aspect="equal", title=title)
        ax.set_xlabel("false positive rate")
        ax.set_ylabel("true positive rate")
        ax.grid(alpha=0.3)
        ax.legend(loc="lower right", fontsize=8)
    fig.suptitle(f"{model}: ROC, one class vs rest")
    _save(fig, path)


def uar_chart(changes: Sequence[ModelChange], base_label: str, path: Path) -> None:
    """Every model's UAR with its 95% interval, base and head next to each other."""
    fig, (ax,) = _figure(max(6.0, 1.3 * len(changes) + 2.0), 4.6, panels=1)
    for offset, which, colour, name in (
        (-0.15, "base", "0.55", base_label),
        (0.15, "head", "#1f77b4", "this change"),
    ):
        label: str | None = name  # in the legend once
        for x, change in enumerate(changes):
            figures = getattr(change, which)
            if figures is None or figures.uar is None:
                continue
            interval = figures.interval
            err = None
            if interval is not None:
                err = [[figures.uar - interval[0]], [interval[1] - figures.uar]]
            ax.errorbar(
                x + offset, figures.uar, yerr=err, fmt="o", color=colour, capsize=4, label=label
            )
            label = None
    ax.set_xticks(range(len(changes)), [c.model for c in changes])
    ax.set_ylabel("UAR (95% interval)")
    ax.set_ylim(0.0, 1.0)
    ax.grid(axis="y", alpha=0.3)
    ax.legend(loc="lower right")
    ax.set_title("UAR per model: base and this change")
    _save(fig, path)


# --- markdown ---------------------------------------------------------------------------------


def _uar_text(h: Headline | None) -> str:
    if h is None or h.uar is None:
        return MISSING
    interval = h.interval
    return f"{h.uar:.3f}" + ("" if interval is None else f" [{interval[0]:.3f}, {interval[1]:.3f}]")


def _value(value: Any) -> str:
    if value is ABSENT:
        return "(absent)"
    if value is None:
        return "null"
    if isinstance(value, float):
        return f"{value:.4g}"
    text = json.dumps(value) if isinstance(value, list | dict) else str(value)
    return text.replace("|", "\\|")


def _metric(value: float | None, key: str) -> str:
    if value is None:
        return MISSING
    return str(int(value)) if key == "n_test" else f"{value:.3f}"


def _other_metrics(moved: Sequence[ModelChange]) -> list[str]:
    """One row per changed model, ``base → now`` in each headline column that moved."""

    def pair(c: ModelChange, key: str) -> tuple[float | None, float | None]:
        return (
            c.base.values.get(key) if c.base else None,
            c.head.values.get(key) if c.head else None,
        )

    keys = [k for k in HEADLINE_KEYS[1:] if any(len(set(pair(c, k))) > 1 for c in moved)]
    if not keys:
        return []
    lines = ["## Other headline metrics", ""]
    lines += [f"| Model | {' | '.join(keys)} |", "|---" * (len(keys) + 1) + "|"]
    for c in moved:
        cells = []
        for key in keys:
            a, b = pair(c, key)
            cells.append(_metric(a, key) if a == b else f"{_metric(a, key)} → {_metric(b, key)}")
        lines.append(f"| {c.model} | {' | '.join(cells)} |")
    return [*lines, ""]


def render_markdown(
    base_label: str,
    changes: Sequence[ModelChange],
    params: Sequence[tuple[str, Any, Any]],
    chart: str | None,
    n_boot: int,
    seed: int,
) -> str:
    lines = [f"# Results of this change against {base_label}", ""]
    moved = [c for c in changes if not c.unchanged]
    if moved:
        lines += [
            "| Model | Verdict | UAR at base [95% CI] | UAR now [95% CI] | ΔUAR [95% CI] "
            "| Decided by |",
            "|---|---|---|---|---|---|",
        ]
        for c in moved:
            delta = MISSING
            if c.difference is not None:
                d, lo, hi = c.difference
                delta = f"{d:+.3f} [{lo:+.3f}, {hi:+.3f}]"
            elif c.base is not None and c.head is not None and None not in (c.base.uar, c.head.uar):
                delta = f"{c.head.uar - c.base.uar:+.3f}"
            lines.append(
                f"| {c.model} | **{c.verdict}** | {_uar_text(c.base)} | {_uar_text(c.head)} "
                f"| {delta} | {c.how} |"
            )
        lines.append("")
    for c in changes:
        if c.unchanged:
            lines.append(
                f"- {c.model}: **{c.verdict}** (identical results; UAR {_uar_text(c.head)})"
            )
    if any(c.unchanged for c in changes):
        lines.append("")
    lines += [
        f'"Better" or "worse" means the {LEVEL:.0%} interval of the UAR difference excludes 0 '
        f"(paired bootstrap, {n_boot} resamples of the same test clips, seed {seed}); where the "
        "test clips differ, that the two UAR intervals do not overlap. Anything else is no clear "
        "change, whatever the third decimal says.",
        "",
        "## Params changed",
        "",
    ]
    if params:
        lines += ["| Param | base | now |", "|---|---|---|"]
        lines += [f"| `{k}` | {_value(a)} | {_value(b)} |" for k, a, b in params]
    else:
        lines.append("No params changed.")
    lines.append("")
    lines += _other_metrics(moved)
    if chart or any(c.images for c in changes):
        lines += ["## Plots", "", "Each pair: base on the left, this change on the right.", ""]
    if chart:
        lines += [f"![UAR per model, base and this change]({chart})", ""]
    for c in changes:
        if c.images:
            lines += [f"### {c.model}", ""]
            lines += [f"![{alt}]({name})" for alt, name in c.images]
            lines.append("")
    return "\n".join(lines)


# --- the command ------------------------------------------------------------------------------


@dataclass
class Report:
    path: Path
    changes: list[ModelChange]
    params: list[tuple[str, Any, Any]]

    @property
    def verdicts(self) -> dict[str, str]:
        return {c.model: c.verdict for c in self.changes}


def build_report(
    base_rev: str,
    out_dir: Path,
    metrics_dir: Path = Path("reports/metrics"),
    plots_dir: Path = Path("reports/plots"),
    params_file: Path = Path("params.yaml"),
    n_boot: int = 2000,
    seed: int = 0,
) -> Report:
    """Judge every model, draw what changed, write ``report.md``; paths relative to cwd."""
    base = resolve_base(base_rev)
    head = Side(None, "this change")
    models = sorted(base.json_names(metrics_dir) | head.json_names(metrics_dir))
    out_dir.mkdir(parents=True, exist_ok=True)
    changes = []
    for model in models:
        before = read_model(base, model, metrics_dir, plots_dir)
        after = read_model(head, model, metrics_dir, plots_dir)
        change = judge(model, before, after, n_boot, seed)
        changes.append(change)
        if change.unchanged:
            continue
        if before.predictions != after.predictions:
            name = f"{model}-confusion.png"
            confusion_pair(
                model,
                [(base.label, _predictions(before)), (head.label, _predictions(after))],
                out_dir / name,
            )
            change.images.append((f"{model}: confusion matrices, base and this change", name))
        if before.roc != after.roc:
            name = f"{model}-roc.png"
            roc_pair(model, [(base.label, before.roc), (head.label, after.roc)], out_dir / name)
            change.images.append((f"{model}: ROC curves, base and this change", name))
    chart = None
    if changes and not all(c.unchanged for c in changes):
        chart = "uar.png"
        uar_chart(changes, base.label, out_dir / chart)
    params = params_diff(base.read(params_file), head.read(params_file))
    path = out_dir / "report.md"
    path.write_text(render_markdown(base.label, changes, params, chart, n_boot, seed) + "\n")
    return Report(path, changes, params)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="seda report", description="This change's results against a base revision."
    )
    parser.add_argument("--base", required=True, help="git revision to compare with, e.g. HEAD~1")
    parser.add_argument("--out", default="reports/pr", help="folder for report.md and its images")
    parser.add_argument("--metrics-dir", default="reports/metrics")
    parser.add_argument("--plots-dir", default="reports/plots")
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--n-boot", type=int, default=2000, help="paired bootstrap resamples")
    parser.add_argument("--seed", type=int, default=0)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    from seda.entry import stage_main

    args = build_parser().parse_args(argv)

    def work() -> None:
        report = build_report(
            args.base,
            Path(args.out),
            Path(args.metrics_dir),
            Path(args.plots_dir),
            Path(args.params),
            args.n_boot,
            args.seed,
        )
        for model, verdict in report.verdicts.items():
            print(f"{model}: {verdict}")
        print(f"wrote {report.path}")

    return stage_main("report", work)


if __name__ == "__main__":
    raise SystemExit(main())
