"""Stage featurize: every clip of the split through one frozen backbone, once.

``python -m seda.stages.featurize <model> --splits splits.csv --out <folder>`` writes the feature
store (:mod:`seda.features.store`) of backbone ``backbones.<model>`` of params.yaml: the pooled
output of every hidden layer of every clip (float16, (n_clips, n_layers + 1, dim)), so that the
probes of the train stage never run the backbone again; see :mod:`seda.features.ssl`.
Clips are read through the paths in splits.csv; unreadable ones go to ``<folder>/rejected.csv``.
With ``augment.copies`` (:mod:`seda.augment`), the augmented copies of the clips that train some
fold of ``eval.protocol`` go through the backbone too, into the store's augmented section.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from seda.augment import AugmentSettings
from seda.config import build, load_params
from seda.entry import stage_main
from seda.features.ssl import backbone_settings, write_backbone_features
from seda.records import SplitRow, read_records


def run(params: dict[str, Any], model: str, *, splits: Path, out: Path) -> dict[str, Any]:
    """Featurize the clips of ``splits`` with backbone ``model`` into ``out``."""
    settings = backbone_settings(params, model)
    return write_backbone_features(
        read_records(splits, SplitRow),
        model,
        settings,
        out,
        build(AugmentSettings, params.get("augment"), "augment"),
        (params.get("eval") or {}).get("protocol"),
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m seda.stages.featurize", description=__doc__)
    parser.add_argument("model", help="a backbone of params.yaml: hubert | wav2vec2 | wavlm | ...")
    parser.add_argument("--splits", type=Path, required=True, help="the split stage's splits.csv")
    parser.add_argument("--out", type=Path, required=True, help="the feature store to write")
    args = parser.parse_args(argv)
    return stage_main(
        "featurize", lambda: run(load_params(), args.model, splits=args.splits, out=args.out)
    )


if __name__ == "__main__":
    raise SystemExit(main())
