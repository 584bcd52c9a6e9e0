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

Features are extracted once per block (mfcc, logmel, egemaps, compare) and cached OUTSIDE the
repository (derived from TurEV-DB, whose licence forbids redistribution): ``--cache``, default
``~/.cache/seda/baseline_loso``. Only figures go to benchmarks/out/.

    python benchmarks/baseline_loso.py [--variants default ...] [--workers 2]
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import os
import sys
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.metrics import recall_score

from seda.baseline import BaselineSettings
from seda.features.classic import featurize_clips
from seda.io import atomic_path, params_digest, sha256_text, write_json_atomic
from seda.logs import setup_logging
from seda.models.baseline import BaselineModel

log = logging.getLogger("baseline_loso")

DATA = Path("../shared/data/turevdb/Sound Source")
OUT = Path("benchmarks/out")
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


def loso(
    X: np.ndarray, labels: np.ndarray, speakers: np.ndarray, settings: BaselineSettings
) -> dict[str, Any]:
    """Pooled UAR over all held-out predictions and the per-fold UARs with what each chose."""
    predicted = np.empty_like(labels)
    folds = {}
    for spk in np.unique(speakers):
        test = speakers == spk
        model = BaselineModel(settings).fit(X[~test], labels[~test], speakers[~test])
        predicted[test] = model.predict(X[test], speakers[test])
        folds[str(spk)] = {
            "uar": _fold_uar(labels[test], predicted[test]),
            "n": int(test.sum()),
            "chose": model.describe(),
            "inner_uar": [m["inner_uar"] for m in model.members],
        }
    fold_uars = [f["uar"] for f in folds.values()]
    return {
        "pooled_uar": float(recall_score(labels, predicted, average="macro")),
        "mean_fold_uar": float(np.mean(fold_uars)),
        "sd_fold_uar": float(np.std(fold_uars, ddof=1)),
        "folds": folds,
    }


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
    parser.add_argument("--cache", type=Path, default=CACHE, help="feature cache (not in the repo)")
    args = parser.parse_args(argv)
    if not DATA.is_dir():
        print(f"TurEV-DB not found at {DATA} (run from the repository root)", file=sys.stderr)
        return 2
    paths, labels, speakers = list_corpus(DATA)
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
        start = time.perf_counter()
        res = loso(X, labels, speakers, settings)
        res["seconds"] = round(time.perf_counter() - start, 1)
        res["settings"] = dataclasses.asdict(settings)
        results[name] = res
        per_fold = " ".join(f"{f['uar']:.2f}" for f in res["folds"].values())
        print(
            f"{name:28s} {res['pooled_uar']:10.3f} {res['mean_fold_uar']:7.3f}±"
            f"{res['sd_fold_uar']:.3f}  {per_fold}  ({res['seconds']} s)"
        )
        for spk, f in res["folds"].items():
            print(f"    {spk}: {f['chose']}  inner UAR {f['inner_uar']}")
    write_json_atomic(OUT / f"baseline_loso_{'_'.join(args.variants)}.json", results)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
