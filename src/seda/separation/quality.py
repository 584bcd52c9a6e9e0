"""How good a voice estimate is: scale-invariant signal-to-distortion ratio."""

from __future__ import annotations

import numpy as np


def si_sdr(reference: np.ndarray, estimate: np.ndarray) -> float:
    """Scale-invariant signal-to-distortion ratio in dB (Le Roux et al., 2019).

    Signals are zero-meaned and cut to the shorter length; higher is better.
    """
    n = min(len(reference), len(estimate))
    ref = np.asarray(reference[:n], dtype=np.float64)
    est = np.asarray(estimate[:n], dtype=np.float64)
    ref = ref - ref.mean()
    est = est - est.mean()
    eps = np.finfo(np.float64).eps
    target = (np.dot(est, ref) / (np.dot(ref, ref) + eps)) * ref
    noise = est - target
    return float(10.0 * np.log10((np.dot(target, target) + eps) / (np.dot(noise, noise) + eps)))
