"""The classical baseline's settings: MFCC statistics + eGeMAPS functionals, an sklearn classifier.

The baseline is the yardstick the self-supervised backbones must beat. On TurEV-DB
(leave-one-speaker-out) the reference figures are UAR 0.45 for 40 MFCC mean+std with an RBF SVM
and 0.57 with eGeMAPS added and per-speaker standardisation; both are the mean of the per-fold
UARs (the UAR pooled over all held-out clips is about 0.02 lower), see
benchmarks/baseline_loso.py.

One settings class (the ``baseline`` section) serves both halves, which live apart so that each
stage imports only the half it runs: the feature extractor (:mod:`seda.features.classic`) and the
classifier (:mod:`seda.models.baseline`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from seda.errors import ConfigError

CLASSIFIERS = ("svm", "logreg")


@dataclass
class BaselineSettings:
    """The ``baseline`` section: MFCC statistics + eGeMAPS functionals (openSMILE) + an SVM."""

    n_mfcc: int = 40
    use_egemaps: bool = True
    speaker_standardise: bool = True
    classifier: str = "svm"
    C: float = 1.0
    gamma: Any = "scale"  # a number, "scale" or "auto"
    class_weight: str | None = "balanced"
    sample_rate: int | None = 16000  # None: each file's native rate (benchmarks only)
    # Speakers with fewer clips than this are standardised with the pooled training statistics
    # instead of their own (a z-score over one or two clips is meaningless).
    min_speaker_clips: int = 10
    # Inner leave-one-speaker-out search of C over the training speakers only (on TurEV-DB it
    # picks C=0.3 in most folds and adds about 0.01 UAR over a fixed C=1; a gamma grid did not
    # help).
    tune: bool = True
    C_grid: list[float] = field(default_factory=lambda: [0.3, 1.0, 3.0, 10.0])
    gamma_grid: list[Any] = field(default_factory=lambda: ["scale"])
    max_iter: int = 5000
    # Seeds the calibration folds, the SVM and the inner search's fallback folds.
    seed: int = 0

    def __post_init__(self) -> None:
        if self.classifier not in CLASSIFIERS:
            raise ConfigError(
                f"baseline.classifier must be one of {', '.join(CLASSIFIERS)}, "
                f"got {self.classifier!r}"
            )
        if not 1 <= int(self.n_mfcc) <= 128:
            raise ConfigError(f"baseline.n_mfcc must be in 1..128, got {self.n_mfcc}")
        if float(self.C) <= 0 or any(float(c) <= 0 for c in self.C_grid):
            raise ConfigError("baseline.C and baseline.C_grid values must be > 0")
        for g in [self.gamma, *self.gamma_grid]:
            if isinstance(g, str) and g not in ("scale", "auto"):
                raise ConfigError(f"baseline gamma must be a number, 'scale' or 'auto', got {g!r}")
        if self.class_weight not in (None, "balanced"):
            raise ConfigError(
                f"baseline.class_weight must be 'balanced' or null, got {self.class_weight!r}"
            )
        if self.sample_rate is not None and int(self.sample_rate) < 8000:
            raise ConfigError(f"baseline.sample_rate must be >= 8000, got {self.sample_rate}")
