"""Stage train: fit each backbone's model, evaluate it on unseen speakers and videos, write it.

``python -m seda.stages.train <model>... --features <folder> --splits splits.csv
--models-dir <dir> --metrics-dir <dir> --details-dir <dir> --plots-dir <dir>``, with settings
``backbones.<model>``, ``train``, ``eval`` and ``seed`` of params.yaml. ``train.mode``: ``probe``
trains a layer-weighted head on the feature store ``<folder>/<model>``, ``finetune`` the backbone
and head on the clips of splits.csv (:mod:`seda.models.training`). ``eval.protocol``: holdout or
leave-one-group-out (:mod:`seda.models.evaluation`). Writes per model its folder (weights +
model.json), its headline metrics ``<model>.json`` (the DVC metric), its details ``<model>.json``
(per class, fold and speaker) and its plots folder (predictions.csv, roc.csv, history.csv,
reliability.csv and their PNGs). One process trains them all; a model whose features and
settings are unchanged is placed from seda's cache (:meth:`seda.cache.StageCache.place`).
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from seda.augment import AugmentSettings
from seda.config import build, load_params
from seda.entry import stage_main
from seda.features.ssl import backbone_settings
from seda.models.evaluation import EvalSettings, TrainOutputs
from seda.models.training import TrainSettings, train_backbones


def model_outputs(
    model: str, *, models: Path, metrics: Path, details: Path, plots: Path
) -> TrainOutputs:
    """Where model ``model``'s folder, metrics, details and plots go below the stage's folders."""
    return TrainOutputs(
        models / model, metrics / f"{model}.json", details / f"{model}.json", plots / model
    )


def run(
    params: dict[str, Any],
    models: Sequence[str],
    *,
    features: Path,
    splits: Path,
    outputs: dict[str, TrainOutputs],
) -> dict[str, dict[str, Any]]:
    """Train and evaluate each backbone model of ``models`` on ``features/<model>``; write
    ``outputs``."""
    return train_backbones(
        {model: backbone_settings(params, model) for model in models},
        build(TrainSettings, params.get("train"), "train"),
        build(EvalSettings, params.get("eval"), "eval"),
        seed=int(params.get("seed", 0)),
        features={model: features / model for model in models},
        splits=splits,
        outputs=outputs,
        audio={"clean": params.get("clean"), "vad": params.get("vad")},
        augment=build(AugmentSettings, params.get("augment"), "augment"),
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m seda.stages.train", description=__doc__)
    parser.add_argument(
        "names", nargs="+", metavar="model", help="backbones of params.yaml: hubert wav2vec2 ..."
    )
    parser.add_argument(
        "--features", type=Path, required=True, help="the feature stores' folder (probe)"
    )
    parser.add_argument("--splits", type=Path, required=True, help="splits.csv (finetune)")
    for folder, what in (
        ("models", "the model folders"),
        ("metrics", "the headline metrics files (.json)"),
        ("details", "the details files (.json): all the figures"),
        ("plots", "the plots folders"),
    ):
        parser.add_argument(f"--{folder}-dir", type=Path, required=True, help=f"where {what} go")
    args = parser.parse_args(argv)
    folders = {
        "models": args.models_dir,
        "metrics": args.metrics_dir,
        "details": args.details_dir,
        "plots": args.plots_dir,
    }
    outputs = {name: model_outputs(name, **folders) for name in args.names}
    return stage_main(
        "train",
        lambda: run(
            load_params(), args.names, features=args.features, splits=args.splits, outputs=outputs
        ),
    )


if __name__ == "__main__":
    raise SystemExit(main())
