"""Probe training time on cached features of TurEV-DB size (goal: under 30 s on 2 cores).

1,735 clips x 13 layers x 768 dims (hubert-base features, float16 as the feature store keeps
them), 4 labels, 6 speakers (4 train, 1 val, 1 test); one label-dependent direction in a middle
layer so that early stopping behaves as on real data. Timed: ``ProbeLearner.fit`` with the
default ``train`` settings, and with early stopping off (every epoch runs).

    python benchmarks/probe_speed.py
"""

from __future__ import annotations

import argparse
import dataclasses
import time

import numpy as np
import torch

from seda.models.training import ProbeLearner, TrainSettings

N_CLIPS, N_LAYERS, DIM, N_LABELS, N_SPEAKERS = 1735, 13, 768, 4, 6


def synthetic(seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = rng.integers(0, N_LABELS, N_CLIPS)
    speaker = rng.integers(0, N_SPEAKERS, N_CLIPS)
    x = rng.standard_normal((N_CLIPS, N_LAYERS, DIM)).astype(np.float32)
    direction = rng.standard_normal((N_LABELS, DIM)).astype(np.float32) * 0.15
    x[:, 7, :] += direction[y]
    return x.astype(np.float16), y, speaker


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    x, y, speaker = synthetic()
    train, val, test = (
        np.flatnonzero(speaker < 4),
        np.flatnonzero(speaker == 4),
        np.flatnonzero(speaker == 5),
    )
    for name, settings in (
        ("default settings (early stopping)", TrainSettings()),
        ("early stopping off", dataclasses.replace(TrainSettings(), patience=10**6)),
    ):
        start = time.perf_counter()
        learner = ProbeLearner(x, y, N_LABELS, settings, seed=0, device=torch.device("cpu"))
        history = learner.fit(train, val)
        prob = learner.predict_proba(test)
        seconds = time.perf_counter() - start
        acc = float((prob.argmax(1) == y[test]).mean())
        print(
            f"{name}: {seconds:.1f} s for {len(history)} epochs ({N_CLIPS} clips, "
            f"{N_LAYERS}x{DIM}), test accuracy {acc:.2f}"
        )


if __name__ == "__main__":
    main()
