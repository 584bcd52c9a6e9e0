"""label stage: pseudo-labels for unlabelled clips, review queue most uncertain first."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from seda.io import read_csv, write_csv_atomic
from seda.review import append_reviewed
from seda.stages import label
from seda.stages.clean import COLUMNS as CLEAN_COLUMNS
from test_predict import SR, train_models, voiced


def test_margins_and_queue_order() -> None:
    proba = np.array([[0.5, 0.3, 0.2], [0.4, 0.35, 0.25], [0.9, 0.05, 0.05], [0.34, 0.33, 0.33]])
    assert label.margins(proba) == pytest.approx([0.2, 0.05, 0.85, 0.01])
    rows = [{"clip_id": f"c{i}", "label": "unknown"} for i in range(4)]
    preds = label.prediction_rows(rows, proba, ["angry", "calm", "sad"], "m")
    assert [p["predicted"] for p in preds] == ["angry"] * 4
    queue = label.review_queue(preds)
    assert [q["clip_id"] for q in queue] == ["c3", "c1", "c0", "c2"]
    assert [q["rank"] for q in queue] == [1, 2, 3, 4]


def test_disabled_writes_empty_outputs(tmp_path: Path) -> None:
    out = tmp_path / "pseudo"
    summary = label.run({}, manifest=tmp_path / "absent.csv", out_dir=out)
    assert summary["enabled"] is False
    for name in ("predictions.csv", "review_queue.csv"):
        lines = (out / name).read_text().splitlines()
        assert lines == [",".join(label.BASE_COLUMNS)]


def test_enabled_predicts_unlabelled_clips_minus_reviewed_ones(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    models = train_models(tmp_path / "trained")
    monkeypatch.chdir(tmp_path)
    rng = np.random.default_rng(3)
    rows, truth = [], {}
    for k, lab in enumerate(["angry", "sad", "calm", "sad", "angry", "calm", "calm"]):
        clip_id = f"yt-x_{k:03d}"
        path = Path(f"data/clean/unknown/{clip_id}.wav")
        path.parent.mkdir(parents=True, exist_ok=True)
        pad = (0.0005 * rng.standard_normal(SR // 10)).astype(np.float32)
        sf.write(path, np.concatenate([pad, voiced(lab, 1.3, rng, 1.02), pad]), SR)
        truth[clip_id] = lab
        rows.append(
            {"clip_id": clip_id, "path": path.as_posix(), "label": "unknown", "speaker": "ch1"}
        )
    rows.append({"clip_id": "lab_000", "path": rows[0]["path"], "label": "angry", "speaker": "a"})
    rows.append({"clip_id": "yt-x_bad", "path": "data/clean/unknown/none.wav", "label": "unknown"})
    write_csv_atomic("data/clean/manifest.csv", rows, CLEAN_COLUMNS)
    reviewed = Path("data/labels/reviewed.csv")
    append_reviewed(reviewed, {"clip_id": "yt-x_000", "decision": "label", "label": "angry"})
    append_reviewed(reviewed, {"clip_id": "yt-x_001", "decision": "discard"})
    append_reviewed(reviewed, {"clip_id": "yt-x_002", "decision": "skip"})

    summary = label.run(
        {"label": {"enabled": True, "model": "baseline"}}, models_dir=models, reviewed=reviewed
    )
    assert summary["unlabelled"] == 6 and summary["predicted"] == 5
    predictions = read_csv("data/pseudo/predictions.csv")
    assert [p["clip_id"] for p in predictions] == [f"yt-x_{k:03d}" for k in range(2, 7)]
    correct = sum(p["predicted"] == truth[p["clip_id"]] for p in predictions)
    assert correct >= 4
    queue = read_csv("data/pseudo/review_queue.csv")
    margins = [float(q["margin"]) for q in queue]
    assert margins == sorted(margins) and [q["rank"] for q in queue] == ["1", "2", "3", "4", "5"]
    for q in queue:
        probs = sorted(float(q[f"prob_{k}"]) for k in ("angry", "calm", "sad"))
        assert float(q["margin"]) == pytest.approx(probs[-1] - probs[-2], abs=1e-5)
    (reject,) = read_csv("data/pseudo/rejected.csv")
    assert reject["id"] == "yt-x_bad"


def test_missing_model_is_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    Path("params.yaml").write_text(json.dumps({"label": {"enabled": True, "model": "wavlm"}}))
    write_csv_atomic("data/clean/manifest.csv", [], CLEAN_COLUMNS)
    assert label.main([]) == 2
    assert "models/wavlm" in capsys.readouterr().err
    Path("params.yaml").write_text(json.dumps({"label": {"enabled": True, "model": "best"}}))
    assert label.main([]) == 2
