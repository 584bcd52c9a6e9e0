"""Stage train: fit one backbone model, evaluate it on unseen speakers and videos, write it.

``python -m seda.stages.train <model> --features <store> --splits splits.csv --model-out <dir>
--metrics <file.json> --details <file.json> --plots <dir>``, with settings
``backbones.<model>``, ``train``, ``eval`` and ``seed`` of params.yaml. ``train.mode``: ``probe``
trains a layer-weighted head on the stored features, ``finetune`` the backbone and head on the
clips of splits.csv (:mod:`seda.models.training`). ``eval.protocol``: holdout or
leave-one-group-out (:mod:`seda.models.evaluation`). Writes the model folder (weights +
model.json), the headline metrics (the DVC metric), the details (per class, fold and speaker) and
the plots (predictions.csv, roc.csv, history.csv, reliability.csv and their PNGs).
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from seda.augment import AugmentSettings
from seda.config import build, load_params
from seda.entry import stage_main
from seda.features.ssl import backbone_settings
from seda.models.evaluation import EvalSettings, TrainOutputs
from seda.models.training import TrainSettings, train_backbone


def run(
    params: dict[str, Any], model: str, *, features: Path, splits: Path, outputs: TrainOutputs
) -> dict[str, Any]:
    """Train and evaluate backbone model ``model``; write ``outputs``."""
    return train_backbone(
        model,
        backbone_settings(params, model),
        build(TrainSettings, params.get("train"), "train"),
        build(EvalSettings, params.get("eval"), "eval"),
        seed=int(params.get("seed", 0)),
        features=features,
        splits=splits,
        outputs=outputs,
        audio={"clean": params.get("clean"), "vad": params.get("vad")},
        augment=build(AugmentSettings, params.get("augment"), "augment"),
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m seda.stages.train", description=__doc__)
    parser.add_argument("model", help="a backbone of params.yaml: hubert | wav2vec2 | wavlm | ...")
    parser.add_argument("--features", type=Path, required=True, help="its feature store (probe)")
    parser.add_argument("--splits", type=Path, required=True, help="splits.csv (finetune)")
    parser.add_argument("--model-out", type=Path, required=True, help="the model folder")
    parser.add_argument(
        "--metrics", type=Path, required=True, help="the headline metrics file (.json)"
    )
    parser.add_argument(
        "--details", type=Path, required=True, help="the details file (.json): all the figures"
    )
    parser.add_argument("--plots", type=Path, required=True, help="the plots folder")
    args = parser.parse_args(argv)
    outputs = TrainOutputs(args.model_out, args.metrics, args.details, args.plots)
    return stage_main(
        "train",
        lambda: run(
            load_params(), args.model, features=args.features, splits=args.splits, outputs=outputs
        ),
    )


if __name__ == "__main__":
    raise SystemExit(main())
