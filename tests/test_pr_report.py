"""`seda report --base REV` on a two-commit repository whose results differ."""

from __future__ import annotations

import csv
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from seda.pr_report import (
    ABSENT,
    BETTER,
    NO_CLEAR_CHANGE,
    WORSE,
    paired_uar_difference,
    params_diff,
    parse_headline,
)

LABELS = ("angry", "calm", "happy", "sad")
GIT_ENV = {
    "GIT_AUTHOR_NAME": "t",
    "GIT_AUTHOR_EMAIL": "t@example.org",
    "GIT_COMMITTER_NAME": "t",
    "GIT_COMMITTER_EMAIL": "t@example.org",
    "GIT_CONFIG_NOSYSTEM": "1",
}


def _git(repo: Path, *args: str) -> str:
    env = {**os.environ, **GIT_ENV}
    done = subprocess.run(
        ["git", *args], cwd=repo, env=env, check=True, capture_output=True, text=True
    )
    return done.stdout


def predictions(n_per_label: int, right_of_ten: int, prefix: str = "clip") -> list[tuple]:
    """``(clip_id, actual, predicted)``: ``right_of_ten`` clips in every ten are right."""
    rows = []
    for i in range(n_per_label * len(LABELS)):
        actual = LABELS[i % len(LABELS)]
        right = (i // len(LABELS)) % 10 < right_of_ten
        predicted = actual if right else LABELS[(i + 1) % len(LABELS)]
        rows.append((f"{prefix}_{i:04d}", actual, predicted))
    return rows


def uar(rows: list[tuple]) -> float:
    recalls = []
    for label in LABELS:
        mine = [r for r in rows if r[1] == label]
        recalls.append(sum(r[1] == r[2] for r in mine) / len(mine))
    return sum(recalls) / len(recalls)


def write_model(
    repo: Path, model: str, rows: list[tuple], roc_power: float, old_shape: bool = False
) -> None:
    plots = repo / "reports" / "plots" / model
    plots.mkdir(parents=True, exist_ok=True)
    with (plots / "predictions.csv").open("w", newline="") as fh:
        writer = csv.writer(fh, lineterminator="\n")
        writer.writerow(["clip_id", "actual", "predicted"])
        writer.writerows(rows)
    with (plots / "roc.csv").open("w", newline="") as fh:
        writer = csv.writer(fh, lineterminator="\n")
        writer.writerow(["fpr", *(f"tpr_{label}" for label in LABELS), "tpr_macro"])
        for step in range(11):
            fpr = step / 10
            tprs = [fpr ** (roc_power * (1 + k / 4)) for k in range(len(LABELS))]
            writer.writerow([fpr, *tprs, sum(tprs) / len(tprs)])
    value = uar(rows)
    record: dict = {"uar": value, "accuracy": value, "f1": value, "auc": 0.5 + value / 2}
    low, high = max(0.0, value - 0.08), min(1.0, value + 0.08)
    if old_shape:
        record.update({"uar_ci": [low, high], "per_class": {}, "mode": "probe"})
    else:
        record.update({"uar_low": low, "uar_high": high})
    record["n_test"] = len(rows)
    metrics = repo / "reports" / "metrics"
    metrics.mkdir(parents=True, exist_ok=True)
    (metrics / f"{model}.json").write_text(json.dumps(record, indent=2) + "\n")


def make_two_commit_repo(repo: Path) -> Path:
    """HEAD~1 and HEAD differ: `alpha` clearly better, `beta` unchanged, `gamma` clearly worse,
    `delta` tested on other clips with overlapping intervals, `lr` changed in params.yaml."""
    repo.mkdir(parents=True, exist_ok=True)
    _git(repo, "init", "-q", "-b", "main")
    (repo / "params.yaml").write_text("train:\n  lr: 0.001\n  epochs: 10\nseed: 0\n")
    write_model(repo, "alpha", predictions(30, 5), roc_power=0.8)
    write_model(repo, "beta", predictions(30, 7), roc_power=0.5)
    write_model(repo, "gamma", predictions(30, 9), roc_power=0.3)
    write_model(repo, "delta", predictions(20, 6, "old"), roc_power=0.6, old_shape=True)
    _git(repo, "add", "-A")
    _git(repo, "commit", "-qm", "base results")
    (repo / "params.yaml").write_text("train:\n  lr: 0.003\n  epochs: 10\nseed: 0\n")
    write_model(repo, "alpha", predictions(30, 9), roc_power=0.3)
    write_model(repo, "gamma", predictions(30, 5), roc_power=0.8)
    write_model(repo, "delta", predictions(25, 6, "new"), roc_power=0.5)
    _git(repo, "add", "-A")
    _git(repo, "commit", "-qm", "head results")
    return repo


def verdicts_in(markdown: str) -> dict[str, str]:
    """Model -> verdict, from the table rows and the one-line entries of unchanged models."""
    found = {}
    for model, verdict in re.findall(r"^\| (\w+) \| \*\*([a-z ]+)\*\* \|", markdown, re.M):
        found[model] = verdict
    for model, verdict in re.findall(r"^- (\w+): \*\*([a-z ]+)\*\* \(identical", markdown, re.M):
        found[model] = verdict
    return found


def test_report_on_two_commits_gives_verdicts_and_images(tmp_path: Path) -> None:
    repo = make_two_commit_repo(tmp_path / "repo")
    done = subprocess.run(
        [sys.executable, "-m", "seda.cli", "report", "--base", "HEAD~1"],
        cwd=repo,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    report = repo / "reports" / "pr" / "report.md"
    markdown = report.read_text()
    assert verdicts_in(markdown) == {
        "alpha": BETTER,
        "beta": NO_CLEAR_CHANGE,
        "gamma": WORSE,
        "delta": NO_CLEAR_CHANGE,
    }, markdown
    assert "paired bootstrap over the same 120 test clips" in markdown
    assert "test clips differ; UAR intervals overlap" in markdown
    # The unchanged model is one line, no images.
    assert "### beta" not in markdown
    assert not list(report.parent.glob("beta-*"))
    # Params that changed, and only those.
    assert "| `train.lr` | 0.001 | 0.003 |" in markdown
    assert "epochs" not in markdown
    # Every image the markdown names exists, is a PNG and lies next to it.
    images = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", markdown)
    assert {"uar.png", "alpha-confusion.png", "alpha-roc.png", "gamma-roc.png"} <= set(images)
    for name in images:
        assert (report.parent / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", name
    assert f"{BETTER}" in done.stdout and "wrote reports/pr/report.md" in done.stdout


def test_same_inputs_give_the_same_report(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from seda.pr_report import build_report

    repo = make_two_commit_repo(tmp_path / "repo")
    monkeypatch.chdir(repo)
    first = build_report("HEAD~1", Path("a"), n_boot=300)
    second = build_report("HEAD~1", Path("b"), n_boot=300)
    assert first.verdicts == second.verdicts
    assert first.path.read_text() == second.path.read_text()
    for png in Path("a").glob("*.png"):
        assert png.read_bytes() == (Path("b") / png.name).read_bytes(), png.name


def test_unknown_base_is_one_line_and_exit_2(tmp_path: Path) -> None:
    repo = make_two_commit_repo(tmp_path / "repo")
    done = subprocess.run(
        [sys.executable, "-m", "seda.cli", "report", "--base", "no-such-branch"],
        cwd=repo,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 2
    assert done.stderr.startswith("seda report: error: 'no-such-branch' is not a commit")
    assert len(done.stderr.strip().splitlines()) == 1


def test_paired_bootstrap_of_identical_predictions_is_zero() -> None:
    rows = predictions(10, 6)
    actual = [r[1] for r in rows]
    predicted = [r[2] for r in rows]
    assert paired_uar_difference(actual, predicted, predicted, n_boot=200) == (0.0, 0.0, 0.0)


def test_paired_bootstrap_sees_a_clear_gain_and_is_seeded() -> None:
    base, head = predictions(30, 5), predictions(30, 9)
    args = ([r[1] for r in base], [r[2] for r in base], [r[2] for r in head])
    point, low, high = paired_uar_difference(*args, n_boot=500, seed=3)
    assert point == pytest.approx(uar(head) - uar(base))
    assert 0 < low < point < high
    assert paired_uar_difference(*args, n_boot=500, seed=3) == (point, low, high)


def test_headline_reads_both_interval_shapes() -> None:
    new = parse_headline(b'{"uar": 0.7, "uar_low": 0.6, "uar_high": 0.8, "n_test": 38}')
    old = parse_headline(b'{"uar": 0.7, "uar_ci": [0.6, 0.8], "per_class": {}}')
    assert new.interval == old.interval == (0.6, 0.8)
    assert new.values["n_test"] == 38 and old.values["n_test"] is None


def test_params_diff_lists_changed_added_and_removed_keys() -> None:
    base = b"train:\n  lr: 0.001\n  hidden: 256\nold: 1\n"
    head = b"train:\n  lr: 0.003\n  hidden: 256\nnew: [1, 2]\n"
    assert params_diff(base, head) == [
        ("new", ABSENT, [1, 2]),
        ("old", 1, ABSENT),
        ("train.lr", 0.001, 0.003),
    ]
