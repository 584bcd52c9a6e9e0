"""Stage `figures`: deterministic example choice, non-blank PNGs, separation figure if relevant."""

from __future__ import annotations

import csv
from pathlib import Path

import matplotlib.image as mpimg
import numpy as np
import pytest
import soundfile as sf

from seda.stages import figures
from seda.stages.figures import pick_examples, pick_separation_item

SR = 16000


def _write_csv(path: Path, rows: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as fh:
        writer = csv.DictWriter(fh, list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


def _tone(path: Path, f0: float, seconds: float = 1.5, sr: int = SR) -> None:
    t = np.arange(int(seconds * sr)) / sr
    y = 0.3 * np.sin(2 * np.pi * f0 * t) * np.hanning(t.size)
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, y.astype(np.float32), sr)


def _assert_png(path: Path) -> np.ndarray:
    img = mpimg.imread(path)
    assert img.ndim == 3 and img.shape[0] > 300 and img.shape[1] > 600
    assert float(img[..., :3].std()) > 0.05, "blank image"
    return img


def test_pick_examples_first_test_clip_per_label() -> None:
    rows = [
        {"clip_id": "b_002", "label": "sad", "split": "test"},
        {"clip_id": "a_001", "label": "sad", "split": "train"},
        {"clip_id": "b_001", "label": "sad", "split": "test"},
        {"clip_id": "c_005", "label": "angry", "split": "test"},
        {"clip_id": "c_004", "label": "angry", "split": "val"},
    ]
    picked = pick_examples(rows)
    assert [(r["label"], r["clip_id"]) for r in picked] == [("angry", "c_005"), ("sad", "b_001")]
    assert pick_examples(list(reversed(rows))) == picked


def test_pick_separation_item_skips_unseparated(tmp_path: Path) -> None:
    raw, voice = tmp_path / "raw.wav", tmp_path / "voice.wav"
    _tone(raw, 200)
    _tone(voice, 200)
    raw_rows = [{"id": "a", "path": str(raw)}, {"id": "b", "path": str(raw)}]
    assert pick_separation_item(raw_rows, raw_rows) is None
    sep_rows = [{"id": "b", "path": str(voice)}, {"id": "a", "path": str(raw)}]
    assert pick_separation_item(raw_rows, sep_rows) == ("b", raw, voice)


def test_run_writes_pngs_and_drops_stale_separation(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    rows = []
    for i, label in enumerate(("angry", "calm", "happy", "sad")):
        for k in range(2):
            clip = f"it{i}_{k:03d}"
            _tone(tmp_path / f"data/clean/{label}/{clip}.wav", 150 + 60 * i + 20 * k)
            rows.append(
                {
                    "clip_id": clip,
                    "path": f"data/clean/{label}/{clip}.wav",
                    "label": label,
                    "speaker": "s",
                    "source_id": "v",
                    "group": "g0",
                    "split": "test" if k == 0 else "train",
                    "fold": 0,
                }
            )
    _write_csv(tmp_path / "data/splits/splits.csv", rows)
    _tone(tmp_path / "data/raw/audio/x.wav", 300, 4.0, 22050)
    _tone(tmp_path / "data/separated/x.wav", 300, 4.0, 22050)
    _write_csv(tmp_path / "data/raw/manifest.csv", [{"id": "x", "path": "data/raw/audio/x.wav"}])
    _write_csv(
        tmp_path / "data/separated/manifest.csv", [{"id": "x", "path": "data/separated/x.wav"}]
    )
    params = {
        "figures": {"out_dir": "reports/figures"},
        "separate": {"backend": "repet", "sample_rate": 22050},
    }

    summary = figures.run(params)
    out = tmp_path / "reports/figures"
    assert summary["files"] == ["waveplots.png", "spectrograms.png", "separation.png"]
    assert summary["labels"] == ["angry", "calm", "happy", "sad"]
    for name in summary["files"]:
        _assert_png(out / name)

    _write_csv(
        tmp_path / "data/separated/manifest.csv", [{"id": "x", "path": "data/raw/audio/x.wav"}]
    )
    summary = figures.run(
        {"figures": {"out_dir": "reports/figures"}, "separate": {"backend": "none"}}
    )
    assert "separation.png" not in summary["files"]
    assert not (out / "separation.png").exists()


def test_missing_splits_is_a_clear_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "params.yaml").write_text("figures:\n  out_dir: reports/figures\n")
    assert figures.main() == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "splits.csv" in err[0]
