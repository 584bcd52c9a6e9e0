"""seda predict: models trained here by the real featurize/train code predict files, folders,
file:// URLs; bad files are skipped; the loader refuses anything but its own safetensors format."""

from __future__ import annotations

import json
import os
import pickle
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from seda.errors import ConfigError
from seda.io import read_csv, write_csv_atomic
from seda.metrics import HeadlineMetrics
from seda.models.loading import ModelFormatError, load_model
from seda.predict import main as predict_main
from seda.predict import pick_model
from tiny import TINY_BACKBONE

SR = 16000
F0 = {"angry": 330.0, "calm": 210.0, "sad": 125.0}
TINY_HUBERT = TINY_BACKBONE


def voiced(label: str, seconds: float, rng: np.random.Generator, shift: float = 1.0) -> np.ndarray:
    """A harmonic tone at the label's pitch with a syllable-rate envelope (plus faint noise)."""
    t = np.arange(int(seconds * SR)) / SR
    f0 = F0[label] * shift
    y = sum(np.sin(2 * np.pi * k * f0 * t) / k for k in (1, 2, 3))
    y = y * (0.55 + 0.45 * np.sin(2 * np.pi * 3.0 * t) ** 2)
    return (0.25 * y + 0.003 * rng.standard_normal(t.size)).astype(np.float32)


def model_params() -> dict:
    """Small, fast settings: energy VAD, no noise reduction or loudness change, tiny HuBERT."""
    return {
        "seed": 0,
        "workers": 1,
        "clean": {
            "sample_rate": SR,
            "noise_reduce": {"enabled": False},
            # The training clips here are not cleaned: keep predict's segments at their level.
            "loudness": {"method": "none"},
            "clips": {"min_seconds": 0.3, "max_seconds": 4.0},
        },
        "vad": {"backend": "energy", "silence_thresh_dbfs": -40.0},
        "baseline": {"speaker_standardise": False, "features": ["mfcc"]},
        "backbones": {
            "hubert": {
                "arch": "hubert",
                "checkpoint": "facebook/hubert-base-ls960",
                "weights": "random",
                "random_init": dict(TINY_HUBERT),
                "batch_seconds": 8.0,
                "max_batch_size": 8,
            }
        },
        "train": {"epochs": 30, "batch_size": 16, "patience": 10, "hidden": 16, "lr": 1e-2},
        "eval": {"protocol": "holdout", "n_bootstrap": 10},
    }


