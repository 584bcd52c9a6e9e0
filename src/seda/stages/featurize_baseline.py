"""Stage featurize_baseline: the classical features of every clip of the split, once.

``python -m seda.stages.featurize_baseline --splits splits.csv --out <folder>`` writes the feature
store (:mod:`seda.features.store`) of the baseline: the blocks of ``baseline.features`` (MFCC
and log-mel statistics, eGeMAPS or ComParE functionals) as one float32 "layer" per clip,
(n_clips, 1, d); see :mod:`seda.features.classic`. Unreadable clips go to ``<folder>/rejected.csv``.
With ``augment.copies`` (:mod:`seda.augment`), the features of the augmented copies of the clips
that train some fold of ``eval.protocol`` go into the store's augmented section.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from seda.augment import AugmentSettings
from seda.baseline import BaselineSettings
from seda.config import build, load_params
from seda.entry import stage_main
from seda.features.classic import write_baseline_features
from seda.records import SplitRow, read_records


def run(params: dict[str, Any], *, splits: Path, out: Path) -> dict[str, Any]:
    """Featurize the clips of ``splits`` into ``out``."""
    return write_baseline_features(
        read_records(splits, SplitRow),
        build(BaselineSettings, params.get("baseline"), "baseline"),
        out,
        params.get("workers", 0),
        build(AugmentSettings, params.get("augment"), "augment"),
        (params.get("eval") or {}).get("protocol"),
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m seda.stages.featurize_baseline", description=__doc__
    )
    parser.add_argument("--splits", type=Path, required=True, help="the split stage's splits.csv")
    parser.add_argument("--out", type=Path, required=True, help="the feature store to write")
    args = parser.parse_args(argv)
    return stage_main(
        "featurize_baseline", lambda: run(load_params(), splits=args.splits, out=args.out)
    )


if __name__ == "__main__":
    raise SystemExit(main())
