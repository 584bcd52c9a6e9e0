"""The feature store shared by featurize and train: one array file per model plus an index.

``<dir>/features.npy``: shape (n_clips, n_layers, dim) — the pooled output of every hidden layer
of a backbone (float16), or one "layer" of classical features (float32) for the baseline.
``index.csv`` gives the clip of each row as a :class:`seda.records.SplitRow` (label, speaker,
group, split, fold) and ``meta.json`` says what computed it (model, checkpoint, weights,
pooling, ...). Nothing in it depends on when or how fast it was computed, so the same clips and
settings give the same bytes.

With augmentation on (:mod:`seda.augment`), the store also holds the features of the augmented
copies of the training clips: ``augmented.npy`` (n_copies, n_layers, dim), ``augmented.csv``
(one :class:`seda.augment.AugmentRow` per copy: its clip, copy number and what was done) and
``augmented_rejected.csv``. Without it those files are absent, and the store is what it was.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from seda.augment import AugmentRow
from seda.errors import InputMissingError
from seda.io import RejectLog, atomic_path, write_json_atomic
from seda.records import SplitRow, read_records, write_records

AUGMENTED_FILES = ("augmented.npy", "augmented.csv", "augmented_rejected.csv")


def save_features(
    out_dir: str | Path,
    features: np.ndarray,
    index_rows: Sequence[SplitRow],
    meta: Mapping[str, Any],
) -> None:
    """Write the three files atomically; ``features[i]`` belongs to ``index_rows[i]``."""
    if features.ndim != 3 or features.shape[0] != len(index_rows):
        raise ValueError(
            f"features must be (n_clips, n_layers, dim) with n_clips={len(index_rows)}, "
            f"got {features.shape}"
        )
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    with atomic_path(out_dir / "features.npy", suffix=".tmp.npy") as tmp:
        np.save(tmp, features)
    write_records(out_dir / "index.csv", index_rows, SplitRow)
    write_json_atomic(
        out_dir / "meta.json",
        {**dict(meta), "shape": list(features.shape), "dtype": str(features.dtype)},
    )


def load_features(
    feature_dir: str | Path,
) -> tuple[np.ndarray, list[SplitRow], dict[str, Any]]:
    """Read (features, index rows, meta) written by :func:`save_features`."""
    feature_dir = Path(feature_dir)
    if not (feature_dir / "features.npy").is_file():
        raise InputMissingError(f"{feature_dir} has no features.npy: run the featurize stage first")
    features = np.load(feature_dir / "features.npy")
    index = read_records(feature_dir / "index.csv", SplitRow)
    meta = json.loads((feature_dir / "meta.json").read_text(encoding="utf-8"))
    if features.shape[0] != len(index):
        raise ValueError(
            f"{feature_dir}: {features.shape[0]} feature rows but {len(index)} index rows"
        )
    return features, index, meta


def save_augmented(
    out_dir: str | Path,
    features: np.ndarray | None,
    rows: Sequence[AugmentRow],
    rejects: RejectLog | None = None,
) -> None:
    """Write the augmented section (``features[i]`` belongs to ``rows[i]``); ``features`` None:
    remove it (augmentation off), so that a store never keeps copies of an earlier run."""
    out_dir = Path(out_dir)
    if features is None:
        for name in AUGMENTED_FILES:
            (out_dir / name).unlink(missing_ok=True)
        return
    if features.ndim != 3 or features.shape[0] != len(rows):
        raise ValueError(
            f"augmented features must be (n_copies, n_layers, dim) with n_copies={len(rows)}, "
            f"got {features.shape}"
        )
    out_dir.mkdir(parents=True, exist_ok=True)
    with atomic_path(out_dir / "augmented.npy", suffix=".tmp.npy") as tmp:
        np.save(tmp, features)
    write_records(out_dir / "augmented.csv", rows, AugmentRow)
    (rejects if rejects is not None else RejectLog("featurize")).write(
        out_dir / "augmented_rejected.csv"
    )


def load_augmented(
    feature_dir: str | Path, clip_ids: Sequence[str]
) -> tuple[np.ndarray, np.ndarray, list[AugmentRow]]:
    """The augmented copies of the clips ``clip_ids`` (other copies are left out): features,
    the position in ``clip_ids`` of each copy's clip, and the copies' rows. Empty without an
    augmented section."""
    feature_dir = Path(feature_dir)
    if not (feature_dir / "augmented.npy").is_file():
        return np.zeros((0, 0, 0), dtype=np.float32), np.zeros(0, dtype=np.int64), []
    features = np.load(feature_dir / "augmented.npy")
    rows = read_records(feature_dir / "augmented.csv", AugmentRow)
    if features.shape[0] != len(rows):
        raise ValueError(
            f"{feature_dir}: {features.shape[0]} augmented feature rows but {len(rows)} in "
            "augmented.csv"
        )
    where = {c: i for i, c in enumerate(clip_ids)}
    keep = [j for j, r in enumerate(rows) if r.clip_id in where]
    base = np.array([where[rows[j].clip_id] for j in keep], dtype=np.int64)
    return features[keep], base, [rows[j] for j in keep]
