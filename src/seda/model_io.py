"""Load a trained model from ``models/<model>/`` and predict with it, without the training data.

A model folder holds ``model.json`` (format and version, labels, the backbone reference, pooling,
head shape, input preprocessing and the clean/VAD settings the training clips were made with)
and weights as safetensors only: ``head.safetensors`` (probe and finetune; a finetuned backbone
in ``backbone/`` as ``save_pretrained`` wrote it) or ``baseline.safetensors``. Anything else is
refused with :class:`ModelFormatError` before a weight is read: another format or version,
missing keys, a pickle file anywhere in the folder (pickle runs code when loaded).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from seda.config import ConfigError

log = logging.getLogger(__name__)

MODELS_DIR = Path("models")
# Suffixes of serialisation formats that may run code on load; none of them is ever written by
# train, so their presence means the folder is not one of ours (or was tampered with).
UNSAFE_SUFFIXES = (".pkl", ".pickle", ".pt", ".pth", ".bin", ".ckpt", ".joblib", ".npy", ".npz")
_PICKLE_PROTOCOLS = range(2, 6)
_COMMON_KEYS = ("format", "format_version", "model", "mode", "labels")
_NEURAL_KEYS = ("backbone", "pooling", "head", "preprocessing")
_BACKBONE_KEYS = ("arch", "checkpoint", "weights")
_PREP_KEYS = ("sample_rate", "do_normalize", "return_attention_mask")


class ModelFormatError(ConfigError):
    """A model folder this version of seda cannot (or will not) load; the message says why."""


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


def read_model_json(model_dir: Path) -> dict[str, Any]:
    """``model.json`` of a folder, checked for format, version and the keys its mode needs."""
    from seda.stages.train import MODEL_FORMAT, MODEL_FORMAT_VERSION

    path = model_dir / "model.json"
    if not path.is_file():
        raise ModelFormatError(f"{path} not found: train the model first (dvc repro train)")
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise ModelFormatError(f"{path} is not valid JSON: {err}") from err
    if not isinstance(meta, dict):
        raise ModelFormatError(f"{path} must hold a JSON object")
    missing = [k for k in _COMMON_KEYS if meta.get(k) in (None, "", [])]
    if missing:
        raise ModelFormatError(
            f"{path} lacks {', '.join(missing)}: not a seda model, or saved by an older "
            "version (re-run the train stage)"
        )
    if meta["format"] != MODEL_FORMAT or meta["format_version"] != MODEL_FORMAT_VERSION:
        raise ModelFormatError(
            f"{path}: format {meta['format']!r} version {meta['format_version']!r} is not "
            f"{MODEL_FORMAT!r} version {MODEL_FORMAT_VERSION} (re-run the train stage)"
        )
    mode = meta["mode"]
    if mode not in ("probe", "finetune", "baseline"):
        raise ModelFormatError(f"{path}: unknown mode {mode!r}")
    if mode != "baseline":
        need = list(_NEURAL_KEYS) + (["finetuned_backbone"] if mode == "finetune" else [])
        missing = [k for k in need if not meta.get(k)]
        missing += [
            f"backbone.{k}" for k in _BACKBONE_KEYS if k not in (meta.get("backbone") or {})
        ]
        missing += [
            f"preprocessing.{k}" for k in _PREP_KEYS if k not in (meta.get("preprocessing") or {})
        ]
        if (meta.get("backbone") or {}).get("weights") == "random":
            missing += [
                f"backbone.{k}" for k in ("random_init", "init_seed") if k not in meta["backbone"]
            ]
        if missing:
            raise ModelFormatError(f"{path} lacks {', '.join(missing)} (re-run the train stage)")
    labels = meta["labels"]
    if not isinstance(labels, list) or len(labels) < 2 or len(set(labels)) != len(labels):
        raise ModelFormatError(f"{path}: labels must be a list of at least two distinct names")
    return meta


@dataclass
class LoadedModel:
    """A trained model ready to predict class probabilities of speech clips."""

    name: str
    mode: str
    labels: list[str]
    sample_rate: int
    meta: dict[str, Any]
    impl: Any = field(repr=False)

    @property
    def audio_settings(self) -> dict[str, Any]:
        """The clean/VAD sections the training clips were made with (empty when not saved)."""
        return dict(self.meta.get("audio") or {})

    def predict_proba(
        self, waves: Sequence[np.ndarray], groups: Sequence[str] | None = None
    ) -> np.ndarray:
        """(n, n_labels) probabilities of 16 kHz mono clips, columns in ``labels`` order.

        ``groups`` (speaker or source of each clip) matter to the baseline only: its features
        are standardised within each group, as in training.
        """
        if not waves:
            return np.zeros((0, len(self.labels)))
        return self.impl.predict_proba(list(waves), groups)


def load_model(model_dir: str | Path) -> LoadedModel:
    """Check and load ``models/<model>/`` (see the module docstring for what is refused)."""
    model_dir = Path(model_dir)
    if not model_dir.is_dir():
        raise ModelFormatError(f"model folder {model_dir} not found: train the model first")
    check_no_pickle(model_dir)
    meta = read_model_json(model_dir)
    if meta["mode"] == "baseline":
        impl: Any = _BaselineImpl(model_dir, meta)
    else:
        impl = _NeuralImpl(model_dir, meta)
    return LoadedModel(
        str(meta["model"]), meta["mode"], list(meta["labels"]), impl.sample_rate, meta, impl
    )


def _safetensors(path: Path) -> Path:
    if not path.is_file():
        raise ModelFormatError(f"{path} not found: the model folder is incomplete")
    return path


class _BaselineImpl:
    def __init__(self, model_dir: Path, meta: dict[str, Any]) -> None:
        from safetensors import SafetensorError

        from seda.baseline import BaselineModel

        try:
            self.model = BaselineModel.load(_safetensors(model_dir / "baseline.safetensors"))
        except (SafetensorError, KeyError, TypeError, ValueError) as err:
            raise ModelFormatError(f"{model_dir}/baseline.safetensors: {err}") from err
        self.labels = list(meta["labels"])
        unknown = set(self.model.labels) - set(self.labels)
        if unknown:
            raise ModelFormatError(
                f"{model_dir}: classifier labels {sorted(unknown)} not in labels"
            )
        self.sample_rate = int(self.model.settings.sample_rate or 16000)

    def predict_proba(self, waves: list[np.ndarray], groups: Sequence[str] | None) -> np.ndarray:
        from seda.audio import AudioError
        from seda.baseline import classic_features

        feats: list[np.ndarray | None] = []
        for w in waves:
            try:
                feats.append(classic_features(w, self.sample_rate, self.model.settings))
            except AudioError as err:
                log.warning("baseline: a clip has no features (%s)", err)
                feats.append(None)
        ok = [i for i, f in enumerate(feats) if f is not None]
        # A clip without features gets a row of NaN: the caller reports it, the rest go on.
        out = np.full((len(waves), len(self.labels)), np.nan)
        if not ok:
            return out
        speakers = list(groups) if groups is not None else ["all"] * len(waves)
        proba = self.model.predict_proba(
            np.stack([feats[i] for i in ok]), [speakers[i] for i in ok]
        )
        out[ok] = 0.0
        for j, label in enumerate(self.model.labels):
            out[ok, self.labels.index(label)] = proba[:, j]
        return out


class _NeuralImpl:
    """Backbone (frozen or finetuned) -> pooled hidden states -> the layer-weighted head."""

    def __init__(self, model_dir: Path, meta: dict[str, Any]) -> None:
        import torch
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        from seda.backbones import Preprocessing, min_samples, pick_device
        from seda.stages.train import LayerWeightedHead

        self.meta = meta
        self.pooling = str(meta["pooling"])
        self.prep = Preprocessing(**{k: meta["preprocessing"][k] for k in _PREP_KEYS})
        self.sample_rate = int(self.prep.sample_rate)
        try:
            state = load_file(str(_safetensors(model_dir / "head.safetensors")))
        except SafetensorError as err:
            raise ModelFormatError(f"{model_dir}/head.safetensors: {err}") from err
        self.backbone = self._backbone(model_dir, meta)
        n_layers = int(self.backbone.config.num_hidden_layers) + 1
        if "layer_logits" not in state or state["layer_logits"].shape != (n_layers,):
            raise ModelFormatError(
                f"{model_dir}: the head expects {tuple(state.get('layer_logits', []).shape)} "
                f"layer weights but the backbone has {n_layers} layers"
            )
        first = state.get("mlp.1.weight")
        if first is None:
            raise ModelFormatError(f"{model_dir}/head.safetensors lacks mlp.1.weight")
        head_cfg = meta["head"]
        head = LayerWeightedHead(
            n_layers, int(first.shape[1]), len(meta["labels"]), int(head_cfg["hidden"]), 0.0
        )
        try:
            head.load_state_dict(state, strict=True)
        except RuntimeError as err:
            raise ModelFormatError(f"{model_dir}/head.safetensors does not fit: {err}") from err
        self.device = pick_device()
        self.head = head.to(self.device).eval()
        self.backbone = self.backbone.to(self.device).eval()
        self.shortest = min_samples(self.backbone)
        # Probe heads were trained on features stored as float16: round the same way.
        self.round_fp16 = meta["mode"] == "probe"
        self.batch_seconds = 64.0
        self.max_batch_size = 16
        self._torch = torch

    @staticmethod
    def _backbone(model_dir: Path, meta: dict[str, Any]) -> Any:
        from seda.backbones import BackboneSettings, load_backbone

        ref = meta["backbone"]
        if meta["mode"] == "finetune":
            return _load_finetuned(model_dir / str(meta["finetuned_backbone"]), ref["arch"])
        settings = BackboneSettings(
            arch=ref["arch"],
            checkpoint=ref["checkpoint"],
            weights=ref["weights"],
            sample_rate=int(meta["preprocessing"]["sample_rate"]),
            pooling=str(meta["pooling"]),
            random_init=dict(ref.get("random_init") or {}),
            init_seed=int(ref.get("init_seed") or 0),
        )
        model, _ = load_backbone(settings)
        _check_backbone_hashes(ref, model)
        return model

    def predict_proba(self, waves: list[np.ndarray], groups: Sequence[str] | None) -> np.ndarray:
        from seda.stages.featurize import embed_batch, length_batches

        torch = self._torch
        waves = [
            w if len(w) >= self.shortest else np.pad(w, (0, self.shortest - len(w))) for w in waves
        ]
        out = np.zeros((len(waves), len(self.meta["labels"])))
        batches = length_batches(
            [len(w) for w in waves], int(self.batch_seconds * self.sample_rate), self.max_batch_size
        )
        for batch in batches:
            pooled = embed_batch(
                self.backbone, self.prep, [waves[i] for i in batch], self.pooling, self.device
            )
            if self.round_fp16:
                pooled = pooled.half().float()
            with torch.inference_mode():
                logits = self.head(pooled.to(self.device)).float()
            out[batch] = torch.softmax(logits, dim=1).cpu().numpy()
        return out


def _load_finetuned(path: Path, arch: str) -> Any:
    from seda.backbones import _classes

    if not (path / "config.json").is_file() or not (path / "model.safetensors").is_file():
        raise ModelFormatError(f"{path} lacks config.json or model.safetensors")
    _, model_cls = _classes(arch)
    model = model_cls.from_pretrained(str(path), use_safetensors=True, output_hidden_states=True)
    return model.eval()


def _check_backbone_hashes(ref: dict[str, Any], model: Any) -> None:
    """A local pretrained checkpoint must be the one the head was trained on (same bytes)."""
    from seda.io import sha256_file

    expected = ref.get("sha256") or {}
    local = Path(str(ref["checkpoint"])).expanduser()
    for name, digest in expected.items():
        if not (local / name).is_file() or sha256_file(local / name) != digest:
            raise ModelFormatError(
                f"backbone checkpoint {local}/{name} differs from the one the model was trained "
                "on (sha256 mismatch): point backbones.<name>.checkpoint at the original copy"
            )
    revision = ref.get("revision")
    found = getattr(getattr(model, "config", None), "_commit_hash", None)
    if revision and found and revision != found:
        log.warning(
            "backbone %s is at revision %s, the model was trained on %s",
            ref["checkpoint"],
            found,
            revision,
        )


def available_models(models_dir: str | Path = MODELS_DIR) -> list[str]:
    """Names of the folders under ``models_dir`` that hold a model.json."""
    root = Path(models_dir)
    return sorted(p.parent.name for p in root.glob("*/model.json")) if root.is_dir() else []
