"""The baseline classifier: per-speaker standardisation, then an RBF SVM, logistic regression or
shrinkage LDA on a feature subset, chosen by inner leave-one-speaker-out cross-validation on the
training speakers only (several winners may be fused).

Per-speaker standardisation uses only a speaker's own features (never labels), so it is
legitimate for unseen test speakers too: it removes voice and recording differences that
otherwise dominate speaker-independent emotion recognition.

scikit-learn fits the model; what predicts is a few plain arrays taken from the fitted
estimators' public attributes (scaler mean/scale; SVM support vectors, dual coefficients,
intercepts and the Platt sigmoids of its calibration; or the linear classifiers' coefficients
and intercepts), scored here with numpy. The same arrays are what :meth:`BaselineModel.save`
writes (safetensors, no pickle), so a loaded model gives exactly the probabilities of the
model that was trained, with any scikit-learn version.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from seda.baseline import (
    CLASSIFIERS,
    BaselineSettings,
    feature_blocks,
    feature_dim,
    parse_feature_set,
)
from seda.io import atomic_path

log = logging.getLogger(__name__)

# The layout of baseline.safetensors: bump when its arrays or metadata change.
ARRAYS_FORMAT = "seda-baseline"
ARRAYS_VERSION = 3
_ROWS_PER_CHUNK = 64  # kernel rows computed at once (bounded memory for many support vectors)


# The arrays of one member (see _prefix): the scaler, then the SVM or the linear classifier.
_MEMBER_ARRAYS = (
    "scale.mean",
    "scale.scale",
    "svm.support_vectors",
    "svm.dual_coef",
    "svm.intercept",
    "svm.n_support",
    "sigmoid.a",
    "sigmoid.b",
    "linear.coef",
    "linear.intercept",
)

# ---------------------------------------------------------------------------------------------
# Speaker standardisation


def per_speaker_standardise(
    X: np.ndarray,
    speakers: Sequence[Any],
    *,
    min_clips: int = 1,
    fallback: tuple[np.ndarray, np.ndarray] | None = None,
    measured: np.ndarray | None = None,
) -> np.ndarray:
    """Z-score every feature within each speaker, using that speaker's rows only.

    Constant features (std 0) are only centred. Speakers with fewer than ``min_clips`` rows use
    the ``fallback`` (mean, std) when given. ``measured`` (a boolean mask): the rows whose
    statistics count (not an oversampling repeat of a row already counted); all rows when None.
    """
    X = np.asarray(X, dtype=np.float64)
    speakers = np.asarray([str(s) for s in speakers])
    if len(speakers) != len(X):
        raise ValueError(f"{len(X)} feature rows but {len(speakers)} speakers")
    measured = np.ones(len(X), dtype=bool) if measured is None else np.asarray(measured, bool)
    out = np.empty_like(X)
    for spk in np.unique(speakers):
        rows = speakers == spk
        stats = rows & measured
        if stats.sum() < min_clips and fallback is not None:
            mean, std = fallback
        else:
            mean, std = X[stats].mean(axis=0), X[stats].std(axis=0)
        out[rows] = (X[rows] - mean) / _safe(std)
    return out


def recorded_rows(groups: np.ndarray, augmented: np.ndarray) -> np.ndarray:
    """Mask of the rows that are recorded clips, each once: not an augmented copy, and the first
    such row of its clip (oversampling repeats a clip's row)."""
    own = np.flatnonzero(~np.asarray(augmented, bool))
    _, first = np.unique(np.asarray(groups)[own], return_index=True)
    recorded = np.zeros(len(groups), dtype=bool)
    recorded[own[first]] = True
    return recorded


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
    """LogisticRegression's (and LinearDiscriminantAnalysis') predict_proba from coef_ and
    intercept_: the logistic of the one decision value for two classes, else the softmax."""
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
# Candidates and the inner search


@dataclass(frozen=True)
class Candidate:
    """One point of the inner search: a feature subset, a classifier and its hyperparameters."""

    features: tuple[str, ...]
    classifier: str
    C: float | None = None  # svm and logreg
    gamma: float | str | None = None  # svm

    def describe(self) -> str:
        """``svm(mfcc+egemaps, C=1, gamma=scale)``."""
        params = [
            f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}"
            for k, v in (("C", self.C), ("gamma", self.gamma))
            if v is not None
        ]
        return f"{self.classifier}({'+'.join(self.features)}{''.join(', ' + p for p in params)})"


