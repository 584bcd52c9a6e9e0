"""augment: copies are deterministic, speed and SNR are what was asked, only training rows are ever
augmented or repeated (holdout and LOSO, through the real stages), and augment=none changes no
byte of the pipeline's outputs."""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from seda.augment import (
    AugmentRow,
    AugmentSettings,
    augment_wave,
    coloured_noise,
    plan_copies,
    training_clips,
)
from seda.config import ConfigError
from seda.features.store import load_augmented, load_features, save_augmented, save_features
from seda.io import write_csv_atomic
from seda.models import baseline as baseline_module
from seda.models.determinism import torch_threads
from seda.models.evaluation import TrainOutputs, labelled_data
from seda.models.folds import TrainingRows, holdout_fold, loso_folds, oversample
from seda.models.training import augmented_waves
from seda.records import SPLIT_COLUMNS, SplitRow, read_records
from seda.stages import featurize, featurize_baseline, train_baseline
from tiny import TINY_BACKBONE

SR = 16000
LABELS = ("angry", "calm", "sad")
SPLITS = Path("data/splits/splits.csv")


def snr_db(signal: np.ndarray, added: np.ndarray) -> float:
    s, a = np.asarray(signal, np.float64), np.asarray(added, np.float64)
    return float(10 * np.log10(np.sum(s**2) / np.sum(a**2)))


def tone(seconds: float = 1.0, f0: float = 220.0, seed: int = 0) -> np.ndarray:
    t = np.arange(round(seconds * SR)) / SR
    rng = np.random.default_rng(seed)
    return (0.3 * np.sin(2 * np.pi * f0 * t) + 0.01 * rng.standard_normal(t.size)).astype(
        np.float32
    )


def copy_row(**over: object) -> AugmentRow:
    row = AugmentRow("c1", 1, "x.wav", 1.0)
    return dataclasses.replace(row, **over)  # type: ignore[arg-type]


def split_rows(n_speakers: int = 5, per_label: int = 2, unlabelled: int = 1) -> list[SplitRow]:
    """One speaker per fold; holdout: the last two speakers validate and test."""
    split = ["train"] * (n_speakers - 2) + ["val", "test"]
    rows = []
    for s in range(n_speakers):
        labels = [lab for lab in LABELS for _ in range(per_label)] + ["unknown"] * unlabelled
        for k, label in enumerate(labels):
            rows.append(
                SplitRow(
                    f"s{s}_{label}_{k}",
                    f"data/clean/{label}/s{s}_{label}_{k}.wav",
                    label,
                    f"spk{s}",
                    f"v{s}",
                    f"g{s}",
                    split[s],
                    s,
                )
            )
    return rows


def write_clips(root: Path, rows: list[SplitRow]) -> None:
    """A tone per clip (pitch by label and speaker) and splits.csv."""
    for i, r in enumerate(rows):
        f0 = 150.0 * (1 + LABELS.index(r.label) if r.label in LABELS else 1) * (1 + 0.03 * r.fold)
        path = root / r.path
        path.parent.mkdir(parents=True, exist_ok=True)
        sf.write(path, tone(0.8 + 0.05 * (i % 4), f0, seed=i), SR, subtype="PCM_16")
    write_csv_atomic(root / SPLITS, [dataclasses.asdict(r) for r in rows], SPLIT_COLUMNS)


# --- the waveform -----------------------------------------------------------------------------


