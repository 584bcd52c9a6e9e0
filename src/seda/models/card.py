"""The model card: ``model.json`` of a trained model folder, one typed record for writer and reader.

Training writes it (:meth:`ModelCard.write`) beside the weights; :mod:`seda.models.loading` reads
it back (:meth:`ModelCard.read`) and refuses, with :class:`ModelFormatError`, a card of another
format or version, a missing key, a value of the wrong type or out of range (labels that are not
canonical names, a sample rate that is not a rate, a number that is not finite), before a weight
is read.
The card says everything a loader needs to rebuild the model without the training data: labels,
the backbone reference, pooling, head shape, input preprocessing, the temperature that scales the
head's logits (fitted on the validation split, so that a confidence of 0.8 means about 80%), and
the clean/VAD settings the training clips were made with (so that prediction cuts new audio the
same way).
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from seda.errors import ConfigError
from seda.records import ID_PATTERN, RecordFormatError, coerce

# The card names its format so that a loader can refuse folders it does not understand; bump the
# version when the folder's layout or the card's fields change.
MODEL_FORMAT = "seda-model"
MODEL_FORMAT_VERSION = 3  # 3: probe and finetune cards carry their temperature
MODES = ("probe", "finetune", "baseline")


class ModelFormatError(RecordFormatError, ConfigError):
    """A model folder this version of seda cannot (or will not) load; the message says why."""


@dataclass(frozen=True)
class BackboneRef:
    """Which backbone weights the head was trained on (:func:`seda.backbones.backbone_reference`):
    random weights add ``random_init`` and ``init_seed``; pretrained ones the pinned revision and
    the hashes of the files loaded."""

    arch: str
    checkpoint: str
    weights: str
    random_init: dict[str, Any] | None = None
    init_seed: int | None = None
    revision: str | None = None
    weights_file: str | None = None
    weights_sha256: str | None = None
    sha256: dict[str, str] | None = None

    def __post_init__(self) -> None:
        if self.weights == "random" and (self.random_init is None or self.init_seed is None):
            missing = [k for k in ("random_init", "init_seed") if getattr(self, k) is None]
            raise ModelFormatError(
                f"the backbone reference of random weights lacks {', '.join(missing)}"
            )

    @classmethod
    def from_reference(cls, ref: Mapping[str, Any]) -> BackboneRef:
        """The typed form of a :func:`seda.backbones.backbone_reference` dict."""
        return coerce(ref, cls, "backbone", ModelFormatError)


@dataclass(frozen=True)
class InputPreprocessing:
    """How a waveform becomes backbone input (fields of :class:`seda.backbones.Preprocessing`)."""

    sample_rate: int
    do_normalize: bool
    return_attention_mask: bool

    def __post_init__(self) -> None:
        _check_rate(self.sample_rate, "preprocessing.sample_rate")

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any]) -> InputPreprocessing:
        return coerce(data, cls, "preprocessing", ModelFormatError)


@dataclass(frozen=True)
class HeadShape:
    hidden: int  # MLP width; 0 = a linear head
    dropout: float

    def __post_init__(self) -> None:
        if self.hidden < 0 or not 0.0 <= self.dropout < 1.0:
            raise ModelFormatError(
                f"head hidden must be >= 0 and dropout in [0, 1), got {self.hidden} and "
                f"{self.dropout}"
            )


@dataclass(frozen=True)
class FeatureShape:
    """The stored features the model was trained on (from the feature store's meta.json)."""

    shape: list[int] | None
    dtype: str | None
    pooling: str | None
    sample_rate: int | None

    def __post_init__(self) -> None:
        if self.sample_rate is not None:
            _check_rate(self.sample_rate, "features.sample_rate")


@dataclass(frozen=True)
class TrainedOn:
    split: str
    early_stopping: str
    n_train: int
    n_val: int
    best_epoch: int | None


@dataclass(frozen=True, kw_only=True)
class ModelCard:
    """``models/<model>/model.json``. Fields that belong to one mode are None in the others."""

    format: str = MODEL_FORMAT
    format_version: int = MODEL_FORMAT_VERSION
    model: str
    mode: str  # probe | finetune | baseline
    labels: list[str]
    # probe and finetune
    layer_weights: list[float] | None = None
    n_layers: int | None = None
    dim: int | None = None
    finetuned_backbone: str | None = None  # finetune: the folder of the tuned backbone
    # probe and finetune: probabilities are softmax(logits / temperature), T fitted on val
    temperature: float | None = None
    # baseline
    classifier: str | None = None
    best_params: dict[str, Any] | None = None
    # probe and finetune
    pooling: str | None = None
    head: HeadShape | None = None
    backbone: BackboneRef | None = None
    preprocessing: InputPreprocessing | None = None
    # How raw audio became the training clips: {"clean": ..., "vad": ...} sections of params.
    audio: dict[str, Any] | None = None
    # The augment section its training rows were made with (copies, speeds, SNRs, music,
    # oversampling; seda.augment); None when nothing was augmented or repeated.
    augment: dict[str, Any] | None = None
    features: FeatureShape | None = None  # the stored features it was trained on, if any
    trained_on: TrainedOn
    train: dict[str, Any] | None = None  # the train section (probe and finetune)
    seed: int

    def __post_init__(self) -> None:
        if self.format != MODEL_FORMAT or self.format_version != MODEL_FORMAT_VERSION:
            raise ModelFormatError(
                f"format {self.format!r} version {self.format_version!r} is not "
                f"{MODEL_FORMAT!r} version {MODEL_FORMAT_VERSION} (re-run the train stage)"
            )
        if self.mode not in MODES:
            raise ModelFormatError(f"unknown mode {self.mode!r}: use one of {', '.join(MODES)}")
        labels = self.labels
        if len(labels) < 2 or len(set(labels)) != len(labels):
            raise ModelFormatError("labels must be a list of at least two distinct names")
        odd = [lab for lab in labels if not ID_PATTERN.fullmatch(lab)]
        if odd:
            raise ModelFormatError(f"labels must be canonical names ([a-z0-9_-]), got {odd[0]!r}")
        for name in ("n_layers", "dim"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ModelFormatError(f"{name} must be a positive integer, got {value}")
        if self.temperature is not None and not (
            math.isfinite(self.temperature) and self.temperature > 0
        ):
            raise ModelFormatError(
                f"temperature must be a positive finite number, got {self.temperature}"
            )
        if (
            self.layer_weights is not None
            and self.n_layers is not None
            and len(self.layer_weights) != self.n_layers
        ):
            raise ModelFormatError(
                f"layer_weights has {len(self.layer_weights)} values for {self.n_layers} layers"
            )
        need = _MODE_FIELDS[self.mode]
        missing = [name for name in need if getattr(self, name) is None]
        if missing:
            raise ModelFormatError(
                f"a {self.mode} model card lacks {', '.join(missing)} (re-run the train stage)"
            )

    @property
    def sample_rate(self) -> int | None:
        """The audio rate the model takes (None: the baseline's own settings decide)."""
        return self.preprocessing.sample_rate if self.preprocessing else None

    def to_json(self) -> dict[str, Any]:
        """Plain JSON in field order; fields of other modes and unset optional backbone details
        are left out."""
        out: dict[str, Any] = {}
        other = {n for fields in _MODE_FIELDS.values() for n in fields} - set(
            _MODE_FIELDS[self.mode]
        )
        for f in dataclasses.fields(self):
            if f.name in other:
                continue
            value = getattr(self, f.name)
            if isinstance(value, BackboneRef):
                out[f.name] = {k: v for k, v in dataclasses.asdict(value).items() if v is not None}
            elif dataclasses.is_dataclass(value):
                out[f.name] = dataclasses.asdict(value)  # type: ignore[arg-type]
            else:
                out[f.name] = value
        return out

    @classmethod
    def from_json(cls, data: Any) -> ModelCard:
        """The card of a parsed ``model.json``; :class:`ModelFormatError` says what is wrong."""
        if not isinstance(data, Mapping):
            raise ModelFormatError("model.json must hold a JSON object")
        common = ("format", "format_version", "model", "mode", "labels")
        missing = [k for k in common if data.get(k) in (None, "", [])]
        if missing:
            raise ModelFormatError(
                f"model.json lacks {', '.join(missing)}: not a seda model, or saved by an older "
                "version (re-run the train stage)"
            )
        if data["format"] != MODEL_FORMAT or data["format_version"] != MODEL_FORMAT_VERSION:
            raise ModelFormatError(
                f"format {data['format']!r} version {data['format_version']!r} is not "
                f"{MODEL_FORMAT!r} version {MODEL_FORMAT_VERSION} (re-run the train stage)"
            )
        return coerce(data, cls, "", _card_error)

    def write(self, path: str | Path) -> None:
        from seda.io import write_json_atomic

        write_json_atomic(path, self.to_json())

    @classmethod
    def read(cls, path: str | Path) -> ModelCard:
        path = Path(path)
        if not path.is_file():
            raise ModelFormatError(f"{path} not found: train the model first")
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as err:
            raise ModelFormatError(f"{path} is not valid JSON: {err}") from err
        try:
            return cls.from_json(data)
        except ModelFormatError as err:
            raise ModelFormatError(f"{path}: {err}") from err


_NEURAL_FIELDS = (
    "layer_weights",
    "n_layers",
    "dim",
    "temperature",
    "pooling",
    "head",
    "backbone",
    "preprocessing",
)
_MODE_FIELDS: dict[str, tuple[str, ...]] = {
    "probe": _NEURAL_FIELDS,
    "finetune": (*_NEURAL_FIELDS, "finetuned_backbone"),
    "baseline": ("classifier", "best_params"),
}


def _check_rate(rate: int, where: str) -> None:
    if not 1000 <= rate <= 384_000:
        raise ModelFormatError(f"{where} must be a rate in Hz from 1000 to 384000, got {rate}")


def _card_error(message: str) -> ModelFormatError:
    """A model.json that does not fit the card's fields: written by another version of seda (or
    edited by hand); the train stage writes a good one."""
    return ModelFormatError(f"{message} (re-run the train stage)")
