"""seda.comparison and the compare stage: table order, interval formatting, warnings, chart and
bad metrics files."""

from __future__ import annotations

import json
import re
import zlib
from pathlib import Path

import numpy as np
import pytest
from matplotlib.image import imread

from seda import comparison
from seda.metrics import classification_metrics
from seda.stages import compare

LABELS = ["angry", "calm", "happy", "sad"]
CI_CELL = re.compile(r"^(\d\.\d\d) \[(\d\.\d\d), (\d\.\d\d)\]$")


def write_metrics(
    metrics_dir: Path,
    model: str,
    signal: float,
    weights: str | None = "random",
    checkpoint: str | None = None,
    n: int = 120,
    labels: list[str] = LABELS,
) -> dict:
    """A metrics file as train@<model> writes it: real metrics of noisy predictions."""
    rng = np.random.default_rng(zlib.crc32(model.encode()))
    k = len(labels)
    y_true = np.arange(n) % k
    prob = rng.dirichlet(np.ones(k), n)
    prob[np.arange(n), y_true] += signal
    metrics = classification_metrics(y_true, prob / prob.sum(axis=1, keepdims=True), labels)
    metrics.update(
        model=model,
        backbone_weights=weights,
        checkpoint=checkpoint,
        protocol="holdout",
        mode="probe" if weights else "sklearn",
    )
    metrics_dir.mkdir(parents=True, exist_ok=True)
    (metrics_dir / f"{model}.json").write_text(json.dumps(metrics))
    return metrics


def table(md: str) -> list[list[str]]:
    rows = [line for line in md.splitlines() if line.startswith("| ")]
    return [[cell.strip() for cell in row.strip("|").split("|")] for row in rows]


def test_table_sorted_by_uar_with_intervals(tmp_path: Path) -> None:
    metrics_dir, reports = tmp_path / "metrics", tmp_path / "reports"
    written = {
        "hubert": write_metrics(metrics_dir, "hubert", 0.5),
        "wavlm": write_metrics(metrics_dir, "wavlm", 1.5, "pretrained", "facebook/wavlm-base-plus"),
        "wav2vec2": write_metrics(metrics_dir, "wav2vec2", 0.1),
        "baseline": write_metrics(metrics_dir, "baseline", 0.7, weights=None),
    }
    summary = compare.run([metrics_dir], reports)
    md = (reports / "comparison.md").read_text()
    header, *rows = table(md)
    assert header == list(comparison.TABLE_HEADER)
    order = sorted(written, key=lambda m: (-written[m]["uar"], m))  # ties by name
    assert [r[0] for r in rows] == order
    assert summary["best_model"] == order[0]
    for row in rows:
        m = written[row[0]]
        for cell, key in ((row[2], "accuracy"), (row[3], "uar")):
            value, low, high = map(float, CI_CELL.match(cell).groups())
            assert value == pytest.approx(m[key], abs=0.005)
            assert [low, high] == pytest.approx(m[f"{key}_ci"], abs=0.005)
        assert row[5] == f"{m['f1']:.2f}" and row[6] == f"{m['auc']:.2f}"
        assert row[9] == "120"
    weights = {r[0]: r[1] for r in rows}
    assert weights == {
        "hubert": "random (tiny, untrained)",
        "wav2vec2": "random (tiny, untrained)",
        "wavlm": "pretrained: facebook/wavlm-base-plus",
        "baseline": "—",
    }
    assert "1/k = 0.25 for k = 4 classes (angry, calm, happy, sad)" in md
    assert "Protocol: holdout (fixed train / validation / test split" in md
    warning = next(line for line in md.splitlines() if "Warning" in line)
    assert "hubert" in warning and "wav2vec2" in warning and "wavlm" not in warning

    saved = json.loads((reports / "comparison.json").read_text())
    assert saved == json.loads(json.dumps(summary))
    assert saved["models"]["wavlm"]["uar_ci_low"] == written["wavlm"]["uar_ci"][0]

    image = imread(reports / "comparison.png")
    assert image.shape[1] > 800 and image[..., :3].std() > 0.1
    assert (reports / "comparison.png").stat().st_size > 20_000


def test_no_warning_without_random_weights_and_reruns_are_identical(tmp_path: Path) -> None:
    metrics_dir = tmp_path / "metrics"
    write_metrics(metrics_dir, "wavlm", 1.0, "pretrained", "facebook/wavlm-base-plus")
    write_metrics(metrics_dir, "baseline", 0.5, weights=None)
    compare.run([metrics_dir], tmp_path / "a")
    # Files named one by one read like their folder.
    compare.run(sorted(metrics_dir.glob("*.json")), tmp_path / "b")
    md = (tmp_path / "a/comparison.md").read_text()
    assert "Warning" not in md
    for name in ("comparison.md", "comparison.png", "comparison.json"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()


def test_bad_files_are_listed_not_dropped(tmp_path: Path) -> None:
    metrics_dir = tmp_path / "metrics"
    write_metrics(metrics_dir, "hubert", 0.5)
    (metrics_dir / "broken.json").write_text("{not json")
    (metrics_dir / "partial.json").write_text(json.dumps({"model": "partial", "accuracy": 0.5}))
    summary = compare.run([metrics_dir], tmp_path / "reports")
    md = (tmp_path / "reports/comparison.md").read_text()
    assert [r[0] for r in table(md)[1:]] == ["hubert"]
    assert "`" + (metrics_dir / "broken.json").as_posix() + "`: not valid JSON" in md
    assert "missing key(s) uar" in md
    assert {Path(s["path"]).name for s in summary["skipped"]} == {"broken.json", "partial.json"}


def test_mismatched_label_sets_and_sizes_are_flagged(tmp_path: Path) -> None:
    metrics_dir = tmp_path / "metrics"
    write_metrics(metrics_dir, "hubert", 0.5)
    write_metrics(metrics_dir, "wavlm", 0.5, n=90, labels=["angry", "happy", "sad"])
    compare.run([metrics_dir], tmp_path / "reports")
    md = (tmp_path / "reports/comparison.md").read_text()
    assert "different label sets" in md and "different numbers of clips" in md


def test_main_without_metrics_is_a_clear_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    args = ["--metrics", "reports/metrics", "--out", "reports"]
    assert compare.main(args) == 2
    err = capsys.readouterr().err
    assert "reports/metrics not found" in err and "Traceback" not in err
    Path("reports/metrics").mkdir(parents=True)
    assert compare.main(args) == 2
    assert "no metrics file in reports/metrics" in capsys.readouterr().err
    Path("reports/metrics/broken.json").write_text("{")
    assert compare.main(args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "no usable metrics file in reports/metrics (1 unreadable" in err[0]
    assert not (tmp_path / "reports/comparison.md").exists()


def test_main_writes_reports_from_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    write_metrics(Path("reports/metrics"), "data2vec", 0.8)
    write_metrics(Path("reports/metrics"), "baseline", 0.8, weights=None)
    metrics = ["reports/metrics/data2vec.json", "reports/metrics/baseline.json"]
    assert compare.main(["--metrics", *metrics, "--out", "reports"]) == 0
    assert Path("reports/comparison.md").exists() and Path("reports/comparison.png").exists()
