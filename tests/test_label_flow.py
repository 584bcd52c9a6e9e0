"""Pseudo-labelling end to end on a small demo: `dvc repro`, `seda label` (a tool, not a stage),
one review decision (written like the web page writes it), and the next `dvc repro` using it."""

from __future__ import annotations

import csv
import shutil
from pathlib import Path

import pytest

from seda.labels import append_reviewed
from test_pipeline_e2e import _copy_tracked_tree, _read_csv, _run

pytestmark = pytest.mark.slow

# Small but valid: 4 speakers (test + val + 2 train groups), one item per speaker and label,
# one unlabelled item per speaker; no separation (the label flow does not depend on it).
SMALL = [
    "demo.speakers=4",
    "demo.items_per_speaker_and_label=1",
    "demo.unlabelled_items_per_speaker=1",
    "demo.item_seconds=12",
    "demo.sample_rate=16000",
    "separate=none",
]
# The stages the label flow needs (demo .. split, baseline features and model); the backbones,
# figures and comparison add minutes and nothing to this test.
TARGET = "train_baseline"
LABEL = ["seda", "label", "--model", "baseline"]


@pytest.fixture(scope="module")
def label_repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    repo = tmp_path_factory.mktemp("label_flow") / "seda"
    _copy_tracked_tree(repo)
    (repo / "dvc.lock").unlink(missing_ok=True)
    shutil.rmtree(repo / "reports", ignore_errors=True)
    _run(["git", "init", "-q"], repo, 60)
    _run(["seda", "compose", *SMALL], repo, 120)
    _run(["dvc", "repro", TARGET], repo, 600)
    return repo


def _unknown_clips(repo: Path) -> dict[str, dict[str, str]]:
    return {
        c["clip_id"]: c
        for c in _read_csv(repo / "data/clean/manifest.csv")
        if c["label"] == "unknown"
    }


def test_nothing_is_queued_by_the_pipeline_and_unknown_clips_are_not_trained_on(
    label_repo: Path,
) -> None:
    unknown = _unknown_clips(label_repo)
    assert unknown, "the demo should give unlabelled clips"
    splits = {r["clip_id"]: r for r in _read_csv(label_repo / "data/splits/splits.csv")}
    assert {splits[c]["label"] for c in unknown} == {"unknown"}
    assert not (label_repo / "data/pseudo").exists()
    predictions = _read_csv(label_repo / "reports/plots/baseline/predictions.csv")
    assert predictions and "unknown" not in {p["actual"] for p in predictions}


def test_queue_then_review_then_repro_applies_the_label(label_repo: Path) -> None:
    repo = label_repo
    _run(LABEL, repo, 600)
    unknown = _unknown_clips(repo)
    queue = _read_csv(repo / "data/pseudo/review_queue.csv")
    assert sorted(q["clip_id"] for q in queue) == sorted(unknown)
    assert [int(q["rank"]) for q in queue] == list(range(1, len(queue) + 1))
    margins = [float(q["margin"]) for q in queue]
    assert margins == sorted(margins)
    truth = {t["item_id"]: t["label"] for t in _read_csv(repo / "data/demo/truth.csv")}
    # The demo's item id is the collected source_id (the collector prefixes its item_id).
    assert {unknown[q["clip_id"]]["source_id"] for q in queue} == truth.keys()

    chosen = queue[0]
    label = truth[chosen["source_id"]]
    append_reviewed(
        repo / "data/labels/reviewed.csv",
        {
            "clip_id": chosen["clip_id"],
            "item_id": chosen["item_id"],
            "path": chosen["path"],
            "sha256": chosen["sha256"],
            "previous_label": chosen["label"],
            "proposed_label": chosen["predicted"],
            "probability": chosen["probability"],
            "model": chosen["model"],
            "decision": "label",
            "label": label,
        },
    )
    proc = _run(["dvc", "repro", TARGET], repo, 600)
    assert "Running stage 'split'" in proc.stdout
    _run(LABEL, repo, 600)
    splits = {r["clip_id"]: r for r in _read_csv(repo / "data/splits/splits.csv")}
    assert splits[chosen["clip_id"]]["label"] == label
    others = set(unknown) - {chosen["clip_id"]}
    assert {splits[c]["label"] for c in others} == {"unknown"}
    requeued = [q["clip_id"] for q in _read_csv(repo / "data/pseudo/review_queue.csv")]
    assert sorted(requeued) == sorted(others)
    with open(repo / "data/labels/reviewed.csv", encoding="utf-8", newline="") as fh:
        assert len(list(csv.DictReader(fh))) >= 1
