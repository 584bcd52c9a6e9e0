"""The baseline's classical features: MFCC statistics plus eGeMAPS functionals of every clip.

:func:`write_classic_features` fills a feature store (:mod:`seda.features.store`) with one float32
"layer" per clip, shape (n_clips, 1, d), which the baseline classifier
(:mod:`seda.models.baseline`) trains on, as the probes train on the backbones' layers.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import time
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from seda.audio import AudioError, load_audio
from seda.baseline import BaselineSettings
from seda.errors import ConfigError
from seda.features.store import save_features
from seda.io import RejectLog
from seda.parallel import map_files
from seda.records import SplitRow

log = logging.getLogger(__name__)

EGEMAPS_DIM = 88
_MIN_SECONDS = 0.1


def mfcc_stats(y: np.ndarray, sr: int, n_mfcc: int = 40) -> np.ndarray:
    """Mean and standard deviation over frames of ``n_mfcc`` MFCCs (25 ms window, 10 ms hop)."""
    import librosa

    win = round(0.025 * sr)
    n_fft = 1 << (win - 1).bit_length()
    mfcc = librosa.feature.mfcc(
        y=np.asarray(y, dtype=np.float32),
        sr=sr,
        n_mfcc=n_mfcc,
        n_fft=n_fft,
        hop_length=round(0.010 * sr),
        win_length=win,
        n_mels=max(64, n_mfcc),
    )
    return np.concatenate([mfcc.mean(axis=1), mfcc.std(axis=1)]).astype(np.float32)


@functools.cache
def _smile() -> Any:
    """One openSMILE extractor per process (building it parses the whole config graph)."""
    import opensmile

    return opensmile.Smile(
        feature_set=opensmile.FeatureSet.eGeMAPSv02,
        feature_level=opensmile.FeatureLevel.Functionals,
    )


def egemaps_functionals(y: np.ndarray, sr: int) -> np.ndarray:
    """The 88 eGeMAPSv02 functionals of a decoded signal (works on any audio, not only files)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # "Segment too short": checked below
        frame = _smile().process_signal(np.asarray(y, dtype=np.float32), sr)
    return frame.to_numpy(dtype=np.float32).reshape(-1)


def feature_names(settings: BaselineSettings) -> list[str]:
    """Column names of :func:`classic_features`."""
    names = [f"mfcc{i}_mean" for i in range(settings.n_mfcc)]
    names += [f"mfcc{i}_std" for i in range(settings.n_mfcc)]
    if settings.use_egemaps:
        names += list(_smile().feature_names)
    return names


def classic_features(y: np.ndarray, sr: int, settings: BaselineSettings) -> np.ndarray:
    """MFCC statistics, plus eGeMAPS functionals when enabled, as one float32 vector.

    BLAS runs on one thread here, so a clip's features do not depend on how many worker
    processes (or cores) computed them. Raises :class:`AudioError` for clips too short to
    describe (the message is the reject reason).
    """
    from threadpoolctl import threadpool_limits

    if len(y) < _MIN_SECONDS * sr:
        raise AudioError(f"clip too short for features ({len(y) / sr:.3f} s < {_MIN_SECONDS} s)")
    with threadpool_limits(limits=1, user_api="blas"):
        parts = [mfcc_stats(y, sr, settings.n_mfcc)]
        if settings.use_egemaps:
            parts.append(egemaps_functionals(y, sr))
    feats = np.concatenate(parts)
    if not np.all(np.isfinite(feats)):
        raise AudioError("features are not finite (clip silent or too short)")
    return feats


def _featurize_one(item: tuple[str, BaselineSettings]) -> np.ndarray:
    path, settings = item
    y, sr = load_audio(path, settings.sample_rate)
    return classic_features(y, sr, settings)


def featurize_clips(
    paths: Sequence[str | Path],
    settings: BaselineSettings,
    workers: int | None = None,
    errors: dict[str, str] | None = None,
) -> np.ndarray:
    """Features of every clip, (n, d) float32 in the order of ``paths``, on ``workers`` processes.

    A clip that cannot be featurised gives a row of NaN and an entry path -> reason in ``errors``
    when a dict is passed (the caller writes the reject rows); without one, any failure raises
    :class:`AudioError` naming the clips, so no clip is ever lost silently.
    """
    items = [(str(p), settings) for p in paths]
    dim = 2 * settings.n_mfcc + (EGEMAPS_DIM if settings.use_egemaps else 0)
    out = np.full((len(items), dim), np.nan, dtype=np.float32)
    where = {p: i for i, (p, _) in enumerate(items)}
    failed: dict[str, str] = {}
    for outcome in map_files(
        _featurize_one, items, workers=workers, desc="baseline features", known_errors=(AudioError,)
    ):
        path = outcome.item[0]
        if outcome.error is not None:
            failed[path] = outcome.error
        else:
            out[where[path]] = outcome.result
    # Worker processes finish in any order: report failures in the order of ``paths``.
    failed = {p: failed[p] for p, _ in items if p in failed}
    if failed:
        if errors is None:
            listed = "; ".join(f"{p}: {r}" for p, r in list(failed.items())[:5])
            raise AudioError(f"{len(failed)} clip(s) could not be featurised: {listed}")
        errors.update(failed)
    return out


def write_classic_features(
    rows: Sequence[SplitRow], settings: BaselineSettings, out_dir: Path, workers: int | None
) -> dict[str, Any]:
    """Classical features of the clips of ``rows`` into the feature store ``out_dir``."""
    if not rows:
        raise ConfigError("featurize: the split has no clips")
    start = time.perf_counter()
    paths = [r.path for r in rows]
    errors: dict[str, str] = {}
    x = np.asarray(featurize_clips(paths, settings, workers, errors=errors), dtype=np.float32)
    rejects = RejectLog("featurize")
    kept = []
    for i, p in enumerate(paths):
        if p in errors:
            rejects.add(Path(p).stem, p, errors[p])
        elif not np.all(np.isfinite(x[i])):
            rejects.add(Path(p).stem, p, "baseline features are not finite")
        else:
            kept.append(i)
    if not kept:
        raise ConfigError("featurize: no clip could be featurised (see the rejected rows)")
    meta = {
        "model": "baseline",
        "checkpoint": None,
        "weights": None,
        "pooling": None,
        "sample_rate": settings.sample_rate,
        "settings": dataclasses.asdict(settings),
    }
    features = x[kept][:, None, :]
    save_features(out_dir, features, [rows[i] for i in kept], meta)
    rejects.write(out_dir / "rejected.csv")
    summary = {
        "model": "baseline",
        "clips": len(kept),
        "rejected": len(rejects),
        "shape": list(features.shape),
        "seconds": round(time.perf_counter() - start, 1),
    }
    log.info("featurize baseline: %s", summary)
    return summary
