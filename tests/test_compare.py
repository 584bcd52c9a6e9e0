"""seda.comparison and the compare stage: table order, interval formatting, leave-one-group-out
columns, the paired comparison with the best model, warnings, chart and bad input files."""

from __future__ import annotations

import dataclasses
import json
import re
import zlib
from pathlib import Path

import numpy as np
import pytest
from matplotlib.image import imread

from seda import comparison
from seda.io import write_csv_atomic
from seda.metrics import (
    MetricsRecord,
    classification_metrics,
    fold_metrics,
    fold_spread,
    speaker_metrics,
)
from seda.stages import compare

LABELS = ["angry", "calm", "happy", "sad"]
CI_CELL = re.compile(r"^(\d\.\d\d) \[(\d\.\d\d), (\d\.\d\d)\]$")
DELTA = re.compile(r"^ΔUAR ([+−]\d\.\d\d) \[([+−]\d\.\d\d), ([+−]\d\.\d\d)\]: (.+)$")


def write_model(
    root: Path,
    model: str,
    signal: float,
    weights: str | None = "random",
    checkpoint: str | None = None,
    n: int = 120,
    labels: list[str] = LABELS,
    protocol: str = "holdout",
    n_speakers: int = 6,
    seed: int | None = None,
) -> MetricsRecord:
    """The details file and predictions.csv as the train stage writes them, from noisy
    predictions: ``n`` clips, by ``n_speakers`` speakers (one group and one fold each)."""
    rng = np.random.default_rng(zlib.crc32(model.encode()) if seed is None else seed)
    k = len(labels)
    y_true = np.arange(n) % k
    prob = rng.dirichlet(np.ones(k), n)
    prob[np.arange(n), y_true] += signal
    prob /= prob.sum(axis=1, keepdims=True)
    y_pred = prob.argmax(axis=1)
    fold = np.arange(n) * n_speakers // n
    speakers = [f"spk{f}" for f in fold]
    groups = [f"g{f}" for f in fold]
    scores = classification_metrics(y_true, prob, labels, n_bootstrap=300, groups=groups)
    folds = fold_metrics(y_true, y_pred, k, fold.tolist(), groups, speakers)
    if protocol != "loso":
        folds = []
    mean, sd = fold_spread(folds)
    record = MetricsRecord.from_scores(
        scores,
        uar_fold_mean=mean,
        uar_fold_sd=sd,
        folds=[dataclasses.asdict(f) for f in folds],
        speakers=[
            dataclasses.asdict(s) for s in speaker_metrics(y_true, y_pred, k, speakers, groups)
        ],
        model=model,
        backbone_weights=weights,
        checkpoint=checkpoint,
        protocol=protocol,
        mode="probe" if weights else "baseline",
        n_train=100,
        n_val=20,
        n_folds=len(folds) or 1,
        n_bootstrap=300,
        bootstrap_seed=0,
    )
    record.write(root / "details" / f"{model}.json")
    write_csv_atomic(
        root / "plots" / model / "predictions.csv",
        (
            {"clip_id": f"c{i:03d}", "actual": labels[t], "predicted": labels[p], "group": g}
            for i, (t, p, g) in enumerate(zip(y_true, y_pred, groups, strict=True))
        ),
        ["clip_id", "actual", "predicted", "group"],
    )
    return record


def inputs(root: Path, models: list[str]) -> tuple[list[Path], list[Path]]:
    return (
        [root / "details" / f"{m}.json" for m in models],
        [root / "plots" / m / "predictions.csv" for m in models],
    )


def table(md: str, start: str = "| Model") -> list[list[str]]:
    lines = md.splitlines()
    first = next(i for i, line in enumerate(lines) if line.startswith(start))
    rows = []
    for line in lines[first:]:
        if not line.startswith("|"):
            break
        if not line.startswith("|---"):
            rows.append([cell.strip() for cell in line.strip("|").split("|")])
    return rows


def paired_lines(md: str) -> dict[str, str]:
    lines = md.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("## Each model against"))
    out = {}
    for line in lines[start + 2 :]:
        if not line.startswith("- "):
            break
        model, text = line[2:].split(": ", 1)
        out[model] = text
    return out