def test_copies_are_deterministic_and_differ_by_copy() -> None:
    rows = split_rows(n_speakers=3)
    settings = AugmentSettings(copies=2, noise_snr_db=[5.0, 25.0])
    plan = plan_copies(rows, settings)
    # a copy's draws depend on its clip and number only, not on the other rows or their order
    reordered = plan_copies(list(reversed(rows)), settings)
    assert sorted(plan, key=lambda c: c.name) == sorted(reordered, key=lambda c: c.name)
    assert len(plan) == 2 * len(rows) and {c.copy for c in plan} == {1, 2}
    first, second = plan[0], plan[1]
    assert (first.clip_id, second.clip_id) == (rows[0].clip_id, rows[0].clip_id)
    assert first.noise_snr_db != second.noise_snr_db and first.seed != second.seed
    assert plan_copies(rows, dataclasses.replace(settings, seed=1)) != plan

    wave = tone()
    a, b = augment_wave(wave, SR, first), augment_wave(wave, SR, first)
    assert a.dtype == np.float32 and a.tobytes() == b.tobytes()
    assert augment_wave(wave, SR, second).tobytes() != a.tobytes()
    # the same bytes on any thread count (a worker process runs one thread, the stage several)
    slow = dataclasses.replace(first, speed=0.9)
    with torch_threads(1):
        one = augment_wave(wave, SR, slow)
    with torch_threads(2):  # resampling on 2 threads gives other last bits than on 1 (or 4)
        two = augment_wave(wave, SR, slow)
        assert torch.get_num_threads() == 2  # and the caller's count is restored
    assert one.tobytes() == two.tobytes()


@pytest.mark.parametrize("factor", [0.9, 1.1, 0.8])
def test_speed_changes_the_length_by_the_factor(factor: float) -> None:
    wave = tone(1.0)
    out = augment_wave(wave, SR, copy_row(speed=factor))
    assert abs(len(out) - len(wave) / factor) <= 1
    # Same pitch shift as tempo: a 220 Hz tone comes out at 220 * factor Hz.
    spectrum = np.abs(np.fft.rfft(out * np.hanning(len(out))))
    peak = np.fft.rfftfreq(len(out), 1 / SR)[spectrum.argmax()]
    assert abs(peak - 220 * factor) < 3


@pytest.mark.parametrize("colour", ["white", "pink", "brown"])
def test_noise_snr_is_the_requested_one(colour: str) -> None:
    wave = tone(1.5)
    out = augment_wave(wave, SR, copy_row(noise=colour, noise_snr_db=7.3, seed=5))
    assert len(out) == len(wave)
    measured = snr_db(wave, out.astype(np.float64) - wave)
    assert abs(measured - 7.3) < 0.1


def test_noise_colours_tilt_the_spectrum() -> None:
    def low_to_high(colour: str) -> float:
        power = np.abs(np.fft.rfft(coloured_noise(np.random.default_rng(0), 32000, colour))) ** 2
        return float(power[1:1000].mean() / power[-1000:].mean())

    assert 0.5 < low_to_high("white") < 2
    assert low_to_high("pink") > 10 * low_to_high("white")
    assert low_to_high("brown") > 10 * low_to_high("pink")


