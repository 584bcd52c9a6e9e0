"""Hydra app for sweeps outside DVC.

``python -m seda.train -m backbone=hubert,wav2vec2,wavlm,data2vec``: composes
``conf/train_app.yaml`` (``conf/config.yaml`` plus one ``backbone`` choice) and calls the
same :func:`seda.stages.featurize.run` and :func:`seda.stages.train.run` as the DVC stages, so
a sweep here and ``dvc exp run`` write identical files (``reports/metrics/<backbone>.json``...).
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

from seda.audio import AudioError
from seda.config import ConfigError

log = logging.getLogger(__name__)

CONF_DIR = str(Path(os.environ.get("SEDA_CONF", "conf")).resolve())


def params_for(cfg: DictConfig | dict[str, Any], name: str) -> dict[str, Any]:
    """The composed app config as params of model ``name`` (``backbone`` -> ``backbones.name``)."""
    params = OmegaConf.to_container(cfg, resolve=True) if isinstance(cfg, DictConfig) else dict(cfg)
    assert isinstance(params, dict)
    chosen = params.pop("backbone", None)
    if chosen is not None and name != "baseline":
        params["backbones"] = {**(params.get("backbones") or {}), name: chosen}
    return params


def run_model(params: dict[str, Any], name: str) -> dict[str, Any]:
    """Featurize (unless in finetune mode) then train one model: what the two DVC stages do."""
    from seda.stages import featurize, train

    mode = (params.get("train") or {}).get("mode", "probe")
    if name == "baseline" or mode == "probe":
        featurize.run(params, name)
    return train.run(params, name)


def _threads_per_job() -> None:
    """Split the cores between parallel local jobs (joblib launcher) instead of oversubscribing."""
    launcher = HydraConfig.get().launcher
    n_jobs = int(launcher.get("n_jobs", 1) or 1) if "joblib" in str(launcher.get("_target_")) else 1
    cores = os.cpu_count() or 1
    if n_jobs < 0:
        n_jobs = cores
    os.environ.setdefault("SEDA_THREADS", str(max(1, cores // max(1, n_jobs))))


@hydra.main(config_path=CONF_DIR, config_name="train_app", version_base="1.3")
def app(cfg: DictConfig) -> float | None:
    """One run: the model is the ``backbone`` choice (or ``model=baseline``)."""
    _threads_per_job()
    name = str(cfg.get("model") or HydraConfig.get().runtime.choices["backbone"])
    try:
        summary = run_model(params_for(cfg, name), name)
    except (ConfigError, AudioError) as err:
        print(f"seda.train {name}: {err}", file=sys.stderr)
        raise SystemExit(2) from err
    return summary.get("uar")


if __name__ == "__main__":
    app()
