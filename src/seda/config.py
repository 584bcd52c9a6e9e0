"""Read ``params.yaml`` and build a stage's typed settings from its section.

DVC stages read the composed ``params.yaml`` (what ``dvc exp run -S`` writes), never ``conf/``
directly: a stage that re-composed ``conf/`` would silently ignore ``-S`` overrides. Composing
and the schema live in :mod:`seda.schema`, which stages do not import (it knows every stage's
settings, so importing it would make every stage depend on all the library's code).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, TypeVar

from omegaconf import OmegaConf

from seda.errors import ConfigError
from seda.records import coerce

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
    """Build dataclass ``cls`` from a section of params (None: the defaults), nested dataclasses
    too, with :func:`seda.records.coerce`.

    An unknown key, a missing required one or a value of the wrong type raises
    :class:`ConfigError` naming the dotted key (``clean.clips has unknown key(s) typo``,
    ``train.lr must be a finite number, got 'abc'``), so a typo in conf/ is caught at once
    instead of silently using a default.
    """
    return coerce(data or {}, cls, where, ConfigError)
