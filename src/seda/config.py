"""Read ``params.yaml`` and build a stage's typed settings from its section.

DVC stages read the composed ``params.yaml`` (what ``dvc exp run -S`` writes), never ``conf/``
directly: a stage that re-composed ``conf/`` would silently ignore ``-S`` overrides. Composing
and the schema live in :mod:`seda.schema`, which stages do not import (it knows every stage's
settings, so importing it would make every stage depend on all the library's code).
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any, TypeVar

from omegaconf import OmegaConf

from seda.errors import ConfigError

__all__ = ["ConfigError", "build", "load_params"]

T = TypeVar("T")

PARAMS_FILE = Path("params.yaml")


def load_params(path: str | Path = PARAMS_FILE) -> dict[str, Any]:
    """The composed parameters as plain containers."""
    path = Path(path)
    if not path.exists():
        raise ConfigError(f"{path} not found: run `seda compose` (or `dvc exp run`) first")
    cfg = OmegaConf.load(path)
    return OmegaConf.to_container(cfg, resolve=True)  # type: ignore[return-value]


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
