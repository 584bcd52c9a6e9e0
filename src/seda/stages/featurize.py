"""Stage featurize: every clip of the split through each frozen backbone, once.

``python -m seda.stages.featurize <model>... --splits splits.csv --out <folder>`` writes, for each
backbone ``backbones.<model>`` of params.yaml, the feature store ``<folder>/<model>``
(:mod:`seda.features.store`): the pooled output of every hidden layer of every clip (float16,
(n_clips, n_layers + 1, dim)), so that the probes of the train stage never run the backbone
again; see :mod:`seda.features.ssl`. One process runs them all (the imports cost more than the
demo's embedding); a backbone whose settings and clips are unchanged is placed from seda's cache
(:meth:`seda.cache.StageCache.place`). Clips are read through the paths in splits.csv;
unreadable ones go to ``<folder>/<model>/rejected.csv``. With ``augment.copies``
(:mod:`seda.augment`), the augmented copies of the clips that train some fold of
``eval.protocol`` go through the backbones too, into each store's augmented section.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from seda.augment import AugmentSettings
from seda.config import build, load_params
from seda.entry import stage_main
from seda.features.ssl import backbone_settings, write_backbones_features
from seda.records import SplitRow, read_records


def run(
    params: dict[str, Any], models: Sequence[str], *, splits: Path, out: Path
) -> dict[str, dict[str, Any]]:
    """Featurize the clips of ``splits`` with each backbone of ``models`` into ``out/<model>``."""
    backbones = {model: backbone_settings(params, model) for model in models}
    return write_backbones_features(
        read_records(splits, SplitRow),
        backbones,
        out,
        build(AugmentSettings, params.get("augment"), "augment"),
        (params.get("eval") or {}).get("protocol"),
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m seda.stages.featurize", description=__doc__)
    parser.add_argument(
        "models", nargs="+", help="backbones of params.yaml: hubert wav2vec2 wavlm ..."
    )
    parser.add_argument("--splits", type=Path, required=True, help="the split stage's splits.csv")
    parser.add_argument(
        "--out", type=Path, required=True, help="where each backbone's feature store goes"
    )
    args = parser.parse_args(argv)
    return stage_main(
        "featurize", lambda: run(load_params(), args.models, splits=args.splits, out=args.out)
    )


if __name__ == "__main__":
    raise SystemExit(main())
