"""The feature store shared by featurize and train: one array file per model plus an index.

``<dir>/features.npy``: shape (n_clips, n_layers, dim) — the pooled output of every hidden layer
of a backbone (float16), or one "layer" of classical features (float32) for the baseline.
``index.csv`` gives the clip of each row as a :class:`seda.records.SplitRow` (label, speaker,
group, split, fold) and ``meta.json`` says what computed it (model, checkpoint, weights,
pooling, ...). Nothing in it depends on when or how fast it was computed, so the same clips and
settings give the same bytes.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from seda.errors import InputMissingError
from seda.io import atomic_path, write_json_atomic
from seda.records import SplitRow, read_records, write_records


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
