"""The one configuration schema: the settings dataclasses of the library, assembled into the shape
of ``params.yaml``, registered with Hydra's ConfigStore.

Every default is written once, as a dataclass field default in the library module that uses it;
``conf/`` holds only the choices that differ per config option (a dataset, a separation backend).
Hydra checks types and keys against this schema while it composes (also inside ``dvc exp run``,
through ``hydra_plugins/seda_schema``), and the ``checked`` key's resolver builds every section,
running its range checks, so a bad value fails before any stage runs or any output is removed.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from omegaconf import MISSING, DictConfig, OmegaConf

from seda.augment import AugmentSettings, validate_music
from seda.backbones import BackboneSettings, FeaturizeBatch
from seda.baseline import BaselineSettings
from seda.collect.folder import FolderSettings
from seda.collect.ytdlp import YoutubeSettings, YtdlpSettings, validate_ytdlp
from seda.config import PARAMS_FILE
from seda.dataset_figures import FiguresSettings
from seda.demo_corpus import DemoSettings
from seda.demo_corpus import validate as validate_demo
from seda.errors import ConfigError
from seda.io import write_text_atomic
from seda.models.evaluation import EvalSettings
from seda.models.training import TrainSettings
from seda.segment.clips import CleanSettings, validate_clean
from seda.segment.vad import VadSettings, validate_vad
from seda.separation.demucs_backend import DemucsSettings
from seda.separation.repet import SeparateSettings
from seda.separation.spleeter_backend import SpleeterSettings
from seda.splitting import SplitSettings
from seda.splitting import check_settings as validate_split

CHECK_RESOLVER = "seda_check"
CONF_DIR = Path("conf")


@dataclass
class NoSeparationSettings:
    """``separate=none``: later stages read the raw audio."""

    backend: str = "none"


@dataclass
class Params:
    """Everything ``params.yaml`` holds; ``dataset`` and ``separate`` take the schema of the chosen
    option (see :data:`GROUP_SCHEMAS`)."""

    dataset: Any = MISSING
    separate: Any = MISSING
    vad: VadSettings = field(default_factory=VadSettings)
    backbones: dict[str, BackboneSettings] = field(default_factory=dict)
    # Batching of every backbone's featurize stage (config group featurize_batch: cpu, gpu).
    featurize_batch: FeaturizeBatch = field(default_factory=FeaturizeBatch)
    seed: int = 0
    # Worker processes for per-file stages; 0 means one per CPU core.
    workers: int = 0
    demo: DemoSettings = field(default_factory=DemoSettings)
    clean: CleanSettings = field(default_factory=CleanSettings)
    split: SplitSettings = field(default_factory=SplitSettings)
    figures: FiguresSettings = field(default_factory=FiguresSettings)
    # random: tiny randomly initialised backbones (the offline demo; every metrics file and the
    # comparison say so). pretrained: the pinned checkpoints of conf/backbone/*.yaml.
    backbone_weights: str = "random"
    baseline: BaselineSettings = field(default_factory=BaselineSettings)
    train: TrainSettings = field(default_factory=TrainSettings)
    eval: EvalSettings = field(default_factory=EvalSettings)
    # Augmentation of the training rows (config group augment; none by default).
    augment: AugmentSettings = field(default_factory=AugmentSettings)
    # Corpora the trained models are also scored on (dvc.yaml's cross@<name>), by conf/test_dataset.
    test_datasets: dict[str, FolderSettings] = field(default_factory=dict)
    # Resolved while composing: every section is built and range-checked (see module doc).
    checked: str = "${" + CHECK_RESOLVER + ":}"


@dataclass
class TrainAppParams(Params):
    """The Hydra app's config (``conf/train_app.yaml``): ``params.yaml``'s sections plus the one
    backbone a run trains (``backbone=...``) or ``model=baseline``."""

    backbone: BackboneSettings | None = None
    model: str | None = None


# (group, option schema name) -> dataclass: conf/<group>/<option>.yaml names it in its defaults.
GROUP_SCHEMAS: dict[tuple[str, str], type] = {
    ("dataset", "youtube_schema"): YoutubeSettings,
    ("dataset", "folder_schema"): FolderSettings,
    ("separate", "none_schema"): NoSeparationSettings,
    ("separate", "repet_schema"): SeparateSettings,
    ("separate", "spleeter_schema"): SpleeterSettings,
    ("separate", "demucs_schema"): DemucsSettings,
}


def validate_folder(settings: FolderSettings) -> None:
    """A folder corpus is read in place: its root must be there before anything runs."""
    if not settings.root:
        raise ConfigError("dataset.root is empty: name the corpus folder (dataset.root=...)")
    if not Path(settings.root).is_dir():
        raise ConfigError(
            f"dataset.root {settings.root!r} is not a folder (relative paths are from the "
            "repository root); set dataset.root to the corpus folder"
        )


# Range checks beyond types, for settings classes that do not check themselves.
VALIDATORS: dict[type, Callable[[Any], None]] = {
    FolderSettings: validate_folder,
    YtdlpSettings: validate_ytdlp,
    DemoSettings: validate_demo,
    CleanSettings: validate_clean,
    VadSettings: validate_vad,
    SplitSettings: validate_split,
    AugmentSettings: validate_music,
}


def register() -> None:
    """Put the schema into Hydra's ConfigStore and the range check into OmegaConf (idempotent)."""
    from hydra.core.config_store import ConfigStore

    store = ConfigStore.instance()
    # A group, so that conf/train_app.yaml can swap in its own root (`override schema: train_app`).
    store.store(group="schema", name="params", node=Params, package="_global_")
    store.store(group="schema", name="train_app", node=TrainAppParams, package="_global_")
    for (group, name), node in GROUP_SCHEMAS.items():
        store.store(group=group, name=name, node=node)
    if not OmegaConf.has_resolver(CHECK_RESOLVER):
        OmegaConf.register_new_resolver(CHECK_RESOLVER, _check_all, use_cache=False)


