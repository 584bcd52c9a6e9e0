"""seda label: pseudo-labels for unlabelled clips, review queue most uncertain first."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from seda import cli, labels, pseudolabel
from seda.errors import InputMissingError
from seda.io import read_csv
from seda.labels import append_reviewed
from seda.records import ClipRow, write_records
from test_predict import SR, train_models, voiced


def test_margins_and_queue_order() -> None:
    proba = np.array([[0.5, 0.3, 0.2], [0.4, 0.35, 0.25], [0.9, 0.05, 0.05], [0.34, 0.33, 0.33]])
    assert labels.margins(proba) == pytest.approx([0.2, 0.05, 0.85, 0.01])
    rows = [{"clip_id": f"c{i}", "label": "unknown"} for i in range(4)]
    preds = labels.prediction_rows(rows, proba, ["angry", "calm", "sad"], "m")
    assert [p["predicted"] for p in preds] == ["angry"] * 4
    queue = labels.review_queue(preds)
    assert [q["clip_id"] for q in queue] == ["c3", "c1", "c0", "c2"]
    assert [q["rank"] for q in queue] == [1, 2, 3, 4]
    assert labels.unlabelled_rows([{"label": ""}, {"label": "unknown"}, {"label": "sad"}]) == [
        {"label": ""},
        {"label": "unknown"},
    ]


def clip(clip_id: str, path: str, label: str, speaker: str = "") -> ClipRow:
    return ClipRow(clip_id, path, label, speaker, "src", "item", "", 0.0, 1.0, 1.0, "")


def test_predicts_unlabelled_clips_minus_reviewed_ones(
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
        rows.append(clip(clip_id, path.as_posix(), "unknown", "ch1"))
    rows.append(clip("lab_000", rows[0].path, "angry", "a"))
    rows.append(clip("yt-x_bad", "data/clean/unknown/none.wav", "unknown"))
    write_records("clips.csv", rows, ClipRow)
    reviewed = Path("log/reviewed.csv")
    append_reviewed(reviewed, {"clip_id": "yt-x_000", "decision": "label", "label": "angry"})
    append_reviewed(reviewed, {"clip_id": "yt-x_001", "decision": "discard"})
    append_reviewed(reviewed, {"clip_id": "yt-x_002", "decision": "skip"})

    args = ["--clips", "clips.csv", "--out", "pseudo", "--models", str(models)]
    assert cli.main(["label", "--model", "baseline", *args, "--reviewed", str(reviewed)]) == 0
    predictions = read_csv("pseudo/predictions.csv")
    assert [p["clip_id"] for p in predictions] == [f"yt-x_{k:03d}" for k in range(2, 7)]
    correct = sum(p["predicted"] == truth[p["clip_id"]] for p in predictions)
    assert correct >= 4
    queue = read_csv("pseudo/review_queue.csv")
    margins = [float(q["margin"]) for q in queue]
    assert margins == sorted(margins) and [q["rank"] for q in queue] == ["1", "2", "3", "4", "5"]
    for q in queue:
        probs = sorted(float(q[f"prob_{k}"]) for k in ("angry", "calm", "sad"))
        assert float(q["margin"]) == pytest.approx(probs[-1] - probs[-2], abs=1e-5)
    assert list(queue[0]) == labels.prediction_columns(["angry", "calm", "sad"])
    (reject,) = read_csv("pseudo/rejected.csv")
    assert reject["id"] == "yt-x_bad"

    summary = pseudolabel.pseudo_label("baseline", Path("clips.csv"), Path("p2"), models)
    assert summary == {"model": "baseline", "unlabelled": 8, "predicted": 7}
    with pytest.raises(InputMissingError, match=r"absent\.csv not found"):
        pseudolabel.pseudo_label("baseline", Path("absent.csv"), Path("p3"), models)


def test_missing_model_or_clips_is_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    write_records("data/clean/manifest.csv", [], ClipRow)
    for model in ("wavlm", "best", "../x"):
        assert pseudolabel.main(["--model", model]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith("seda label: error:"), err
    assert pseudolabel.main(["--model", "wavlm"]) == 2
    assert "models/wavlm" in capsys.readouterr().err
