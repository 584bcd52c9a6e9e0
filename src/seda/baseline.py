"""The classical baseline: MFCC statistics + eGeMAPS functionals with a scikit-learn classifier.

It is the yardstick the self-supervised backbones must beat. On TurEV-DB (leave-one-speaker-out)
the reference figures are UAR 0.45 for 40 MFCC mean+std with an RBF SVM and 0.57 with eGeMAPS
added and per-speaker standardisation; both are the mean of the per-fold UARs (the UAR pooled
over all held-out clips is about 0.02 lower), see benchmarks/baseline_loso.py. Per-speaker
standardisation uses only a speaker's own features (never labels), so it is legitimate for
unseen test speakers too: it removes voice and recording differences that otherwise dominate
speaker-independent emotion recognition.

The fitted model is stored without pickle: every fitted array goes into a safetensors file and
the few scalars into its JSON metadata (:meth:`BaselineModel.save` / :meth:`BaselineModel.load`).
"""

from __future__ import annotations

import functools
import json
import logging
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from seda.audio import AudioError, load_audio
from seda.config import ConfigError
from seda.io import atomic_path
from seda.parallel import map_files

log = logging.getLogger(__name__)

CLASSIFIERS = ("svm", "logreg")
EGEMAPS_DIM = 88
_MIN_SECONDS = 0.1


@dataclass
class BaselineSettings:
    """Keys of the ``baseline`` section of conf/config.yaml."""

    n_mfcc: int = 40
    use_egemaps: bool = True
    speaker_standardise: bool = True
    classifier: str = "svm"
    C: float = 1.0
    gamma: float | str = "scale"
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
    gamma_grid: list[float | str] = field(default_factory=lambda: ["scale"])
    max_iter: int = 5000
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


# ---------------------------------------------------------------------------------------------
# Features


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
    """Column names of :func:`classic_features`, for the feature store's meta.json."""
    names = [f"mfcc{i}_mean" for i in range(settings.n_mfcc)]
    names += [f"mfcc{i}_std" for i in range(settings.n_mfcc)]
    if settings.use_egemaps:
        names += list(_smile().feature_names)
    return names


def classic_features(y: np.ndarray, sr: int, settings: BaselineSettings) -> np.ndarray:
    """MFCC statistics, plus eGeMAPS functionals when enabled, as one float32 vector.

    Raises :class:`AudioError` for clips too short to describe (the message is the reject reason).
    """
    if len(y) < _MIN_SECONDS * sr:
        raise AudioError(f"clip too short for features ({len(y) / sr:.3f} s < {_MIN_SECONDS} s)")
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
    if failed:
        if errors is None:
            listed = "; ".join(f"{p}: {r}" for p, r in list(failed.items())[:5])
            raise AudioError(f"{len(failed)} clip(s) could not be featurised: {listed}")
        errors.update(failed)
    return out


# ---------------------------------------------------------------------------------------------
# Speaker standardisation


def per_speaker_standardise(
    X: np.ndarray,
    speakers: Sequence[Any],
    *,
    min_clips: int = 1,
    fallback: tuple[np.ndarray, np.ndarray] | None = None,
) -> np.ndarray:
    """Z-score every feature within each speaker, using that speaker's rows only.

    Constant features (std 0) are only centred. Speakers with fewer than ``min_clips`` rows use
    the ``fallback`` (mean, std) when given.
    """
    X = np.asarray(X, dtype=np.float64)
    speakers = np.asarray([str(s) for s in speakers])
    if len(speakers) != len(X):
        raise ValueError(f"{len(X)} feature rows but {len(speakers)} speakers")
    out = np.empty_like(X)
    for spk in np.unique(speakers):
        rows = speakers == spk
        if rows.sum() < min_clips and fallback is not None:
            mean, std = fallback
        else:
            mean, std = X[rows].mean(axis=0), X[rows].std(axis=0)
        out[rows] = (X[rows] - mean) / _safe(std)
    return out


def _safe(std: np.ndarray) -> np.ndarray:
    return np.where(std > 1e-12, std, 1.0)


# ---------------------------------------------------------------------------------------------
# Model

_SCALER_ATTRS = ("mean_", "scale_", "var_", "n_samples_seen_", "n_features_in_")
_SVC_ATTRS = (
    "support_",
    "support_vectors_",
    "_n_support",
    "_dual_coef_",
    "_intercept_",
    "dual_coef_",
    "intercept_",
    "_probA",
    "_probB",
    "classes_",
    "class_weight_",
    "shape_fit_",
    "fit_status_",
    "_gamma",
    "_sparse",
    "_effective_probability",
    "n_features_in_",
    "n_iter_",
)
_LOGREG_ATTRS = ("coef_", "intercept_", "classes_", "n_features_in_", "n_iter_")