def candidates(settings: BaselineSettings) -> list[Candidate]:
    """The inner search's grid in a fixed order (ties go to the earliest): feature subsets, then
    classifiers, then C, then gamma, each in the order the settings list them."""
    subsets = [tuple(parse_feature_set(f)) for f in settings.feature_grid]
    subsets = subsets or [tuple(settings.features)]
    out = []
    for features in subsets:
        for clf in settings.classifier_grid:
            if clf == "svm":
                out += [
                    Candidate(features, clf, float(c), g)
                    for c in settings.C_grid
                    for g in settings.gamma_grid
                ]
            elif clf == "logreg":
                out += [Candidate(features, clf, float(c)) for c in settings.logreg_C_grid]
            else:
                out.append(Candidate(features, clf))
    return out


def fixed_candidate(settings: BaselineSettings) -> Candidate:
    """The one model of ``tune: false``: classifier, C and gamma of the settings, all features."""
    clf = settings.classifier
    return Candidate(
        tuple(settings.features),
        clf,
        None if clf == "lda" else float(settings.C),
        settings.gamma if clf == "svm" else None,
    )


def member_columns(
    settings: BaselineSettings, features: Sequence[str], n_features: int
) -> np.ndarray:
    """Columns of a clip's feature vector (``n_features`` wide) that the feature subset
    ``features`` uses, in order. All of ``settings.features`` is every column, whatever its width
    (any precomputed vector works then); a proper subset needs the block layout of the settings."""
    if tuple(features) == tuple(settings.features):
        return np.arange(n_features)
    if n_features != feature_dim(settings):
        raise ValueError(
            f"features are {n_features} wide, not the {feature_dim(settings)} of feature sets "
            f"{settings.features}: cannot pick the subset {'+'.join(features)}"
        )
    blocks = feature_blocks(settings)
    missing = [f for f in features if f not in blocks]
    if missing:
        raise ValueError(f"feature set(s) {missing} not among the extracted {settings.features}")
    return np.concatenate([np.arange(blocks[f].start, blocks[f].stop) for f in features])


def _new_pipeline(
    cand: Candidate,
    settings: BaselineSettings,
    n_classes: int,
    calibrated: bool = True,
    calibration_folds: int | list[tuple[np.ndarray, np.ndarray]] = 5,
) -> Any:
    """StandardScaler -> the candidate's classifier (the SVM Platt-calibrated when asked, on
    ``calibration_folds`` stratified folds, or on the given (train, test) index pairs)."""
    from sklearn.calibration import CalibratedClassifierCV
    from sklearn.discriminant_analysis import LinearDiscriminantAnalysis
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler
    from sklearn.svm import SVC

    s = settings
    clf: Any
    if cand.classifier == "svm":
        clf = SVC(
            C=cand.C,
            gamma=cand.gamma,
            kernel="rbf",
            class_weight=s.class_weight,
            random_state=s.seed,
        )
        if calibrated:
            # Platt scaling on 5-fold predictions, then one SVM on all rows: what
            # SVC(probability=True) did before scikit-learn 1.9 deprecated it.
            clf = CalibratedClassifierCV(
                clf,
                method="sigmoid",
                ensemble=False,
                cv=calibration_folds
                if isinstance(calibration_folds, list)
                else StratifiedKFold(calibration_folds, shuffle=True, random_state=s.seed),
            )
    elif cand.classifier == "logreg":
        clf = LogisticRegression(
            C=cand.C, class_weight=s.class_weight, max_iter=s.max_iter, random_state=s.seed
        )
    else:
        # Ledoit-Wolf shrinkage keeps the covariance usable with few clips per feature;
        # "balanced" becomes equal class priors (LDA has no sample weights).
        priors = np.full(n_classes, 1.0 / n_classes) if s.class_weight == "balanced" else None
        clf = LinearDiscriminantAnalysis(solver="lsqr", shrinkage="auto", priors=priors)
    return Pipeline([("scale", StandardScaler()), ("clf", clf)])


