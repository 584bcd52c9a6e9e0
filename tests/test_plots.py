"""seda.plots: the CSV files DVC renders, the PNG copies, and the dvc.yaml plot definitions."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from matplotlib.image import imread
from sklearn.metrics import roc_auc_score

from seda.io import read_csv
from seda.palette import label_colours
from seda.plots import (
    FPR_GRID,
    _interp_roc,
    roc_figure,
    roc_on_grid,
    save_figure,
    write_model_plots,
)

LABELS = ["angry", "calm", "happy", "sad"]
PNGS = ("confusion.png", "roc.png", "history.png", "reliability.png")


def predictions(n: int = 80, seed: int = 0, k: int = 4) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y_true = rng.integers(0, k, n)
    prob = rng.dirichlet(np.ones(k), n)
    prob[np.arange(n), y_true] += 0.4
    return y_true, prob / prob.sum(axis=1, keepdims=True)


def history(epochs: int = 5) -> list[dict[str, float]]:
    return [
        {"epoch": e, "train_loss": 1.4 / e, "val_loss": 1.5 / e + 0.2, "val_uar": 0.25 + 0.05 * e}
        for e in range(1, epochs + 1)
    ]


def clip_ids(n: int) -> list[str]:
    return [f"clip_{i:03d}" for i in range(n)]


def test_writes_every_file(tmp_path: Path) -> None:
    y_true, prob = predictions()
    write_model_plots("wavlm", y_true, prob, LABELS, clip_ids(80), history(), tmp_path)
    rows = read_csv(tmp_path / "predictions.csv")
    assert [r["clip_id"] for r in rows] == clip_ids(80)
    assert [r["actual"] for r in rows] == [LABELS[t] for t in y_true]
    assert [r["predicted"] for r in rows] == [LABELS[p] for p in prob.argmax(axis=1)]
    assert list(rows[0]) == ["clip_id", "actual", "predicted"]  # no groups given: no column

    hist = read_csv(tmp_path / "history.csv")
    assert list(hist[0]) == ["epoch", "train_loss", "val_loss", "val_uar"]
    assert [int(r["epoch"]) for r in hist] == [1, 2, 3, 4, 5]
    assert float(hist[1]["val_uar"]) == pytest.approx(0.35)

    for name in PNGS:
        image = imread(tmp_path / name)
        assert image.shape[0] > 300 and image.shape[1] > 300, name
        assert image[..., :3].std() > 0.05, f"{name} looks blank"
    assert not list(tmp_path.glob(".*")), "temporary files left behind"

    table = read_csv(tmp_path / "reliability.csv")
    assert list(table[0]) == ["bin", "confidence", "accuracy", "count"]
    assert [int(r["bin"]) for r in table] == sorted({int(r["bin"]) for r in table})
    assert sum(int(r["count"]) for r in table) == 80
    for r in table:  # each bin's mean confidence lies inside the bin
        b, conf = int(r["bin"]), float(r["confidence"])
        assert b / 15 < conf <= (b + 1) / 15 + 1e-9
        assert 0.0 <= float(r["accuracy"]) <= 1.0


def test_roc_csv_is_a_proper_curve_on_the_fixed_grid(tmp_path: Path) -> None:
    y_true, prob = predictions(n=300, seed=4)
    write_model_plots("hubert", y_true, prob, LABELS, clip_ids(300), None, tmp_path)
    rows = read_csv(tmp_path / "roc.csv")
    assert list(rows[0]) == ["fpr", *(f"tpr_{lab}" for lab in LABELS), "tpr_macro"]
    fpr = np.array([float(r["fpr"]) for r in rows])
    assert fpr == pytest.approx(np.linspace(0, 1, 101))
    curves = []
    for c, label in enumerate(LABELS):
        tpr = np.array([float(r[f"tpr_{label}"]) for r in rows])
        assert np.all(np.diff(tpr) >= -1e-9) and tpr[-1] == pytest.approx(1.0)
        # area under the gridded curve is the exact AUC up to the grid's resolution
        area = float(np.sum((tpr[1:] + tpr[:-1]) / 2 * np.diff(fpr)))
        assert area == pytest.approx(roc_auc_score(y_true == c, prob[:, c]), abs=0.01)
        curves.append(tpr)
    macro = np.array([float(r["tpr_macro"]) for r in rows])
    assert macro == pytest.approx(np.mean(curves, axis=0), abs=1e-5)


def test_roc_interpolation_takes_the_upper_value_at_jumps() -> None:
    fpr = np.array([0.0, 0.0, 0.5, 1.0])
    tpr = np.array([0.0, 0.5, 0.5, 1.0])
    grid = np.array([0.0, 0.25, 0.5, 0.75, 1.0])
    assert _interp_roc(fpr, tpr, grid) == pytest.approx([0.5, 0.5, 0.5, 0.75, 1.0])
    y_true = np.repeat([0, 1], 5)
    perfect = np.eye(2)[y_true]
    assert roc_on_grid(y_true, perfect, 2) == pytest.approx(np.ones((2, FPR_GRID.size)))


def test_class_absent_from_test_set_has_empty_roc_cells(tmp_path: Path) -> None:
    y_true, prob = predictions(n=60, seed=2, k=3)
    labels = ["angry", "calm", "happy", "neutral"]
    prob4 = np.hstack([prob * 0.9, np.full((60, 1), 0.1)])
    write_model_plots("wav2vec2", y_true, prob4, labels, clip_ids(60), [], tmp_path)
    rows = read_csv(tmp_path / "roc.csv")
    assert {r["tpr_neutral"] for r in rows} == {""}
    assert all(r["tpr_macro"] and r["tpr_angry"] for r in rows)
    assert read_csv(tmp_path / "history.csv") == []
    assert (tmp_path / "history.csv").read_text().strip() == "epoch,train_loss,val_loss,val_uar"
    assert (tmp_path / "history.png").stat().st_size > 5000


def test_reliability_diagram_draws_both_sides_of_temperature_scaling(tmp_path: Path) -> None:
    """With the unscaled probabilities given, the PNG draws them too; reliability.csv always
    holds the probabilities reported."""
    y_true, prob = predictions(n=60, seed=3)
    sharp = prob**3 / (prob**3).sum(axis=1, keepdims=True)
    write_model_plots("m", y_true, prob, LABELS, clip_ids(60), None, tmp_path / "one")
    write_model_plots(
        "m", y_true, prob, LABELS, clip_ids(60), None, tmp_path / "two", unscaled=sharp
    )
    one, two = tmp_path / "one", tmp_path / "two"
    assert (one / "reliability.csv").read_bytes() == (two / "reliability.csv").read_bytes()
    assert (one / "reliability.png").read_bytes() != (two / "reliability.png").read_bytes()
    with pytest.raises(ValueError, match="shape"):
        write_model_plots(
            "m", y_true, prob, LABELS, clip_ids(60), None, tmp_path / "x", unscaled=sharp[:5]
        )


def test_same_inputs_give_identical_files(tmp_path: Path) -> None:
    y_true, prob = predictions(n=40, seed=9)
    for name in ("a", "b"):
        write_model_plots("m", y_true, prob, LABELS, clip_ids(40), history(3), tmp_path / name)
    for path in sorted((tmp_path / "a").iterdir()):
        assert path.read_bytes() == (tmp_path / "b" / path.name).read_bytes(), path.name


def test_mismatched_clip_ids_are_rejected(tmp_path: Path) -> None:
    y_true, prob = predictions(n=10)
    with pytest.raises(ValueError, match="clip ids"):
        write_model_plots("m", y_true, prob, LABELS, clip_ids(9), None, tmp_path)
    with pytest.raises(ValueError, match="groups"):
        write_model_plots("m", y_true, prob, LABELS, clip_ids(10), None, tmp_path, groups=["g"])
    assert not any(tmp_path.iterdir())


def test_predictions_carry_the_group_of_each_clip(tmp_path: Path) -> None:
    """The ``group`` column (for bootstraps that resample speakers); DVC's confusion plot reads
    ``actual`` and ``predicted`` and ignores it."""
    y_true, prob = predictions(n=12)
    groups = [f"g{i % 3}" for i in range(12)]
    write_model_plots("m", y_true, prob, LABELS, clip_ids(12), None, tmp_path, groups=groups)
    rows = read_csv(tmp_path / "predictions.csv")
    assert list(rows[0]) == ["clip_id", "actual", "predicted", "group"]
    assert [r["group"] for r in rows] == groups


def dvc_plots_yaml(models: list[str]) -> str:
    """The top-level ``plots:`` block recommended for dvc.yaml (kept in step with the report)."""
    lines = ["plots:"]
    for m in models:
        d = f"reports/plots/{m}"
        lines += [
            f"  - {m}_confusion:",
            "      template: confusion_normalized",
            f"      title: '{m}: confusion matrix (test set)'",
            "      x: actual",
            "      y:",
            f"        {d}/predictions.csv: predicted",
            "      x_label: actual",
            "      y_label: predicted",
            f"  - {m}_roc:",
            "      template: simple",
            f"      title: '{m}: macro-average ROC (one vs rest)'",
            "      x: fpr",
            "      y:",
            f"        {d}/roc.csv: tpr_macro",
            "      x_label: false positive rate",
            "      y_label: true positive rate",
            f"  - {m}_history:",
            "      template: linear",
            f"      title: '{m}: training history'",
            "      x: epoch",
            "      y:",
            f"        {d}/history.csv: [train_loss, val_loss, val_uar]",
            f"  - {m}_reliability:",
            "      template: linear",
            f"      title: '{m}: reliability (top-label confidence vs accuracy, test set)'",
            "      x: confidence",
            "      y:",
            f"        {d}/reliability.csv: accuracy",
            "      x_label: mean confidence in bin",
            "      y_label: accuracy in bin",
            f"  - {d}/confusion.png",
            f"  - {d}/roc.png",
            f"  - {d}/history.png",
            f"  - {d}/reliability.png",
        ]
    lines += [
        "  - roc_all_models:",
        "      template: simple",
        "      title: macro-average ROC, all models",
        "      x: fpr",
        "      y:",
        *(f"        reports/plots/{m}/roc.csv: tpr_macro" for m in models),
        "      x_label: false positive rate",
        "      y_label: true positive rate",
        "  - reliability_all_models:",
        "      template: linear",
        "      title: reliability, all models (test set)",
        "      x: confidence",
        "      y:",
        *(f"        reports/plots/{m}/reliability.csv: accuracy" for m in models),
        "      x_label: mean confidence in bin",
        "      y_label: accuracy in bin",
        "  - reports/comparison.png",
    ]
    return "\n".join(lines) + "\n"


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("dvc") is None, reason="dvc command not installed")
def test_dvc_plots_show_renders_the_files(tmp_path: Path) -> None:
    models = ["hubert", "baseline"]
    y_true, prob = predictions(n=50, seed=1)
    write_model_plots(
        "hubert", y_true, prob, LABELS, clip_ids(50), history(), tmp_path / "reports/plots/hubert"
    )
    write_model_plots(
        "baseline", y_true, prob, LABELS, clip_ids(50), None, tmp_path / "reports/plots/baseline"
    )
    shutil.copy(tmp_path / "reports/plots/hubert/roc.png", tmp_path / "reports/comparison.png")
    (tmp_path / "dvc.yaml").write_text(dvc_plots_yaml(models))
    env = {**os.environ, "DVC_NO_ANALYTICS": "1"}
    subprocess.run(["dvc", "init", "--no-scm", "-q"], cwd=tmp_path, env=env, check=True)
    shown = subprocess.run(
        ["dvc", "plots", "show", "--json"], cwd=tmp_path, env=env, capture_output=True, text=True
    )
    assert shown.returncode == 0, shown.stderr
    result = json.loads(shown.stdout)
    assert not result.get("errors"), result["errors"]
    data = result["data"]
    for m in models:
        confusion = data[f"{m}_confusion"][0]["content"]["data"]["values"]
        assert len(confusion) == 50 and {"actual", "predicted"} <= set(confusion[0])
        assert len(data[f"{m}_roc"][0]["content"]["data"]["values"]) == 101
        assert data[f"reports/plots/{m}/confusion.png"][0]["type"] == "image"
        assert data[f"reports/plots/{m}/reliability.png"][0]["type"] == "image"
        bins = data[f"{m}_reliability"][0]["content"]["data"]["values"]
        rows = read_csv(tmp_path / f"reports/plots/{m}/reliability.csv")
        assert len(bins) == len(rows) and {"confidence", "accuracy"} <= set(bins[0])
    assert len(data["hubert_history"][0]["content"]["data"]["values"]) == 3 * 5
    assert len(data["roc_all_models"][0]["content"]["data"]["values"]) == 2 * 101
    n_bins = sum(len(read_csv(tmp_path / f"reports/plots/{m}/reliability.csv")) for m in models)
    assert len(data["reliability_all_models"][0]["content"]["data"]["values"]) == n_bins
    html = subprocess.run(
        ["dvc", "plots", "show", "-o", "out"], cwd=tmp_path, env=env, capture_output=True, text=True
    )
    assert html.returncode == 0, html.stderr
    page = (tmp_path / "out/index.html").read_text()
    assert "hubert_confusion" in page and "roc_all_models" in page


def _figure(model: str = "wavlm") -> Any:
    y_true, prob = predictions()
    return roc_figure(model, y_true, prob, LABELS)


@pytest.mark.parametrize("suffix", [".png", ".svg", ".pdf"])
def test_save_figure_gives_the_same_bytes_twice(tmp_path: Path, suffix: str) -> None:
    """Two renders of the same figure: byte-identical, with no version or date in the file."""
    save_figure(_figure(), tmp_path / f"a{suffix}")
    save_figure(_figure(), tmp_path / f"b{suffix}")
    a, b = (tmp_path / f"a{suffix}").read_bytes(), (tmp_path / f"b{suffix}").read_bytes()
    assert a == b and len(a) > 1000
    import matplotlib

    assert matplotlib.__version__.encode() not in a
    assert not list(tmp_path.glob(".*")), "temporary files left behind"
    with pytest.raises(ValueError, match=r"\.png, \.svg or \.pdf"):
        save_figure(_figure(), tmp_path / "c.jpg")


def test_palette_keeps_emotion_colours_and_gives_every_label_its_own() -> None:
    assert label_colours(["sad", "angry"]) == {"sad": "#1f77b4", "angry": "#d62728"}
    many = [f"label{i}" for i in range(60)] + ["angry", "Anger", "calm"]
    colours = label_colours(many)
    assert list(colours) == many and len(set(colours.values())) == len(many)
    assert colours["angry"] == "#d62728" and colours["calm"] == "#2ca02c"
    assert label_colours(many) == colours  # stable