def train_models(root: Path, models: tuple[str, ...] = ("baseline",)) -> Path:
    """Clips of 4 speakers x 3 labels, split, featurized and trained in ``root``; models dir."""
    from seda.records import SPLIT_COLUMNS
    from seda.splitting import SplitSettings, speaker_grouped_split
    from seda.train import run_model

    rng = np.random.default_rng(0)
    rows = []
    for s in range(4):
        for label in F0:
            for k in range(3):
                rows.append(
                    {
                        "clip_id": f"s{s}_{label}_{k}",
                        "path": f"data/clean/{label}/s{s}_{label}_{k}.wav",
                        "label": label,
                        "speaker": f"spk{s}",
                        "source_id": f"v{s}_{k % 2}",
                    }
                )
    rows = speaker_grouped_split(rows, SplitSettings(), 0)
    cwd = os.getcwd()
    root.mkdir(parents=True, exist_ok=True)
    os.chdir(root)
    try:
        for r in rows:
            # Varied pitch and length, so that the models generalise to new bursts.
            shift = rng.uniform(0.95, 1.1)
            seconds = 1.0 + 0.3 * int(r["clip_id"][-1])
            path = Path(r["path"])
            path.parent.mkdir(parents=True, exist_ok=True)
            # Padded with 0.1 s of the noise floor, as the clean stage cuts clips.
            pad = (0.0005 * rng.standard_normal(SR // 10)).astype(np.float32)
            y = np.concatenate([pad, voiced(r["label"], seconds, rng, shift), pad])
            sf.write(path, y, SR, subtype="PCM_16")
        write_csv_atomic("data/splits/splits.csv", rows, SPLIT_COLUMNS)
        for name in models:
            run_model(model_params(), name)
    finally:
        os.chdir(cwd)
    return root / "models"


@pytest.fixture(scope="module")
def models_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return train_models(tmp_path_factory.mktemp("trained"), ("baseline", "hubert"))


def speech_file(path: Path, labels: tuple[str, ...], seed: int = 1) -> list[tuple[float, float]]:
    """Voiced bursts of ``labels`` separated by 1 s of near-silence; returns their spans."""
    rng = np.random.default_rng(seed)
    parts, spans, t = [np.zeros(int(0.5 * SR), np.float32)], [], 0.5
    for label in labels:
        parts.append(voiced(label, 1.5, rng, 1.05))
        spans.append((t, t + 1.5))
        parts.append((0.0005 * rng.standard_normal(SR)).astype(np.float32))
        t += 2.5
    sf.write(path, np.concatenate(parts), SR, subtype="PCM_16")
    return spans


def run_predict(models: Path, *args: str) -> int:
    return predict_main([*args, "--models-dir", str(models), "--workers", "1"])


def test_predict_file_writes_segments_summary_and_timeline(
    models_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    spans = speech_file(tmp_path / "talk.wav", ("angry", "sad", "calm"))
    code = run_predict(
        models_dir, "talk.wav", "--model", "baseline", "--out", "r.csv", "--plot", "t.png"
    )
    assert code == 0
    rows = read_csv("r.csv")
    assert [r["label"] for r in rows] == ["angry", "sad", "calm"]
    for r, (start, end) in zip(rows, spans, strict=True):
        assert r["source"] == "talk.wav"
        assert abs(float(r["start"]) - start) < 0.25 and abs(float(r["end"]) - end) < 0.25
        probs = [float(r[f"prob_{k}"]) for k in ("angry", "calm", "sad")]
        assert sum(probs) == pytest.approx(1.0, abs=1e-4)
        assert float(r["probability"]) == pytest.approx(max(probs), abs=1e-6)
    (summary,) = read_csv("r_summary.csv")
    shares = [float(summary[f"share_{k}"]) for k in ("angry", "calm", "sad")]
    assert shares == pytest.approx([1 / 3] * 3, abs=0.05)
    assert summary["segments"] == "3"
    png = Path("t.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    import matplotlib.image

    img = matplotlib.image.imread("t.png")
    assert img.shape[1] > 1000 and img.shape[0] > 300
    # The waveform is drawn in the three emotion colours (not just grey).
    from seda.palette import label_colours

    rgb = (img[..., :3] * 255).round().astype(int).reshape(-1, 3)
    for colour in label_colours(["angry", "calm", "sad"]).values():
        want = np.array([int(colour[i : i + 2], 16) for i in (1, 3, 5)])
        assert (np.abs(rgb - want).sum(axis=1) < 12).sum() > 200, colour


def test_probe_model_predicts_what_its_head_gives_on_the_stored_features(
    models_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The loader rebuilds the random backbone and head exactly: a training clip predicted from
    its waveform matches the head applied to its cached features."""
    import torch
    from safetensors.torch import load_file

    from seda.features.store import load_features
    from seda.models.head import LayerWeightedHead

    root = models_dir.parent
    model = load_model(models_dir / "hubert")
    assert model.mode == "probe" and model.labels == ["angry", "calm", "sad"]
    features, index, _ = load_features(root / "data/features/hubert")
    # The longest clips (all of one length) were embedded without padding, as here.
    rows = [i for i, r in enumerate(index) if r.clip_id.endswith("_2")][:5]
    waves = [sf.read(root / index[i].path, dtype="float32")[0] for i in rows]
    got = model.predict_proba(waves)
    state = load_file(str(models_dir / "hubert/head.safetensors"))
    head = LayerWeightedHead(features.shape[1], features.shape[2], 3, 16, 0.0)
    head.load_state_dict(state)
    with torch.inference_mode():
        x = torch.from_numpy(features[rows].astype(np.float32))
        # The card's temperature (fitted on validation) scales the head's logits.
        want = torch.softmax(head(x) / model.card.temperature, 1).numpy()
    assert got == pytest.approx(want, abs=2e-3)
    monkeypatch.chdir(tmp_path)
    speech_file(tmp_path / "talk.wav", ("calm", "angry"))
    assert run_predict(models_dir, "talk.wav", "--model", "hubert", "--out", "r.json") == 0
    (source,) = json.loads(Path("r.json").read_text())["sources"]
    assert len(source["segments"]) == 2


def test_predict_file_url_through_ytdlp_and_folders(
    models_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "media/sub").mkdir(parents=True)
    speech_file(tmp_path / "media/a.wav", ("sad",))
    speech_file(tmp_path / "media/sub/b.wav", ("angry", "calm"))
    (tmp_path / "media/notes.txt").write_text("not audio")
    url = (tmp_path / "media/a.wav").as_uri()
    code = run_predict(models_dir, url, "media/sub", "--model", "baseline", "--out", "r.json")
    assert code == 0
    result = json.loads(Path("r.json").read_text())
    assert result["model"] == "baseline" and result["failures"] == []
    by_source = {s["source"]: s for s in result["sources"]}
    assert set(by_source) == {url, "media/sub/b.wav"}
    assert [g["label"] for g in by_source[url]["segments"]] == ["sad"]
    assert by_source[url]["summary"]["dominant"] == "sad"
    assert [g["label"] for g in by_source["media/sub/b.wav"]["segments"]] == ["angry", "calm"]
    # The download went through the collector's cache (a rerun downloads nothing).
    assert list(Path("data/cache/predict/ytdlp/media").rglob("*.wav"))


def test_bad_file_is_skipped_and_exit_status_reflects_any_success(
    models_dir: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.chdir(tmp_path)
    speech_file(tmp_path / "good.wav", ("calm",))
    Path("bad.wav").write_bytes(b"RIFF....not audio at all")
    silent = np.zeros(SR * 2, np.float32)
    sf.write("silent.wav", silent, SR)
    args = ("--model", "baseline", "--out", "r.json")
    assert run_predict(models_dir, "bad.wav", "good.wav", "silent.wav", "nope.wav", *args) == 0
    result = json.loads(Path("r.json").read_text())
    assert [s["source"] for s in result["sources"]] == ["good.wav"]
    reasons = {f["source"]: f["reason"] for f in result["failures"]}
    assert set(reasons) == {"bad.wav", "silent.wav", "nope.wav"}
    assert "no speech" in reasons["silent.wav"]
    assert "bad.wav" in capsys.readouterr().err
    assert run_predict(models_dir, "bad.wav", "silent.wav", "--model", "baseline") == 1
    assert run_predict(models_dir, "good.wav", "--model", "nosuch") == 2


def test_loader_refuses_pickles_other_formats_and_missing_keys(
    models_dir: Path, tmp_path: Path
) -> None:
    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self) -> tuple:
            return (os.system, (f"touch {marker}",))

    def copy(name: str) -> Path:
        dst = tmp_path / name
        shutil.copytree(models_dir / "baseline", dst)
        return dst

    bad = copy("pickled")
    (bad / "extra.pkl").write_bytes(pickle.dumps(Evil()))
    with pytest.raises(ModelFormatError, match="pickle"):
        load_model(bad)
    disguised = copy("disguised")
    (disguised / "weights").write_bytes(pickle.dumps(Evil()))
    with pytest.raises(ModelFormatError, match="pickle"):
        load_model(disguised)
    assert not marker.exists()

    for name, change, match in [
        ("version", {"format_version": 99}, "version 99"),
        ("foreign", {"format": "other"}, "format"),
        ("nolabels", {"labels": None}, "labels"),
    ]:
        d = copy(name)
        meta = json.loads((d / "model.json").read_text())
        meta.update(change)
        (d / "model.json").write_text(json.dumps(meta))
        with pytest.raises(ModelFormatError, match=match):
            load_model(d)
    probe = tmp_path / "probe"
    shutil.copytree(models_dir / "hubert", probe)
    meta = json.loads((probe / "model.json").read_text())
    del meta["backbone"]["random_init"]
    (probe / "model.json").write_text(json.dumps(meta))
    with pytest.raises(ModelFormatError, match="random_init"):
        load_model(probe)
    assert load_model(models_dir / "baseline").labels == ["angry", "calm", "sad"]


def test_best_model_is_the_highest_test_uar(tmp_path: Path) -> None:
    for name, uar in (("baseline", 0.7), ("wavlm", 0.8), ("hubert", 0.9)):
        (tmp_path / "models" / name).mkdir(parents=True)
        (tmp_path / "models" / name / "model.json").write_text("{}")
        if name != "hubert":  # trained but never evaluated: not a candidate
            (tmp_path / "metrics").mkdir(exist_ok=True)
            headline = HeadlineMetrics(uar, uar - 0.1, uar + 0.1, uar, uar, None, 30)
            headline.write(tmp_path / "metrics" / f"{name}.json")
    (tmp_path / "models" / "data2vec").mkdir()
    (tmp_path / "models" / "data2vec" / "model.json").write_text("{}")
    (tmp_path / "metrics" / "data2vec.json").write_text(json.dumps({"uar": 0.99}))  # malformed
    assert pick_model("best", tmp_path / "models", tmp_path / "metrics") == "wavlm"
    assert pick_model("hubert", tmp_path / "models", tmp_path / "metrics") == "hubert"
    with pytest.raises(ConfigError, match=r"name of a model under .*not a path"):
        pick_model(str(tmp_path / "models" / "hubert"), tmp_path / "models")
    with pytest.raises(ConfigError, match=r"no trained model 'hubrt'.*dvc repro train"):
        pick_model("hubrt", tmp_path / "models")
