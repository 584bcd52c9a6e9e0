"""Load a trained model folder and predict with it, without the training data.

A model folder holds ``model.json`` (:class:`seda.models.card.ModelCard`) and weights as
safetensors only: ``head.safetensors`` (probe and finetune; a finetuned backbone in ``backbone/``
as ``save_pretrained`` wrote it) or ``baseline.safetensors``. Anything else is refused with
:class:`ModelFormatError` before a weight is read: another format or version, a missing key or a
value of the wrong type, a pickle file anywhere in the folder (pickle runs code when loaded).
Then the weights themselves are refused, each with one sentence, when their shapes do not fit
what the card declares (labels, head width, layers, backbone width) or when they hold NaN or
infinite values (a model that diverged in training would predict nothing, silently).
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from seda.models.card import BackboneRef, ModelCard, ModelFormatError

__all__ = ["LoadedModel", "ModelFormatError", "available_models", "check_no_pickle", "load_model"]

# Suffixes of serialisation formats that may run code on load; none of them is ever written by
# training, so their presence means the folder is not one of ours (or was tampered with).
UNSAFE_SUFFIXES = (".pkl", ".pickle", ".pt", ".pth", ".bin", ".ckpt", ".joblib", ".npy", ".npz")
_PICKLE_PROTOCOLS = range(2, 6)


def check_no_pickle(model_dir: Path) -> None:
    """Refuse a folder holding a pickle-like file (by suffix or by the pickle opcode header)."""
    for path in sorted(model_dir.rglob("*")):
        if not path.is_file():
            continue
        if path.suffix.lower() in UNSAFE_SUFFIXES:
            raise ModelFormatError(
                f"{path}: refusing to load a model folder holding a {path.suffix} file "
                "(pickle-based formats run code when loaded; seda saves safetensors only)"
            )
        if path.suffix == ".safetensors":
            continue  # parsed by safetensors (no code); its header length may start with 0x80
        with open(path, "rb") as fh:
            head = fh.read(2)
        if len(head) == 2 and head[0] == 0x80 and head[1] in _PICKLE_PROTOCOLS:
            raise ModelFormatError(f"{path}: is a pickle; refusing to load it")


@dataclass
class LoadedModel:
    """A trained model ready to predict class probabilities of speech clips."""

    name: str
    mode: str
    labels: list[str]
    sample_rate: int
    card: ModelCard
    impl: Any = field(repr=False)

    @property
    def audio_settings(self) -> dict[str, Any]:
        """The clean/VAD sections the training clips were made with (empty when not saved)."""
        return dict(self.card.audio or {})

    def predict_proba(
        self, waves: Sequence[np.ndarray], groups: Sequence[str] | None = None
    ) -> np.ndarray:
        """(n, n_labels) probabilities of mono clips at ``sample_rate``, columns in ``labels``
        order. A clip's probabilities never depend on the other clips unless ``groups`` says so.

        ``groups`` (the speaker of each clip) matter to a baseline that standardises per speaker
        only. ``None``: every clip is standardised with the statistics fixed at training time
        (the pooled training mean and std), so that an utterance gets the same probabilities
        whatever else is predicted with it. Given: each group's clips are standardised together,
        as each speaker was in training (groups smaller than ``min_speaker_clips`` with the
        training statistics). Neural models embed every clip on its own (no padding, no batch).
        """
        if not waves:
            return np.zeros((0, len(self.labels)))
        return self.impl.predict_proba(list(waves), groups)

    @property
    def feature_settings(self) -> Any:
        """The baseline's ``BaselineSettings``: its clips' features depend on the clip alone, so
        they can be computed where the clip is cut (:meth:`predict_features`); None for neural
        models."""
        return self.impl.model.settings if self.mode == "baseline" else None

    def predict_features(
        self, features: Sequence[np.ndarray | None], groups: Sequence[str] | None = None
    ) -> np.ndarray:
        """:meth:`predict_proba` of baseline clips from their features
        (:func:`seda.features.classic.clip_features` at ``sample_rate``; None for a clip that
        has none, which gets a row of NaN)."""
        if not features:
            return np.zeros((0, len(self.labels)))
        return self.impl.predict_features(list(features), groups)


def load_model(model_dir: str | Path) -> LoadedModel:
    """Check and load a model folder (see the module docstring for what is refused)."""
    model_dir = Path(model_dir)
    if not model_dir.is_dir():
        raise ModelFormatError(f"model folder {model_dir} not found: train the model first")
    check_no_pickle(model_dir)
    card = ModelCard.read(model_dir / "model.json")
    impl: Any = (
        _BaselineImpl(model_dir, card) if card.mode == "baseline" else _NeuralImpl(model_dir, card)
    )
    return LoadedModel(card.model, card.mode, list(card.labels), impl.sample_rate, card, impl)


def available_models(models_dir: str | Path) -> list[str]:
    """Names of the folders under ``models_dir`` that hold a model.json."""
    root = Path(models_dir)
    return sorted(p.parent.name for p in root.glob("*/model.json")) if root.is_dir() else []


def _safetensors(path: Path) -> Path:
    if not path.is_file():
        raise ModelFormatError(f"{path} not found: the model folder is incomplete")
    return path


class _BaselineImpl:
    def __init__(self, model_dir: Path, card: ModelCard) -> None:
        from safetensors import SafetensorError

        from seda.models.baseline import BaselineModel

        path = self.path = _safetensors(model_dir / "baseline.safetensors")
        try:
            self.model = BaselineModel.load(path)
        except (SafetensorError, KeyError, TypeError, ValueError) as err:
            raise ModelFormatError(f"{path}: {err}") from err
        self.labels = list(card.labels)
        unknown = set(self.model.labels) - set(self.labels)
        if unknown:
            raise ModelFormatError(
                f"{model_dir}: classifier labels {sorted(unknown)} not in labels"
            )
        _check_baseline_arrays(path, self.model)
        rate = self.model.settings.sample_rate
        if rate is not None and (isinstance(rate, bool) or not isinstance(rate, int) or rate < 1):
            raise ModelFormatError(f"{path}: the sample rate {rate!r} is not a rate in Hz")
        self.sample_rate = int(rate or 16000)
        # The same classifier without its per-speaker step, for rows standardised beforehand.
        self.scorer = copy.copy(self.model)
        self.scorer.settings = dataclasses.replace(self.model.settings, speaker_standardise=False)

    def _with_training_statistics(self, X: np.ndarray) -> np.ndarray:
        """Probabilities of rows each standardised on its own with the pooled training mean
        and std (what training gives a speaker with too few clips): no row depends on another."""
        from seda.models.baseline import per_speaker_standardise

        if not self.model.settings.speaker_standardise:
            return self.model.predict_proba(X)
        pooled = self.model.pooled
        if pooled is None:
            raise ModelFormatError(
                f"{self.path}: the training statistics (pooled.mean, pooled.std) are missing: "
                "retrain the model, or say which clips share a speaker (seda predict "
                "--same-speaker)"
            )
        # Every row its own group below min_clips: every row gets the fallback statistics.
        Z = per_speaker_standardise(X, range(len(X)), min_clips=2, fallback=pooled)
        return self.scorer.predict_proba(Z)

    def predict_proba(self, waves: list[np.ndarray], groups: Sequence[str] | None) -> np.ndarray:
        from seda.features.classic import clip_features

        settings = self.model.settings
        return self.predict_features(
            [clip_features((w, self.sample_rate, settings)) for w in waves], groups
        )

    def predict_features(
        self, feats: list[np.ndarray | None], groups: Sequence[str] | None
    ) -> np.ndarray:
        ok = [i for i, f in enumerate(feats) if f is not None]
        # A clip without features gets a row of NaN: the caller reports it, the rest go on.
        out = np.full((len(feats), len(self.labels)), np.nan)
        if not ok:
            return out
        X = np.stack([feats[i] for i in ok])
        if groups is None:
            proba = self._with_training_statistics(X)
        else:
            speakers = list(groups)
            proba = self.model.predict_proba(X, [speakers[i] for i in ok])
        out[ok] = 0.0
        for j, label in enumerate(self.model.labels):
            out[ok, self.labels.index(label)] = proba[:, j]
        return out


class _NeuralImpl:
    """Backbone (frozen or finetuned) -> pooled hidden states -> the layer-weighted head."""

    def __init__(self, model_dir: Path, card: ModelCard) -> None:
        import torch
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        from seda.backbones import Preprocessing, min_samples, pick_device
        from seda.models.determinism import deterministic_torch
        from seda.models.head import LayerWeightedHead

        assert card.preprocessing is not None and card.head is not None
        assert card.pooling is not None
        self.card = card
        self.pooling = card.pooling
        self.prep = Preprocessing(
            card.preprocessing.sample_rate,
            card.preprocessing.do_normalize,
            card.preprocessing.return_attention_mask,
        )
        self.sample_rate = int(self.prep.sample_rate)
        head_path = _safetensors(model_dir / "head.safetensors")
        try:
            state = load_file(str(head_path))
        except SafetensorError as err:
            raise ModelFormatError(f"{head_path}: {err}") from err
        assert card.n_layers is not None and card.dim is not None
        head = LayerWeightedHead(card.n_layers, card.dim, len(card.labels), card.head.hidden, 0.0)
        _check_head(head_path, state, head, card)
        self.backbone = self._backbone(model_dir, card)
        config = self.backbone.config
        layers, width = int(config.num_hidden_layers) + 1, int(config.hidden_size)
        if (layers, width) != (card.n_layers, card.dim):
            raise ModelFormatError(
                f"{model_dir}: model.json declares {card.n_layers} layers of width {card.dim} "
                f"but backbone {card.backbone and card.backbone.checkpoint} has {layers} of "
                f"width {width}"
            )
        try:
            head.load_state_dict(state, strict=True)
        except RuntimeError as err:  # _check_head has compared every shape: not expected
            raise ModelFormatError(f"{head_path} does not fit the head") from err
        deterministic_torch()
        self.device = pick_device()
        self.head = head.to(self.device).eval()
        self.backbone = self.backbone.to(self.device).eval()
        self.shortest = min_samples(self.backbone)
        # Probe heads were trained on features stored as float16: round the same way.
        self.round_fp16 = card.mode == "probe"
        self._torch = torch

    def _backbone(self, model_dir: Path, card: ModelCard) -> Any:
        from seda.backbones import BackboneSettings, load_backbone

        ref = card.backbone
        assert ref is not None and card.preprocessing is not None and card.pooling is not None
        if card.mode == "finetune":
            return _load_finetuned(model_dir / str(card.finetuned_backbone), ref.arch)
        settings = BackboneSettings(
            arch=ref.arch,
            checkpoint=ref.checkpoint,
            weights=ref.weights,
            revision=ref.revision,
            sample_rate=card.preprocessing.sample_rate,
            pooling=card.pooling,
            random_init=dict(ref.random_init or {}),
            init_seed=int(ref.init_seed or 0),
        )
        model, _ = load_backbone(settings)
        _check_backbone_hashes(ref, model)
        return model

    def predict_proba(self, waves: list[np.ndarray], groups: Sequence[str] | None) -> np.ndarray:
        """One clip per forward pass: padding (which a model without an attention mask sees)
        and the batch's make-up (which changes the kernels' summation order, visibly under
        bf16 autocast) would make a clip's probabilities depend on the clips beside it."""
        from seda.features.ssl import embed_batch
        from seda.metrics import softmax

        torch = self._torch
        out = np.zeros((len(waves), len(self.card.labels)))
        for i, w in enumerate(waves):
            if len(w) < self.shortest:
                w = np.pad(w, (0, self.shortest - len(w)))
            pooled = embed_batch(self.backbone, self.prep, [w], self.pooling, self.device)
            if self.round_fp16:
                pooled = pooled.half().float()
            with torch.inference_mode():
                logits = self.head(pooled.to(self.device)).float()
            # Scaled by the temperature fitted on the validation split (model.json), as in the
            # evaluation of the train stage: softmax(logits / T) in float64.
            out[i] = softmax(logits.cpu().numpy(), self.card.temperature or 1.0)[0]
        return out