def _check_all(*, _root_: DictConfig) -> str:
    for key in _root_:
        if key != "checked":
            check_section(str(key), _root_[key])
    return "every section built and range-checked by seda.schema"


def check_section(key: str, node: Any) -> None:
    """Build a section's dataclass(es) and run their range checks; ConfigError names the key."""
    if not OmegaConf.is_config(node):
        return
    try:
        value = OmegaConf.to_object(node)
    except ConfigError:
        raise
    except Exception as err:  # OmegaConf's own type errors carry the key already
        raise ConfigError(f"{key}: {err}") from err
    for obj in value.values() if isinstance(value, Mapping) else [value]:
        _validate(obj)


def _validate(obj: Any) -> None:
    if not dataclasses.is_dataclass(obj):
        return
    check = VALIDATORS.get(type(obj))
    if check is not None:
        check(obj)
    for f in dataclasses.fields(obj):
        _validate(getattr(obj, f.name))


# The option schema of a loaded params.yaml, told by its discriminating key.
DATASET_KINDS: dict[str, type] = {"youtube": YoutubeSettings, "folder": FolderSettings}
SEPARATE_BACKENDS: dict[str, type] = {
    "none": NoSeparationSettings,
    "repet": SeparateSettings,
    "spleeter": SpleeterSettings,
    "demucs": DemucsSettings,
}


def check_params(params: Mapping[str, Any]) -> None:
    """Validate a composed ``params.yaml`` (as loaded) against the schema: what ``seda check``
    and every stage run first."""
    register()
    values = {k: v for k, v in params.items() if k != "checked"}
    try:
        schema = OmegaConf.structured(Params)
        for key, table, discriminator in (
            ("dataset", DATASET_KINDS, "kind"),
            ("separate", SEPARATE_BACKENDS, "backend"),
        ):
            choice = (values.get(key) or {}).get(discriminator)
            if choice not in table:
                raise ConfigError(
                    f"{key}.{discriminator} must be one of {', '.join(table)}, not {choice!r}"
                )
            schema[key] = OmegaConf.structured(table[choice])
        merged = OmegaConf.merge(schema, values)
    except ConfigError:
        raise
    except Exception as err:
        raise ConfigError(f"params.yaml does not fit the schema: {err}") from err
    for key in merged:
        if key != "checked":
            check_section(str(key), merged[key])


def compose(overrides: Sequence[str] = (), conf_dir: str | Path = CONF_DIR) -> dict[str, Any]:
    """Compose ``conf/config.yaml`` with Hydra overrides, as DVC's Hydra integration does."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    register()
    GlobalHydra.instance().clear()
    try:
        with initialize_config_dir(config_dir=str(Path(conf_dir).resolve()), version_base=None):
            cfg: DictConfig = hydra_compose(config_name="config", overrides=list(overrides))
        return OmegaConf.to_container(cfg, resolve=True)  # type: ignore[return-value]
    except (HydraException, OmegaConfBaseException) as err:
        raise ConfigError(_composition_error(err)) from err


def _composition_error(err: BaseException) -> str:
    """One line for a failed composition: the range check's own sentence where a resolver raised
    it, else Hydra's message without its config search path, and the first line of its cause."""
    cause: BaseException | None = err
    while cause is not None:
        if isinstance(cause, ConfigError):
            return str(cause)
        cause = cause.__cause__ or cause.__context__
    text = str(err).split("Config search path")[0]
    words = " ".join(line.strip() for line in text.splitlines() if line.strip())
    if err.__cause__ is not None and str(err.__cause__).strip():
        words += f" ({str(err.__cause__).strip().splitlines()[0]})"
    return f"conf/ does not compose: {words}"


def write_params(params: Mapping[str, Any], path: str | Path = PARAMS_FILE) -> None:
    header = (
        "# Generated from conf/ by `seda compose` (or `dvc exp run`): edit conf/, not this file.\n"
    )
    write_text_atomic(path, header + OmegaConf.to_yaml(OmegaConf.create(dict(params))))
