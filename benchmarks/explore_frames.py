"""Scratch exploration (issue 10), continued: models of frame-level descriptors beside the
baseline's functionals. Both families read openSMILE's 65 ComParE_2016 low-level descriptors per
10 ms frame, z-scored per speaker (each speaker's own frames, label-free, as the baseline
standardises its functionals), and are fused with the default SVM (C 0.3 on MFCC + log-mel +
eGeMAPS, per-speaker standardised) by adding log-softmax scores; hyperparameters were fixed
before the first run, not chosen on the held-out speakers (nor by inner LOSO: one CNN fit takes
about a minute here, an inner LOSO 30 of them per setting).

    OMP_NUM_THREADS=2 python benchmarks/explore_frames.py boaw cnn

- ``boaw``: bag of audio words (k-means codebook of training speakers' frames, 5 or 10 nearest
  words per frame, log term frequencies, per-speaker z) with a linear SVM.
- ``cnn``: a three-layer 1-D CNN with attentive mean/SD pooling on up to 1.6 s of frames, time
  and descriptor masking, label smoothing, 30 epochs of one-cycle AdamW; 3 seeds averaged.

Measured 2026-11-29 on commit 21b0243 (2 cores; boaw 58 s, cnn 27 min); pooled UAR, fold
mean±SD, folds 1157 1234 1358 1984 6783 7895; ΔUAR of each fusion against the SVM alone on the
same clips, 95% paired bootstrap over the six speakers:

    svm alone (C 0.3, argmax of decision values)  0.582  0.611±0.122  .77 .53 .70 .59 .43 .64
    boaw k=256 a=5, linear SVM C 0.001            0.466  0.496±0.128
      fused with the svm                          0.585  0.614±0.120  ΔUAR +0.003 [-0.008, +0.016]
    boaw k=512 a=10                               0.470  0.494±0.117
      fused with the svm                          0.580  0.607±0.114  ΔUAR -0.001 [-0.020, +0.021]
    cnn (3 seeds)                                 0.485  0.512±0.098
      fused with the svm                          0.593  0.623±0.124  ΔUAR +0.012 [-0.001, +0.029]

A first scratch run of the same CNN on 64 log-mel bands instead of the descriptors (2 seeds)
gave 0.464 alone and 0.581 fused, below the descriptors' CNN.

Frame models alone are far below the functionals; fused, the CNN adds about 0.01 pooled, an
interval that touches 0, and 0.593 is short of 0.62. Neither is in seda.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from baseline_loso import CACHE
from explore_baseline import load, norm_speaker, report

from seda.metrics import paired_uar_difference


def frame_descriptors(paths: list[Path]) -> list[np.ndarray]:
    """ComParE_2016 LLDs at 16 kHz per file, cached outside the repository (licence)."""
    cache = CACHE / "explore_compare_lld.npz"
    if cache.exists():
        stored = np.load(cache)
        return [stored[f"arr_{i}"] for i in range(len(stored.files))]
    import opensmile

    from seda.audio import load_audio

    smile = opensmile.Smile(
        feature_set=opensmile.FeatureSet.ComParE_2016,
        feature_level=opensmile.FeatureLevel.LowLevelDescriptors,
    )
    out = []
    for p in paths:
        x, _ = load_audio(p, 16000)
        out.append(smile.process_signal(x, 16000).to_numpy(np.float32))
    np.savez(cache, *out)
    return out


def speaker_z_frames(seqs: list[np.ndarray], spk: np.ndarray) -> list[np.ndarray]:
    owner = np.repeat(np.arange(len(seqs)), [len(s) for s in seqs])
    F = norm_speaker(np.concatenate(seqs), spk[owner], "z").astype(np.float32)
    return np.split(np.clip(F, -5, 5), np.cumsum([len(s) for s in seqs])[:-1])


def svm_scores(Z: np.ndarray, y: np.ndarray, spk: np.ndarray) -> np.ndarray:
    """Outer-LOSO log-softmax scores of the default SVM (C 0.3)."""
    from scipy.special import log_softmax
    from sklearn.svm import SVC

    out = np.zeros((len(y), int(y.max()) + 1))
    for s in np.unique(spk):
        te = spk == s
        svm = SVC(C=0.3, class_weight="balanced").fit(Z[~te], y[~te])
        out[te] = log_softmax(svm.decision_function(Z[te]) * 3, axis=1)
    return out


def compare(name: str, y, spk, own: np.ndarray, base: np.ndarray) -> None:
    report(name, y, spk, own.argmax(1))
    fused = (own + base).argmax(1)
    report("  fused with the svm", y, spk, fused)
    d = paired_uar_difference(y, fused, base.argmax(1), int(y.max()) + 1, groups=spk.tolist())
    interval = f"[{d.low:+.3f}, {d.high:+.3f}] over {d.n_units} {d.resampled}"
    print(f"  ΔUAR fused - svm {d.delta:+.3f} {interval}", flush=True)


def exp_boaw(seqs, y, spk, base) -> None:
    from scipy.special import log_softmax
    from sklearn.cluster import MiniBatchKMeans
    from sklearn.svm import LinearSVC

    owner = np.repeat(np.arange(len(seqs)), [len(s) for s in seqs])
    F = np.concatenate(seqs)
    for k, a in ((256, 5), (512, 10)):
        own = np.zeros((len(y), int(y.max()) + 1))
        for s in np.unique(spk):
            te = spk == s
            pool = np.flatnonzero(~te[owner])
            sample = np.random.default_rng(0).choice(pool, min(60000, len(pool)), replace=False)
            km = MiniBatchKMeans(k, random_state=0, n_init=3, batch_size=4096).fit(F[sample])
            d = -2 * F @ km.cluster_centers_.T + (km.cluster_centers_**2).sum(1)
            top = np.argpartition(d, a, axis=1)[:, :a]
            H = np.zeros((len(seqs), k), np.float32)
            np.add.at(H, (np.repeat(owner, a), top.ravel()), 1.0)
            H = norm_speaker(np.log1p(100 * H / H.sum(1, keepdims=True)), spk, "z")
            m = LinearSVC(C=0.001, class_weight="balanced", max_iter=20000).fit(H[~te], y[~te])
            own[te] = log_softmax(m.decision_function(H[te]) * 3, axis=1)
        compare(f"boaw k={k} a={a} C=0.001", y, spk, own, base)


def exp_cnn(seqs, y, spk, base, seeds: int = 3, epochs: int = 30, frames: int = 160) -> None:
    import torch
    import torch.nn.functional as F
    from torch import nn

    torch.set_num_threads(2)
    X = np.stack([np.pad(s[:frames], ((0, max(0, frames - len(s))), (0, 0))) for s in seqs])
    lens = np.array([min(len(s), frames) for s in seqs])
    D, k = X.shape[2], int(y.max()) + 1

    class Net(nn.Module):
        def __init__(self, h: int = 128) -> None:
            super().__init__()
            self.conv = nn.Sequential(
                nn.Conv1d(D, h, 5, padding=2), nn.BatchNorm1d(h), nn.ReLU(), nn.Dropout(0.3),
                nn.Conv1d(h, h, 5, padding=2), nn.BatchNorm1d(h), nn.ReLU(), nn.Dropout(0.3),
                nn.Conv1d(h, h, 3, padding=2, dilation=2), nn.BatchNorm1d(h), nn.ReLU(),
            )  # fmt: skip
            self.att = nn.Conv1d(h, 1, 1)
            self.out = nn.Linear(2 * h, k)

        def forward(self, x, mask):
            h = self.conv(x.transpose(1, 2))
            a = self.att(h).squeeze(1).masked_fill(~mask, -1e9).softmax(-1).unsqueeze(1)
            mu = (h * a).sum(-1)
            sd = ((h - mu.unsqueeze(-1)) ** 2 * a).sum(-1).clamp_min(1e-6).sqrt()
            return self.out(torch.cat([mu, sd], 1))

    Xt, Y = torch.tensor(X), torch.tensor(y)
    M = torch.arange(frames)[None] < torch.tensor(lens)[:, None]

    def fit_predict(tr: np.ndarray, te: np.ndarray, seed: int) -> np.ndarray:
        torch.manual_seed(seed)
        rng = np.random.default_rng(seed)
        net = Net()
        opt = torch.optim.AdamW(net.parameters(), 1e-3, weight_decay=1e-2)
        steps = epochs * ((len(tr) + 31) // 32)
        sched = torch.optim.lr_scheduler.OneCycleLR(opt, 3e-3, total_steps=steps)
        w = torch.tensor(len(tr) / (k * np.bincount(y[tr], minlength=k)), dtype=torch.float32)
        for _ in range(epochs):
            net.train()
            perm = rng.permutation(tr)
            for b in range(0, len(perm), 32):
                i = perm[b : b + 32]
                x = Xt[i].clone()
                for j in range(len(i)):  # one time mask and one descriptor mask per example
                    t0 = rng.integers(0, frames - 20)
                    x[j, t0 : t0 + rng.integers(0, 20)] = 0
                    f0 = rng.integers(0, D - 8)
                    x[j, :, f0 : f0 + rng.integers(0, 8)] = 0
                loss = F.cross_entropy(net(x, M[i]), Y[i], weight=w, label_smoothing=0.1)
                opt.zero_grad()
                loss.backward()
                opt.step()
                sched.step()
        net.eval()
        with torch.no_grad():
            return net(Xt[te], M[te]).log_softmax(-1).numpy()

    own = np.zeros((len(y), k))
    for s in np.unique(spk):
        te = np.flatnonzero(spk == s)
        tr = np.flatnonzero(spk != s)
        own[te] = np.mean([fit_predict(tr, te, seed) for seed in range(seeds)], 0)
        print(f"    fold {s} done", flush=True)
    compare(f"cnn ({seeds} seeds)", y, spk, own, base)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("what", nargs="+", choices=["boaw", "cnn"])
    args = ap.parse_args()
    blocks, y, spk, paths = load()
    X = np.concatenate([blocks[b] for b in ["mfcc", "logmel", "egemaps"]], 1)
    base = svm_scores(norm_speaker(X, spk, "z"), y, spk)
    report("svm alone (C 0.3)", y, spk, base.argmax(1))
    seqs = speaker_z_frames(frame_descriptors(paths), spk)
    for what in args.what:
        t = time.time()
        globals()["exp_" + what](seqs, y, spk, base)
        print(f"  ({what}: {time.time() - t:.0f} s)", flush=True)


if __name__ == "__main__":
    main()
