"""Leave-one-speaker-out benchmark of the classical baseline on TurEV-DB.

Reference figures (../shared/data/README.md): 40 MFCC mean+std with an RBF SVM, UAR 0.45; plus
eGeMAPS with per-speaker standardisation, 0.57. The untuned variants ``a_...`` and ``b_...``
reproduce them as the mean of the six per-fold UARs (0.452 and 0.565); the UAR pooled over all
held-out clips is about 0.02 lower, so the reference is most likely the per-fold mean. The
``default`` variant is BaselineSettings() as shipped (C chosen by inner leave-one-speaker-out
search on the training speakers only). Features are cached in benchmarks/out/ so reruns only
refit the classifiers.

    python benchmarks/baseline_loso.py [--sample-rate 16000|native] [--tune] [--workers 2]
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import sys
import time
import warnings
from pathlib import Path

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

# name -> settings overrides of BaselineSettings(); the eGeMAPS columns are used when enabled
_FIXED = {"tune": False, "C": 1.0}
VARIANTS: dict[str, dict] = {
    "default": {},
    "a_mfcc_svm": {"use_egemaps": False, "speaker_standardise": False, **_FIXED},
    "b_mfcc_egemaps_spkstd_svm": {"use_egemaps": True, "speaker_standardise": True, **_FIXED},
    "mfcc_spkstd_svm": {"use_egemaps": False, "speaker_standardise": True, **_FIXED},
    "mfcc_egemaps_svm": {"use_egemaps": True, "speaker_standardise": False, **_FIXED},
    "mfcc_egemaps_spkstd_logreg": {
        "use_egemaps": True,
        "speaker_standardise": True,
        "classifier": "logreg",
        "tune": False,
        "C": 0.1,
    },
}


def list_corpus(root: Path) -> tuple[list[Path], np.ndarray, np.ndarray]:
    """Files, lower-case emotion labels (folder) and speakers (first field of the name)."""
    paths = sorted(root.glob("*/*.wav"))
    labels = np.array([p.parent.name.lower() for p in paths])
    speakers = np.array([p.name.split("_", 1)[0] for p in paths])
    return paths, labels, speakers


def cached_features(paths: list[Path], settings: BaselineSettings, workers: int) -> np.ndarray:
    """MFCC + eGeMAPS features of every file, from benchmarks/out/ when computed before."""
    key = sha256_text("\n".join(p.as_posix() for p in paths))[:12]
    what = {k: getattr(settings, k) for k in ("n_mfcc", "use_egemaps", "sample_rate")}
    cache = OUT / f"turevdb_features_{params_digest(what)}_{key}.npy"
    if cache.exists():
        log.info("features from %s", cache)
        return np.load(cache)
    start = time.perf_counter()
    X = featurize_clips(paths, settings, workers=workers)
    log.info("extracted %s features in %.1f s", X.shape, time.perf_counter() - start)
    with atomic_path(cache, suffix=".tmp.npy") as tmp:
        np.save(tmp, X)
    return X


def loso(
    X: np.ndarray, labels: np.ndarray, speakers: np.ndarray, settings: BaselineSettings
) -> dict:
    """Pooled UAR over all held-out predictions and the mean/std of per-fold UARs."""
    predicted = np.empty_like(labels)
    folds = {}
    for spk in np.unique(speakers):
        test = speakers == spk
        model = BaselineModel(settings).fit(X[~test], labels[~test], speakers[~test])
        predicted[test] = model.predict(X[test], speakers[test])
        folds[str(spk)] = {
            "uar": _fold_uar(labels[test], predicted[test]),
            "n": int(test.sum()),
            **model.best_params,
        }
    fold_uars = [f["uar"] for f in folds.values()]
    return {
        "pooled_uar": float(recall_score(labels, predicted, average="macro")),
        "mean_fold_uar": float(np.mean(fold_uars)),
        "std_fold_uar": float(np.std(fold_uars)),
        "folds": folds,
    }


def _fold_uar(actual: np.ndarray, predicted: np.ndarray) -> float:
    """UAR over the classes this speaker has (speaker 1157 has only angry and sad)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # "y_pred contains classes not in y_true"
        return float(recall_score(actual, predicted, average="macro", labels=np.unique(actual)))


def main(argv: list[str] | None = None) -> int:
    setup_logging()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sample-rate", default="16000", help="decode rate in Hz, or 'native'")
    parser.add_argument(
        "--tune", action="store_true", help="inner LOSO search of C/gamma in every variant"
    )
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--variants", nargs="*", default=list(VARIANTS), choices=list(VARIANTS))
    args = parser.parse_args(argv)
    if not DATA.is_dir():
        print(f"TurEV-DB not found at {DATA} (run from the repository root)", file=sys.stderr)
        return 2
    rate = None if args.sample_rate == "native" else int(args.sample_rate)
    paths, labels, speakers = list_corpus(DATA)
    log.info(
        "%d files, %d speakers, labels %s",
        len(paths),
        len(set(speakers)),
        dict(zip(*np.unique(labels, return_counts=True), strict=True)),
    )
    full = BaselineSettings(n_mfcc=40, use_egemaps=True, sample_rate=rate)
    X = cached_features(paths, full, args.workers)
    n_mfcc_cols = 2 * full.n_mfcc
    results = {"input": f"TurEV-DB raw WAV decoded at {args.sample_rate} Hz", "tune": args.tune}
    print(f"\nTurEV-DB LOSO, input decoded at {args.sample_rate} Hz, tune={args.tune}")
    print(f"{'variant':32s} {'pooled UAR':>10s} {'mean fold UAR':>14s}  per-fold")
    for name in args.variants:
        settings = dataclasses.replace(full, **VARIANTS[name])
        if args.tune:
            settings = dataclasses.replace(settings, tune=True)
        cols = slice(None) if settings.use_egemaps else slice(0, n_mfcc_cols)
        start = time.perf_counter()
        res = loso(X[:, cols], labels, speakers, settings)
        res["seconds"] = round(time.perf_counter() - start, 1)
        results[name] = res
        per_fold = " ".join(f"{f['uar']:.2f}" for f in res["folds"].values())
        if settings.tune:
            per_fold += "  C " + " ".join(f"{f['C']:g}" for f in res["folds"].values())
        print(
            f"{name:32s} {res['pooled_uar']:10.3f} {res['mean_fold_uar']:8.3f}±"
            f"{res['std_fold_uar']:.3f}  {per_fold}  ({res['seconds']} s)"
        )
    suffix = f"{args.sample_rate}{'_tuned' if args.tune else ''}"
    write_json_atomic(OUT / f"baseline_loso_{suffix}.json", results)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
