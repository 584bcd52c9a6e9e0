"""The classical baseline: features, per-speaker standardisation, model, serialisation."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from sklearn.metrics import recall_score

from seda.audio import AudioError, load_audio, write_wav
from seda.baseline import BaselineSettings
from seda.config import ConfigError, build
from seda.features.classic import (
    classic_features,
    egemaps_functionals,
    feature_names,
    featurize_clips,
    mfcc_stats,
)
from seda.models.baseline import BaselineModel, per_speaker_standardise

SR = 16000
TUREVDB = Path("../shared/data/turevdb/Sound Source")


def tone(f0: float, amp: float, seconds: float = 0.6, seed: int = 0) -> np.ndarray:
    """A voiced-like harmonic tone with a little noise, so eGeMAPS finds a pitch."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * SR)) / SR
    y = sum(np.sin(2 * np.pi * f0 * k * t) / k for k in range(1, 6))
    y = amp * y / np.max(np.abs(y)) + 0.003 * rng.standard_normal(t.size)
    return y.astype(np.float32)


def test_features_shape_and_finite() -> None:
    y = tone(150, 0.3)
    assert mfcc_stats(y, SR, 13).shape == (26,)
    assert egemaps_functionals(y, SR).shape == (88,)
    settings = BaselineSettings()
    feats = classic_features(y, SR, settings)
    assert feats.shape == (2 * 40 + 88,) == (len(feature_names(settings)),)
    assert feats.dtype == np.float32 and np.all(np.isfinite(feats))
    assert classic_features(y, SR, BaselineSettings(use_egemaps=False)).shape == (80,)


def test_too_short_clip_is_a_clear_audio_error() -> None:
    with pytest.raises(AudioError, match="too short"):
        classic_features(np.zeros(100, np.float32), SR, BaselineSettings())


def test_featurize_clips_keeps_order_and_reports_bad_files(tmp_path: Path) -> None:
    paths = []
    for i, f0 in enumerate((120, 240)):
        paths.append(tmp_path / f"clip{i}.wav")
        write_wav(paths[-1], tone(f0, 0.3, seed=i), SR)
    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"not audio at all")
    settings = BaselineSettings(use_egemaps=False)
    errors: dict[str, str] = {}
    X = featurize_clips([paths[0], bad, paths[1]], settings, workers=1, errors=errors)
    assert X.shape == (3, 80) and X.dtype == np.float32
    assert np.isnan(X[1]).all() and list(errors) == [str(bad)]
    np.testing.assert_array_equal(X[2], classic_features(load_audio(paths[1], SR)[0], SR, settings))
    with pytest.raises(AudioError, match="1 clip"):
        featurize_clips([paths[0], bad], settings, workers=1)


def test_per_speaker_standardise_zero_mean_unit_std() -> None:
    rng = np.random.default_rng(1)
    speakers = np.repeat(["s1", "s2", "s3"], [20, 30, 25])
    X = rng.normal(size=(75, 4)) * [1, 5, 0.1, 1] + rng.normal(size=(3, 4)).repeat([20, 30, 25], 0)
    X[:, 3] = 7.0  # constant feature: must not divide by zero
    Z = per_speaker_standardise(X, speakers)
    for spk in ("s1", "s2", "s3"):
        rows = speakers == spk
        np.testing.assert_allclose(Z[rows].mean(axis=0), 0, atol=1e-9)
        np.testing.assert_allclose(Z[rows, :3].std(axis=0), 1, atol=1e-9)
    assert np.all(Z[:, 3] == 0)


def test_small_speakers_use_the_fallback_statistics() -> None:
    X = np.array([[1.0, 2.0], [3.0, 6.0], [5.0, 10.0]])
    fallback = (np.array([1.0, 2.0]), np.array([2.0, 4.0]))
    Z = per_speaker_standardise(X, ["a", "a", "b"], min_clips=2, fallback=fallback)
    np.testing.assert_allclose(Z[2], [2.0, 2.0])
    np.testing.assert_allclose(Z[:2], [[-1, -1], [1, 1]])


