"""The classical baseline: features, per-speaker standardisation, model, serialisation."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from sklearn.metrics import recall_score

from seda.audio import AudioError, load_audio, write_wav
from seda.baseline import BaselineSettings, feature_blocks, feature_dim
from seda.config import ConfigError, build
from seda.features.classic import (
    classic_features,
    egemaps_functionals,
    feature_names,
    featurize_clips,
    logmel_stats,
    mfcc_stats,
    smile_functionals,
)
from seda.models.baseline import (
    BaselineModel,
    _new_pipeline,
    candidates,
    choose,
    fixed_candidate,
    inner_search,
    member_columns,
    per_speaker_standardise,
    recorded_rows,
)

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
    assert logmel_stats(y, SR, 32).shape == (64,)
    assert egemaps_functionals(y, SR).shape == (88,)
    settings = BaselineSettings()
    feats = classic_features(y, SR, settings)
    assert settings.features == ["mfcc", "logmel", "egemaps"]
    assert (
        feats.shape
        == (80 + 128 + 88,)
        == (len(feature_names(settings)),)
        == (feature_dim(settings),)
    )
    assert feats.dtype == np.float32 and np.all(np.isfinite(feats))
    assert classic_features(y, SR, BaselineSettings(features=["mfcc"])).shape == (80,)
    # the blocks come in the order asked, each where feature_blocks says
    swapped = BaselineSettings(features=["egemaps", "mfcc"])
    both = classic_features(y, SR, swapped)
    blocks = feature_blocks(swapped)
    np.testing.assert_array_equal(both[blocks["mfcc"]], feats[:80])
    np.testing.assert_array_equal(both[blocks["egemaps"]], feats[208:])


def test_compare_functionals() -> None:
    settings = BaselineSettings(features=["compare"])
    feats = classic_features(tone(180, 0.3), SR, settings)
    assert feats.shape == (6373,) == (len(feature_names(settings)),) == (feature_dim(settings),)
    assert np.all(np.isfinite(feats))
    np.testing.assert_array_equal(feats, smile_functionals(tone(180, 0.3), SR, "compare"))


@pytest.mark.filterwarnings("ignore:n_fft=.* is too large:UserWarning")  # librosa, shortest y
@pytest.mark.parametrize("sr", [16000, 22050, 44100])
def test_mfcc_and_logmel_are_librosas_to_the_bit(sr: int) -> None:
    """The lean MFCC and log-mel blocks give librosa's values exactly (the pipeline's feature
    hashes depend on it), whatever the length: shorter than the FFT, around the padded edges."""
    import librosa

    from seda.features.classic import _frames

    frames = _frames(sr)
    rng = np.random.default_rng(sr)
    lengths = [frames["n_fft"] - 1, int(0.1 * sr) + 37, int(0.7 * sr), int(2.3 * sr) + 1]
    for n in lengths:
        y = (rng.uniform(0.001, 0.5) * rng.standard_normal(n)).astype(np.float32)
        for n_mfcc in (13, 40):
            m = librosa.feature.mfcc(y=y, sr=sr, n_mfcc=n_mfcc, n_mels=64, **frames)
            want = np.concatenate([m.mean(axis=1), m.std(axis=1)]).astype(np.float32)
            np.testing.assert_array_equal(mfcc_stats(y, sr, n_mfcc), want)
        db = librosa.power_to_db(librosa.feature.melspectrogram(y=y, sr=sr, n_mels=32, **frames))
        want = np.concatenate([db.mean(axis=1), db.std(axis=1)]).astype(np.float32)
        np.testing.assert_array_equal(logmel_stats(y, sr, 32), want)


def test_smile_functionals_are_opensmiles_to_the_bit() -> None:
    """openSMILE through its C API alone gives what ``opensmile.Smile`` gives: the same names,
    the same values (samples beyond full scale wrap alike), NaN for a signal too short."""
    import warnings

    import opensmile

    rng = np.random.default_rng(3)
    loud = np.clip(1.5 * rng.standard_normal(SR // 2), -1.2, 1.2).astype(np.float32)
    signals = [tone(150, 0.3), tone(220, 0.6, seconds=1.7, seed=1), loud, tone(150, 0.3)[:300]]
    for block, feature_set in [
        ("egemaps", opensmile.FeatureSet.eGeMAPSv02),
        ("compare", opensmile.FeatureSet.ComParE_2016),
    ]:
        smile = opensmile.Smile(feature_set, opensmile.FeatureLevel.Functionals)
        assert [f"{block}.{n}" for n in smile.feature_names] == feature_names(
            BaselineSettings(features=[block])
        )
        for y in signals:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", UserWarning)  # "Segment too short"
                want = smile.process_signal(y, SR).to_numpy(dtype=np.float32).reshape(-1)
            got = smile_functionals(y, SR, block)
            assert np.array_equal(got, want, equal_nan=True), (block, y.size)
    assert np.isnan(smile_functionals(signals[-1], SR, "egemaps")).all()


def test_featurizing_imports_no_heavy_library() -> None:
    """A featurising worker needs numpy, scipy.fft and openSMILE's library only: not librosa
    (numba, scipy.signal), not the opensmile package (audinterface, pandas), not torch."""
    import subprocess
    import sys

    code = (
        "import sys, numpy as np\n"
        "from seda.baseline import BaselineSettings\n"
        "from seda.features.classic import classic_features\n"
        "y = (0.1 * np.random.default_rng(0).standard_normal(16000)).astype(np.float32)\n"
        "assert classic_features(y, 16000, BaselineSettings()).shape == (296,)\n"
        "heavy = ('librosa', 'numba', 'scipy.signal', 'opensmile', 'pandas', 'torch', 'sklearn')\n"
        "print(sorted(m for m in heavy if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


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
    settings = BaselineSettings(features=["mfcc"])
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


CLASSIFIERS = ["svm", "logreg", "lda"]


def only(classifier: str, **kwargs: object) -> BaselineSettings:
    """Settings whose inner search tries just ``classifier``."""
    return BaselineSettings(
        classifier=classifier, classifier_grid=[classifier], min_speaker_clips=2, **kwargs
    )


@pytest.mark.parametrize("classifier", CLASSIFIERS)
def test_model_learns_separable_problem_on_held_out_speakers(
    tone_corpus: tuple[np.ndarray, np.ndarray, np.ndarray], classifier: str
) -> None:
    X, y, speakers = tone_corpus
    test = speakers == "spk3"
    model = BaselineModel(only(classifier))
    model.fit(X[~test], y[~test], speakers[~test])
    proba = model.predict_proba(X[test], speakers[test])
    assert proba.shape == (test.sum(), 2) and model.labels == ["angry", "calm"]
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, atol=1e-9)
    uar = recall_score(y[test], model.predict(X[test], speakers[test]), average="macro")
    assert uar >= 0.9


@pytest.mark.parametrize("classifier", [*CLASSIFIERS, "fused"])
def test_serialisation_round_trip(
    tone_corpus: tuple[np.ndarray, np.ndarray, np.ndarray], classifier: str, tmp_path: Path
) -> None:
    X, y, speakers = tone_corpus
    rng = np.random.default_rng(3)
    y = rng.permutation(np.where(np.arange(len(y)) % 3 == 0, "sad", y))  # 3 classes, noisy
    if classifier == "fused":
        settings = BaselineSettings(
            classifier_grid=["svm", "lda"],
            feature_grid=["mfcc+egemaps", "logmel"],
            C_grid=[1.0],
            fuse=3,
            min_speaker_clips=2,
        )
    else:
        settings = only(classifier)
    model = BaselineModel(settings)
    model.fit(X, y, speakers)
    model.save(tmp_path / "model.safetensors")
    loaded = BaselineModel.load(tmp_path / "model.safetensors")
    # a new speaker with few clips exercises the pooled fallback statistics too
    new = np.array(["spk0"] * 40 + ["new"] * (len(X) - 40))
    # the same arrays, the same arithmetic: identical probabilities
    np.testing.assert_array_equal(loaded.predict_proba(X, new), model.predict_proba(X, new))
    assert loaded.labels == model.labels and loaded.settings == model.settings
    assert loaded.best_params == model.best_params and loaded.members == model.members
    assert len(model.members) == (3 if classifier == "fused" else 1)
    # saving again gives the same bytes (nothing of the run, e.g. a time, goes into the file)
    loaded.save(tmp_path / "again.safetensors")
    again = (tmp_path / "again.safetensors").read_bytes()
    assert again == (tmp_path / "model.safetensors").read_bytes()


@pytest.mark.parametrize("classifier", CLASSIFIERS)
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
    pipeline = _new_pipeline(fixed_candidate(settings), settings, n_classes)
    pipeline.fit(Z, np.searchsorted(model.labels, y))
    want = pipeline.predict_proba(model._prepare(X, new))
    got = model.predict_proba(X, new)
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-12)
    np.testing.assert_array_equal(got.argmax(axis=1), want.argmax(axis=1))


def test_fused_members_are_the_geometric_mean_of_their_pipelines(
    tone_corpus: tuple[np.ndarray, np.ndarray, np.ndarray],
) -> None:
    X, y, speakers = tone_corpus
    rng = np.random.default_rng(5)
    y = rng.permutation(np.where(np.arange(len(y)) % 3 == 0, "sad", y))
    settings = BaselineSettings(
        classifier_grid=["svm", "logreg"],
        feature_grid=["mfcc", "logmel+egemaps"],
        fuse=2,
        min_speaker_clips=2,
    )
    model = BaselineModel(settings).fit(X, y, speakers)
    assert len(model.members) == 2
    keys = {(m["classifier"], tuple(m["features"])) for m in model.members}
    assert len(keys) == 2  # never the same classifier on the same features twice
    Z = model._prepare(X, speakers)
    codes = np.searchsorted(model.labels, y)
    logs = []
    for m in model.members:
        cand = fixed_candidate(
            BaselineSettings(
                features=m["features"],
                classifier=m["classifier"],
                C=m["C"] or 1.0,
                gamma=m["gamma"] or "scale",
            )
        )
        cols = member_columns(settings, m["features"], X.shape[1])
        pipe = _new_pipeline(cand, settings, len(model.labels)).fit(Z[:, cols], codes)
        logs.append(np.log(pipe.predict_proba(Z[:, cols])))
    want = np.exp(np.mean(logs, axis=0))
    want /= want.sum(axis=1)[:, None]
    np.testing.assert_allclose(model.predict_proba(X, speakers), want, rtol=0, atol=1e-9)


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


def test_inner_search_holds_out_whole_speakers() -> None:
    """Every (speaker, label) pair is its own random cluster: memorising clusters works across
    folds that split a speaker's clips, never across speakers. Leave-one-speaker-out sees that
    (UAR near chance); a search over clip folds would not (UAR near 1)."""
    rng = np.random.default_rng(4)
    speakers = np.repeat([f"s{i:02d}" for i in range(16)], 10)
    y = np.tile(np.repeat([0, 1], 5), 16)
    centres = {(s, c): rng.normal(size=40) * 3 for s in sorted(set(speakers)) for c in (0, 1)}
    Z = np.stack([centres[s, c] for s, c in zip(speakers, y, strict=True)])
    Z += 0.1 * rng.normal(size=Z.shape)
    settings = BaselineSettings(features=["mfcc"], n_mfcc=20, C_grid=[1.0])
    (grid,) = candidates(settings)
    [(_, by_speaker)] = inner_search(Z, y, speakers, [grid], settings)
    [(_, by_clip)] = inner_search(Z, y, None, [grid], settings)
    assert by_clip == 1.0 and by_speaker < 0.7


def test_copies_train_but_are_never_scored_or_counted() -> None:
    """Augmented copies (here exact duplicates of their clips, labels carrying no signal) must
    not let a fold score a clip whose copy it trained on, nor move a speaker's statistics."""
    rng = np.random.default_rng(11)
    n = 120
    X = rng.normal(size=(n, 30))
    y = np.tile([0, 1], n // 2)
    clip = np.arange(n)
    Xa, ya = np.concatenate([X, X]), np.concatenate([y, y])
    groups, augmented = np.concatenate([clip, clip]), np.repeat([False, True], n)
    settings = BaselineSettings(features=["mfcc"], n_mfcc=15, C_grid=[10.0], gamma_grid=[0.5])
    (grid,) = candidates(settings)
    # 5-fold (fewer than three speakers): a copy in training, its clip held out = memorised
    [(_, leaky)] = inner_search(Xa, ya, None, [grid], settings)
    [(_, grouped)] = inner_search(Xa, ya, None, [grid], settings, groups, ~augmented)
    assert leaky > 0.8 and grouped < 0.65  # a copy in training: 4 folds in 5 memorised


def test_a_speakers_copies_are_standardised_as_their_own_condition() -> None:
    """Copies are standardised with their speaker's copies' statistics, as a test speaker
    recorded in noise is with its own: the same copies shifted by a constant (another channel)
    train exactly the same model. The recorded clips' standardisation ignores the copies."""
    rng = np.random.default_rng(12)
    speakers = np.repeat(["a", "b", "c", "d"], 12)
    y = np.tile(["calm", "angry"], 24)
    X = rng.normal(size=(48, 10)) + (y == "angry")[:, None]
    copies = X + 0.3 * rng.normal(size=X.shape)
    groups = np.tile(np.arange(48), 2)
    augmented = np.repeat([False, True], 48)
    settings = BaselineSettings(classifier_grid=["logreg"], logreg_C_grid=[0.1])

    def fit(shift: float) -> BaselineModel:
        return BaselineModel(settings).fit(
            np.concatenate([X, copies + shift]),
            np.tile(y, 2),
            np.tile(speakers, 2),
            groups=groups,
            augmented=augmented,
        )

    plain, shifted = fit(0.0), fit(7.0)
    assert plain.arrays.keys() == shifted.arrays.keys()
    for key, value in plain.arrays.items():
        np.testing.assert_allclose(shifted.arrays[key], value, atol=1e-9, err_msg=key)
    alone = BaselineModel(settings).fit(X, y, speakers)
    np.testing.assert_array_equal(plain.arrays["pooled.mean"], alone.arrays["pooled.mean"])


def test_a_repeat_counts_once_in_the_statistics() -> None:
    X = np.array([[0.0], [2.0], [4.0], [4.0]])
    Z = per_speaker_standardise(X, ["a"] * 4, measured=np.array([True, True, True, False]))
    np.testing.assert_allclose(Z[:, 0], (X[:, 0] - 2.0) / np.std([0.0, 2.0, 4.0]))


def test_recorded_rows_count_each_clip_once() -> None:
    groups = np.array([0, 1, 2, 1, 0, 2, 1])  # rows 3 and 6 repeat clip 1; rows 4, 5 are copies
    augmented = np.array([False, False, False, False, True, True, False])
    expected = [True, True, True, False, False, False, False]
    assert recorded_rows(groups, augmented).tolist() == expected


def test_inner_folds_may_lack_a_class() -> None:
    """A class only one speaker has is missing from the inner fold that holds that speaker out:
    every classifier still fits there."""
    rng = np.random.default_rng(7)
    speakers = np.repeat(["s1", "s2", "s3", "s4"], 12)
    y = np.array(["a", "b"] * 24, dtype=object)
    y[:12:3] = "c"  # only s1 has c
    X = rng.normal(size=(48, 6)) + (y == "a")[:, None]
    settings = BaselineSettings(classifier_grid=["svm", "logreg", "lda"], min_speaker_clips=2)
    model = BaselineModel(settings).fit(X, y, speakers)
    assert model.labels == ["a", "b", "c"] and model.predict_proba(X, speakers).shape == (48, 3)


def test_grid_order_and_choice(tone_corpus: tuple[np.ndarray, np.ndarray, np.ndarray]) -> None:
    settings = BaselineSettings(
        classifier_grid=["logreg", "svm", "lda"],
        feature_grid=["egemaps", "mfcc+logmel"],
        C_grid=[0.3, 1.0],
        logreg_C_grid=[0.01],
    )
    grid = candidates(settings)
    assert [c.describe() for c in grid[:4]] == [
        "logreg(egemaps, C=0.01)",
        "svm(egemaps, C=0.3, gamma=scale)",
        "svm(egemaps, C=1, gamma=scale)",
        "lda(egemaps)",
    ]
    assert len(grid) == 8
    ranked = [(grid[1], 0.7), (grid[2], 0.7), (grid[0], 0.6), (grid[4], 0.5)]
    assert [c for c, _ in choose(ranked, 1)] == [grid[1]]
    assert [c for c, _ in choose(ranked, 2)] == [grid[1], grid[0]]  # not svm(egemaps) twice
    X, y, speakers = tone_corpus
    model = BaselineModel(BaselineSettings(min_speaker_clips=2, **_small_grid())).fit(
        X, y, speakers
    )
    (member,) = model.members
    assert member["C"] in (0.1, 10.0) and member["gamma"] == "scale"
    assert member["features"] in (["mfcc"], ["mfcc", "logmel", "egemaps"])
    assert 0.5 <= member["inner_uar"] <= 1.0


def _small_grid() -> dict[str, object]:
    return {"C_grid": [0.1, 10.0], "feature_grid": ["mfcc", "mfcc+logmel+egemaps"]}


def test_precomputed_features_of_any_width_work_without_subsets() -> None:
    """All of ``features`` is every column: the model trains on vectors of any width."""
    rng = np.random.default_rng(6)
    y = np.tile(["a", "b"], 30)
    X = rng.normal(size=(60, 7)) + (y == "a")[:, None] * 2.0
    speakers = np.repeat(["s1", "s2", "s3"], 20)
    model = BaselineModel(BaselineSettings()).fit(X, y, speakers)
    assert model.n_features == 7 and (model.predict(X, speakers) == y).mean() > 0.9
    with pytest.raises(ValueError, match="takes 7"):
        model.predict(X[:, :5], speakers)
    with pytest.raises(ValueError, match="cannot pick the subset"):
        BaselineModel(BaselineSettings(feature_grid=["mfcc"])).fit(X, y, speakers)


def test_settings_from_config_reject_bad_values() -> None:
    settings = build(BaselineSettings, {"classifier": "logreg", "C": 0.5}, "baseline")
    assert settings.classifier == "logreg" and settings.n_mfcc == 40
    with pytest.raises(ConfigError, match="classifier"):
        build(BaselineSettings, {"classifier": "forest"}, "baseline")
    with pytest.raises(ConfigError, match="gamma"):
        build(BaselineSettings, {"gamma": "wide"}, "baseline")
    with pytest.raises(ConfigError, match=r"unknown feature set.*'opensmile'"):
        build(BaselineSettings, {"features": ["mfcc", "opensmile"]}, "baseline")
    with pytest.raises(ConfigError, match=r"compare.*not in baseline\.features"):
        build(BaselineSettings, {"feature_grid": ["mfcc+compare"]}, "baseline")
    with pytest.raises(ConfigError, match="twice"):
        build(BaselineSettings, {"features": ["mfcc", "mfcc"]}, "baseline")
    with pytest.raises(ConfigError, match="classifier"):
        build(BaselineSettings, {"classifier_grid": ["svm", "tree"]}, "baseline")
    with pytest.raises(ConfigError, match="fuse"):
        build(BaselineSettings, {"fuse": 0}, "baseline")


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
    settings = BaselineSettings(features=["mfcc", "logmel", "egemaps", "compare"])
    X = featurize_clips(paths, settings, workers=1)
    assert X.shape == (len(paths), feature_dim(settings)) and np.all(np.isfinite(X))