def inner_search(
    Z: np.ndarray,
    codes: np.ndarray,
    speakers: Sequence[Any] | None,
    grid: Sequence[Candidate],
    settings: BaselineSettings,
    groups: np.ndarray | None = None,
    recorded: np.ndarray | None = None,
) -> list[tuple[Candidate, float]]:
    """UAR of every candidate by cross-validation on these (training) rows only: leave one
    speaker out when there are three speakers or more, else 5-fold stratified (by clip:
    ``groups``, when rows repeat or copy a clip). The UAR is pooled over the held-out recorded
    clips (``recorded``; every row when None), like the outer evaluation's headline figure:
    augmented copies and repeats train the inner folds but are never scored. Returns the
    candidates best first (ties in grid order)."""
    from sklearn.metrics import balanced_accuracy_score
    from sklearn.model_selection import LeaveOneGroupOut

    by_speaker = None if speakers is None else np.asarray([str(v) for v in speakers])
    if by_speaker is not None and len(np.unique(by_speaker)) >= 3:
        folds = list(LeaveOneGroupOut().split(Z, codes, by_speaker))
    else:
        folds = _stratified_folds(5, codes, groups, settings.seed)
    scored_rows = np.ones(len(codes), bool) if recorded is None else recorded
    scored = []
    for cand in grid:
        cols = member_columns(settings, cand.features, Z.shape[1])
        predicted = np.empty_like(codes)
        for train, test in folds:
            if len(np.unique(codes[train])) < 2:  # nothing to learn: the one class seen
                predicted[test] = codes[train][0]
                continue
            n_classes = len(np.unique(codes[train]))  # a fold may lack a class
            pipe = _new_pipeline(cand, settings, n_classes, calibrated=False)
            pipe.fit(_take(Z, train, cols), codes[train])
            predicted[test] = pipe.predict(_take(Z, test, cols))
        score = balanced_accuracy_score(codes[scored_rows], predicted[scored_rows])
        scored.append((cand, float(score)))
        log.debug("baseline inner CV: %s UAR %.3f", cand.describe(), scored[-1][1])
    order = sorted(range(len(scored)), key=lambda i: (-scored[i][1], i))
    return [scored[i] for i in order]


def _stratified_folds(
    n: int, codes: np.ndarray, groups: np.ndarray | None, seed: int
) -> list[tuple[np.ndarray, np.ndarray]]:
    """``n`` stratified folds; all rows of a group (a clip, its copies and repeats) in one fold,
    so that no fold is scored on a copy of a clip it trained on."""
    from sklearn.model_selection import StratifiedGroupKFold, StratifiedKFold

    if groups is None or len(np.unique(groups)) == len(groups):
        return list(StratifiedKFold(n, shuffle=True, random_state=seed).split(codes, codes))
    return list(
        StratifiedGroupKFold(n, shuffle=True, random_state=seed).split(codes, codes, groups)
    )


def _take(Z: np.ndarray, rows: Any, cols: np.ndarray) -> np.ndarray:
    """``Z[rows][:, cols]`` as a C-ordered copy: BLAS takes the same path as on ``Z`` itself, so
    the fitted numbers do not depend on which columns were picked (column-indexing alone gives a
    Fortran-ordered array, and results that differ in the 12th digit)."""
    return np.ascontiguousarray(Z[rows][:, cols])


def choose(ranked: Sequence[tuple[Candidate, float]], fuse: int) -> list[tuple[Candidate, float]]:
    """The best ``fuse`` candidates, at most one per (classifier, feature subset)."""
    chosen: list[tuple[Candidate, float]] = []
    seen: set[tuple[str, tuple[str, ...]]] = set()
    for cand, score in ranked:
        key = (cand.classifier, cand.features)
        if key not in seen:
            seen.add(key)
            chosen.append((cand, score))
        if len(chosen) == fuse:
            break
    return chosen


# ---------------------------------------------------------------------------------------------
# Model


