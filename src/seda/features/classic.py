"""The baseline's classical features: functionals of every clip, one block per feature set.

The blocks (``baseline.features``, laid out by :func:`seda.baseline.feature_blocks`): MFCC
statistics, log-mel band statistics, eGeMAPS and ComParE_2016 functionals (openSMILE).
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
from seda.baseline import BaselineSettings, feature_dim
from seda.errors import ConfigError
from seda.features.store import save_features
from seda.io import RejectLog
from seda.parallel import map_files
from seda.records import SplitRow

log = logging.getLogger(__name__)

_MIN_SECONDS = 0.1
_SMILE_SETS = {"egemaps": "eGeMAPSv02", "compare": "ComParE_2016"}


def _frames(sr: int) -> dict[str, int]:
    """25 ms windows every 10 ms, the FFT the next power of two."""
    win = round(0.025 * sr)
    return {
        "n_fft": 1 << (win - 1).bit_length(),
        "hop_length": round(0.010 * sr),
        "win_length": win,
    }


def mfcc_stats(y: np.ndarray, sr: int, n_mfcc: int = 40) -> np.ndarray:
    """Mean and standard deviation over frames of ``n_mfcc`` MFCCs (25 ms window, 10 ms hop)."""
    import librosa

    mfcc = librosa.feature.mfcc(
        y=np.asarray(y, dtype=np.float32),
        sr=sr,
        n_mfcc=n_mfcc,
        n_mels=max(64, n_mfcc),
        **_frames(sr),
    )
    return np.concatenate([mfcc.mean(axis=1), mfcc.std(axis=1)]).astype(np.float32)


def logmel_stats(y: np.ndarray, sr: int, n_mels: int = 64) -> np.ndarray:
    """Mean and standard deviation over frames of ``n_mels`` log-mel band energies (dB, 25 ms
    window, 10 ms hop). The same information as the MFCCs up to a linear map of the means, but
    a different geometry once every band is standardised: it adds 0.03 UAR to MFCC + eGeMAPS on
    TurEV-DB (benchmarks/baseline_loso.py)."""
    import librosa

    mel = librosa.feature.melspectrogram(
        y=np.asarray(y, dtype=np.float32), sr=sr, n_mels=n_mels, **_frames(sr)
    )
    db = librosa.power_to_db(mel)
    return np.concatenate([db.mean(axis=1), db.std(axis=1)]).astype(np.float32)


@functools.cache
def _smile(block: str) -> Any:
    """One openSMILE extractor per feature set and process (building one parses its config)."""
    import opensmile

    return opensmile.Smile(
        feature_set=getattr(opensmile.FeatureSet, _SMILE_SETS[block]),
        feature_level=opensmile.FeatureLevel.Functionals,
    )


def smile_functionals(y: np.ndarray, sr: int, block: str) -> np.ndarray:
    """The openSMILE functionals ``block`` ("egemaps" or "compare") of a decoded signal."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # "Segment too short": checked by the caller
        frame = _smile(block).process_signal(np.asarray(y, dtype=np.float32), sr)
    return frame.to_numpy(dtype=np.float32).reshape(-1)


def egemaps_functionals(y: np.ndarray, sr: int) -> np.ndarray:
    """The 88 eGeMAPSv02 functionals of a decoded signal (works on any audio, not only files)."""
    return smile_functionals(y, sr, "egemaps")


def feature_names(settings: BaselineSettings) -> list[str]:
    """Column names of :func:`classic_features`."""
    names: list[str] = []
    for block in settings.features:
        if block == "mfcc":
            names += [f"mfcc{i}_mean" for i in range(settings.n_mfcc)]
            names += [f"mfcc{i}_std" for i in range(settings.n_mfcc)]
        elif block == "logmel":
            names += [f"logmel{i}_mean" for i in range(settings.n_mels)]
            names += [f"logmel{i}_std" for i in range(settings.n_mels)]
        else:
            names += [f"{block}.{n}" for n in _smile(block).feature_names]
    return names


def _block(y: np.ndarray, sr: int, block: str, settings: BaselineSettings) -> np.ndarray:
    if block == "mfcc":
        return mfcc_stats(y, sr, settings.n_mfcc)
    if block == "logmel":
        return logmel_stats(y, sr, settings.n_mels)
    return smile_functionals(y, sr, block)


def classic_features(y: np.ndarray, sr: int, settings: BaselineSettings) -> np.ndarray:
    """The blocks of ``settings.features`` in their order, as one float32 vector.

    BLAS runs on one thread here, so a clip's features do not depend on how many worker
    processes (or cores) computed them. Raises :class:`AudioError` for clips too short to
    describe (the message is the reject reason).
    """
    from threadpoolctl import threadpool_limits

    if len(y) < _MIN_SECONDS * sr:
        raise AudioError(f"clip too short for features ({len(y) / sr:.3f} s < {_MIN_SECONDS} s)")
    with threadpool_limits(limits=1, user_api="blas"):
        feats = np.concatenate([_block(y, sr, b, settings) for b in settings.features])
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
    out = np.full((len(items), feature_dim(settings)), np.nan, dtype=np.float32)
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
