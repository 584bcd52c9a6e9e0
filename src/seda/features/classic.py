"""The baseline's classical features: functionals of every clip, one block per feature set.

The blocks (``baseline.features``, laid out by :func:`seda.baseline.feature_blocks`): MFCC
statistics, log-mel band statistics, eGeMAPS and ComParE_2016 functionals (openSMILE).
:func:`write_classic_features` fills a feature store (:mod:`seda.features.store`) with one float32
"layer" per clip, shape (n_clips, 1, d), which the baseline classifier
(:mod:`seda.models.baseline`) trains on, as the probes train on the backbones' layers.

The values are librosa's and ``opensmile.Smile``'s to the bit, computed with numpy, scipy.fft
and openSMILE's C library only, so that a featurising worker process stays small (about 80 MiB
resident instead of 340: no librosa, numba, audinterface or pandas).
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from seda.audio import AudioError, load_audio
from seda.baseline import BaselineSettings, feature_dim
from seda.errors import ConfigError
from seda.features.store import save_augmented, save_features
from seda.io import RejectLog
from seda.parallel import map_files
from seda.records import SplitRow

if TYPE_CHECKING:
    from seda.augment import AugmentSettings

log = logging.getLogger(__name__)

_MIN_SECONDS = 0.1
# Memory of one featurising worker process, for seda.parallel's worker count: about 80 MiB
# resident on TurEV-DB (numpy, scipy.fft, openSMILE's library and one clip), with room for
# ComParE on the longest clips.
WORKER_MEMORY = 256 << 20
# openSMILE's configurations of the feature sets (``opensmile.FeatureSet``'s values), and the
# components its external source and sink configurations name.
_SMILE_SETS = {"egemaps": "egemaps/v02/eGeMAPSv02", "compare": "compare/ComParE_2016"}
_SMILE_SOURCE = "extsource"
_SMILE_SINK = "extsink"


# Constants of librosa's STFT (``librosa.util.MAX_MEM_BLOCK``: frames are transformed in blocks
# of this many bytes) and of its mel scale (Slaney's: linear below 1 kHz, logarithmic above).
_MAX_MEM_BLOCK = 2**8 * 2**10
_MEL_F_SP = 200.0 / 3
_MEL_MIN_LOG_HZ = 1000.0
_MEL_MIN_LOG = _MEL_MIN_LOG_HZ / _MEL_F_SP
_MEL_LOGSTEP = np.log(6.4) / 27.0


def _frames(sr: int) -> dict[str, int]:
    """25 ms windows every 10 ms, the FFT the next power of two."""
    win = round(0.025 * sr)
    return {
        "n_fft": 1 << (win - 1).bit_length(),
        "hop_length": round(0.010 * sr),
        "win_length": win,
    }


# The MFCC and log-mel blocks are librosa's (``librosa.feature.mfcc`` and
# ``power_to_db(melspectrogram(...))`` with a centred, zero-padded Hann STFT and a Slaney mel
# basis), computed here with numpy and scipy.fft only, in the same operations on the same array
# shapes, so that the values are the same to the bit (tests/test_baseline.py compares them with
# librosa's). Importing librosa costs a worker process about 220 MiB (numba, scipy.signal,
# scipy.ndimage); this path costs about 25 MiB.


@functools.cache
def _window(n_fft: int, win_length: int) -> np.ndarray:
    """Periodic Hann window of ``win_length`` zero-padded to ``n_fft``, shape (n_fft, 1), as
    ``librosa.filters.get_window("hann", win_length)`` (scipy's general cosine) centred."""
    fac = np.linspace(-np.pi, np.pi, win_length + 1, dtype=np.float64)
    w = np.zeros(win_length + 1, dtype=np.float64)
    for k, a in enumerate((0.5, 0.5)):
        w += a * np.cos(k * fac)
    left = (n_fft - win_length) // 2
    padded = np.pad(w[:-1], (left, n_fft - win_length - left))
    padded.flags.writeable = False
    return padded[:, None]


def _frame(y: np.ndarray, n_fft: int, hop: int) -> np.ndarray:
    """(n_fft, n_frames) strided view of ``y`` (``librosa.util.frame``)."""
    return np.lib.stride_tricks.sliding_window_view(y, n_fft)[::hop].T


def _stft_power(y: np.ndarray, n_fft: int, hop: int, win_length: int) -> np.ndarray:
    """|STFT|^2, (1 + n_fft // 2, n_frames) float32: ``np.abs(librosa.stft(y, center=True,
    pad_mode="constant")) ** 2`` for a 1-D float32 ``y``."""
    from scipy import fft

    window = _window(n_fft, win_length)
    half = n_fft // 2
    start_k = int(np.ceil(half / hop))
    tail_k = (y.shape[-1] + half - n_fft) // hop + 1
    edges: list[np.ndarray] = []
    if tail_k <= start_k:
        start, y = 0, np.pad(y, (half, half))
    else:
        start = start_k * hop - half
        y_pre = np.pad(y[: (start_k - 1) * hop - half + n_fft + 1], (half, 0))
        edges.append(_frame(y_pre, n_fft, hop)[:, :start_k])
        if tail_k * hop - half + n_fft <= y.shape[-1] + half:
            edges.append(_frame(np.pad(y[tail_k * hop - half :], (0, half)), n_fft, hop))
    frames = _frame(y[start:], n_fft, hop)
    n_pre = edges[0].shape[-1] if edges else 0
    n_post = edges[1].shape[-1] if len(edges) > 1 else 0
    out = np.zeros((1 + half, frames.shape[-1] + n_pre + n_post), dtype=np.complex64, order="F")
    if n_pre:
        out[:, :n_pre] = fft.rfft(window * edges[0], axis=-2)
    if n_post:
        out[:, -n_post:] = fft.rfft(window * edges[1], axis=-2)
    n_columns = max(int(_MAX_MEM_BLOCK // (frames.shape[0] * frames.itemsize)), 1)
    for a in range(0, frames.shape[-1], n_columns):
        b = min(a + n_columns, frames.shape[-1])
        out[:, a + n_pre : b + n_pre] = fft.rfft(window * frames[:, a:b], axis=-2)
    return np.abs(out) ** 2.0


def _hz_to_mel(hz: float) -> float:
    mel = hz / _MEL_F_SP
    if hz >= _MEL_MIN_LOG_HZ:
        mel = _MEL_MIN_LOG + np.log(hz / _MEL_MIN_LOG_HZ) / _MEL_LOGSTEP
    return mel


@functools.cache
def _mel_basis(sr: int, n_fft: int, n_mels: int) -> np.ndarray:
    """Slaney-normalised mel filters from 0 Hz to sr / 2, (n_mels, 1 + n_fft // 2) float32
    (``librosa.filters.mel(sr=sr, n_fft=n_fft, n_mels=n_mels)``)."""
    weights = np.zeros((n_mels, 1 + n_fft // 2), dtype=np.float32)
    fftfreqs = np.fft.rfftfreq(n=n_fft, d=1.0 / sr)
    mels = np.linspace(_hz_to_mel(0.0), _hz_to_mel(float(sr) / 2), n_mels + 2)
    mel_f = _MEL_F_SP * mels
    log_t = mels >= _MEL_MIN_LOG
    mel_f[log_t] = _MEL_MIN_LOG_HZ * np.exp(_MEL_LOGSTEP * (mels[log_t] - _MEL_MIN_LOG))
    fdiff = np.diff(mel_f)
    ramps = np.subtract.outer(mel_f, fftfreqs)
    for i in range(n_mels):
        lower = -ramps[i] / fdiff[i]
        upper = ramps[i + 2] / fdiff[i + 1]
        weights[i] = np.maximum(0, np.minimum(lower, upper))
    weights *= (2.0 / (mel_f[2 : n_mels + 2] - mel_f[:n_mels]))[:, np.newaxis]
    weights.flags.writeable = False
    return weights


def log_mel(y: np.ndarray, sr: int, n_mels: int) -> np.ndarray:
    """(n_mels, n_frames) mel band energies in dB, floored 80 dB below the loudest
    (``librosa.power_to_db(librosa.feature.melspectrogram(...))``, 25 ms window, 10 ms hop)."""
    f = _frames(sr)
    y = np.asarray(y, dtype=np.float32)
    power = _stft_power(y, f["n_fft"], f["hop_length"], f["win_length"])
    mel = np.einsum("...ft,mf->...mt", power, _mel_basis(sr, f["n_fft"], n_mels), optimize=True)
    db = 10.0 * np.log10(np.maximum(1e-10, mel))
    return np.maximum(db, db.max() - 80.0)


def _mfcc_n_mels(n_mfcc: int) -> int:
    return max(64, n_mfcc)


def _mean_std(x: np.ndarray) -> np.ndarray:
    return np.concatenate([x.mean(axis=1), x.std(axis=1)]).astype(np.float32)


def _mfcc_from_db(db: np.ndarray, n_mfcc: int) -> np.ndarray:
    from scipy import fft

    return fft.dct(db, axis=-2, type=2, norm="ortho")[..., :n_mfcc, :]


def mfcc_stats(y: np.ndarray, sr: int, n_mfcc: int = 40) -> np.ndarray:
    """Mean and standard deviation over frames of ``n_mfcc`` MFCCs (25 ms window, 10 ms hop)."""
    return _mean_std(_mfcc_from_db(log_mel(y, sr, _mfcc_n_mels(n_mfcc)), n_mfcc))


def logmel_stats(y: np.ndarray, sr: int, n_mels: int = 64) -> np.ndarray:
    """Mean and standard deviation over frames of ``n_mels`` log-mel band energies (dB, 25 ms
    window, 10 ms hop). The same information as the MFCCs up to a linear map of the means, but
    a different geometry once every band is standardised: it adds 0.03 UAR to MFCC + eGeMAPS on
    TurEV-DB (benchmarks/baseline_loso.py)."""
    return _mean_std(log_mel(y, sr, n_mels))


@functools.cache
def _smileapi() -> tuple[Any, Path]:
    """openSMILE's C API binding (``opensmile/core/lib.py``, which ``opensmile.Smile`` runs) and
    its configuration folder. The binding is loaded on its own: importing the ``opensmile``
    package also imports audinterface and pandas, about 95 MiB per worker process and 7 ms per
    clip that these features do not use."""
    import importlib.util

    spec = importlib.util.find_spec("opensmile")
    if spec is None or spec.origin is None:
        raise ModuleNotFoundError("opensmile is not installed: pip install opensmile")
    core = Path(spec.origin).parent / "core"
    lib_spec = importlib.util.spec_from_file_location("opensmile_smileapi", core / "lib.py")
    assert lib_spec is not None and lib_spec.loader is not None
    lib = importlib.util.module_from_spec(lib_spec)
    lib_spec.loader.exec_module(lib)
    return lib, core / "config"


def _open_smile(block: str, sr: int) -> Any:
    """openSMILE set up as ``opensmile.Smile(<block>, FeatureLevel.Functionals)`` sets it up
    for one signal: 16-bit samples at ``sr`` in, the functionals out."""
    lib, config = _smileapi()
    shared = config / "shared"
    options = {
        "sink": str(shared / "standard_external_data_output_single.conf.inc"),
        "sinkLevel": "func",
        "bufferModeRbConf": str(shared / "BufferModeRb.conf.inc"),
        "frameModeFunctionalsConf": str(shared / "FrameModeFunctionals.conf.inc"),
        "source": str(shared / "standard_external_wave_input.conf.inc"),
        "sampleRate": sr,
        "nBits": 16,
    }
    smile = lib.OpenSMILE()
    smile.initialize(
        config_file=str(config / f"{_SMILE_SETS[block]}.conf"),
        options=options,
        loglevel=2,
        log_file=None,
        debug=False,
    )
    return smile


@functools.cache
def smile_names(block: str) -> tuple[str, ...]:
    """Names of the openSMILE functionals ``block`` ("egemaps" or "compare")."""
    smile = _open_smile(block, 16000)
    try:
        n = smile.external_sink_get_num_elements(_SMILE_SINK)
        return tuple(smile.external_sink_get_element_name(_SMILE_SINK, i) for i in range(n))
    finally:
        smile.free()


def smile_functionals(y: np.ndarray, sr: int, block: str) -> np.ndarray:
    """The openSMILE functionals ``block`` ("egemaps" or "compare") of a decoded signal: the
    values ``opensmile.Smile.process_signal`` gives (tests/test_baseline.py compares them), NaN
    when the signal is too short for one frame."""
    pcm = np.array(y, dtype=np.float32)  # a copy, scaled and truncated to 16 bits as Smile does
    pcm *= 32768
    frames: list[np.ndarray] = []
    smile = _open_smile(block, sr)
    try:
        smile.external_sink_set_callback_ex(_SMILE_SINK, lambda data, _: frames.append(data.copy()))
        smile.external_audio_source_write_data(_SMILE_SOURCE, pcm.astype(np.int16).tobytes())
        smile.external_audio_source_set_eoi(_SMILE_SOURCE)
        smile.run()
    finally:
        smile.free()
    if not frames:
        return np.full(len(smile_names(block)), np.nan, dtype=np.float32)
    return np.vstack(frames).astype(np.float32).reshape(-1)


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
            names += [f"{block}.{n}" for n in smile_names(block)]
    return names


def classic_features(y: np.ndarray, sr: int, settings: BaselineSettings) -> np.ndarray:
    """The blocks of ``settings.features`` in their order, as one float32 vector.

    BLAS runs on one thread here, so a clip's features do not depend on how many worker
    processes (or cores) computed them. The MFCC and log-mel blocks share one mel spectrogram
    when their band counts agree (the default). Raises :class:`AudioError` for clips too short
    to describe (the message is the reject reason).
    """
    if len(y) < _MIN_SECONDS * sr:
        raise AudioError(f"clip too short for features ({len(y) / sr:.3f} s < {_MIN_SECONDS} s)")
    y = np.asarray(y, dtype=np.float32)
    db = functools.cache(lambda n_mels: log_mel(y, sr, n_mels))
    parts = []
    with _blas().limit(limits=1, user_api="blas"):
        for block in settings.features:
            if block == "mfcc":
                n_mfcc = int(settings.n_mfcc)
                parts.append(_mean_std(_mfcc_from_db(db(_mfcc_n_mels(n_mfcc)), n_mfcc)))
            elif block == "logmel":
                parts.append(_mean_std(db(int(settings.n_mels))))
            else:
                parts.append(smile_functionals(y, sr, block))
    feats = np.concatenate(parts)
    if not np.all(np.isfinite(feats)):
        raise AudioError("features are not finite (clip silent or too short)")
    return feats


@functools.cache
def _blas() -> Any:
    """This process's BLAS libraries, found once (a ``threadpool_limits`` per clip would search
    the loaded libraries again each time: about 10 ms, a fifth of a clip's features)."""
    from threadpoolctl import ThreadpoolController

    return ThreadpoolController()


def clip_features(item: tuple[np.ndarray, int, BaselineSettings]) -> np.ndarray | None:
    """Worker: :func:`classic_features` of a decoded clip ``(y, sr, settings)``, or None (with a
    warning) for a clip too short or silent to describe."""
    y, sr, settings = item
    try:
        return classic_features(y, sr, settings)
    except AudioError as err:
        log.warning("baseline: a clip has no features (%s)", err)
        return None


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
        _featurize_one,
        items,
        workers=workers,
        desc="baseline features",
        known_errors=(AudioError,),
        worker_memory=WORKER_MEMORY,
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


def write_baseline_features(
    rows: Sequence[SplitRow],
    settings: BaselineSettings,
    out_dir: Path,
    workers: int | None,
    augment: AugmentSettings | None = None,
    protocol: str | None = None,
) -> dict[str, Any]:
    """The baseline's feature store: :func:`write_classic_features`, and with ``augment.copies``
    the features of the augmented copies of the clips that train some fold of ``protocol`` (the
    store's augmented section), as the backbones' stores hold theirs."""
    # Here, not at the top: the featurising workers import this module and need none of it.
    from seda.augment import AugmentSettings, augmented_features

    summary = write_classic_features(rows, settings, out_dir, workers)
    x, copies, rejects = augmented_features(
        rows,
        augment or AugmentSettings(),
        protocol,
        functools.partial(classic_features, settings=settings),
        settings.sample_rate,
        workers,
    )
    save_augmented(out_dir, None if x is None else x[:, None, :], copies, rejects)
    if x is None:
        return summary
    return {**summary, "copies": len(copies), "copies_rejected": len(rejects)}
