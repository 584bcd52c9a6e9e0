"""Configuration: compose ``conf/`` with Hydra, read ``params.yaml``, build typed stage settings.

DVC stages read the composed ``params.yaml`` (what ``dvc exp run -S`` writes), never ``conf/``
directly: a stage that re-composed ``conf/`` would silently ignore ``-S`` overrides.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

from omegaconf import DictConfig, OmegaConf

from seda.errors import ConfigError

__all__ = ["ConfigError", "build", "compose", "load_params", "write_params"]

T = TypeVar("T")

PARAMS_FILE = Path("params.yaml")
CONF_DIR = Path("conf")


def load_params(path: str | Path = PARAMS_FILE) -> dict[str, Any]:
    """The composed parameters as plain containers."""
    path = Path(path)
    if not path.exists():
        raise ConfigError(f"{path} not found: run `seda compose` (or `dvc exp run`) first")
    cfg = OmegaConf.load(path)
    return OmegaConf.to_container(cfg, resolve=True)  # type: ignore[return-value]


def compose(overrides: Sequence[str] = (), conf_dir: str | Path = CONF_DIR) -> dict[str, Any]:
    """Compose ``conf/config.yaml`` with Hydra overrides, as DVC's Hydra integration does."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(Path(conf_dir).resolve()), version_base=None):
        cfg: DictConfig = hydra_compose(config_name="config", overrides=list(overrides))
    return OmegaConf.to_container(cfg, resolve=True)  # type: ignore[return-value]


def write_params(params: Mapping[str, Any], path: str | Path = PARAMS_FILE) -> None:
    from seda.io import write_text_atomic

    header = (
        "# Generated from conf/ by `seda compose` (or `dvc exp run`): edit conf/, not this file.\n"
    )
    write_text_atomic(path, header + OmegaConf.to_yaml(OmegaConf.create(dict(params))))


def build(cls: type[T], data: Mapping[str, Any] | None, where: str = "") -> T:
    """Build dataclass ``cls`` from a mapping, recursing into nested dataclasses.

    Unknown keys raise :class:`ConfigError` naming the key, so a typo in conf/ is caught at once
    instead of silently using a default.
    """
    data = dict(data or {})
    fields = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise ConfigError(f"unknown setting(s) {', '.join(unknown)} in {where or cls.__name__}")
    hints = typing.get_type_hints(cls)
    kwargs: dict[str, Any] = {}
    for name, value in data.items():
        sub = _dataclass_in(hints.get(name))
        if sub is not None and isinstance(value, Mapping):
            value = build(sub, value, f"{where}.{name}" if where else name)
        kwargs[name] = value
    missing = [
        n
        for n, f in fields.items()
        if n not in kwargs
        and f.default is dataclasses.MISSING
        and f.default_factory is dataclasses.MISSING
    ]
    if missing:
        raise ConfigError(f"missing setting(s) {', '.join(missing)} in {where or cls.__name__}")
    return cls(**kwargs)


def _dataclass_in(hint: Any) -> type | None:
    if hint is None:
        return None
    if dataclasses.is_dataclass(hint):
        return hint  # type: ignore[return-value]
    if isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union:
        for arg in typing.get_args(hint):
            if dataclasses.is_dataclass(arg):
                return arg
    return None
