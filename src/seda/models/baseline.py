"""The baseline classifier: per-speaker standardisation, then an RBF SVM or logistic regression.

Per-speaker standardisation uses only a speaker's own features (never labels), so it is
legitimate for unseen test speakers too: it removes voice and recording differences that
otherwise dominate speaker-independent emotion recognition.

scikit-learn fits the model; what predicts is a few plain arrays taken from the fitted
estimators' public attributes (scaler mean/scale; SVM support vectors, dual coefficients,
intercepts and the Platt sigmoids of its calibration; or the logistic regression's
coefficients), scored here with numpy. The same arrays are what :meth:`BaselineModel.save`
writes (safetensors, no pickle), so a loaded model gives exactly the probabilities of the
model that was trained, with any scikit-learn version.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from seda.baseline import BaselineSettings
from seda.io import atomic_path

log = logging.getLogger(__name__)

# The layout of baseline.safetensors: bump when its arrays or metadata change.
ARRAYS_FORMAT = "seda-baseline"
ARRAYS_VERSION = 2
_ROWS_PER_CHUNK = 64  # kernel rows computed at once (bounded memory for many support vectors)


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
# Scoring from plain arrays


def _rbf_kernel(X: np.ndarray, support: np.ndarray, gamma: float) -> np.ndarray:
    """exp(-gamma * |x - s|^2) of every row against every support vector."""
    out = np.empty((len(X), len(support)))
    for s in range(0, len(X), _ROWS_PER_CHUNK):
        diff = X[s : s + _ROWS_PER_CHUNK, None, :] - support[None, :, :]
        out[s : s + _ROWS_PER_CHUNK] = np.exp(-gamma * (diff * diff).sum(axis=2))
    return out


def _svm_decision(X: np.ndarray, a: Mapping[str, np.ndarray], gamma: float) -> np.ndarray:
    """SVC.decision_function from its public attributes: (n,) for two classes, else (n, k) in
    scikit-learn's one-vs-rest shape (votes of the one-vs-one machines plus their confidence)."""
    kernel = _rbf_kernel(X, a["svm.support_vectors"], gamma)
    coef, intercept = a["svm.dual_coef"], a["svm.intercept"]
    n_support = a["svm.n_support"].astype(np.int64)
    k = len(n_support)
    if k == 2:
        return kernel @ coef[0] + intercept[0]
    start = np.concatenate([[0], np.cumsum(n_support)])
    ovo = np.empty((len(X), k * (k - 1) // 2))
    p = 0
    for i in range(k):
        for j in range(i + 1, k):
            si, sj = slice(start[i], start[i + 1]), slice(start[j], start[j + 1])
            ovo[:, p] = kernel[:, si] @ coef[j - 1, si] + kernel[:, sj] @ coef[i, sj] + intercept[p]
            p += 1
    # sklearn.utils.multiclass._ovr_decision_function(ovo < 0, -ovo, k), spelled out
    votes = np.zeros((len(X), k))
    confidence = np.zeros((len(X), k))
    p = 0
    for i in range(k):
        for j in range(i + 1, k):
            confidence[:, i] += ovo[:, p]
            confidence[:, j] -= ovo[:, p]
            votes[ovo[:, p] >= 0, i] += 1
            votes[ovo[:, p] < 0, j] += 1
            p += 1
    return votes + confidence / (3 * (np.abs(confidence) + 1))


def _platt(decision: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """CalibratedClassifierCV(method="sigmoid") probabilities from the decision values."""
    from scipy.special import expit

    if decision.ndim == 1:  # two classes: one sigmoid for the second
        positive = expit(-(float(a[0]) * decision + float(b[0])))
        proba = np.stack([1.0 - positive, positive], axis=1)
    else:
        proba = np.zeros_like(decision)
        for c in range(decision.shape[1]):
            proba[:, c] = expit(-(float(a[c]) * decision[:, c] + float(b[c])))
        total = proba.sum(axis=1)[:, None]
        uniform = np.full_like(proba, 1 / proba.shape[1])
        proba = np.divide(proba, total, out=uniform, where=total != 0)
    proba[(proba > 1.0) & (proba <= 1.0 + 1e-5)] = 1.0
    return proba


def _logistic(X: np.ndarray, coef: np.ndarray, intercept: np.ndarray) -> np.ndarray:
    """LogisticRegression.predict_proba from coef_ and intercept_."""
    from scipy.special import expit

    scores = X @ coef.T + intercept
    if scores.shape[1] == 1:
        positive = expit(scores[:, 0])
        return np.stack([1.0 - positive, positive], axis=1)
    scores = scores - scores.max(axis=1)[:, None]
    np.exp(scores, out=scores)
    scores /= scores.sum(axis=1)[:, None]
    return scores


# ---------------------------------------------------------------------------------------------
# Model


class BaselineModel:
    """Speaker standardisation (optional) -> StandardScaler -> RBF SVM or logistic regression."""

    def __init__(self, settings: BaselineSettings | None = None) -> None:
        self.settings = settings or BaselineSettings()
        self.labels: list[str] = []
        self.best_params: dict[str, Any] = {}
        self.gamma: float | None = None  # the SVM's kernel width as fitted ("scale" resolved)
        self.arrays: dict[str, np.ndarray] = {}

    @property
    def pooled(self) -> tuple[np.ndarray, np.ndarray] | None:
        """(mean, std) of the training features: the standardisation of small speakers."""
        if "pooled.mean" not in self.arrays:
            return None
        return self.arrays["pooled.mean"], self.arrays["pooled.std"]

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
        self.arrays = {"pooled.mean": X.mean(axis=0), "pooled.std": X.std(axis=0)}
        Z = self._prepare(X, speakers)
        C, gamma = float(self.settings.C), self.settings.gamma
        if self.settings.tune:
            C, gamma = self._search(Z, codes, speakers)
        self.best_params = {"C": C, "gamma": gamma}
        pipeline = self._new_pipeline(C, gamma).fit(Z, codes)
        self._keep_arrays(pipeline, Z)
        return self

    def _keep_arrays(self, pipeline: Any, Z: np.ndarray) -> None:
        """Copy what prediction needs out of the fitted pipeline (public attributes only)."""
        scaler = pipeline.named_steps["scale"]
        arrays = {"scale.mean": scaler.mean_, "scale.scale": scaler.scale_}
        clf = pipeline.named_steps["clf"]
        if self.settings.classifier == "svm":
            (calibrated,) = clf.calibrated_classifiers_
            svc = calibrated.estimator
            arrays["svm.support_vectors"] = svc.support_vectors_
            arrays["svm.dual_coef"] = svc.dual_coef_
            arrays["svm.intercept"] = svc.intercept_
            arrays["svm.n_support"] = svc.n_support_.astype(np.int64)
            arrays["sigmoid.a"] = np.array([c.a_ for c in calibrated.calibrators], np.float64)
            arrays["sigmoid.b"] = np.array([c.b_ for c in calibrated.calibrators], np.float64)
            self.gamma = _resolved_gamma(svc.gamma, scaler.transform(Z))
        else:
            arrays["logreg.coef"] = clf.coef_
            arrays["logreg.intercept"] = clf.intercept_
        self.arrays.update({k: np.ascontiguousarray(v) for k, v in arrays.items()})

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
        if "scale.mean" not in self.arrays:
            raise RuntimeError("BaselineModel is not fitted")
        a = self.arrays
        X = (self._prepare(X, speakers) - a["scale.mean"]) / a["scale.scale"]
        if self.settings.classifier == "svm":
            assert self.gamma is not None
            return _platt(_svm_decision(X, a, self.gamma), a["sigmoid.a"], a["sigmoid.b"])
        return _logistic(X, a["logreg.coef"], a["logreg.intercept"])

    def predict(self, X: np.ndarray, speakers: Sequence[Any] | None = None) -> np.ndarray:
        """Most probable label of every row."""
        proba = self.predict_proba(X, speakers)
        return np.asarray(self.labels, dtype=object)[proba.argmax(axis=1)]

    # --- serialisation without pickle -----------------------------------------------------

    def save(self, path: str | Path) -> None:
        """Write the fitted model as one safetensors file (atomically): the arrays, plus the
        settings, labels and scalars as JSON in its metadata."""
        from safetensors.numpy import save_file

        if "scale.mean" not in self.arrays:
            raise RuntimeError("BaselineModel is not fitted")
        meta = {
            "format": ARRAYS_FORMAT,
            "version": ARRAYS_VERSION,
            "settings": dataclasses.asdict(self.settings),
            "labels": self.labels,
            "best_params": self.best_params,
            "gamma": self.gamma,
        }
        with atomic_path(path, suffix=".tmp.safetensors") as tmp:
            save_file(dict(self.arrays), str(tmp), metadata={"baseline": json.dumps(meta)})

    @classmethod
    def load(cls, path: str | Path) -> BaselineModel:
        """Read a model written by :meth:`save` (ValueError/KeyError when it is not one)."""
        from safetensors import safe_open

        with safe_open(str(path), framework="numpy") as fh:
            meta = json.loads((fh.metadata() or {}).get("baseline") or "{}")
            arrays = {k: fh.get_tensor(k) for k in fh.keys()}  # noqa: SIM118
        if (meta.get("format"), meta.get("version")) != (ARRAYS_FORMAT, ARRAYS_VERSION):
            raise ValueError(
                f"not a {ARRAYS_FORMAT} version {ARRAYS_VERSION} file (re-run the train stage)"
            )
        model = cls(BaselineSettings(**meta["settings"]))
        model.labels = [str(v) for v in meta["labels"]]
        model.best_params = dict(meta["best_params"])
        model.gamma = None if meta["gamma"] is None else float(meta["gamma"])
        need = ["scale.mean", "scale.scale"]
        if model.settings.classifier == "svm":
            need += ["svm.support_vectors", "svm.dual_coef", "svm.intercept", "svm.n_support"]
            need += ["sigmoid.a", "sigmoid.b"]
            if model.gamma is None:
                raise ValueError("the SVM's gamma is missing")
        else:
            need += ["logreg.coef", "logreg.intercept"]
        missing = [k for k in need if k not in arrays]
        if missing:
            raise ValueError(f"arrays {', '.join(missing)} missing")
        model.arrays = arrays
        return model


def _resolved_gamma(gamma: float | str, X: np.ndarray) -> float:
    """The kernel width SVC used for ``gamma`` on its training input ``X`` (the documented
    rules of 'scale' and 'auto')."""
    if gamma == "scale":
        var = X.var()
        return float(1.0 / (X.shape[1] * var)) if var != 0 else 1.0
    if gamma == "auto":
        return 1.0 / X.shape[1]
    return float(gamma)