def test_table_sorted_by_uar_with_intervals(tmp_path: Path) -> None:
    reports = tmp_path / "reports"
    written = {
        "hubert": write_model(tmp_path, "hubert", 0.5),
        "wavlm": write_model(tmp_path, "wavlm", 1.5, "pretrained", "facebook/wavlm-base-plus"),
        "wav2vec2": write_model(tmp_path, "wav2vec2", 0.1),
        "baseline": write_model(tmp_path, "baseline", 0.7, weights=None),
    }
    summary = compare.run(*inputs(tmp_path, list(written)), reports)
    md = (reports / "comparison.md").read_text()
    header, *rows = table(md)
    assert header == list(comparison.TABLE_HEADER)  # no leave-one-group-out run: no fold column
    order = sorted(written, key=lambda m: (-written[m].uar, m))  # ties by name
    assert [r[0] for r in rows] == order
    assert summary["best_model"] == order[0]
    for row in rows:
        m = written[row[0]]
        for cell, key in ((row[2], "accuracy"), (row[3], "uar")):
            value, low, high = map(float, CI_CELL.match(cell).groups())
            assert value == pytest.approx(getattr(m, key), abs=0.0051)
            assert [low, high] == pytest.approx(getattr(m, f"{key}_ci"), abs=0.0051)
        assert row[5] == f"{m.f1:.2f}" and row[6] == f"{m.auc:.2f}"
        assert row[9] == "120"
    weights = {r[0]: r[1] for r in rows}
    assert weights == {
        "hubert": "random (tiny, untrained)",
        "wav2vec2": "random (tiny, untrained)",
        "wavlm": "pretrained: facebook/wavlm-base-plus",
        "baseline": "—",
    }
    assert "1/k = 0.25 for k = 4 classes (angry, calm, happy, sad)" in md
    assert "most frequent test class (angry) gives accuracy 0.25" in md
    assert "Protocol: holdout (fixed train / validation / test split" in md
    assert "Intervals: group bootstrap" in md
    warning = next(line for line in md.splitlines() if "Warning" in line)
    assert "hubert" in warning and "wav2vec2" in warning and "wavlm" not in warning

    saved = json.loads((reports / "comparison.json").read_text())
    assert saved == json.loads(json.dumps(summary))
    assert saved["models"]["wavlm"]["uar_ci_low"] == written["wavlm"].uar_ci[0]
    assert set(saved["paired"]) == set(order[1:])

    image = imread(reports / "comparison.png")
    assert image.shape[1] > 800 and image[..., :3].std() > 0.1
    assert (reports / "comparison.png").stat().st_size > 20_000


def test_paired_comparison_with_the_best_model(tmp_path: Path) -> None:
    write_model(tmp_path, "wavlm", 0.8, "pretrained", "facebook/wavlm-base-plus", n=240, seed=1)
    write_model(tmp_path, "hubert", 0.8, n=240, seed=2)  # as good: no clear difference
    write_model(tmp_path, "wav2vec2", 0.05, n=240, seed=3)  # near chance: clearly worse
    write_model(tmp_path, "data2vec", 0.3, n=200, seed=4)  # other clips: not paired
    models = ["wavlm", "hubert", "wav2vec2", "data2vec"]
    summary = compare.run(*inputs(tmp_path, models), tmp_path / "reports")
    md = (tmp_path / "reports/comparison.md").read_text()
    best = summary["best_model"]
    lines = paired_lines(md)
    assert best not in lines and set(lines) == set(models) - {best}
    worse = DELTA.match(lines["wav2vec2"])
    delta, low, high = (float(v.replace("−", "-")) for v in worse.groups()[:3])
    assert low <= delta <= high < 0 and worse.group(4) == f"worse than {best}"
    for model in {"wavlm", "hubert"} - {best}:
        same = DELTA.match(lines[model])
        low, high = (float(v.replace("−", "-")) for v in same.groups()[1:3])
        assert low <= 0 <= high and same.group(4) == "no clear difference"
    assert lines["data2vec"] == f"not paired: tested on other clips than {best}"
    assert "resampling 6 test groups" in md
    pair = summary["paired"]["wav2vec2"]
    assert pair["resampled"] == "groups" and pair["n_units"] == 6 and pair["vs"] == best
    assert pair["delta_uar"] == pytest.approx(
        summary["models"]["wav2vec2"]["uar"] - summary["models"][best]["uar"]
    )