def _tone_corpus(
    n_speakers: int = 4, per_class: int = 6
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Two 'emotions': low quiet tones vs high loud tones, with a per-speaker voice offset."""
    settings = BaselineSettings()
    rows, labels, speakers = [], [], []
    rng = np.random.default_rng(2)
    for spk in range(n_speakers):
        voice = rng.uniform(0.8, 1.25)
        for i in range(per_class):
            for label, f0, amp in (("calm", 110, 0.05), ("angry", 260, 0.5)):
                f = f0 * voice * rng.uniform(0.9, 1.1)
                y = tone(f, amp * rng.uniform(0.7, 1.3), seed=spk * 100 + i)
                rows.append(classic_features(y, SR, settings))
                labels.append(label)
                speakers.append(f"spk{spk}")
    return np.stack(rows), np.array(labels), np.array(speakers)


@pytest.fixture(scope="module")
def tone_corpus() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    return _tone_corpus()


@pytest.mark.parametrize("classifier", ["svm", "logreg"])
def test_model_learns_separable_problem_on_held_out_speakers(
    tone_corpus: tuple[np.ndarray, np.ndarray, np.ndarray], classifier: str
) -> None:
    X, y, speakers = tone_corpus
    test = speakers == "spk3"
    model = BaselineModel(BaselineSettings(classifier=classifier, min_speaker_clips=2))
    model.fit(X[~test], y[~test], speakers[~test])
    proba = model.predict_proba(X[test], speakers[test])
    assert proba.shape == (test.sum(), 2) and model.labels == ["angry", "calm"]
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, atol=1e-9)
    uar = recall_score(y[test], model.predict(X[test], speakers[test]), average="macro")
    assert uar >= 0.9


@pytest.mark.parametrize("classifier", ["svm", "logreg"])
def test_serialisation_round_trip(
    tone_corpus: tuple[np.ndarray, np.ndarray, np.ndarray], classifier: str, tmp_path: Path
) -> None:
    X, y, speakers = tone_corpus
    rng = np.random.default_rng(3)
    y = rng.permutation(np.where(np.arange(len(y)) % 3 == 0, "sad", y))  # 3 classes, noisy
    model = BaselineModel(BaselineSettings(classifier=classifier, min_speaker_clips=2))
    model.fit(X, y, speakers)
    model.save(tmp_path / "model.safetensors")
    loaded = BaselineModel.load(tmp_path / "model.safetensors")
    # a new speaker with few clips exercises the pooled fallback statistics too
    new = np.array(["spk0"] * 40 + ["new"] * (len(X) - 40))
    # the same arrays, the same arithmetic: identical probabilities
    np.testing.assert_array_equal(loaded.predict_proba(X, new), model.predict_proba(X, new))
    assert loaded.labels == model.labels and loaded.settings == model.settings
    assert loaded.best_params == model.best_params and loaded.gamma == model.gamma
    # saving again gives the same bytes (nothing of the run, e.g. a time, goes into the file)
    loaded.save(tmp_path / "again.safetensors")
    again = (tmp_path / "again.safetensors").read_bytes()
    assert again == (tmp_path / "model.safetensors").read_bytes()


@pytest.mark.parametrize("classifier", ["svm", "logreg"])
@pytest.mark.parametrize("n_classes", [2, 3, 4])
def test_plain_array_scoring_is_what_sklearn_predicts(
    tone_corpus: tuple[np.ndarray, np.ndarray, np.ndarray], classifier: str, n_classes: int
) -> None:
    """The saved arrays reproduce the fitted scikit-learn pipeline's predict_proba."""
    X, y, speakers = tone_corpus
    rng = np.random.default_rng(n_classes)
    names = np.array(["angry", "calm", "happy", "sad"][:n_classes])
    y = names[rng.integers(0, n_classes, len(y))]  # noisy labels: many support vectors
    settings = BaselineSettings(classifier=classifier, min_speaker_clips=2, tune=False)
    model = BaselineModel(settings).fit(X, y, speakers)
    new = np.array(["spk0"] * 40 + ["new"] * (len(X) - 40))
    Z = model._prepare(X, speakers)
    pipeline = model._new_pipeline(settings.C, settings.gamma)
    pipeline.fit(Z, np.searchsorted(model.labels, y))
    want = pipeline.predict_proba(model._prepare(X, new))
    got = model.predict_proba(X, new)
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-12)
    np.testing.assert_array_equal(got.argmax(axis=1), want.argmax(axis=1))


def test_fitting_twice_gives_the_same_file(
    tone_corpus: tuple[np.ndarray, np.ndarray, np.ndarray], tmp_path: Path
) -> None:
    X, y, speakers = tone_corpus
    for k in range(2):
        model = BaselineModel(BaselineSettings(min_speaker_clips=2)).fit(X, y, speakers)
        model.save(tmp_path / f"m{k}.safetensors")
    assert (tmp_path / "m0.safetensors").read_bytes() == (tmp_path / "m1.safetensors").read_bytes()


def test_load_refuses_other_files(tmp_path: Path) -> None:
    from safetensors.numpy import save_file

    save_file({"x": np.zeros(2)}, str(tmp_path / "other.safetensors"))
    with pytest.raises(ValueError, match="seda-baseline"):
        BaselineModel.load(tmp_path / "other.safetensors")


def test_inner_search_uses_only_training_speakers(
    tone_corpus: tuple[np.ndarray, np.ndarray, np.ndarray],
) -> None:
    X, y, speakers = tone_corpus
    settings = BaselineSettings(tune=True, C_grid=[0.1, 10.0], gamma_grid=["scale"])
    model = BaselineModel(settings).fit(X, y, speakers)
    assert model.best_params["C"] in (0.1, 10.0) and model.best_params["gamma"] == "scale"


def test_settings_from_config_reject_bad_values() -> None:
    settings = build(BaselineSettings, {"classifier": "logreg", "C": 0.5}, "baseline")
    assert settings.classifier == "logreg" and settings.n_mfcc == 40
    with pytest.raises(ConfigError, match="classifier"):
        build(BaselineSettings, {"classifier": "forest"}, "baseline")
    with pytest.raises(ConfigError, match="gamma"):
        build(BaselineSettings, {"gamma": "wide"}, "baseline")


def test_speaker_standardise_needs_speakers(
    tone_corpus: tuple[np.ndarray, np.ndarray, np.ndarray],
) -> None:
    X, y, _ = tone_corpus
    with pytest.raises(ValueError, match="speaker"):
        BaselineModel(BaselineSettings()).fit(X, y)


@pytest.mark.shared
@pytest.mark.skipif(not TUREVDB.is_dir(), reason="TurEV-DB not present in ../shared/data")
def test_turevdb_features_are_finite() -> None:
    paths = sorted(TUREVDB.glob("*/*.wav"))[::400][:5]
    X = featurize_clips(paths, BaselineSettings(), workers=1)
    assert X.shape == (len(paths), 168) and np.all(np.isfinite(X))
