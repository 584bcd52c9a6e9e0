"""REPET-SIM voice separation (a nearest-neighbour median soft mask): weight-free, offline, no
model download.

The algorithm is librosa's "vocal separation" example (``librosa.decompose.nn_filter`` with
``aggregate=np.median, metric="cosine", width=...`` and ``librosa.util.softmask``), written here
in float32 numpy so that a worker needs neither librosa nor scikit-learn: the cosine similarities
of a block of frames come from one matrix product, the nearest neighbours from a partial sort,
and the medians from numpy's vectorised sort over (bin, frame, neighbour) blocks. librosa builds
the same neighbour sets through a sparse LIL matrix edited row by row and takes one median per
frame, which cost ~90 % of its run time on one-minute chunks.
"""

from __future__ import annotations

import functools
import logging
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from threadpoolctl import threadpool_limits

from seda.errors import ConfigError
from seda.separation.common import Job, SeparationBackend, run_per_file, stream_separate

log = logging.getLogger(__name__)

# Consecutive chunks overlap by this much and are cross-faded, so chunk edges do not click.
CROSSFADE_SECONDS = 1.0
# Frames whose neighbour medians are computed together: bounds the (bins x frames x neighbours)
# gather to ~13 MB on one-minute chunks at the default settings.
FRAME_BLOCK = 32


@dataclass
class SeparateSettings:
    backend: str = "repet"
    sample_rate: int = 22050
    n_fft: int = 2048
    hop_length: int = 512
    # Similarity filter width in seconds and the voice mask margin. librosa's singing-voice
    # example uses margin 10; on speech over music beds that removes voice too (demo, 8 items:
    # SI-SDR improvement -3.1 dB at 10, +1.8 dB at 2), so seda keeps a softer mask.
    min_repeat_seconds: float = 2.0
    margin_voice: float = 2.0
    power: float = 2.0
    chunk_seconds: float = 60.0


class RepetBackend(SeparationBackend):
    """REPET-SIM soft-mask separation, one worker process per file."""

    name = "repet"
    settings_class = SeparateSettings
    code = ("seda.separation.repet",)
    packages = ("numpy", "soundfile", "soxr", "imageio-ffmpeg")

    def __init__(self, settings: SeparateSettings, workers: int | None = None) -> None:
        super().__init__(settings, workers)
        if settings.chunk_seconds < 3 * settings.min_repeat_seconds:
            raise ConfigError(
                f"separate.chunk_seconds ({settings.chunk_seconds:g}) must be at least 3 x "
                f"separate.min_repeat_seconds ({settings.min_repeat_seconds:g}): REPET needs "
                "repetitions inside one chunk"
            )
        if not settings.power > 0:
            raise ConfigError(f"separate.power ({settings.power:g}) must be positive")

    def separate_batch(self, jobs: list[Job]) -> list[str | None]:
        fn = functools.partial(_separate_job, settings=self.settings)
        return run_per_file(fn, jobs, self.workers, desc="separate: repet")


def _separate_job(job: Job, settings: SeparateSettings) -> None:
    separate_file(job[0], job[1], settings)