def _load_finetuned(path: Path, arch: str) -> Any:
    import torch

    from seda.backbones import _classes

    if not (path / "config.json").is_file() or not (path / "model.safetensors").is_file():
        raise ModelFormatError(f"{path} lacks config.json or model.safetensors")
    _, model_cls = _classes(arch)
    model = model_cls.from_pretrained(str(path), use_safetensors=True, output_hidden_states=True)
    for name, tensor in model.state_dict().items():
        if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
            raise ModelFormatError(
                f"{path}: {name} holds NaN or infinite values (training diverged): retrain it"
            )
    return model.eval()


def _check_head(path: Path, state: Mapping[str, Any], head: Any, card: ModelCard) -> None:
    """The head's tensors are those of the head the card declares, of finite floats."""
    import torch

    want = {k: tuple(v.shape) for k, v in head.state_dict().items()}
    assert card.head is not None
    declared = (
        f"{len(card.labels)} labels, hidden {card.head.hidden}, {card.n_layers} layers of width "
        f"{card.dim}"
    )
    missing, unknown = sorted(set(want) - set(state)), sorted(set(state) - set(want))
    if missing or unknown:
        what = f"lacks {', '.join(missing)}" if missing else f"has unknown {', '.join(unknown)}"
        raise ModelFormatError(f"{path} {what}: not the head model.json declares ({declared})")
    for key, shape in want.items():
        tensor = state[key]
        if tuple(tensor.shape) != shape:
            raise ModelFormatError(
                f"{path}: {key} has shape {tuple(tensor.shape)} but model.json declares {shape} "
                f"({declared})"
            )
        if not tensor.is_floating_point():
            raise ModelFormatError(f"{path}: {key} holds {tensor.dtype} values, not floats")
        if not bool(torch.isfinite(tensor).all()):
            raise ModelFormatError(
                f"{path}: {key} holds NaN or infinite values (training diverged): retrain the model"
            )


