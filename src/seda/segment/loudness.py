"""Signal level: RMS in dBFS, and gain to a target loudness (ITU-R BS.1770) or peak."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

# pyloudnorm's gating block; shorter clips fall back to peak normalisation.
_LUFS_BLOCK_SECONDS = 0.4
_METERS: dict[int, Any] = {}


@dataclass
class LoudnessSettings:
    # lufs (pyloudnorm, ITU-R BS.1770), peak, or none (keeps loudness, itself an emotion cue).
    method: str = "lufs"
    target_lufs: float = -23.0
    peak_dbfs: float = -1.0


def rms_dbfs(y: np.ndarray) -> float:
    """RMS level in dB relative to full scale (-inf for digital silence)."""
    if y.size == 0:
        return -math.inf
    rms = float(np.sqrt(np.mean(np.square(y, dtype=np.float64))))
    return 20.0 * math.log10(rms) if rms > 0 else -math.inf


def normalise_loudness(y: np.ndarray, sr: int, settings: LoudnessSettings) -> np.ndarray:
    """Gain to ``target_lufs`` (ITU-R BS.1770 via pyloudnorm) or to ``peak_dbfs``; the peak
    never ends above ``peak_dbfs``, so the gain cannot clip. ``none`` keeps the level (loudness is
    itself an emotion cue that per-clip normalisation removes)."""
    if settings.method == "none":
        return y
    ceiling = 10.0 ** (settings.peak_dbfs / 20.0)
    peak = float(np.max(np.abs(y))) if y.size else 0.0
    if peak <= 0.0:
        return y
    gain = ceiling / peak
    if settings.method == "lufs" and y.size >= _LUFS_BLOCK_SECONDS * sr:
        import pyloudnorm

        meter = _METERS.setdefault(sr, pyloudnorm.Meter(sr))
        lufs = meter.integrated_loudness(y.astype(np.float64))
        if math.isfinite(lufs):
            gain = min(10.0 ** ((settings.target_lufs - lufs) / 20.0), ceiling / peak)
    return (y * gain).astype(np.float32)