def repet_voice(y: np.ndarray, sr: int, settings: SeparateSettings) -> np.ndarray:
    """Voice estimate of a mixture by REPET-SIM.

    Frames that resemble a frame (``k`` of its cosine nearest neighbours at least
    ``min_repeat_seconds`` away, chosen as :func:`neighbour_median` says) are taken as repeating
    accompaniment; the voice is what the median of those neighbours does not explain, kept
    through a soft mask with margin ``margin_voice``. The same stems as librosa's REPET-SIM
    (which this backend used before), up to float32 rounding and tied similarities.
    """
    y = np.asarray(y, dtype=np.float32)
    spec = stft(y, settings.n_fft, settings.hop_length)  # (frames, bins)
    mag = np.abs(spec)
    frames = mag.shape[0]
    width = int(settings.min_repeat_seconds * sr) // settings.hop_length
    width = min(width, (frames - 1) // 2 - 1)
    if width < 1:
        log.debug("separate: %d samples are too short to separate; kept as they are", y.size)
        return y.copy()
    # Files run in parallel, one per core: BLAS threads on top of that only contend (5x slower
    # on a loaded 2-core machine), and one thread keeps the products' rounding fixed.
    with threadpool_limits(1, user_api="blas"):
        repeating = np.minimum(mag, neighbour_median(mag, width))
    mask = softmask(mag - repeating, settings.margin_voice * repeating, settings.power)
    voice = istft(mask * spec, settings.hop_length, length=y.size)
    return voice.astype(np.float32)


def neighbour_median(mag: np.ndarray, width: int) -> np.ndarray:
    """Per frame (row of ``mag``), the bin-wise median of the frames librosa's REPET-SIM filter
    takes as its repetitions: ``librosa.decompose.nn_filter(mag.T, aggregate=np.median,
    metric="cosine", width=width).T``, including its neighbour choice.

    That filter's recurrence matrix (default "connectivity" mode) takes the ``k + 2 * width``
    nearest other frames by cosine similarity, drops those fewer than ``width`` frames away, and
    keeps the ``k`` *earliest* of the rest (its top-k step sorts equal connectivity weights, so
    keeps column order), ``k = 2 * ceil(sqrt(frames - 2 * width + 1))``. A frame with no
    neighbour left is its own estimate. Only the order of similarities that tie in float32 can
    make a frame's set differ from librosa's.
    """
    frames, bins = mag.shape
    k = int(2 * math.ceil(math.sqrt(frames - 2 * width + 1)))
    pool = min(frames - 1, k + 2 * width)
    norms = np.linalg.norm(mag, axis=1, keepdims=True)
    unit = np.divide(mag, norms, out=np.zeros_like(mag), where=norms > 0)
    by_bin = np.ascontiguousarray(mag.T)  # (bins, frames): the gathered values of a bin adjoin
    out = np.empty_like(mag)
    for start in range(0, frames, FRAME_BLOCK):
        rows = np.arange(start, min(frames, start + FRAME_BLOCK))
        sim = unit[rows] @ unit.T
        sim[np.arange(rows.size), rows] = -np.inf  # a frame is not its own neighbour
        cand = np.argpartition(-sim, pool - 1, axis=1)[:, :pool]
        cand[np.abs(cand - rows[:, None]) < width] = frames  # too close: sorts last, dropped
        cand.sort(axis=1)
        picks = cand[:, :k]
        full = (picks[:, -1] < frames) & (picks.shape[1] == k)
        if full.any():
            gathered = np.take(by_bin, picks[full].ravel(), axis=1)
            gathered = gathered.reshape(bins, int(full.sum()), k)
            gathered.sort(axis=-1)
            half = k // 2
            med = gathered[..., half] if k % 2 else gathered[..., half - 1] + gathered[..., half]
            out[rows[full]] = med.T if k % 2 else 0.5 * med.T
        for r in np.flatnonzero(~full):  # fewer than k left: all of them, or the frame itself
            left = picks[r][picks[r] < frames]
            out[rows[r]] = np.median(mag[left], axis=0) if left.size else mag[rows[r]]
    return out


def softmask(x: np.ndarray, x_ref: np.ndarray, power: float) -> np.ndarray:
    """``x**p / (x**p + x_ref**p)`` for non-negative arrays, 0 where both are 0 (as
    ``librosa.util.softmask`` with ``split_zeros=False``; ``power=inf`` gives ``x > x_ref``)."""
    if not np.isfinite(power):
        return (x > x_ref).astype(x.dtype)
    z = np.maximum(x, x_ref)
    bad = z < np.finfo(z.dtype).tiny
    z[bad] = 1
    mask = (x / z) ** power
    ref = (x_ref / z) ** power
    mask /= np.where(bad, 1, mask + ref)
    mask[bad] = 0
    return mask


def _hann(n: int) -> np.ndarray:
    """Periodic Hann window (``scipy.signal.get_window("hann", n)``)."""
    return (0.5 - 0.5 * np.cos(2 * np.pi * np.arange(n) / n)).astype(np.float32)


def stft(y: np.ndarray, n_fft: int, hop: int) -> np.ndarray:
    """Centred, zero-padded Hann STFT as (frames, bins) complex64 (``librosa.stft(y).T``)."""
    padded = np.pad(y, n_fft // 2)
    frames = np.lib.stride_tricks.sliding_window_view(padded, n_fft)[::hop]
    return np.fft.rfft(frames * _hann(n_fft), axis=1).astype(np.complex64, copy=False)


def istft(spec: np.ndarray, hop: int, length: int) -> np.ndarray:
    """Inverse of :func:`stft` by weighted overlap-add, ``length`` samples (``librosa.istft``)."""
    n_fft = 2 * (spec.shape[1] - 1)
    n_frames = min(spec.shape[0], math.ceil((length + 2 * (n_fft // 2)) / hop))
    window = _hann(n_fft)
    frames = np.fft.irfft(spec[:n_frames], n=n_fft, axis=1).astype(np.float32) * window
    total = n_fft + hop * (n_frames - 1)
    y = _overlap_add(frames, hop, total)
    norm = _overlap_add(np.broadcast_to(window**2, frames.shape), hop, total)
    nonzero = norm > np.finfo(np.float32).tiny
    y[nonzero] /= norm[nonzero]
    y = y[n_fft // 2 : n_fft // 2 + length]
    return np.pad(y, (0, length - y.size))


def _overlap_add(frames: np.ndarray, hop: int, total: int) -> np.ndarray:
    n_frames, n_fft = frames.shape
    if n_fft % hop == 0:  # hop-sized slices: n_fft / hop vectorised additions
        parts = n_fft // hop
        out = np.zeros((n_frames + parts - 1, hop), dtype=np.float32)
        sliced = frames.reshape(n_frames, parts, hop)
        for r in range(parts):
            out[r : r + n_frames] += sliced[:, r]
        return out.reshape(-1)[:total]
    out = np.zeros(total, dtype=np.float32)
    for i in range(n_frames):
        out[i * hop : i * hop + n_fft] += frames[i]
    return out


def separate_file(in_path: str | Path, out_path: str | Path, settings: SeparateSettings) -> float:
    """Write the voice stem of ``in_path`` to ``out_path`` (PCM16 WAV); return its duration.

    The input is streamed in ``chunk_seconds`` blocks; each block is separated with the last
    :data:`CROSSFADE_SECONDS` of the previous one prepended, and the overlap is cross-faded, so
    memory stays bounded for hour-long files without audible seams.
    """
    sr = settings.sample_rate
    voice = functools.partial(repet_voice, sr=sr, settings=settings)
    return stream_separate(
        in_path, out_path, voice, sr, settings.chunk_seconds, crossfade_seconds=CROSSFADE_SECONDS
    )
