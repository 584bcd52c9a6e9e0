"""The feature store shared by featurize and train: one array file per model plus an index.

``data/features/<model>/features.npy``: shape (n_clips, n_layers, dim) — the pooled output of every
hidden layer of a backbone (float16), or one "layer" of classical features (float32) for the
baseline. ``index.csv`` gives the clip of each row (with label, speaker, group, split, fold) and
``meta.json`` says what computed it (model, checkpoint, weights, pooling, ...).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from seda.io import atomic_path, read_csv, write_csv_atomic, write_json_atomic

INDEX_COLUMNS = ("clip_id", "path", "label", "speaker", "source_id", "group", "split", "fold")


def save_features(
    out_dir: str | Path,
    features: np.ndarray,
    index_rows: Sequence[Mapping[str, Any]],
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
    write_csv_atomic(out_dir / "index.csv", index_rows, INDEX_COLUMNS)
    write_json_atomic(
        out_dir / "meta.json",
        {**dict(meta), "shape": list(features.shape), "dtype": str(features.dtype)},
    )


def load_features(
    feature_dir: str | Path,
) -> tuple[np.ndarray, list[dict[str, str]], dict[str, Any]]:
    """Read (features, index rows, meta) written by :func:`save_features`."""
    feature_dir = Path(feature_dir)
    features = np.load(feature_dir / "features.npy")
    index = read_csv(feature_dir / "index.csv")
    meta = json.loads((feature_dir / "meta.json").read_text(encoding="utf-8"))
    if features.shape[0] != len(index):
        raise ValueError(
            f"{feature_dir}: {features.shape[0]} feature rows but {len(index)} index rows"
        )
    return features, index, meta