def test_music_bed_at_its_snr_looped_from_its_offset(tmp_path: Path) -> None:
    music = tmp_path / "music"
    music.mkdir()
    bed = (0.2 * np.sin(2 * np.pi * 440 * np.arange(SR // 2) / SR)).astype(np.float32)
    sf.write(music / "loop.wav", bed, SR, subtype="FLOAT")
    (music / "notes.txt").write_text("not music")
    settings = AugmentSettings(copies=3, speeds=[1.0], music=str(music), music_snr_db=[3.0, 9.0])
    plan = plan_copies(split_rows(n_speakers=3)[:2], settings)
    assert {c.music for c in plan} == {(music / "loop.wav").as_posix()}
    assert all(3.0 <= c.music_snr_db <= 9.0 and 0 <= c.music_offset <= 0.5 for c in plan)

    wave = tone(1.2)  # longer than the music file: the bed loops
    out = augment_wave(wave, SR, plan[0])
    added = out.astype(np.float64) - wave
    assert abs(snr_db(wave, added) - plan[0].music_snr_db) < 0.1
    start = round(plan[0].music_offset * SR)
    expected = bed[(start + np.arange(len(wave))) % len(bed)]
    assert np.corrcoef(added, expected)[0, 1] > 0.999


def test_settings_are_checked() -> None:
    with pytest.raises(ConfigError, match="copies"):
        AugmentSettings(copies=-1)
    with pytest.raises(ConfigError, match="speeds"):
        AugmentSettings(speeds=[3.0])
    with pytest.raises(ConfigError, match="noise_snr_db"):
        AugmentSettings(noise_snr_db=[20.0, 10.0])
    with pytest.raises(ConfigError, match="go together"):
        AugmentSettings(music_snr_db=[5.0, 10.0])
    with pytest.raises(ConfigError, match="noise"):
        AugmentSettings(noise="blue")
    with pytest.raises(ConfigError, match="not a folder"):
        plan_copies(split_rows(3), AugmentSettings(copies=1, music="nowhere", music_snr_db=[1, 2]))


# --- which rows -------------------------------------------------------------------------------


def test_only_clips_that_can_train_are_augmented() -> None:
    rows = split_rows()
    holdout = training_clips(rows, "holdout")
    assert {r.split for r in holdout} == {"train"} and "unknown" not in {r.label for r in holdout}
    loso = training_clips(rows, "loso")
    assert len(loso) == sum(r.label != "unknown" for r in rows)
    with pytest.raises(ConfigError, match="protocol"):
        training_clips(rows, "kfold")


@pytest.mark.parametrize("protocol", ["holdout", "loso"])
def test_folds_take_copies_of_their_train_rows_only(protocol: str) -> None:
    data = labelled_data(split_rows())
    where = {r.clip_id: i for i, r in enumerate(data.rows)}
    copies = plan_copies(training_clips(data.rows, protocol), AugmentSettings(copies=2))
    base = np.array([where[c.clip_id] for c in copies])
    y = np.concatenate([data.y, data.y[base]])
    n = len(data.rows)
    folds = [holdout_fold(data.rows)] if protocol == "holdout" else loso_folds(data.rows)
    for fold in folds:
        rows = TrainingRows(base).rows(fold.train, y)
        made_from = np.where(rows < n, rows, base[np.clip(rows - n, 0, None)])
        assert set(made_from) == set(fold.train.tolist())
        assert len(rows) == 3 * len(fold.train)  # each train row and both of its copies
        speakers = {data.rows[i].speaker for i in made_from}
        held_out = {data.rows[i].speaker for i in np.concatenate([fold.val, fold.test])}
        assert not speakers & held_out
    assert np.array_equal(TrainingRows().rows(folds[0].train, data.y), folds[0].train)


def test_oversampling_balances_the_train_rows_only() -> None:
    y = np.array([0] * 10 + [1] * 4 + [2] * 7 + [1] * 30)  # rows 21.. are val/test
    train = np.arange(21)
    rows = oversample(train, y, seed=3)
    assert np.bincount(y[rows]).tolist() == [10, 10, 10]
    assert set(rows.tolist()) == set(train.tolist())
    assert np.array_equal(rows[: len(train)], train)
    assert np.array_equal(rows, oversample(train, y, seed=3))
    # Each class's own rows are used before any repeats: class 2 needs 3 of its 7.
    extra = rows[len(train) :]
    assert len(set(extra[y[extra] == 2].tolist())) == 3
    assert np.bincount(y[TrainingRows(oversample=True).rows(train, y)]).tolist() == [10, 10, 10]


def test_finetune_copies_follow_the_protocol() -> None:
    data = labelled_data(split_rows(n_speakers=4, per_label=1))
    waves = [tone(0.5, seed=i) for i in range(len(data.rows))]
    settings = AugmentSettings(copies=1, speeds=[1.1], oversample=True)
    all_waves, y, training = augmented_waves(data, waves, SR, settings, "holdout")
    train = np.flatnonzero([r.split == "train" for r in data.rows])
    assert len(all_waves) == len(waves) + len(train) and np.array_equal(training.base, train)
    assert np.array_equal(y[len(waves) :], data.y[train]) and training.oversample
    assert len(all_waves[-1]) == math.ceil(len(waves[train[-1]]) / 1.1)


# --- the stages -------------------------------------------------------------------------------


def tree_bytes(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def baseline_params(protocol: str = "holdout", **augment: object) -> dict:
    p: dict = {
        "seed": 0,
        "workers": 1,
        "baseline": {"features": ["mfcc"], "n_mfcc": 8, "tune": False},
        "eval": {"protocol": protocol, "n_bootstrap": 10},
    }
    if augment:
        p["augment"] = augment
    return p


def outputs(root: Path) -> TrainOutputs:
    return TrainOutputs(
        root / "models/baseline",
        root / "reports/metrics/baseline.json",
        root / "reports/details/baseline.json",
        root / "reports/plots/baseline",
    )


def test_augment_none_changes_no_byte(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Without an augment section, with augment=none, and with copies in the store that
    augment=none must ignore: the same feature store and the same trained outputs; a store
    featurised with copies keeps its clips' features byte for byte."""
    monkeypatch.chdir(tmp_path)
    write_clips(tmp_path, split_rows(n_speakers=5, per_label=3))
    store = Path("data/features/baseline")
    for k, p in enumerate(
        [baseline_params(), baseline_params(copies=0), baseline_params(copies=1)]
    ):
        featurize_baseline.run(p, splits=SPLITS, out=store)
        for name in ("features.npy", "index.csv", "meta.json", "rejected.csv"):
            (tmp_path / f"run{k}" / name).parent.mkdir(parents=True, exist_ok=True)
            (tmp_path / f"run{k}" / name).write_bytes((store / name).read_bytes())
        assert (store / "augmented.npy").exists() == (k == 2)
    assert (
        tree_bytes(tmp_path / "run0")
        == tree_bytes(tmp_path / "run1")
        == tree_bytes(tmp_path / "run2")
    )
    # The store now holds copies; augment=none (or no section) trains on the clips alone.
    for k, p in enumerate([baseline_params(), baseline_params(copies=0, seed=4)]):
        train_baseline.run(p, features=store, outputs=outputs(tmp_path / f"train{k}"))
    save_augmented(store, None, [])
    assert not any((store / n).exists() for n in ("augmented.npy", "augmented.csv"))
    train_baseline.run(baseline_params(), features=store, outputs=outputs(tmp_path / "train2"))
    assert tree_bytes(tmp_path / "train0") == tree_bytes(tmp_path / "train1")
    assert tree_bytes(tmp_path / "train0") == tree_bytes(tmp_path / "train2")


@pytest.mark.parametrize("protocol", ["holdout", "loso"])
def test_stages_augment_and_train_on_train_rows_only(
    protocol: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """featurize_baseline stores copies of the clips that can train (holdout: the train split;
    loso: every labelled clip); train_baseline fits every fold on its train rows and their
    copies, never on a copy of a validation or test row."""
    monkeypatch.chdir(tmp_path)
    rows = split_rows(n_speakers=5, per_label=3)
    write_clips(tmp_path, rows)
    store = Path("data/features/baseline")
    p = baseline_params(protocol, copies=2, speeds=[0.9, 1.1], noise_snr_db=[10.0, 20.0])
    summary = featurize_baseline.run(p, splits=SPLITS, out=store)
    x, index, _ = load_features(store)
    augmented, base, copies = load_augmented(store, [r.clip_id for r in index])
    can_train = training_clips(rows, protocol)
    assert summary["copies"] == len(copies) == 2 * len(can_train)
    assert {c.clip_id for c in copies} == {r.clip_id for r in can_train}
    assert augmented.shape == (len(copies), 1, x.shape[2])
    assert read_records(store / "augmented.csv", AugmentRow) == copies
    # a copy is not its clip: the features moved
    assert not np.allclose(augmented[0, 0], x[base[0], 0])

    fits: list[tuple[int, set[str]]] = []
    real_fit = baseline_module.BaselineModel.fit

    def spy(self, X, y, speakers=None, *, groups, augmented):  # type: ignore[no-untyped-def]
        fits.append((len(X), set(speakers)))
        # each copy is marked and grouped with its clip, which is a training row of the fold
        assert np.sum(augmented) == 2 * np.sum(~augmented)
        assert set(groups[augmented]) == set(groups[~augmented])
        return real_fit(self, X, y, speakers, groups=groups, augmented=augmented)

    monkeypatch.setattr(baseline_module.BaselineModel, "fit", spy)
    train_baseline.run(p, features=store, outputs=outputs(tmp_path))
    data = labelled_data(index)
    folds = [holdout_fold(data.rows)]
    if protocol == "loso":
        folds += loso_folds(data.rows)
    assert len(fits) == len(folds)
    for (n_fit, speakers), fold in zip(fits, folds, strict=True):
        assert n_fit == 3 * len(fold.train)
        assert speakers == {data.rows[i].speaker for i in fold.train}
    details = json.loads((tmp_path / "reports/details/baseline.json").read_text())
    assert details["protocol"] == protocol and 0 <= details["uar"] <= 1


def test_backbone_store_holds_the_copies(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    rows = split_rows(n_speakers=3, per_label=1, unlabelled=0)
    write_clips(tmp_path, rows)
    backbone = {
        "arch": "hubert",
        "checkpoint": "facebook/hubert-base-ls960",
        "weights": "random",
        "random_init": dict(TINY_BACKBONE),
        "batch_seconds": 3.0,
        "max_batch_size": 4,
    }
    p = {
        "seed": 0,
        "backbones": {"hubert": backbone},
        "eval": {"protocol": "holdout"},
        "augment": {"copies": 1, "speeds": [1.1], "noise_snr_db": [20.0, 20.0]},
    }
    out = Path("data/features/hubert")
    summary = featurize.run(p, ["hubert"], splits=SPLITS, out=out.parent)["hubert"]
    x, index, _ = load_features(out)
    augmented, base, copies = load_augmented(out, [r.clip_id for r in index])
    assert summary["copies"] == 3 and [c.clip_id for c in copies] == [
        r.clip_id for r in rows if r.split == "train"
    ]
    assert augmented.shape == (3, x.shape[1], x.shape[2]) and augmented.dtype == np.float16
    assert all(index[i].split == "train" for i in base)
    again = featurize.run({**p, "augment": {}}, ["hubert"], splits=SPLITS, out=Path("plain"))
    assert "copies" not in again["hubert"]
    plain = Path("plain/hubert")
    assert (out / "features.npy").read_bytes() == (plain / "features.npy").read_bytes()
    assert not (plain / "augmented.npy").exists()


def test_training_refuses_a_store_without_the_copies_it_asks_for(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    rows = split_rows(n_speakers=5, per_label=3)
    x = np.random.default_rng(0).standard_normal((len(rows), 1, 4)).astype(np.float32)
    save_features("store", x, rows, {"model": "baseline"})
    with pytest.raises(ConfigError, match="re-run the featurize stage"):
        train_baseline.run(
            baseline_params(copies=1), features=Path("store"), outputs=outputs(tmp_path)
        )


def test_the_hydra_app_augments_as_the_stages_do(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`python -m seda.train` (the sweep entry point outside DVC) runs the same library calls as
    featurize_baseline + train_baseline, augmentation included: the same bytes."""
    from seda.train import run_model

    monkeypatch.chdir(tmp_path)
    write_clips(tmp_path, split_rows(n_speakers=5, per_label=3))
    p = baseline_params(copies=1, speeds=[1.1], noise_snr_db=[15.0, 15.0])
    store = Path("data/features/baseline")
    summary = run_model(p, "baseline")
    assert (store / "augmented.npy").exists()
    app = tree_bytes(store) | tree_bytes(Path("reports")) | tree_bytes(Path("models"))
    featurize_baseline.run(p, splits=SPLITS, out=store)
    train_baseline.run(p, features=store, outputs=outputs(Path()))
    stages = tree_bytes(store) | tree_bytes(Path("reports")) | tree_bytes(Path("models"))
    assert stages == app and summary["model"] == "baseline"