class BaselineModel:
    """Speaker standardisation (optional) -> one or more members, each a feature subset,
    StandardScaler and classifier; several members' probabilities are fused by geometric mean."""

    def __init__(self, settings: BaselineSettings | None = None) -> None:
        self.settings = settings or BaselineSettings()
        self.labels: list[str] = []
        # Per member: features, classifier, C, gamma (as searched), gamma_value (the SVM's
        # kernel width as fitted, "scale" resolved) and inner_uar (None without a search).
        self.members: list[dict[str, Any]] = []
        self.arrays: dict[str, np.ndarray] = {}
        self.n_features: int | None = None  # width of the feature vectors it was fitted on

    @property
    def best_params(self) -> dict[str, Any]:
        """What was chosen (the model card's ``best_params``)."""
        return {"members": [dict(m) for m in self.members]}

    def describe(self) -> str:
        """``svm(mfcc+logmel+egemaps, C=1, gamma=scale)``, members joined by `` + ``."""
        return " + ".join(_candidate(m).describe() for m in self.members)

    @property
    def pooled(self) -> tuple[np.ndarray, np.ndarray] | None:
        """(mean, std) of the training features: the standardisation of small speakers."""
        if "pooled.mean" not in self.arrays:
            return None
        return self.arrays["pooled.mean"], self.arrays["pooled.std"]

    def _prepare(
        self, X: np.ndarray, speakers: Sequence[Any] | None, measured: np.ndarray | None = None
    ) -> np.ndarray:
        X = np.asarray(X, dtype=np.float64)
        if self.n_features is not None and (X.ndim != 2 or X.shape[1] != self.n_features):
            raise ValueError(f"features of shape {X.shape}: the model takes {self.n_features}")
        if not self.settings.speaker_standardise:
            return X
        if speakers is None:
            raise ValueError("speaker_standardise is on: pass the speaker of every row")
        return per_speaker_standardise(
            X,
            speakers,
            min_clips=self.settings.min_speaker_clips,
            fallback=self.pooled,
            measured=measured,
        )

    def fit(
        self,
        X: np.ndarray,
        y: Sequence[str],
        speakers: Sequence[Any] | None = None,
        *,
        groups: Sequence[Any] | None = None,
        augmented: Sequence[bool] | None = None,
    ) -> BaselineModel:
        """Fit on labelled rows; with ``tune`` the classifier, its hyperparameters and the
        feature subset are searched by inner cross-validation on these (training) speakers only.

        Training rows may include augmented copies and oversampling repeats: ``groups`` names
        each row's clip (a copy or repeat shares its clip's), ``augmented`` marks the copies.
        The inner search scores the recorded clips only, each once, and a clip's rows stay in
        one calibration fold. A speaker's copies are standardised with their own statistics,
        apart from the speaker's recorded clips: like a test speaker recorded in noise, which
        is standardised with its own (noisy) statistics. Repeats count once in statistics.
        """
        X = np.asarray(X, dtype=np.float64)
        if not np.all(np.isfinite(X)):
            raise ValueError("features contain NaN/inf: drop the rejected clips first")
        self.labels = sorted({str(v) for v in y})
        if len(self.labels) < 2:
            raise ValueError(f"need at least two classes to fit, got {self.labels}")
        codes = np.searchsorted(self.labels, [str(v) for v in y])
        row_groups = np.arange(len(X)) if groups is None else np.asarray([str(g) for g in groups])
        copies = np.zeros(len(X), bool) if augmented is None else np.asarray(augmented, bool)
        if len(row_groups) != len(X) or len(copies) != len(X):
            raise ValueError(f"{len(X)} feature rows: give groups and augmented for each")
        recorded = recorded_rows(row_groups, copies)
        self.n_features = None  # the pooled statistics below are the new model's
        self.arrays = {
            "pooled.mean": X[recorded].mean(axis=0),
            "pooled.std": X[recorded].std(axis=0),
        }
        distinct = np.ones(len(X), dtype=bool)
        if not np.all(recorded):  # a repeat adds nothing to the statistics
            distinct[:] = False
            distinct[np.unique(X, axis=0, return_index=True)[1]] = True
        standardise_as = speakers  # a speaker's copies: a recording condition of its own
        if speakers is not None and copies.any():
            standardise_as = [
                f"{s}\x1fcopies" if c else str(s) for s, c in zip(speakers, copies, strict=True)
            ]
        Z = self._prepare(X, standardise_as, distinct)
        self.n_features = X.shape[1]
        chosen: list[tuple[Candidate, float | None]]
        if self.settings.tune:
            ranked = inner_search(
                Z, codes, speakers, candidates(self.settings), self.settings, row_groups, recorded
            )
            chosen = list(choose(ranked, int(self.settings.fuse)))
        else:
            chosen = [(fixed_candidate(self.settings), None)]
        # Platt scaling wants every class in every calibration fold: fewer folds for rare classes.
        clips_per_class = np.bincount(codes[recorded], minlength=len(self.labels))
        smallest = int(clips_per_class.min())
        if smallest < 2:
            rare = [self.labels[c] for c in np.flatnonzero(clips_per_class < 2)]
            raise ValueError(f"label(s) {rare} have a single training clip: too few to learn")
        folds: int | list[tuple[np.ndarray, np.ndarray]] = min(5, smallest)
        if not np.all(recorded):  # copies or repeats: a clip's rows in one calibration fold
            folds = _stratified_folds(folds, codes, row_groups, self.settings.seed)
        self.members = []
        for i, (cand, score) in enumerate(chosen):
            cols = member_columns(self.settings, cand.features, X.shape[1])
            Zm = _take(Z, slice(None), cols)
            pipeline = _new_pipeline(
                cand, self.settings, len(self.labels), calibration_folds=folds
            ).fit(Zm, codes)
            gamma_value = self._keep_arrays(_prefix(i), cand, pipeline, Zm)
            self.members.append(
                {
                    "features": list(cand.features),
                    "classifier": cand.classifier,
                    "C": cand.C,
                    "gamma": cand.gamma,
                    "gamma_value": gamma_value,
                    "inner_uar": None if score is None else round(score, 6),
                }
            )
        log.info("baseline: %s", self.describe())
        return self

    def _keep_arrays(self, prefix: str, cand: Candidate, pipeline: Any, Z: np.ndarray) -> Any:
        """Copy what prediction needs out of the fitted pipeline (public attributes only);
        returns the SVM's resolved kernel width (None for the linear classifiers)."""
        scaler = pipeline.named_steps["scale"]
        arrays = {"scale.mean": scaler.mean_, "scale.scale": scaler.scale_}
        clf = pipeline.named_steps["clf"]
        gamma_value = None
        if cand.classifier == "svm":
            (calibrated,) = clf.calibrated_classifiers_
            svc = calibrated.estimator
            arrays["svm.support_vectors"] = svc.support_vectors_
            arrays["svm.dual_coef"] = svc.dual_coef_
            arrays["svm.intercept"] = svc.intercept_
            arrays["svm.n_support"] = svc.n_support_.astype(np.int64)
            arrays["sigmoid.a"] = np.array([c.a_ for c in calibrated.calibrators], np.float64)
            arrays["sigmoid.b"] = np.array([c.b_ for c in calibrated.calibrators], np.float64)
            gamma_value = _resolved_gamma(svc.gamma, scaler.transform(Z))
        else:
            arrays["linear.coef"] = clf.coef_
            arrays["linear.intercept"] = np.asarray(clf.intercept_, dtype=np.float64)
        self.arrays.update({prefix + k: np.ascontiguousarray(v) for k, v in arrays.items()})
        return gamma_value

    def predict_proba(self, X: np.ndarray, speakers: Sequence[Any] | None = None) -> np.ndarray:
        """Class probabilities, columns in the order of ``self.labels``."""
        if not self.members:
            raise RuntimeError("BaselineModel is not fitted")
        Z = self._prepare(X, speakers)
        probas = [self._member_proba(i, m, Z) for i, m in enumerate(self.members)]
        if len(probas) == 1:
            return probas[0]
        # geometric mean of the members' probabilities, renormalised
        logp = np.mean([np.log(np.clip(p, 1e-12, 1.0)) for p in probas], axis=0)
        fused = np.exp(logp - logp.max(axis=1)[:, None])
        return fused / fused.sum(axis=1)[:, None]

    def _member_proba(self, i: int, member: Mapping[str, Any], Z: np.ndarray) -> np.ndarray:
        p = _prefix(i)
        a = {
            k[len(p) :]: v
            for k, v in self.arrays.items()
            if k.startswith(p) and k[len(p) :] in _MEMBER_ARRAYS
        }
        cols = member_columns(self.settings, member["features"], Z.shape[1])
        X = (_take(Z, slice(None), cols) - a["scale.mean"]) / a["scale.scale"]
        if member["classifier"] == "svm":
            decision = _svm_decision(X, a, float(member["gamma_value"]))
            return _platt(decision, a["sigmoid.a"], a["sigmoid.b"])
        return _logistic(X, a["linear.coef"], a["linear.intercept"])

    def predict(self, X: np.ndarray, speakers: Sequence[Any] | None = None) -> np.ndarray:
        """Most probable label of every row."""
        proba = self.predict_proba(X, speakers)
        return np.asarray(self.labels, dtype=object)[proba.argmax(axis=1)]

    # --- serialisation without pickle -----------------------------------------------------

    def save(self, path: str | Path) -> None:
        """Write the fitted model as one safetensors file (atomically): the arrays, plus the
        settings, labels and members as JSON in its metadata."""
        from safetensors.numpy import save_file

        if not self.members:
            raise RuntimeError("BaselineModel is not fitted")
        meta = {
            "format": ARRAYS_FORMAT,
            "version": ARRAYS_VERSION,
            "settings": dataclasses.asdict(self.settings),
            "labels": self.labels,
            "members": self.members,
            "n_features": self.n_features,
        }
        with atomic_path(path, suffix=".tmp.safetensors") as tmp:
            save_file(dict(self.arrays), str(tmp), metadata={"baseline": json.dumps(meta)})

    @classmethod
    def load(cls, path: str | Path) -> BaselineModel:
        """Read a model written by :meth:`save` (ValueError/KeyError when it is not one, or when
        its arrays do not fit together)."""
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
        model.members = [dict(m) for m in meta["members"]]
        model.n_features = int(meta["n_features"])
        if not model.members:
            raise ValueError("the model has no members")
        model.arrays = arrays
        for key, shape in model.expected_shapes().items():
            if key not in arrays:
                raise ValueError(f"array {key} missing")
            if tuple(arrays[key].shape) != shape:
                raise ValueError(
                    f"array {key} has shape {tuple(arrays[key].shape)}, which does not fit "
                    f"{len(model.labels)} labels and the member's features (want {shape})"
                )
        return model

    def expected_shapes(self) -> dict[str, tuple[int, ...]]:
        """The shape every array must have, from the labels, settings and members (the SVMs'
        support-vector counts taken from their ``n_support`` arrays)."""
        k = len(self.labels)
        d = int(self.n_features or 0)
        want: dict[str, tuple[int, ...]] = {"pooled.mean": (d,), "pooled.std": (d,)}
        for i, member in enumerate(self.members):
            p = _prefix(i)
            if member.get("classifier") not in CLASSIFIERS:
                raise ValueError(f"member {i}: unknown classifier {member.get('classifier')!r}")
            dm = len(member_columns(self.settings, member["features"], d))
            want |= {p + "scale.mean": (dm,), p + "scale.scale": (dm,)}
            if member["classifier"] == "svm":
                if member.get("gamma_value") is None:
                    raise ValueError(f"member {i}: the SVM's gamma is missing")
                counts = self.arrays.get(p + "svm.n_support", np.zeros(0, np.int64))
                n_sv = int(counts.sum()) if counts.dtype.kind in "iu" else -1
                platt = 1 if k == 2 else k
                want |= {
                    p + "svm.n_support": (k,),
                    p + "svm.support_vectors": (n_sv, dm),
                    p + "svm.dual_coef": (k - 1, n_sv),
                    p + "svm.intercept": (k * (k - 1) // 2,),
                    p + "sigmoid.a": (platt,),
                    p + "sigmoid.b": (platt,),
                }
            else:
                rows = 1 if k == 2 else k
                want |= {p + "linear.coef": (rows, dm), p + "linear.intercept": (rows,)}
        return want


def _prefix(i: int) -> str:
    """Array-name prefix of member ``i``: none for the first (a single model's arrays read
    ``scale.mean``, ``svm.support_vectors``, ...), ``m1.``, ``m2.``, ... for the fused others."""
    return f"m{i}." if i else ""


def _candidate(member: Mapping[str, Any]) -> Candidate:
    return Candidate(
        tuple(member["features"]), member["classifier"], member.get("C"), member.get("gamma")
    )


def _resolved_gamma(gamma: float | str, X: np.ndarray) -> float:
    """The kernel width SVC used for ``gamma`` on its training input ``X`` (the documented
    rules of 'scale' and 'auto')."""
    if gamma == "scale":
        var = X.var()
        return float(1.0 / (X.shape[1] * var)) if var != 0 else 1.0
    if gamma == "auto":
        return 1.0 / X.shape[1]
    return float(gamma)
