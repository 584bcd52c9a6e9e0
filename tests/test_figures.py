"""seda.dataset_figures and the figures stage: deterministic example choice, non-blank PNGs that
are byte-identical on reruns, separation figure if relevant."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import librosa
import matplotlib.image as mpimg
import numpy as np
import pytest
import soundfile as sf

from seda.dataset_figures import pick_examples, pick_separation_item, separation_scores
from seda.records import ItemRow, write_records
from seda.separation.references import find_reference
from seda.stages import figures

SR = 16000
SPLITS = Path("data/splits/splits.csv")
RAW = Path("data/raw/manifest.csv")
SEPARATED = Path("data/separated/manifest.csv")
REFERENCES = Path("data/demo/reference")
ARGS = ["--splits", str(SPLITS), "--raw", str(RAW), "--separated", str(SEPARATED)]


def _write_csv(path: Path, rows: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as fh:
        writer = csv.DictWriter(fh, list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


def _write_items(path: Path, rows: list[dict]) -> None:
    """A raw/separated manifest with these (id, path, ...) values; other columns empty."""
    items = [ItemRow(**{"label": "x", "speaker": "s", "source_id": r["id"], **r}) for r in rows]
    write_records(path, items, ItemRow)


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
    assert pick_separation_item(raw_rows, sep_rows) == (raw_rows[1], voice)


def _write_splits(tmp_path: Path) -> None:
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


def test_run_writes_pngs_and_drops_stale_separation(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    _write_splits(tmp_path)
    _tone(tmp_path / "data/raw/audio/x.wav", 300, 4.0, 22050)
    _tone(tmp_path / "data/separated/x.wav", 300, 4.0, 22050)
    _write_items(tmp_path / "data/raw/manifest.csv", [{"id": "x", "path": "data/raw/audio/x.wav"}])
    _write_items(
        tmp_path / "data/separated/manifest.csv", [{"id": "x", "path": "data/separated/x.wav"}]
    )
    params = {"separate": {"backend": "repet", "sample_rate": 22050}}
    Path("params.yaml").write_text(json.dumps(params))

    assert figures.main([*ARGS, "--out", "reports/figures"]) == 0
    summary = figures.run(SPLITS, Path("again"), params, RAW, SEPARATED)
    out = tmp_path / "reports/figures"
    assert summary["files"] == ["waveplots.png", "spectrograms.png", "separation.png"]
    assert summary["labels"] == ["angry", "calm", "happy", "sad"]
    for name in summary["files"]:
        _assert_png(out / name)
        # Same data, same code, same params: same bytes.
        assert (out / name).read_bytes() == (tmp_path / "again" / name).read_bytes(), name
    assert summary["separation"] == {"item": "x", "reference": None}  # two panels

    _write_items(
        tmp_path / "data/separated/manifest.csv", [{"id": "x", "path": "data/raw/audio/x.wav"}]
    )
    summary = figures.run(SPLITS, out, {"separate": {"backend": "none"}}, RAW, SEPARATED)
    assert "separation.png" not in summary["files"]
    assert not (out / "separation.png").exists()
    # Without the manifests there is no separation figure either.
    assert figures.run(SPLITS, Path("only"), {})["files"] == ["waveplots.png", "spectrograms.png"]


def test_missing_splits_is_a_clear_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "params.yaml").write_text("figures:\n  dpi: 100\n")
    assert figures.main([*ARGS, "--out", "reports/figures"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "splits.csv" in err[0]


def test_find_reference_of_demo_rows(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    demo = tmp_path / "elsewhere/demo"
    _tone(demo / "media/a.ogg", 200)
    _tone(tmp_path / "data/demo/reference/a.wav", 200)
    _tone(tmp_path / "data/demo/reference/b.wav", 200)
    references = Path("data/demo/reference")
    # Looked up by the media file's stem in the references folder, wherever the media lie.
    assert find_reference({"source_url": (demo / "media/a.ogg").as_uri()}, references) == (
        references / "a.wav"
    )
    assert find_reference({"source_url": "media/b.wav"}, references) == references / "b.wav"
    moved = {"source_url": "file:///nowhere/demo/media/b.flac"}
    assert find_reference(moved, references) == references / "b.wav"
    assert find_reference(moved, Path("nodemo")) is None
    assert find_reference(moved, None) is None  # not the demo dataset: no references
    for row in (
        {"source_url": "https://www.youtube.com/watch?v=b"},
        {"source_url": ""},
        {"source_url": (demo / "media/c.wav").as_uri()},
        {},
    ):
        assert find_reference(row, references) is None


def _speechlike(n: int, sr: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(n) / sr
    gate = (np.sin(2 * np.pi * 1.7 * t) > 0).astype(float)
    return 0.2 * gate * np.sin(2 * np.pi * (180 + 40 * np.sin(3 * t)) * t) + 0.01 * (
        rng.standard_normal(n)
    )


def test_separation_scores_rank_a_better_estimate_higher() -> None:
    sr = 8000
    voice = _speechlike(4 * sr, sr, 0)
    music = 0.15 * np.sin(2 * np.pi * 440 * np.arange(voice.size) / sr)
    mix_score, sep_score = separation_scores(voice, voice + music, voice + 0.1 * music)
    assert sep_score > mix_score + 15
    assert separation_scores(voice, voice + music, voice + music) == pytest.approx(
        (mix_score, mix_score)
    )


def test_run_draws_reference_panel_for_a_section(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The raw item is the section [1, 4) s of a demo source; the voice stem is at 16 kHz."""
    monkeypatch.chdir(tmp_path)
    _write_splits(tmp_path)
    sr, sep_sr = 22050, 16000
    voice = _speechlike(5 * sr, sr, 1)
    music = 0.1 * np.sin(2 * np.pi * 440 * np.arange(voice.size) / sr)
    media = tmp_path / "data/demo/media/d.wav"
    media.parent.mkdir(parents=True)
    sf.write(media, (voice + music).astype(np.float32), sr)
    (tmp_path / "data/demo/reference").mkdir()
    sf.write(tmp_path / "data/demo/reference/d.wav", voice.astype(np.float32), sr)
    section = slice(sr, 4 * sr)
    (tmp_path / "data/raw/audio").mkdir(parents=True)
    sf.write(tmp_path / "data/raw/audio/d-t1000-4000.wav", (voice + music)[section], sr)
    (tmp_path / "data/separated").mkdir(parents=True)
    separated = voice[section] + 0.05 * music[section]
    sf.write(
        tmp_path / "data/separated/d-t1000-4000.wav",
        librosa.resample(separated, orig_sr=sr, target_sr=sep_sr).astype(np.float32),
        sep_sr,
    )
    raw_row = {
        "id": "d-t1000-4000",
        "path": "data/raw/audio/d-t1000-4000.wav",
        "source_url": media.as_uri(),
        "section_start": 1.0,
        "section_end": 4.0,
    }
    _write_items(tmp_path / "data/raw/manifest.csv", [raw_row])
    _write_items(
        tmp_path / "data/separated/manifest.csv",
        [{"id": "d-t1000-4000", "path": "data/separated/d-t1000-4000.wav"}],
    )
    params = {"separate": {"backend": "repet", "sample_rate": sep_sr}}
    out = Path("reports/figures")
    summary = figures.run(SPLITS, out, params, RAW, SEPARATED, REFERENCES)
    three = _assert_png(tmp_path / "reports/figures/separation.png")
    sep = summary["separation"]
    assert sep["reference"] == str(REFERENCES / "d.wav")
    # Aligned at the section offset: the mixture scores its voice-to-music ratio (about 3 dB),
    # the separated voice 26 dB more; the reference read from 0 s would score below -40 dB.
    assert sep["si_sdr_mixture"] > 1
    assert sep["si_sdr_separated"] > sep["si_sdr_mixture"] + 15

    summary = figures.run(SPLITS, out, params, RAW, SEPARATED)  # no references folder
    assert summary["separation"] == {"item": "d-t1000-4000", "reference": None}
    (tmp_path / "data/demo/reference/d.wav").unlink()
    summary = figures.run(SPLITS, out, params, RAW, SEPARATED, REFERENCES)
    two = _assert_png(tmp_path / "reports/figures/separation.png")
    assert summary["separation"] == {"item": "d-t1000-4000", "reference": None}
    assert three.shape[0] > 1.3 * two.shape[0]