class BaselineModel:
    """Speaker standardisation (optional) -> StandardScaler -> RBF SVM or logistic regression."""

    def __init__(self, settings: BaselineSettings | None = None) -> None:
        self.settings = settings or BaselineSettings()
        self.labels: list[str] = []
        self.best_params: dict[str, Any] = {}
        self.pooled: tuple[np.ndarray, np.ndarray] | None = None
        self.pipeline: Any = None

    def _new_pipeline(self, C: float, gamma: float | str, calibrated: bool = True) -> Any:
        from sklearn.calibration import CalibratedClassifierCV
        from sklearn.linear_model import LogisticRegression
        from sklearn.model_selection import StratifiedKFold
        from sklearn.pipeline import Pipeline
        from sklearn.preprocessing import StandardScaler
        from sklearn.svm import SVC

        s = self.settings
        if s.classifier == "svm":
            clf = SVC(
                C=C, gamma=gamma, kernel="rbf", class_weight=s.class_weight, random_state=s.seed
            )
            if calibrated:
                # Platt scaling on 5-fold predictions, then one SVM on all rows: what
                # SVC(probability=True) did before scikit-learn 1.9 deprecated it.
                clf = CalibratedClassifierCV(
                    clf,
                    method="sigmoid",
                    ensemble=False,
                    cv=StratifiedKFold(5, shuffle=True, random_state=s.seed),
                )
        else:
            clf = LogisticRegression(
                C=C, class_weight=s.class_weight, max_iter=s.max_iter, random_state=s.seed
            )
        return Pipeline([("scale", StandardScaler()), ("clf", clf)])

    def _prepare(self, X: np.ndarray, speakers: Sequence[Any] | None) -> np.ndarray:
        X = np.asarray(X, dtype=np.float64)
        if not self.settings.speaker_standardise:
            return X
        if speakers is None:
            raise ValueError("speaker_standardise is on: pass the speaker of every row")
        return per_speaker_standardise(
            X, speakers, min_clips=self.settings.min_speaker_clips, fallback=self.pooled
        )

    def fit(
        self, X: np.ndarray, y: Sequence[str], speakers: Sequence[Any] | None = None
    ) -> BaselineModel:
        """Fit on labelled rows; with ``tune`` the C/gamma grid is searched by inner
        leave-one-speaker-out cross-validation on these (training) speakers only."""
        X = np.asarray(X, dtype=np.float64)
        if not np.all(np.isfinite(X)):
            raise ValueError("features contain NaN/inf: drop the rejected clips first")
        self.labels = sorted({str(v) for v in y})
        if len(self.labels) < 2:
            raise ValueError(f"need at least two classes to fit, got {self.labels}")
        codes = np.searchsorted(self.labels, [str(v) for v in y])
        self.pooled = (X.mean(axis=0), X.std(axis=0))
        Z = self._prepare(X, speakers)
        C, gamma = float(self.settings.C), self.settings.gamma
        if self.settings.tune:
            C, gamma = self._search(Z, codes, speakers)
        self.best_params = {"C": C, "gamma": gamma}
        self.pipeline = self._new_pipeline(C, gamma).fit(Z, codes)
        return self

    def _search(
        self, Z: np.ndarray, codes: np.ndarray, speakers: Sequence[Any] | None
    ) -> tuple[float, float | str]:
        from sklearn.model_selection import GridSearchCV, LeaveOneGroupOut, StratifiedKFold

        s = self.settings
        grid: dict[str, list[Any]] = {"clf__C": [float(c) for c in s.C_grid]}
        if s.classifier == "svm":
            grid["clf__gamma"] = list(s.gamma_grid)
        pipe = self._new_pipeline(float(s.C), s.gamma, calibrated=False)
        groups = None if speakers is None else np.asarray([str(v) for v in speakers])
        if groups is not None and len(np.unique(groups)) >= 3:
            cv: Any = LeaveOneGroupOut()
        else:
            groups, cv = None, StratifiedKFold(5, shuffle=True, random_state=s.seed)
        search = GridSearchCV(pipe, grid, scoring="balanced_accuracy", cv=cv, n_jobs=1)
        with warnings.catch_warnings():
            # a held-out speaker may lack some classes; balanced accuracy then averages the
            # recalls of the classes it has, which is what we want
            warnings.filterwarnings("ignore", "y_pred contains classes not in y_true")
            search.fit(Z, codes, groups=groups)
        best = search.best_params_
        log.info("baseline inner CV: best %s (UAR %.3f)", best, search.best_score_)
        return float(best["clf__C"]), best.get("clf__gamma", s.gamma)

    def predict_proba(self, X: np.ndarray, speakers: Sequence[Any] | None = None) -> np.ndarray:
        """Class probabilities, columns in the order of ``self.labels``."""
        if self.pipeline is None:
            raise RuntimeError("BaselineModel is not fitted")
        return self.pipeline.predict_proba(self._prepare(X, speakers))

    def predict(self, X: np.ndarray, speakers: Sequence[Any] | None = None) -> np.ndarray:
        """Most probable label of every row."""
        proba = self.predict_proba(X, speakers)
        return np.asarray(self.labels, dtype=object)[proba.argmax(axis=1)]

    # --- serialisation without pickle -----------------------------------------------------

    def to_arrays(self) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        """Fitted state as (named arrays, JSON-able metadata); inverse of :meth:`from_arrays`."""
        if self.pipeline is None:
            raise RuntimeError("BaselineModel is not fitted")
        import sklearn

        arrays: dict[str, np.ndarray] = {}
        scalars: dict[str, Any] = {}

        def put(prefix: str, est: Any, attrs: Sequence[str]) -> None:
            for name in attrs:
                if hasattr(est, name):
                    value = getattr(est, name)
                    if isinstance(value, np.ndarray):
                        arrays[f"{prefix}.{name}"] = np.ascontiguousarray(value)
                    else:
                        scalars[f"{prefix}.{name}"] = _plain(value)

        put("scale", self.pipeline.named_steps["scale"], _SCALER_ATTRS)
        clf = self.pipeline.named_steps["clf"]
        if self.settings.classifier == "svm":
            put("calibrated", clf, ("classes_", "n_features_in_"))
            (pair,) = clf.calibrated_classifiers_
            put("svc", pair.estimator, _SVC_ATTRS)
            arrays["sigmoid.a"] = np.array([c.a_ for c in pair.calibrators], dtype=np.float64)
            arrays["sigmoid.b"] = np.array([c.b_ for c in pair.calibrators], dtype=np.float64)
        else:
            put("logreg", clf, _LOGREG_ATTRS)
        if self.pooled is not None:
            arrays["pooled.mean"], arrays["pooled.std"] = self.pooled
        meta = {
            "settings": asdict(self.settings),
            "labels": self.labels,
            "best_params": self.best_params,
            "scalars": scalars,
            "sklearn": sklearn.__version__,
        }
        return arrays, meta

    @classmethod
    def from_arrays(
        cls, arrays: Mapping[str, np.ndarray], meta: Mapping[str, Any]
    ) -> BaselineModel:
        """Rebuild a fitted model from :meth:`to_arrays` output.

        The SVM is rebuilt by setting scikit-learn's fitted attributes (some private), so a
        different scikit-learn version may not load it; tests/test_baseline.py checks the round
        trip on the installed one.
        """
        import sklearn

        if meta.get("sklearn") != sklearn.__version__:
            log.warning(
                "baseline model saved with scikit-learn %s, loading with %s",
                meta.get("sklearn"),
                sklearn.__version__,
            )
        model = cls(BaselineSettings(**meta["settings"]))
        model.labels = list(meta["labels"])
        model.best_params = dict(meta["best_params"])
        if "pooled.mean" in arrays:
            model.pooled = (np.asarray(arrays["pooled.mean"]), np.asarray(arrays["pooled.std"]))
        pipe = model._new_pipeline(float(model.best_params["C"]), model.best_params["gamma"])
        parts: dict[str, dict[str, Any]] = {}
        for key, value in {**meta["scalars"], **arrays}.items():
            prefix, _, name = key.partition(".")
            parts.setdefault(prefix, {})[name] = _restore(name, value)
        _set_attrs(pipe.named_steps["scale"], parts["scale"])
        clf = pipe.named_steps["clf"]
        if model.settings.classifier == "svm":
            from sklearn.calibration import _CalibratedClassifier, _SigmoidCalibration

            svc = clf.estimator
            _set_attrs(svc, parts["svc"])
            calibrators = []
            for a, b in zip(arrays["sigmoid.a"], arrays["sigmoid.b"], strict=True):
                sig = _SigmoidCalibration()
                sig.a_, sig.b_ = float(a), float(b)
                calibrators.append(sig)
            _set_attrs(clf, parts["calibrated"])
            clf.calibrated_classifiers_ = [
                _CalibratedClassifier(svc, calibrators, classes=clf.classes_, method="sigmoid")
            ]
        else:
            _set_attrs(clf, parts["logreg"])
        model.pipeline = pipe
        return model

    def save(self, path: str | Path) -> None:
        """Write the fitted model as one safetensors file (atomically)."""
        from safetensors.numpy import save_file

        arrays, meta = self.to_arrays()
        with atomic_path(path, suffix=".tmp.safetensors") as tmp:
            save_file(arrays, str(tmp), metadata={"baseline": json.dumps(meta)})

    @classmethod
    def load(cls, path: str | Path) -> BaselineModel:
        """Read a model written by :meth:`save`."""
        from safetensors import safe_open

        with safe_open(str(path), framework="numpy") as fh:
            meta = json.loads(fh.metadata()["baseline"])
            arrays = {k: fh.get_tensor(k) for k in fh.keys()}  # noqa: SIM118
        return cls.from_arrays(arrays, meta)


def _set_attrs(est: Any, values: Mapping[str, Any]) -> None:
    for name, value in values.items():
        setattr(est, name, value)


def _plain(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, tuple):
        return {"__tuple__": [_plain(v) for v in value]}
    return value


def _restore(name: str, value: Any) -> Any:
    if isinstance(value, dict) and "__tuple__" in value:
        return tuple(value["__tuple__"])
    if name == "_gamma" and isinstance(value, np.ndarray):
        return float(value)
    return value