def test_leave_one_group_out_shows_folds(tmp_path: Path) -> None:
    write_model(tmp_path, "wavlm", 1.0, "pretrained", "facebook/wavlm-base-plus", protocol="loso")
    baseline = write_model(tmp_path, "baseline", 0.6, weights=None, protocol="loso")
    compare.run(*inputs(tmp_path, ["wavlm", "baseline"]), tmp_path / "reports")
    md = (tmp_path / "reports/comparison.md").read_text()
    header, *rows = table(md)
    assert header[3:5] == ["UAR (pooled)", "UAR per fold (mean ± SD)"]
    cell = next(r for r in rows if r[0] == "baseline")[4]
    assert cell == f"{baseline.uar_fold_mean:.2f} ± {baseline.uar_fold_sd:.2f}"
    folds = table(md, "| Fold")
    assert folds[0][:2] == ["Fold", "Held-out speakers"] and len(folds) == 1 + 6 + 1
    assert folds[1][:2] == ["0", "spk0"] and folds[-1][1] == "mean ± SD"
    column = folds[0].index("baseline")
    assert folds[1][column] == f"{baseline.folds[0].uar:.2f} ({baseline.folds[0].n})"
    assert "Protocol: loso" in md and "per fold: the mean ± sample SD" in md


def test_no_warning_without_random_weights_and_reruns_are_identical(tmp_path: Path) -> None:
    write_model(tmp_path, "wavlm", 1.0, "pretrained", "facebook/wavlm-base-plus")
    write_model(tmp_path, "baseline", 0.5, weights=None)
    files = inputs(tmp_path, ["wavlm", "baseline"])
    compare.run(*files, tmp_path / "a")
    compare.run(*files, tmp_path / "b")
    md = (tmp_path / "a/comparison.md").read_text()
    assert "Warning" not in md
    for name in ("comparison.md", "comparison.png", "comparison.json"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()
    # Without predictions: the table, no paired comparison.
    compare.run(files[0], None, tmp_path / "c")
    assert "## Each model against" not in (tmp_path / "c/comparison.md").read_text()


def test_bad_files_are_listed_not_dropped(tmp_path: Path) -> None:
    write_model(tmp_path, "hubert", 0.5)
    write_model(tmp_path, "wavlm", 0.5)
    details, predictions = inputs(tmp_path, ["hubert", "wavlm"])
    broken, partial = tmp_path / "details/broken.json", tmp_path / "details/partial.json"
    broken.write_text("{not json")
    partial.write_text(json.dumps({"model": "partial", "accuracy": 0.5}))
    predictions[1].write_text("clip,label\nc1,angry\n")
    summary = compare.run([*details, broken, partial], None, tmp_path / "reports")
    md = (tmp_path / "reports/comparison.md").read_text()
    assert sorted(r[0] for r in table(md)[1:]) == ["hubert", "wavlm"]
    assert "`" + broken.as_posix() + "`: is not valid JSON" in md
    assert "lacks uar" in md
    assert {Path(s["path"]).name for s in summary["skipped"]} == {"broken.json", "partial.json"}
    summary = compare.run(details, predictions, tmp_path / "reports")
    (only,) = summary["paired"].values()
    assert "unreadable: lacks column(s) clip_id, actual, predicted" in only["text"]


def test_mismatched_label_sets_and_sizes_are_flagged(tmp_path: Path) -> None:
    write_model(tmp_path, "hubert", 0.5)
    write_model(tmp_path, "wavlm", 0.5, n=90, labels=["angry", "happy", "sad"])
    compare.run(*inputs(tmp_path, ["hubert", "wavlm"]), tmp_path / "reports")
    md = (tmp_path / "reports/comparison.md").read_text()
    assert "different label sets" in md and "different numbers of clips" in md
    assert "not paired: evaluated on another label set" in md


def test_main_without_inputs_is_a_clear_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    args = ["--details", "reports/details/hubert.json", "--out", "reports"]
    assert compare.main(args) == 2
    err = capsys.readouterr().err
    assert "reports/details/hubert.json not found" in err and "Traceback" not in err
    Path("reports/details").mkdir(parents=True)
    Path("reports/details/hubert.json").write_text("{")
    assert compare.main(args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "no usable details file in reports/details/hubert.json" in err[0]
    assert not (tmp_path / "reports/comparison.md").exists()
    write_model(Path("reports"), "hubert", 0.5)
    more = [*args[:2], "--predictions", "a.csv", "b.csv", *args[2:]]
    Path("a.csv").write_text("")
    Path("b.csv").write_text("")
    assert compare.main(more) == 2
    assert "2 predictions file(s) for 1 details file(s)" in capsys.readouterr().err


def test_main_writes_reports_from_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    write_model(Path("reports"), "data2vec", 0.8)
    write_model(Path("reports"), "baseline", 0.8, weights=None)
    details, predictions = inputs(Path("reports"), ["data2vec", "baseline"])
    args = ["--details", *map(str, details), "--predictions", *map(str, predictions)]
    assert compare.main([*args, "--out", "reports"]) == 0
    assert Path("reports/comparison.md").exists() and Path("reports/comparison.png").exists()
    assert "## Each model against the best one" in Path("reports/comparison.md").read_text()
