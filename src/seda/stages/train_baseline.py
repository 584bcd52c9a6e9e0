"""Stage train_baseline: fit the classical baseline, evaluate it like the backbones, write it.

``python -m seda.stages.train_baseline --features <store> --model-out <dir> --metrics <file.json>
--details <file.json> --plots <dir>``, with settings ``baseline``, ``eval`` and ``seed`` of
params.yaml: per-speaker standardisation and a classifier on the classical features
(:mod:`seda.models.baseline`), evaluated by the same protocol and written in the same layout as
the backbone models (:mod:`seda.models.baseline_training`, :mod:`seda.models.evaluation`).
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from seda.augment import AugmentSettings
from seda.baseline import BaselineSettings
from seda.config import build, load_params
from seda.entry import stage_main
from seda.models.baseline_training import train_baseline
from seda.models.evaluation import EvalSettings, TrainOutputs


def run(params: dict[str, Any], *, features: Path, outputs: TrainOutputs) -> dict[str, Any]:
    """Train and evaluate the baseline on ``features``; write ``outputs``."""
    return train_baseline(
        build(BaselineSettings, params.get("baseline"), "baseline"),
        build(EvalSettings, params.get("eval"), "eval"),
        seed=int(params.get("seed", 0)),
        features=features,
        outputs=outputs,
        audio={"clean": params.get("clean"), "vad": params.get("vad")},
        augment=build(AugmentSettings, params.get("augment"), "augment"),
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m seda.stages.train_baseline", description=__doc__
    )
    parser.add_argument("--features", type=Path, required=True, help="the baseline feature store")
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
        "train_baseline", lambda: run(load_params(), features=args.features, outputs=outputs)
    )


if __name__ == "__main__":
    raise SystemExit(main())