def _check_baseline_arrays(path: Path, model: Any) -> None:
    """The baseline's arrays hold finite numbers (their shapes are checked by
    :meth:`~seda.models.baseline.BaselineModel.load`)."""
    arrays: Mapping[str, np.ndarray] = model.arrays
    for key, value in arrays.items():
        if value.dtype.kind not in "fiu":
            raise ModelFormatError(f"{path}: {key} holds {value.dtype} values, not numbers")
        if not np.isfinite(value).all():
            raise ModelFormatError(
                f"{path}: {key} holds NaN or infinite values (training diverged): retrain the model"
            )


def _check_backbone_hashes(ref: BackboneRef, model: Any) -> None:
    """A pretrained backbone must be the one the head was trained on (same bytes)."""
    from seda.backbones import weights_sha256
    from seda.io import sha256_file

    local = Path(str(ref.checkpoint)).expanduser()
    for name, digest in (ref.sha256 or {}).items():
        if not (local / name).is_file() or sha256_file(local / name) != digest:
            raise ModelFormatError(
                f"backbone checkpoint {local}/{name} differs from the one the model was trained "
                "on (sha256 mismatch): point backbones.<name>.checkpoint at the original copy"
            )
    if ref.weights_sha256 and weights_sha256(model) not in (None, ref.weights_sha256):
        raise ModelFormatError(
            f"the weights of backbone {ref.checkpoint} differ from those the model was trained "
            "on (sha256 mismatch): fetch the revision named in model.json"
        )
