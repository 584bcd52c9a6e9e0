"""Leave-one-speaker-out benchmark of the classical baseline on TurEV-DB's raw files.

Every variant is BaselineSettings() with some fields changed; each outer fold fits
BaselineModel on five speakers (its inner search, when on, sees only those) and predicts the
sixth. Printed: the UAR pooled over all held-out clips (the pipeline's headline figure), the
mean ± SD of the six per-fold UARs (a speaker's UAR over the classes it has: speaker 1157 has
only angry and sad) and what each fold chose.

Reference figures (../shared/data/README.md, most likely per-fold means): 40 MFCC mean+std with
an RBF SVM 0.45; plus eGeMAPS with per-speaker standardisation 0.57 (variants ``a_...`` and
``b_...`` here: 0.452 and 0.565 per-fold mean).

Measured (2 CPU cores, input decoded at 16 kHz), each by
``python benchmarks/baseline_loso.py --variants <name>``; per-fold order 1157 1234 1358 1984
6783 7895:

    variant                    pooled  fold mean±SD   per-fold
    default                    0.565   0.586±0.093    0.67 0.52 0.66 0.59 0.43 0.64
    mfcc_egemaps_tuned         0.553   0.568±0.091    0.62 0.58 0.60 0.56 0.40 0.66
    a_mfcc_svm                 0.431   0.452±0.079    0.48 0.57 0.47 0.33 0.41 0.45
    b_mfcc_egemaps_spkstd_svm  0.547   0.565±0.097    0.62 0.61 0.58 0.54 0.38 0.66
    mfcc_logmel_egemaps_svm    0.575   0.597±0.093    0.67 0.57 0.66 0.58 0.43 0.66
    search_svm_lda             0.565   0.586±0.093    (chose what default chose in every fold)
    fused_svm_lda              0.572   0.593±0.089    0.69 0.52 0.66 0.60 0.46 0.65
    compare_logreg             0.542   0.564±0.105    0.67 0.50 0.46 0.65 0.45 0.66

``default`` chose svm(mfcc+logmel+egemaps) with C 0.3 (four folds) or 1 (two). The same code
before logmel (``mfcc_egemaps_tuned``'s settings, GridSearchCV on mean fold UAR) gave 0.557
pooled, 0.573 fold mean.

Augmentation (``--augment PRESET ...``, presets of conf/augment, ``--set KEY=VALUE`` overriding
their fields): each variant is run once per preset, in the same run. A preset with copies
augments every file (in LOSO each is a training row of the folds that do not test it); each
outer fold then fits on its five speakers' files plus their copies, never the test speaker's, as
the pipeline's folds do (seda.models.folds.TrainingRows); the inner search and the per-speaker
standardisation see the copies as the pipeline's model does (seda.models.baseline: copies and
repeats train, and are grouped with their clip, but are never scored in the inner search nor
counted in a speaker's statistics). ``--music DIR`` names the music
beds of a preset with music; ``--synth-music DIR`` first writes eight synthetic ones there (the
demo corpus's four-chord loops with drums, seeds 1 to 8), since no music corpus is at hand
offline.

Features are extracted once per block (mfcc, logmel, egemaps, compare; and per augment preset)
and cached OUTSIDE the repository (derived from TurEV-DB, whose licence forbids
redistribution): ``--cache``, default ``~/.cache/seda/baseline_loso``. Only figures go to
benchmarks/out/.

``--test-condition PRESET`` scores the held-out speaker on one copy of each of its files
degraded by that preset (drawn with the preset's seed + 1: never a copy that trained) instead
of the files themselves: how robust each model is to noise and music the studio recordings lack.

Augmentation measured (``default`` variant, 2 copies per file; pooled UAR, fold mean±SD,
per-fold, and ΔUAR of the pooled UAR against the run's first preset on the same clips, 95%
paired bootstrap over clips, 2000 resamples; the music beds are the eight synthetic loops, so
``youtube`` here is speed + noise + synthetic music). Measured 2026-11-28 on commit 1c2bab3, where
copies train but are never scored by the inner search, stay with their clip in calibration
folds, and are standardised with their speaker's copies' statistics:

    python benchmarks/baseline_loso.py --variants default --augment none speed noise youtube \
        --synth-music /tmp/music
    none                0.565 0.586±0.093 0.67 0.52 0.66 0.59 0.43 0.64
    speed               0.571 0.602±0.124 0.77 0.50 0.66 0.63 0.42 0.64  +0.006 [-0.010, +0.022]
    noise               0.580 0.611±0.117 0.77 0.55 0.68 0.59 0.43 0.65  +0.015 [-0.001, +0.030]
    youtube             0.580 0.606±0.107 0.72 0.52 0.69 0.58 0.45 0.67  +0.014 [-0.000, +0.031]
    ... --augment none youtube --set oversample=true
    none[oversample]    0.567 0.589±0.087 0.67 0.54 0.65 0.60 0.44 0.63
    youtube[oversample] 0.580 0.607±0.106 0.73 0.53 0.69 0.59 0.45 0.66  +0.013 [-0.002, +0.029]
    ... --augment none noise youtube --test-condition youtube (test files degraded)
    none@youtube        0.519 0.538±0.091 0.64 0.45 0.62 0.51 0.42 0.59
    noise@youtube       0.528 0.557±0.112 0.72 0.44 0.60 0.54 0.43 0.61  +0.009 [-0.009, +0.027]
    youtube@youtube     0.552 0.575±0.103 0.71 0.48 0.64 0.56 0.43 0.63  +0.033 [+0.014, +0.053]

Before that commit the copies were standardised with all of their speaker's rows (clips and
copies together) and scored in the inner search: youtube 0.581, youtube[oversample] 0.590,
noise@youtube 0.546, youtube@youtube 0.558. Standardising copies with the clean clips'
statistics only (commit 38a0741) removed the gains (noise 0.565, youtube 0.576; noise@youtube
0.500, youtube@youtube 0.519): copies in another condition then sit off-centre, while a test
speaker in noise is centred by its own statistics.

On the clean studio files the gains are small (about +0.015, intervals touching 0). With noise
and music in the test audio the clean-trained model loses 0.046 UAR, and training on youtube
copies wins back 0.033 of it;
``youtube@youtube`` draws its test beds from the same eight loops as training (other offsets and
SNRs): an upper bound for unseen music.

    python benchmarks/baseline_loso.py [--variants default ...] [--augment none speed ...]
        [--set oversample=true] [--music DIR | --synth-music DIR] [--test-condition PRESET]
        [--workers 2]
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import logging
import os
import sys
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import yaml
from sklearn.metrics import recall_score

from seda.audio import write_wav
from seda.augment import AugmentSettings, augmented_features
from seda.baseline import BaselineSettings
from seda.config import build
from seda.features.classic import classic_features, featurize_clips
from seda.io import atomic_path, params_digest, sha256_text, write_json_atomic
from seda.logs import setup_logging
from seda.metrics import paired_uar_difference
from seda.models.baseline import BaselineModel
from seda.models.folds import TrainingRows
from seda.records import SplitRow

log = logging.getLogger("baseline_loso")

DATA = Path("../shared/data/turevdb/Sound Source")
OUT = Path("benchmarks/out")
AUGMENT_CONF = Path("conf/augment")
CACHE = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "seda/baseline_loso"

_FIXED: dict[str, Any] = {"tune": False, "C": 1.0}
_MFCC_EGEMAPS: dict[str, Any] = {"features": ["mfcc", "egemaps"]}
# name -> overrides of BaselineSettings()
VARIANTS: dict[str, dict[str, Any]] = {
    "default": {},
    # the default before logmel: MFCC + eGeMAPS, C searched in 0.3..10
    "mfcc_egemaps_tuned": {**_MFCC_EGEMAPS, "C_grid": [0.3, 1.0, 3.0, 10.0]},
    "a_mfcc_svm": {"features": ["mfcc"], "speaker_standardise": False, **_FIXED},
    "b_mfcc_egemaps_spkstd_svm": {**_MFCC_EGEMAPS, **_FIXED},
    "mfcc_logmel_egemaps_svm": {**_FIXED},
    # the inner search also chooses the feature subset and the classifier
    "search_svm_lda": {
        "feature_grid": ["mfcc+egemaps", "mfcc+logmel+egemaps"],
        "classifier_grid": ["svm", "lda"],
    },
    # the two best inner-search candidates of different (classifier, subset), fused
    "fused_svm_lda": {
        "feature_grid": ["mfcc+egemaps", "mfcc+logmel+egemaps"],
        "classifier_grid": ["svm", "lda"],
        "fuse": 2,
    },
    # ComParE_2016 functionals with logistic regression (C as measured best of 0.001 / 0.01)
    "compare_logreg": {"features": ["compare"], "classifier": "logreg", "tune": False, "C": 0.01},
}


def list_corpus(root: Path) -> tuple[list[Path], np.ndarray, np.ndarray]:
    """Files, lower-case emotion labels (folder) and speakers (first field of the name)."""
    paths = sorted(root.glob("*/*.wav"))
    labels = np.array([p.parent.name.lower() for p in paths])
    speakers = np.array([p.name.split("_", 1)[0] for p in paths])
    return paths, labels, speakers


def cached_block(
    paths: list[Path], block: str, settings: BaselineSettings, workers: int, cache: Path
) -> np.ndarray:
    """One feature block of every file, from ``cache`` when computed before."""
    one = dataclasses.replace(settings, features=[block], feature_grid=[])
    key = sha256_text("\n".join(p.as_posix() for p in paths))[:12]
    what = {"block": block, "sample_rate": one.sample_rate}
    what |= {"n_mfcc": one.n_mfcc} if block == "mfcc" else {}
    what |= {"n_mels": one.n_mels} if block == "logmel" else {}
    path = cache / f"turevdb_{block}_{params_digest(what)}_{key}.npy"
    if path.exists():
        return np.load(path)
    start = time.perf_counter()
    X = featurize_clips(paths, one, workers=workers)
    log.info("extracted %s %s in %.1f s", block, X.shape, time.perf_counter() - start)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path, suffix=".tmp.npy") as tmp:
        np.save(tmp, X)
    return X


def augment_settings(preset: str, overrides: list[str], music: Path | None) -> AugmentSettings:
    """conf/augment/<preset>.yaml over the defaults, then ``KEY=VALUE`` overrides (YAML values)."""
    data = yaml.safe_load((AUGMENT_CONF / f"{preset}.yaml").read_text(encoding="utf-8")) or {}
    for item in overrides:
        key, _, value = item.partition("=")
        data[key] = yaml.safe_load(value)
    if music is not None and data.get("music_snr_db"):
        data["music"] = music.as_posix()
    return build(AugmentSettings, data, f"augment ({preset})")


def synth_music(folder: Path, n: int = 8, seconds: float = 30.0, sr: int = 16000) -> None:
    """``n`` synthetic music beds (the demo corpus's generator), when ``folder`` has none."""
    from seda.demo_corpus import _music_bed

    if folder.is_dir() and any(folder.glob("*.wav")):
        return
    folder.mkdir(parents=True, exist_ok=True)
    for k in range(1, n + 1):
        bed = _music_bed(np.random.default_rng(k), sr, round(seconds * sr))
        write_wav(folder / f"bed{k}.wav", (0.3 * bed / np.abs(bed).max()).astype(np.float32), sr)


def corpus_rows(paths: list[Path], labels: np.ndarray, speakers: np.ndarray) -> list[SplitRow]:
    """The files as split rows (one fold per speaker); the clip id ``<label>/<file stem>``
    seeds each file's copies."""
    folds = {s: k for k, s in enumerate(np.unique(speakers))}
    return [
        SplitRow(f"{lab}/{p.stem}", p.as_posix(), lab, spk, p.stem, spk, "train", folds[spk])
        for p, lab, spk in zip(paths, labels, speakers, strict=True)
    ]


def cached_copies(
    rows: list[SplitRow],
    block: str,
    settings: BaselineSettings,
    augment: AugmentSettings,
    workers: int,
    cache: Path,
) -> tuple[np.ndarray, np.ndarray]:
    """One feature block of every file's augmented copies and their names (``clip~k``), from
    ``cache`` when computed before."""
    one = dataclasses.replace(settings, features=[block], feature_grid=[])
    key = sha256_text("\n".join(r.path for r in rows))[:12]
    what = {"block": block, "sample_rate": one.sample_rate, "augment": dataclasses.asdict(augment)}
    what |= {"n_mfcc": one.n_mfcc} if block == "mfcc" else {}
    what |= {"n_mels": one.n_mels} if block == "logmel" else {}
    path = cache / f"turevdb_{block}_aug_{params_digest(what)}_{key}.npz"
    if path.exists():
        with np.load(path) as saved:
            return saved["x"], saved["names"]
    start = time.perf_counter()
    features = functools.partial(classic_features, settings=one)
    x, copies, rejects = augmented_features(
        rows, augment, "loso", features, one.sample_rate, workers
    )
    assert x is not None
    names = np.array([c.name for c in copies])
    log.info(
        "extracted %s of %d copies in %.1f s (%d rejected)",
        block,
        len(copies),
        time.perf_counter() - start,
        len(rejects),
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path, suffix=".tmp.npz") as tmp:
        np.savez(tmp, x=x, names=names)
    return x, names


def augmented_matrix(
    rows: list[SplitRow],
    settings: BaselineSettings,
    augment: AugmentSettings,
    workers: int,
    cache: Path,
) -> tuple[np.ndarray, np.ndarray]:
    """The copies' features (blocks of ``settings.features``, copies every block kept) and the
    row index of each copy's file."""
    blocks = [cached_copies(rows, b, settings, augment, workers, cache) for b in settings.features]
    names = sorted(set.intersection(*(set(n.tolist()) for _, n in blocks)))
    X = np.concatenate([x[_positions(n, names)] for x, n in blocks], axis=1)
    where = {r.clip_id: i for i, r in enumerate(rows)}
    return X, np.array([where[name.rsplit("~", 1)[0]] for name in names], dtype=np.int64)


def _positions(names: np.ndarray, wanted: list[str]) -> np.ndarray:
    index = {n: i for i, n in enumerate(names.tolist())}
    return np.array([index[w] for w in wanted], dtype=np.int64)


def loso(
    X: np.ndarray,
    labels: np.ndarray,
    speakers: np.ndarray,
    settings: BaselineSettings,
    training: TrainingRows | None = None,
    X_copies: np.ndarray | None = None,
    X_test: np.ndarray | None = None,
) -> dict[str, Any]:
    """Pooled UAR over all held-out predictions and the per-fold UARs with what each chose.
    ``training``/``X_copies``: augmented copies stacked after the files, used as the pipeline's
    folds use them (copies of the training speakers' files only; optional oversampling).
    ``X_test``: what the held-out speaker is scored on instead of its files (a test condition:
    one degraded copy of each file)."""
    X_test = X if X_test is None else X_test
    training = training or TrainingRows()
    n = len(labels)
    X_all = X if X_copies is None else np.concatenate([X, X_copies])
    labels_all = np.concatenate([labels, labels[training.base]])
    speakers_all = np.concatenate([speakers, speakers[training.base]])
    predicted = np.empty_like(labels)
    folds = {}
    for spk in np.unique(speakers):
        test = speakers == spk
        rows = training.rows(np.flatnonzero(~test), labels_all)
        made_from, copy = training.origins(rows, n)
        assert not test[made_from].any()  # nothing of the test speaker, nor made from it
        model = BaselineModel(settings).fit(
            X_all[rows], labels_all[rows], speakers_all[rows], groups=made_from, augmented=copy
        )
        predicted[test] = model.predict(X_test[test], speakers[test])
        folds[str(spk)] = {
            "uar": _fold_uar(labels[test], predicted[test]),
            "n": int(test.sum()),
            "n_fit": len(rows),
            "chose": model.describe(),
            "inner_uar": [m["inner_uar"] for m in model.members],
        }
    fold_uars = [f["uar"] for f in folds.values()]
    return {
        "pooled_uar": float(recall_score(labels, predicted, average="macro")),
        "mean_fold_uar": float(np.mean(fold_uars)),
        "sd_fold_uar": float(np.std(fold_uars, ddof=1)),
        "folds": folds,
        "predicted": predicted.tolist(),
    }


def paired(labels: np.ndarray, speakers: np.ndarray, a: list[str], b: list[str]) -> dict[str, Any]:
    """UAR(a) - UAR(b) on the same clips, 95% paired bootstrap intervals resampling clips and
    resampling speakers (six: a coarse interval)."""
    classes = sorted(set(labels.tolist()))
    codes = [np.searchsorted(classes, v) for v in (labels, np.asarray(a), np.asarray(b))]
    out = {}
    for unit, groups in (("clips", None), ("speakers", [str(s) for s in speakers])):
        d = paired_uar_difference(*codes, len(classes), groups=groups, n_bootstrap=2000, seed=0)
        out[unit] = {"delta": d.delta, "low": d.low, "high": d.high}
    return out


def _fold_uar(actual: np.ndarray, predicted: np.ndarray) -> float:
    """UAR over the classes this speaker has."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # "y_pred contains classes not in y_true"
        return float(recall_score(actual, predicted, average="macro", labels=np.unique(actual)))


def main(argv: list[str] | None = None) -> int:
    setup_logging()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--variants", nargs="*", default=["default"], choices=list(VARIANTS))
    presets = sorted(p.stem for p in AUGMENT_CONF.glob("*.yaml"))
    parser.add_argument("--augment", nargs="*", default=["none"], choices=presets)
    parser.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE", help="augment fields")
    parser.add_argument("--music", type=Path, help="music beds of a preset with music")
    parser.add_argument("--synth-music", type=Path, help="write synthetic beds here; use them")
    parser.add_argument(
        "--test-condition",
        choices=presets,
        help="score held-out speakers on one copy of each file degraded by this preset (its seed "
        "+ 1, so never a copy that trained), not on the files themselves",
    )
    parser.add_argument("--cache", type=Path, default=CACHE, help="feature cache (not in the repo)")
    args = parser.parse_args(argv)
    if not DATA.is_dir():
        print(f"TurEV-DB not found at {DATA} (run from the repository root)", file=sys.stderr)
        return 2
    if args.synth_music is not None:
        synth_music(args.synth_music)
    music = args.synth_music or args.music
    paths, labels, speakers = list_corpus(DATA)
    rows = corpus_rows(paths, labels, speakers)
    log.info(
        "%d files, %d speakers, labels %s",
        len(paths),
        len(set(speakers)),
        dict(zip(*np.unique(labels, return_counts=True), strict=True)),
    )
    results: dict[str, Any] = {"input": "TurEV-DB raw WAV, LOSO over 6 speakers"}
    print(f"\n{'variant':28s} {'pooled UAR':>10s} {'fold mean±SD':>13s}  per-fold")
    for name in args.variants:
        settings = dataclasses.replace(BaselineSettings(), **VARIANTS[name])
        X = np.concatenate(
            [cached_block(paths, b, settings, args.workers, args.cache) for b in settings.features],
            axis=1,
        )
        X_test = None
        if args.test_condition:
            cond = augment_settings(args.test_condition, [], music)
            cond = dataclasses.replace(cond, copies=1, seed=cond.seed + 1, oversample=False)
            X_test, base = augmented_matrix(rows, settings, cond, args.workers, args.cache)
            assert np.array_equal(base, np.arange(len(rows))), "a test-condition copy was rejected"
        for preset in args.augment:
            augment = augment_settings(preset, args.set, music)
            training = TrainingRows(oversample=augment.oversample, seed=augment.seed)
            X_copies = None
            if augment.copies:
                X_copies, base = augmented_matrix(rows, settings, augment, args.workers, args.cache)
                training = dataclasses.replace(training, base=base)
            start = time.perf_counter()
            res = loso(X, labels, speakers, settings, training, X_copies, X_test)
            res["seconds"] = round(time.perf_counter() - start, 1)
            res["settings"] = dataclasses.asdict(settings)
            res["augment"] = dataclasses.asdict(augment)
            res["test_condition"] = args.test_condition
            label = name if args.augment == ["none"] and not args.set else f"{name}+{preset}"
            label += f"[{','.join(args.set)}]" if args.set else ""
            label += f"@{args.test_condition}" if args.test_condition else ""
            results[label] = res
            per_fold = " ".join(f"{f['uar']:.2f}" for f in res["folds"].values())
            print(
                f"{label:28s} {res['pooled_uar']:10.3f} {res['mean_fold_uar']:7.3f}±"
                f"{res['sd_fold_uar']:.3f}  {per_fold}  ({res['seconds']} s)"
            )
            for spk, f in res["folds"].items():
                print(f"    {spk}: {f['chose']}  inner UAR {f['inner_uar']}  fit on {f['n_fit']}")
            if preset == args.augment[0]:
                first = res
            else:
                res["vs_first"] = paired(labels, speakers, res["predicted"], first["predicted"])
                print(
                    f"    ΔUAR vs {args.augment[0]}: "
                    + ", ".join(
                        f"{v['delta']:+.3f} [{v['low']:+.3f}, {v['high']:+.3f}] ({unit} resampled)"
                        for unit, v in res["vs_first"].items()
                    )
                )
    tag = "_".join(args.variants)
    if args.augment != ["none"] or args.set:
        tag += "_augment_" + "_".join(args.augment) + "".join(f"_{s}" for s in args.set)
    tag += f"_test_{args.test_condition}" if args.test_condition else ""
    write_json_atomic(OUT / f"baseline_loso_{tag.replace('/', '-')}.json", results)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
