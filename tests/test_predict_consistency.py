"""seda predict gives an utterance the same result whatever audio surrounds it, and locates a
change of emotion in pause-free speech to within one window.

The models are trained by the real code (test_predict's tiny corpus) with the baseline's
per-speaker standardisation on, which made one utterance alone and the same utterance inside a
longer file disagree (issue 10: happiness 0.54 alone, anger 0.69 in context)."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

import test_predict
from seda.models.loading import load_model
from seda.predict import SegmentTask, segment_file, smooth_windows, window_steps
from test_predict import SR, run_predict, train_models, voiced

LABELS = ("angry", "calm", "sad")
WINDOW = 4.0  # the models' clean.clips.max_seconds
BASE_PARAMS = test_predict.model_params


def standardising_params() -> dict:
    """test_predict's settings with per-speaker standardisation on (each training speaker has
    6 to 9 clips, so the minimum is lowered below that)."""
    params = BASE_PARAMS()
    params["baseline"] = {**params["baseline"], "speaker_standardise": True, "min_speaker_clips": 2}
    return params


@pytest.fixture(scope="module")
def models_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(test_predict, "model_params", standardising_params)
        models = train_models(tmp_path_factory.mktemp("trained"), ("baseline", "hubert"))
    assert load_model(models / "baseline").impl.model.settings.speaker_standardise
    return models


# One second of the noise floor between utterances: the same samples everywhere, so that the
# utterance's segment (padded by 0.1 s) is the same audio alone and in context.
GAP = (0.0005 * np.random.default_rng(7).standard_normal(SR)).astype(np.float32)


def utterance(label: str, seed: int, shift: float = 1.05) -> np.ndarray:
    return voiced(label, 1.5, np.random.default_rng(seed), shift)


def write(path: Path, parts: list[np.ndarray]) -> None:
    """Utterances separated (and surrounded) by the same gap."""
    out = [GAP]
    for p in parts:
        out += [p, GAP]
    sf.write(path, np.concatenate(out), SR, subtype="PCM_16")


def segments(path: Path) -> list[dict]:
    (source,) = json.loads(path.read_text())["sources"]
    return source["segments"]


def probs(segment: dict) -> np.ndarray:
    return np.array([segment["probs"][k] for k in LABELS])


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """alone.wav: one calm utterance; long.wav: the same utterance (7th of 12) in a heated
    exchange (nine angry utterances, two sad) of voices of other pitches, whose statistics
    differ from the training data's."""
    root = tmp_path_factory.mktemp("audio")
    target = utterance("calm", 100)
    write(root / "alone.wav", [target])
    labels = ["angry"] * 9 + ["sad"] * 2
    shifts = np.linspace(0.92, 1.12, len(labels))
    pairs = enumerate(zip(labels, shifts, strict=True))
    others = [utterance(k, i, shift=float(s)) for i, (k, s) in pairs]
    write(root / "long.wav", [*others[:6], target, *others[6:]])
    return root


def predict(models: Path, model: str, wav: Path, out: Path, *extra: str) -> list[dict]:
    assert run_predict(models, str(wav), "--model", model, "--out", str(out), *extra) == 0
    return segments(out)


@pytest.mark.parametrize("model", ["baseline", "hubert"])
def test_same_utterance_alone_and_in_a_long_file_gets_the_same_result(
    models_dir: Path, files: Path, tmp_path: Path, model: str
) -> None:
    (alone,) = predict(models_dir, model, files / "alone.wav", tmp_path / "alone.json")
    in_file = predict(models_dir, model, files / "long.wav", tmp_path / "long.json")
    assert len(in_file) == 12
    inside = in_file[6]
    # The same audio: same length of segment (starts differ by where it sits in the file).
    assert inside["end"] - inside["start"] == pytest.approx(alone["end"] - alone["start"], abs=1e-3)
    diff = float(np.abs(probs(inside) - probs(alone)).max())
    print(f"{model}: largest probability difference alone vs in a long file {diff:.2e}")
    assert inside["label"] == alone["label"]
    assert diff <= 0.02


def test_same_speaker_standardises_each_source_as_in_training(
    models_dir: Path, files: Path, tmp_path: Path
) -> None:
    """--same-speaker gives exactly the baseline's per-speaker standardisation over the
    source's segments; the default gives each segment the training statistics."""
    from seda.features.classic import classic_features
    from seda.models.baseline import BaselineModel
    from seda.predict import audio_settings

    loaded = load_model(models_dir / "baseline")
    clean, vad, _ = audio_settings(loaded)
    spans = segment_file(SegmentTask(0, str(files / "long.wav"), clean, vad, 0, WINDOW))["spans"]
    assert len(spans) == 12 and all(len(s.windows) == 1 for s in spans)
    bm = BaselineModel.load(models_dir / "baseline/baseline.safetensors")
    X = np.stack([classic_features(s.windows[0], SR, bm.settings) for s in spans])
    cols = [bm.labels.index(k) for k in LABELS]
    per_source = bm.predict_proba(X, ["one speaker"] * len(X))[:, cols]
    # Every row standardised on its own with the training statistics.
    fixed = bm.predict_proba(X, [f"clip{i}" for i in range(len(X))])[:, cols]
    assert bm.settings.min_speaker_clips > 1  # so that the line above used the fallback
    assert not np.allclose(per_source, fixed, atol=0.02)

    same = predict(
        models_dir, "baseline", files / "long.wav", tmp_path / "s.json", "--same-speaker"
    )
    default = predict(models_dir, "baseline", files / "long.wav", tmp_path / "d.json")
    assert np.stack([probs(s) for s in same]) == pytest.approx(per_source, abs=1e-9)
    assert np.stack([probs(s) for s in default]) == pytest.approx(fixed, abs=1e-9)
    doc = json.loads((tmp_path / "s.json").read_text())
    assert doc["standardisation"] == "per source (--same-speaker)"
    assert json.loads((tmp_path / "d.json").read_text())["standardisation"] == (
        "training statistics"
    )


