"""Noise reduction by spectral gating (noisereduce)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class NoiseReduceSettings:
    enabled: bool = True
    # Fraction of the estimated noise removed (noisereduce prop_decrease), 0..1.
    strength: float = 0.8
    stationary: bool = False


def reduce_noise(y: np.ndarray, sr: int, settings: NoiseReduceSettings) -> np.ndarray:
    """Spectral gating (noisereduce); ``strength`` is the share of the noise removed."""
    if not settings.enabled or settings.strength <= 0 or y.size < 2048:
        return y
    import noisereduce

    # noisereduce pads every chunk with 30000 zeros by default: 5x the work on a 1 s word.
    padding = int(min(30000, max(4096, y.size // 8)))
    out = noisereduce.reduce_noise(
        y=y,
        sr=sr,
        stationary=settings.stationary,
        prop_decrease=settings.strength,
        padding=padding,
    )
    return np.nan_to_num(np.asarray(out, dtype=np.float32))
