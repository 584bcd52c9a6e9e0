"""Hydra app for sweeps outside DVC.

``python -m seda.train -m backbone=hubert,wav2vec2,wavlm,data2vec``: composes
``conf/train_app.yaml`` (``conf/config.yaml`` plus one ``backbone`` choice) and calls the
same library functions as the DVC stages (:mod:`seda.features.ssl`, :mod:`seda.features.classic`,
:mod:`seda.models.training`, :mod:`seda.models.baseline`), so a sweep here and ``dvc exp run``
write identical files in the same layout (:data:`LAYOUT`).
The launcher (``hydra/launcher``: joblib by default, ``slurm`` via submitit) decides where the
runs go. DVC stages never use this module: they read ``params.yaml`` (see
../shared/notes/dvc-hydra.md).

Run it from the repository root: the configuration is read from ``./conf`` (or ``SEDA_CONF``).
"""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path
from typing import Any

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf

from seda.errors import UserError
from seda.schema import register as register_schema

log = logging.getLogger(__name__)

CONF_DIR = str(Path(os.environ.get("SEDA_CONF", "conf")).resolve())
# Where a run reads and writes, relative to the working directory: the layout dvc.yaml gives the
# pipeline, so that sweep results land where the DVC stages put theirs.
LAYOUT = {
    "splits": "data/splits/splits.csv",
    "features": "data/features/{name}",
    "model": "models/{name}",
    "metrics": "reports/metrics/{name}.json",
    "details": "reports/details/{name}.json",
    "plots": "reports/plots/{name}",
}


def params_for(cfg: DictConfig | dict[str, Any], name: str) -> dict[str, Any]:
    """The composed app config as params of model ``name`` (``backbone`` -> ``backbones.name``)."""
    params = OmegaConf.to_container(cfg, resolve=True) if isinstance(cfg, DictConfig) else dict(cfg)
    assert isinstance(params, dict)
    chosen = params.pop("backbone", None)
    if chosen is not None and name != "baseline":
        params["backbones"] = {**(params.get("backbones") or {}), name: chosen}
    return params


def run_model(params: dict[str, Any], name: str) -> dict[str, Any]:
    """Featurize (unless in finetune mode) then train one model: what the two DVC stages do,
    with the same settings (augmentation included)."""
    from seda.augment import AugmentSettings
    from seda.config import build
    from seda.models.evaluation import EvalSettings, TrainOutputs
    from seda.records import SplitRow, read_records

    where = {key: Path(value.format(name=name)) for key, value in LAYOUT.items()}
    outputs = TrainOutputs(where["model"], where["metrics"], where["details"], where["plots"])
    evaluation = build(EvalSettings, params.get("eval"), "eval")
    augment = build(AugmentSettings, params.get("augment"), "augment")
    seed = int(params.get("seed", 0))
    audio = {"clean": params.get("clean"), "vad": params.get("vad")}
    if name == "baseline":
        from seda.baseline import BaselineSettings
        from seda.features.classic import write_baseline_features
        from seda.models.baseline_training import train_baseline

        settings = build(BaselineSettings, params.get("baseline"), "baseline")
        rows = read_records(where["splits"], SplitRow)
        workers = params.get("workers", 0)
        features = where["features"]
        write_baseline_features(rows, settings, features, workers, augment, evaluation.protocol)
        return train_baseline(
            settings,
            evaluation,
            seed=seed,
            features=features,
            outputs=outputs,
            audio=audio,
            augment=augment,
        )
    from seda.features.ssl import backbone_settings, write_backbone_features
    from seda.models.training import TrainSettings, train_backbone

    backbone = backbone_settings(params, name)
    train = build(TrainSettings, params.get("train"), "train")
    if train.mode == "probe":
        rows = read_records(where["splits"], SplitRow)
        write_backbone_features(
            rows, name, backbone, where["features"], augment, evaluation.protocol
        )
    return train_backbone(
        name,
        backbone,
        train,
        evaluation,
        seed=seed,
        features=where["features"],
        splits=where["splits"],
        outputs=outputs,
        audio=audio,
        augment=augment,
    )


def _threads_per_job() -> None:
    """Split the cores between parallel local jobs (joblib launcher) instead of oversubscribing."""
    launcher = HydraConfig.get().launcher
    n_jobs = int(launcher.get("n_jobs", 1) or 1) if "joblib" in str(launcher.get("_target_")) else 1
    cores = os.cpu_count() or 1
    if n_jobs < 0:
        n_jobs = cores
    os.environ.setdefault("SEDA_THREADS", str(max(1, cores // max(1, n_jobs))))


# conf/ names the schema's structured configs; register them here too, since hydra_plugins/ (which
# registers them for `dvc exp run`) is importable only from the repository root.
register_schema()


@hydra.main(config_path=CONF_DIR, config_name="train_app", version_base="1.3")
def app(cfg: DictConfig) -> float | None:
    """One run: the model is the ``backbone`` choice (or ``model=baseline``)."""
    _threads_per_job()
    name = str(cfg.get("model") or HydraConfig.get().runtime.choices["backbone"])
    try:
        summary = run_model(params_for(cfg, name), name)
    except UserError as err:
        print(f"seda.train {name}: {err}", file=sys.stderr)
        raise SystemExit(2) from err
    return summary.get("uar")


if __name__ == "__main__":
    app()