def test_helper_processes_featurising_a_long_file_change_nothing(
    models_dir: Path, files: Path, tmp_path: Path
) -> None:
    """One file and three workers: the baseline's windows are featurised by helper processes
    while the file is still being cut, and only their features come back. The results are
    those of one process, to the byte."""
    from seda.predict import main as predict_main

    outs = []
    for workers in ("1", "3"):
        outs.append(tmp_path / f"w{workers}.json")
        args = [str(files / "long.wav"), "--model", "baseline", "--out", str(outs[-1])]
        assert predict_main([*args, "--models-dir", str(models_dir), "--workers", workers]) == 0
    assert len(segments(outs[0])) == 12
    assert outs[0].read_bytes() == outs[1].read_bytes()


def test_probe_probabilities_do_not_depend_on_the_other_clips(models_dir: Path) -> None:
    """Clips of other lengths in the same call (padding, batch make-up) change nothing."""
    model = load_model(models_dir / "hubert")
    target = utterance("sad", 3)
    others = [utterance(k, 10 + i)[: SR // (i + 1)] for i, k in enumerate(LABELS)]
    alone = model.predict_proba([target])
    mixed = model.predict_proba([*others, target, others[0]])
    assert float(np.abs(mixed[3] - alone[0]).max()) <= 1e-4


def test_window_steps_tile_the_region_with_half_overlapping_windows() -> None:
    assert window_steps(300, 400) == ([(0, 300)], [(0, 300)])
    for n, w in [(401, 400), (1000, 400), (1600, 400), (12345, 640)]:
        steps, windows = window_steps(n, w)
        assert steps[0][0] == 0 and steps[-1][1] == n
        assert all(a[1] == b[0] for a, b in itertools.pairwise(steps))
        assert len(windows) == len(steps) - 1
        for k, (a, b) in enumerate(windows):
            assert (a, b) == (steps[k][0], steps[k + 1][1])
            assert b - a <= w
        assert max(b - a for a, b in steps) <= w / 2 + 1
    p = np.array([[1.0, 0.0], [0.0, 1.0], [np.nan, np.nan]])
    assert smooth_windows(p, 4)[:3] == pytest.approx(np.array([[1, 0], [0.5, 0.5], [0, 1]]))
    assert np.isnan(smooth_windows(p, 4)[3]).all()


@pytest.mark.parametrize("window", [None, 2.0])
def test_an_emotion_change_in_pause_free_speech_is_located_within_one_window(
    models_dir: Path, tmp_path: Path, window: float | None
) -> None:
    """Six angry words, then six sad ones, 0.2 s apart (less than the VAD's shortest silence
    and the merge gap, so the segmenter sees one 16.6 s region): rows of half a window, the
    first sad one within a window of the change, none mixing the two over a whole region."""
    rng = np.random.default_rng(5)
    floor = (0.0005 * rng.standard_normal(SR // 5)).astype(np.float32)
    words = [voiced(k, 1.2, rng, 1.02) for k in ["angry"] * 6 + ["sad"] * 6]
    parts = [GAP]
    for w in words:
        parts += [w, floor]
    sf.write(tmp_path / "turn.wav", np.concatenate([*parts[:-1], GAP]), SR)
    change = len(GAP) / SR + 6 * 1.4
    extra = () if window is None else ("--window", str(window))
    rows = predict(models_dir, "baseline", tmp_path / "turn.wav", tmp_path / "t.json", *extra)
    w = WINDOW if window is None else window
    assert len(rows) >= 2 * 16 / w
    for a, b in itertools.pairwise(rows):
        assert b["start"] == pytest.approx(a["end"], abs=1e-3)  # one region, in steps
        assert a["end"] - a["start"] <= w / 2 + 1e-3
    labels = [r["label"] for r in rows]
    assert labels[0] == "angry" and labels[-1] == "sad"
    located = next(r["start"] for r in rows if r["label"] == "sad")
    print(f"window {w}: change at {change:.2f} s located at {located:.2f} s; {labels}")
    assert abs(located - change) <= w
    assert all(r["label"] == "sad" for r in rows if r["start"] >= change + w)
    assert all(r["label"] == "angry" for r in rows if r["end"] <= change - w)
    assert json.loads((tmp_path / "t.json").read_text())["window_seconds"] == w
