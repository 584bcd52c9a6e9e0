"""Scratch exploration (issue 10): can an honest change lift the baseline's TurEV-DB LOSO pooled
UAR to 0.62? Each family of candidates is scored by an inner LOSO over the five training
speakers of every outer fold; the family's figure is the outer result of the candidate the inner
search picked (never the held-out speaker). Uses the cached feature blocks of baseline_loso.py.

    OMP_NUM_THREADS=1 taskset -c 1 python benchmarks/explore_baseline.py FAMILY [...]

FAMILY: norm, zoo, extract (then feats), aug, selftrain, st2, augst, scorenorm. SVM scores
here are the SVC's decision values (no Platt scaling), so the default gives 0.567, not the
pipeline's 0.565.
Measured 2026-11-28, one core; pooled UAR, fold mean±SD, folds 1157 1234 1358 1984 6783 7895:

    norm   z-score (the pipeline's), C by inner        0.567 0.587±0.093 .67 .52 .66 .59 .43 .64
    norm   rank-gauss per speaker, C by inner          0.579 0.607±0.123 .76 .52 .71 .58 .42 .64
    norm   z then L2                                   0.572 0.596±0.107 .71 .51 .67 .59 .43 .66
    norm   z clipped to +-3                            0.586 0.606±0.109 .71 .52 .71 .61 .44 .66
    norm   median/IQR                                  0.562 0.584±0.103 .65 .53 .69 .58 .41 .64
    zoo    best of 16 (svm, logreg, lda, ridge, knn, extra-trees, per-block), inner
                                                       0.563 0.597±0.135 .80 .47 .66 .58 .43 .64
    zoo    greedy ensemble of the 16, inner            0.569 0.602±0.139 .79 .49 .67 .58 .41 .67
    zoo    all 16 averaged                             0.575 0.599±0.096 .70 .53 .68 .59 .45 .64
    zoo    svmavg: SVMs at C 0.1/0.3/1 averaged        0.581 0.610±0.121 .77 .52 .70 .59 .43 .64
    feats  MFCC deltas/percentiles + eGeMAPS, C inner  0.551 0.582±0.116 .72 .48 .64 .60 .41 .64
    feats  default + openSMILE emobase, C inner        0.542 0.569±0.108 .69 .49 .59 .57 .41 .67
    feats  feature set and C by inner                  0.555 0.577±0.103 .67 .47 .66 .59 .43 .64
    aug    youtube + oversample, C inner               0.572 0.620±0.139 .86 .48 .66 .61 .48 .62
    selftrain  svmavg + self-training on the test speaker's most confident clips (fraction
           0 / 0.3 / 0.6 by inner LOSO; 0.6 in every fold)
                                                       0.606 0.633±0.129 .79 .53 .75 .61 .45 .66
    st2    fraction grid widened after seeing selftrain's result (a mild meta-leak)
                                                       0.609 0.640±0.140 .83 .53 .75 .61 .45 .67

    scorenorm  each class's SVM score centred (or z-scored) over the test speaker's clips,
           label-free; C 0.3 / 1 / 3 fixed: none 0.582 / 0.574 / 0.567, centred 0.582 /
           0.574 / 0.565, z 0.581 / 0.574 / 0.566; inner LOSO means move by under 0.01
           (per-speaker feature standardisation already balances the classes' scores)

None reaches 0.62. Self-training (transductive: it refits on the test speaker's own
pseudo-labelled clips) is the only gain beyond noise-sized ones, and it would make a clip's
prediction depend on the other clips of its speaker, which ``seda predict``'s consistency goal
rules out unless the caller names the speakers; it is not in seda.
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import os
import sys
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from scipy.special import softmax
from scipy.stats import norm, rankdata
from sklearn.metrics import balanced_accuracy_score, recall_score

sys.path.insert(0, str(Path(__file__).parent))
from baseline_loso import CACHE, DATA, cached_block, list_corpus

from seda.baseline import BaselineSettings

warnings.filterwarnings("ignore")


# ---------------------------------------------------------------- per-speaker normalisation
def norm_speaker(X: np.ndarray, speakers: np.ndarray, how: str) -> np.ndarray:
    """Label-free, per speaker (each speaker's own rows only)."""
    out = np.empty_like(X, dtype=np.float64)
    for spk in np.unique(speakers):
        r = speakers == spk
        Xs = X[r]
        if how in ("z", "zl2", "zclip"):
            sd = Xs.std(0)
            Z = (Xs - Xs.mean(0)) / np.where(sd > 1e-12, sd, 1)
            if how == "zl2":
                Z = Z / np.linalg.norm(Z, axis=1, keepdims=True) * np.sqrt(Z.shape[1])
            if how == "zclip":
                Z = np.clip(Z, -3, 3)
        elif how == "rank":
            n = len(Xs)
            Z = norm.ppf((rankdata(Xs, axis=0) - 0.5) / n)
        elif how == "robust":
            med = np.median(Xs, 0)
            iqr = np.subtract(*np.percentile(Xs, [75, 25], axis=0))
            Z = (Xs - med) / np.where(iqr > 1e-12, iqr / 1.349, 1)
            Z = np.clip(Z, -5, 5)
        else:
            raise ValueError(how)
        out[r] = Z
    return out


# ---------------------------------------------------------------- classifiers
def make(kind: str, **kw: Any) -> Any:
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    if kind == "svm":
        from sklearn.svm import SVC

        return make_pipeline(
            StandardScaler(),
            SVC(C=kw.get("C", 1.0), gamma=kw.get("gamma", "scale"), class_weight="balanced"),
        )
    if kind == "linsvm":
        from sklearn.svm import LinearSVC

        return make_pipeline(StandardScaler(), LinearSVC(C=kw["C"], class_weight="balanced"))
    if kind == "logreg":
        from sklearn.linear_model import LogisticRegression

        return make_pipeline(
            StandardScaler(),
            LogisticRegression(C=kw["C"], class_weight="balanced", max_iter=3000),
        )
    if kind == "ridge":
        from sklearn.linear_model import RidgeClassifier

        return make_pipeline(
            StandardScaler(), RidgeClassifier(alpha=kw["alpha"], class_weight="balanced")
        )
    if kind == "lda":
        from sklearn.discriminant_analysis import LinearDiscriminantAnalysis

        return make_pipeline(
            StandardScaler(),
            LinearDiscriminantAnalysis(solver="lsqr", shrinkage=kw.get("shrinkage", "auto")),
        )
    if kind == "knn":
        from sklearn.neighbors import KNeighborsClassifier

        return make_pipeline(StandardScaler(), KNeighborsClassifier(kw["k"], weights="distance"))
    if kind == "et":
        from sklearn.ensemble import ExtraTreesClassifier

        return ExtraTreesClassifier(
            n_estimators=kw.get("n", 500),
            max_features=kw.get("mf", "sqrt"),
            class_weight="balanced",
            random_state=0,
            n_jobs=1,
        )
    if kind == "rf":
        from sklearn.ensemble import RandomForestClassifier

        return RandomForestClassifier(
            n_estimators=kw.get("n", 500), class_weight="balanced", random_state=0, n_jobs=1
        )
    if kind == "hgb":
        from sklearn.ensemble import HistGradientBoostingClassifier

        return HistGradientBoostingClassifier(
            learning_rate=kw.get("lr", 0.05),
            max_iter=kw.get("it", 300),
            max_leaf_nodes=kw.get("leaves", 15),
            l2_regularization=1.0,
            class_weight="balanced",
            random_state=0,
        )
    if kind == "mlp":
        from sklearn.neural_network import MLPClassifier

        return make_pipeline(
            StandardScaler(),
            MLPClassifier(
                hidden_layer_sizes=(kw.get("h", 256),),
                alpha=kw["alpha"],
                max_iter=300,
                early_stopping=False,
                random_state=kw.get("seed", 0),
            ),
        )
    raise ValueError(kind)


def scores(model: Any, X: np.ndarray, n_classes: int) -> np.ndarray:
    """A (n, k) score whose argmax is the prediction (probabilities when available; log-softmax
    of decision values otherwise) - used for soft voting too."""
    if hasattr(model, "predict_proba") and not _is_svm(model):
        return np.log(np.clip(model.predict_proba(X), 1e-9, 1))
    d = model.decision_function(X)
    if d.ndim == 1:
        d = np.stack([-d, d], 1)
    return np.log(softmax(d, axis=1))


def _is_svm(model: Any) -> bool:
    last = model[-1] if hasattr(model, "steps") else model
    return type(last).__name__ in ("SVC",)


# ---------------------------------------------------------------- candidates / evaluation
@dataclasses.dataclass
class Cand:
    name: str
    cols: np.ndarray | None  # columns of the variant matrix; None: all
    kind: str
    kw: dict[str, Any]
    weight: np.ndarray | None = None


def fit_score(c: Cand, Xtr, ytr, Xte, k) -> np.ndarray:
    if c.kind == "svmavg":  # mean log-score of SVMs over a C grid (no choice among them)
        return np.mean(
            [fit_score(Cand("", c.cols, "svm", {"C": C}), Xtr, ytr, Xte, k) for C in c.kw["Cs"]], 0
        )
    if c.kind == "selftrain":  # transductive: refit with the most confident test rows
        base = c.kw["base"]
        s0 = fit_score(base, Xtr, ytr, Xte, k)
        if c.kw["frac"] == 0:
            return s0
        srt = np.sort(s0, 1)
        margin = srt[:, -1] - srt[:, -2]
        take = np.argsort(-margin)[: int(c.kw["frac"] * len(Xte))]
        X2 = np.concatenate([Xtr, Xte[take]])
        y2 = np.concatenate([ytr, s0[take].argmax(1)])
        s1 = fit_score(base, X2, y2, Xte, k)
        if c.kw.get("rounds", 1) > 1:  # once more, pseudo-labels from the refitted model
            srt = np.sort(s1, 1)
            take = np.argsort(-(srt[:, -1] - srt[:, -2]))[: int(c.kw["frac"] * len(Xte))]
            X2 = np.concatenate([Xtr, Xte[take]])
            y2 = np.concatenate([ytr, s1[take].argmax(1)])
            s1 = fit_score(base, X2, y2, Xte, k)
        return s1
    cols = slice(None) if c.cols is None else c.cols
    m = make(c.kind, **c.kw)
    m.fit(Xtr[:, cols], ytr)
    s = np.full((len(Xte), k), -30.0)
    present = np.unique(ytr)
    s[:, present] = scores(m, Xte[:, cols], len(present))
    return s


def run_family(
    X: np.ndarray,
    y: np.ndarray,
    spk: np.ndarray,
    cands: list[Cand],
    X_aug: np.ndarray | None = None,
    aug_base: np.ndarray | None = None,
    oversample: bool = False,
    X_test: np.ndarray | None = None,
) -> dict[str, Any]:
    """Outer LOSO; per fold: inner LOSO OOF scores of every candidate (training speakers
    only) and outer test scores. Returns those arrays for later selection/ensembling."""
    k = int(y.max()) + 1
    speakers = np.unique(spk)
    n = len(y)
    inner = {}  # outer spk -> (len(train), n_cand, k)
    outer = np.zeros((n, len(cands), k))
    for s in speakers:
        test = spk == s
        tr = np.flatnonzero(~test)
        oof = np.zeros((len(tr), len(cands), k))
        for s2 in np.unique(spk[tr]):
            itest = tr[spk[tr] == s2]
            itrain = tr[spk[tr] != s2]
            Xi, yi = rows(X, y, itrain, X_aug, aug_base, oversample)
            for j, c in enumerate(cands):
                oof[spk[tr] == s2, j] = fit_score(c, Xi, yi, X[itest], k)
        inner[s] = oof
        print(f"    outer fold {s} inner done", flush=True)
        Xo, yo = rows(X, y, tr, X_aug, aug_base, oversample)
        for j, c in enumerate(cands):
            outer[test, j] = fit_score(c, Xo, yo, (X if X_test is None else X_test)[test], k)
    return {"inner": inner, "outer": outer, "names": [c.name for c in cands]}


def rows(X, y, idx, X_aug, aug_base, oversample):
    """Training rows: the files idx plus copies made from them (and oversampling)."""
    Xs, ys = [X[idx]], [y[idx]]
    if X_aug is not None:
        keep = np.isin(aug_base, idx)
        Xs.append(X_aug[keep])
        ys.append(y[aug_base[keep]])
    Xr, yr = np.concatenate(Xs), np.concatenate(ys)
    if oversample:
        counts = np.bincount(yr)
        rng = np.random.default_rng(0)
        extra = []
        for c in np.flatnonzero(counts):
            where = np.flatnonzero(yr == c)
            extra.append(rng.choice(where, counts.max() - counts[c], replace=True))
        e = np.concatenate(extra)
        Xr, yr = np.concatenate([Xr, Xr[e]]), np.concatenate([yr, yr[e]])
    return Xr, yr


def report(name: str, y: np.ndarray, spk: np.ndarray, pred: np.ndarray, chose: str = "") -> float:
    pooled = recall_score(y, pred, average="macro")
    folds = []
    for s in np.unique(spk):
        t = spk == s
        folds.append(recall_score(y[t], pred[t], average="macro", labels=np.unique(y[t])))
    f = np.array(folds)
    print(
        f"{name:44s} {pooled:.3f}  {f.mean():.3f}±{f.std(ddof=1):.3f}  "
        + " ".join(f"{v:.2f}" for v in f)
        + (f"  [{chose}]" if chose else ""),
        flush=True,
    )
    return pooled


def inner_uar(y_tr, spk_tr, oof_j) -> float:
    return balanced_accuracy_score(y_tr, oof_j.argmax(1))


def select(res, y, spk, family: list[int] | None = None) -> tuple[np.ndarray, str]:
    """Per outer fold the candidate of best inner pooled UAR."""
    pred = np.empty_like(y)
    chose = []
    for s, oof in res["inner"].items():
        tr = spk != s
        fam = family if family is not None else list(range(oof.shape[1]))
        u = [inner_uar(y[tr], spk[tr], oof[:, j]) for j in fam]
        j = fam[int(np.argmax(u))]
        pred[spk == s] = res["outer"][spk == s, j].argmax(1)
        chose.append(res["names"][j])
    return pred, ",".join(chose)


def greedy_ensemble(res, y, spk, family: list[int] | None = None, rounds: int = 10):
    """Caruana forward selection (with replacement) of candidates by inner OOF UAR of the
    averaged log-scores, per outer fold; then the same average on the outer test speaker."""
    pred = np.empty_like(y)
    chose = []
    for s, oof in res["inner"].items():
        tr = spk != s
        fam = family if family is not None else list(range(oof.shape[1]))
        picked: list[int] = []
        best = -1.0
        total = np.zeros(oof.shape[::2])
        for _ in range(rounds):
            trial = [
                (inner_uar(y[tr], spk[tr], (total + oof[:, j]) / (len(picked) + 1)), j) for j in fam
            ]
            u, j = max(trial)
            if u <= best and picked:
                break
            best = u
            picked.append(j)
            total = total + oof[:, j]
        pred[spk == s] = res["outer"][spk == s][:, picked].mean(1).argmax(1)
        chose.append("+".join(str(j) for j in picked))
    return pred, ";".join(chose)


# ---------------------------------------------------------------- data
def load() -> tuple[dict[str, np.ndarray], np.ndarray, np.ndarray, list[Path]]:
    paths, labels, speakers = list_corpus(DATA)
    st = BaselineSettings()
    blocks = {b: cached_block(paths, b, st, 1, CACHE) for b in ["mfcc", "logmel", "egemaps"]}
    classes = sorted(set(labels))
    y = np.searchsorted(classes, labels)
    return blocks, y, speakers, paths


FAMILIES: dict[str, Callable[..., Any]] = {}


def exp_augst(X, y, spk, blocks):
    """youtube copies + oversampling, then the self-training SVM average; frac by inner LOSO."""
    Xa, base_rows = load_aug()
    base = Cand("svmavg", None, "svmavg", {"Cs": (0.1, 0.3, 1.0)})
    fracs = [float(f) for f in os.environ.get("FRACS", "0,0.6").split(",")]
    cands = [
        Cand(f"aug svmavg selftrain frac={f}", None, "selftrain", {"base": base, "frac": f})
        for f in fracs
    ]
    res = aug_family(X, Xa, base_rows, y, spk, cands)
    for j, c in enumerate(cands):
        report(f"{c.name} (fixed)", y, spk, res["outer"][:, j].argmax(1))
    pred, chose = select(res, y, spk)
    report("aug svmavg selftrain frac inner-chosen", y, spk, pred, chose)


def speaker_centred(S: np.ndarray, groups: np.ndarray, how: str) -> np.ndarray:
    """Scores with each class column centred (``center``) or z-scored (``z``) per group."""
    S = S.copy()
    for g in np.unique(groups):
        r = groups == g
        if how in ("center", "z"):
            S[r] -= S[r].mean(0)
        if how == "z":
            S[r] /= S[r].std(0) + 1e-9
    return S


def exp_scorenorm(X, y, spk, blocks):
    """Per-speaker score normalisation of the z-scored SVM at fixed C; inner LOSO means too."""
    Z = norm_speaker(X, spk, "z")
    cands = [Cand(f"svm C={c}", None, "svm", {"C": c}) for c in (0.3, 1.0, 3.0)]
    res = run_family(Z, y, spk, cands)
    for j, c in enumerate(cands):
        for how in ("none", "center", "z"):
            outer = speaker_centred(res["outer"][:, j], spk, how)
            report(f"{c.name} {how}", y, spk, outer.argmax(1))
            inner = []
            for s, oof in res["inner"].items():
                tr = spk != s
                centred = speaker_centred(oof[:, j], spk[tr], how)
                inner.append(balanced_accuracy_score(y[tr], centred.argmax(1)))
            print(f"    inner LOSO mean {np.mean(inner):.3f}", flush=True)


def exp_st2(X, y, spk, blocks):
    exp_selftrain(X, y, spk, blocks)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("what", nargs="+")
    args = ap.parse_args()
    blocks, y, spk, _ = load()
    X = np.concatenate([blocks[b] for b in ["mfcc", "logmel", "egemaps"]], 1)
    for what in args.what:
        t = time.time()
        globals()["exp_" + what](X, y, spk, blocks)
        print(f"  ({what}: {time.time() - t:.0f} s)", flush=True)


def exp_norm(X, y, spk, blocks):
    """Normalisation variants, SVM C grid chosen by inner LOSO."""
    cands = [Cand(f"svm C={c}", None, "svm", {"C": c}) for c in (0.3, 1.0, 3.0)]
    for how in ("z", "rank", "zl2", "zclip", "robust"):
        Z = norm_speaker(X, spk, how)
        res = run_family(Z, y, spk, cands)
        for j, c in enumerate(cands):
            report(f"{how} {c.name} (fixed)", y, spk, res["outer"][:, j].argmax(1))
        pred, chose = select(res, y, spk)
        report(f"{how} svm C inner-chosen", y, spk, pred, chose)


def block_cols(blocks) -> dict[str, np.ndarray]:
    out, start = {}, 0
    for b in ["mfcc", "logmel", "egemaps"]:
        out[b] = np.arange(start, start + blocks[b].shape[1])
        start += blocks[b].shape[1]
    return out


def zoo(blocks) -> list[Cand]:
    bc = block_cols(blocks)
    c = [Cand(f"svm C={C}", None, "svm", {"C": C}) for C in (0.1, 0.3, 1.0)]
    c += [Cand(f"logreg C={C}", None, "logreg", {"C": C}) for C in (0.003, 0.01, 0.03)]
    c += [Cand("lda", None, "lda", {})]
    c += [Cand(f"ridge a={a}", None, "ridge", {"alpha": a}) for a in (100.0, 1000.0)]
    c += [Cand(f"knn k={k}", None, "knn", {"k": k}) for k in (15, 40)]
    c += [Cand("et", None, "et", {"n": 200})]
    for b, cols in bc.items():
        c += [Cand(f"{b}-svm C={C}", cols, "svm", {"C": C}) for C in (0.3, 1.0)]
        c += [Cand(f"{b}-logreg C=0.01", cols, "logreg", {"C": 0.01})]
    return c


def evaluate_zoo(res, y, spk, tag):
    names = res["names"]
    for j, nm in enumerate(names):
        report(f"{tag} {nm} (fixed)", y, spk, res["outer"][:, j].argmax(1))
    pred, chose = select(res, y, spk)
    report(f"{tag} best-of-zoo inner-chosen", y, spk, pred, chose)
    pred, chose = greedy_ensemble(res, y, spk)
    report(f"{tag} greedy-ensemble(zoo) inner", y, spk, pred, chose)
    fam = [j for j, n in enumerate(names) if "-" in n.split()[0]]
    pred, chose = greedy_ensemble(res, y, spk, fam)
    report(f"{tag} greedy-ensemble(per-block) inner", y, spk, pred, chose)
    pred = res["outer"].mean(1).argmax(1)
    report(f"{tag} mean of all (fixed, no choice)", y, spk, pred)


def exp_zoo(X, y, spk, blocks):
    Z = norm_speaker(X, spk, "z")
    res = run_family(Z, y, spk, zoo(blocks))
    evaluate_zoo(res, y, spk, "z")


def rich_one(path: str) -> np.ndarray:
    """MFCC(40)+deltas and log-mel(64) with richer functionals: mean, std, p10, p50, p90, skew,
    kurtosis (deltas: mean |d|, std)."""
    from scipy.stats import kurtosis, skew

    from seda.audio import load_audio
    from seda.features.classic import _mfcc_from_db, log_mel

    y, sr = load_audio(path, 16000)
    db = log_mel(y, sr, 64)
    mf = _mfcc_from_db(db, 40)
    out = []
    for m in (mf, db):
        out += [
            m.mean(1),
            m.std(1),
            *np.percentile(m, [10, 50, 90], axis=1),
            skew(m, 1),
            kurtosis(m, 1),
        ]
        d = np.diff(m, axis=1)
        out += [np.abs(d).mean(1), d.std(1)]
    return np.nan_to_num(np.concatenate(out)).astype(np.float32)


@functools.cache
def _smile() -> Any:
    import opensmile

    return opensmile.Smile(opensmile.FeatureSet.emobase, opensmile.FeatureLevel.Functionals)


def emobase_one(path: str) -> np.ndarray:

    from seda.audio import load_audio

    y, sr = load_audio(path, 16000)
    return _smile().process_signal(y, sr).to_numpy()[0].astype(np.float32)


def cached_extra(paths, name: str, fn) -> np.ndarray:
    f = CACHE / f"explore_{name}.npy"
    if f.exists():
        return np.load(f)
    t = time.time()
    X = np.stack([fn(str(p)) for p in paths])
    print(f"  extracted {name} {X.shape} in {time.time() - t:.0f} s", flush=True)
    np.save(f, X)
    return X


def exp_extract(X, y, spk, blocks):
    paths, _, _ = list_corpus(DATA)
    cached_extra(paths, "rich", rich_one)
    cached_extra(paths, "emobase", emobase_one)


def load_aug(blocks_wanted=("mfcc", "logmel", "egemaps")):
    """The cached youtube copies (2 per file, synthetic music at /tmp/music) of baseline_loso."""
    from baseline_loso import augment_settings, cached_copies, corpus_rows

    paths, labels, speakers = list_corpus(DATA)
    rows_ = corpus_rows(paths, labels, speakers)
    aug = augment_settings("youtube", ["oversample=true"], Path("/tmp/h4music"))
    st = BaselineSettings()
    got = [cached_copies(rows_, b, st, aug, 1, CACHE) for b in blocks_wanted]
    names = sorted(set.intersection(*(set(n.tolist()) for _, n in got)))
    idx = {}
    for x, n in got:
        pos = {v: i for i, v in enumerate(n.tolist())}
        idx[id(x)] = np.array([pos[v] for v in names])
    Xa = np.concatenate([x[idx[id(x)]] for x, _ in got], 1)
    where = {r.clip_id: i for i, r in enumerate(rows_)}
    base = np.array([where[v.rsplit("~", 1)[0]] for v in names])
    return Xa, base


def exp_feats(X, y, spk, blocks):
    """Richer functionals; SVM C chosen by inner LOSO; also the feature set chosen by inner LOSO."""
    paths, _, _ = list_corpus(DATA)
    rich = cached_extra(paths, "rich", rich_one)
    emo = cached_extra(paths, "emobase", emobase_one)
    eg = blocks["egemaps"]
    sets = {
        "default(mfcc+logmel+egemaps)": X,
        "rich+egemaps": np.concatenate([rich, eg], 1),
        "default+emobase": np.concatenate([X, emo], 1),
        "rich+egemaps+emobase": np.concatenate([rich, eg, emo], 1),
        "emobase": emo,
    }
    allres = {}
    for nm, F in sets.items():
        F = F[:, F.std(0) > 0]
        Z = norm_speaker(F, spk, "z")
        cands = [Cand(f"{nm} svm C={c}", None, "svm", {"C": c}) for c in (0.1, 0.3, 1.0)]
        res = run_family(Z, y, spk, cands)
        for j, c in enumerate(cands):
            report(f"{c.name} (fixed)", y, spk, res["outer"][:, j].argmax(1))
        pred, chose = select(res, y, spk)
        report(f"{nm} svm C inner-chosen", y, spk, pred, chose)
        allres[nm] = res
    merged = {
        "inner": {
            s: np.concatenate([r["inner"][s] for r in allres.values()], 1)
            for s in allres[nm]["inner"]
        },
        "outer": np.concatenate([r["outer"] for r in allres.values()], 1),
        "names": [name for r in allres.values() for name in r["names"]],
    }
    pred, chose = select(merged, y, spk)
    report("feature set + C inner-chosen", y, spk, pred, chose)
    pred, chose = greedy_ensemble(merged, y, spk)
    report("greedy ensemble over feature sets x C", y, spk, pred, chose)


def aug_family(F, Fa, base, y, spk, cands, oversample=True):
    """Training speakers standardised on their files + copies, the test speaker on its files."""
    both = norm_speaker(np.concatenate([F, Fa]), np.concatenate([spk, spk[base]]), "z")
    Z, Za = both[: len(F)], both[len(F) :]
    Zt = norm_speaker(F, spk, "z")
    return run_family(Z, y, spk, cands, Za, base, oversample, X_test=Zt)


def exp_aug(X, y, spk, blocks):
    Xa, base = load_aug()
    cands = [Cand(f"aug svm C={c}", None, "svm", {"C": c}) for c in (0.1, 0.3, 1.0)]
    cands += [Cand("aug knn k=40", None, "knn", {"k": 40})]
    res = aug_family(X, Xa, base, y, spk, cands)
    for j, c in enumerate(cands):
        report(f"{c.name} (fixed)", y, spk, res["outer"][:, j].argmax(1))
    pred, chose = select(res, y, spk, [0, 1, 2])
    report("aug svm C inner-chosen", y, spk, pred, chose)
    pred, chose = select(res, y, spk)
    report("aug svm C / knn inner-chosen", y, spk, pred, chose)
    pred, chose = greedy_ensemble(res, y, spk)
    report("aug greedy ensemble", y, spk, pred, chose)


def exp_selftrain(X, y, spk, blocks):
    Z = norm_speaker(X, spk, "z")
    base = Cand("svmavg", None, "svmavg", {"Cs": (0.1, 0.3, 1.0)})
    cands = [
        Cand(f"svmavg selftrain frac={f}", None, "selftrain", {"base": base, "frac": f})
        for f in (0.0, 0.3, 0.6)
    ]
    if "st2" in sys.argv:
        cands = [
            Cand(
                f"svmavg selftrain frac={f} rounds={r}",
                None,
                "selftrain",
                {"base": base, "frac": f, "rounds": r},
            )
            for f, r in ((0.6, 1), (0.8, 1), (1.0, 1), (0.6, 2), (1.0, 2))
        ]
    res = run_family(Z, y, spk, cands)
    for j, c in enumerate(cands):
        report(f"{c.name} (fixed)", y, spk, res["outer"][:, j].argmax(1))
    pred, chose = select(res, y, spk)
    report("svmavg selftrain frac inner-chosen", y, spk, pred, chose)


if __name__ == "__main__":
    main()
