"""Train a backbone model: a layer-weighted probe on stored features, or the backbone end to end.

- ``probe`` (default): a learnable softmax-weighted sum over the stored layers followed by a small
  MLP (the SUPERB recipe: the backbone stays frozen, so a probe trains in seconds and compares
  what each backbone's layers know).
- ``finetune``: the backbone and the same head end to end on the clips (CNN feature encoder
  frozen by default, mixed precision on CUDA, gradient accumulation).

Both train with early stopping on the validation UAR, from fixed seeds with deterministic kernels
(:mod:`seda.models.determinism`), so the same inputs give the same weights. Then one temperature
is fitted on the same validation rows (:func:`seda.metrics.fit_temperature`): the probabilities
are ``softmax(logits / T)``, in evaluation and, through the model card, in ``seda predict``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import logging
import os
import shutil
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from sklearn.metrics import balanced_accuracy_score
from torch import nn
from torch.nn import functional as F

from seda.audio import AudioError, load_audio
from seda.augment import AugmentSettings, augment_wave, plan_copies, training_clips
from seda.backbones import (
    BackboneSettings,
    Preprocessing,
    autocast,
    backbone_reference,
    cpu_threads,
    load_backbone,
    pick_device,
)
from seda.cache import DEFAULT_CACHE_ROOT, StageCache
from seda.errors import ConfigError
from seda.io import atomic_path, content_digest, params_digest, tree_digest
from seda.metrics import fit_temperature, softmax
from seda.models.card import BackboneRef, HeadShape, InputPreprocessing
from seda.models.determinism import deterministic_torch, seed_everything, torch_threads
from seda.models.evaluation import (
    EvalSettings,
    LabelledData,
    Learner,
    TrainOutputs,
    evaluate,
    labelled_data,
    load_labelled_features,
    write_outputs,
)
from seda.models.folds import TrainingRows, stack_augmented
from seda.models.head import FinetuneModel, LayerWeightedHead
from seda.records import SplitRow, read_records, split_digest

log = logging.getLogger(__name__)

# What a cached trained model is computed with (besides its inputs and the settings).
CODE = ("seda.models.training",)
PACKAGES = (
    "numpy",
    "scipy",
    "scikit-learn",
    "torch",
    "torchaudio",
    "transformers",
    "safetensors",
    "matplotlib",
    "soundfile",
    "soxr",
)

# A probe's matrices are small: one thread is fastest on shared cores, and the same everywhere.
PROBE_THREADS = 1
MODES = ("probe", "finetune")


@dataclass
class TrainSettings:
    """The ``train`` section."""

    mode: str = "probe"  # probe | finetune (the baseline model ignores it)
    lr: float = 1e-3  # probe head; the head in finetune mode
    backbone_lr: float = 5e-5  # finetune: the backbone's transformer
    epochs: int = 100
    batch_size: int = 32
    patience: int = 15  # epochs without a better validation UAR before stopping
    hidden: int = 256  # MLP width; 0 = a linear head
    dropout: float = 0.2
    weight_decay: float = 0.01
    grad_accum: int = 1
    freeze_feature_encoder: bool = True
    mixed_precision: bool = True  # CUDA only (bf16, else fp16 with loss scaling)

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ConfigError(f"train.mode must be probe or finetune, got {self.mode!r}")
        if self.epochs < 1 or self.batch_size < 1 or self.grad_accum < 1 or self.patience < 1:
            raise ConfigError("train.epochs, batch_size, grad_accum and patience must be >= 1")
        if not 0 <= self.dropout < 1:
            raise ConfigError(f"train.dropout must be in [0, 1), got {self.dropout}")


def class_weights(y: np.ndarray, n_classes: int) -> torch.Tensor:
    """Inverse-frequency weights (n / (k * count)) so each class weighs the same in the loss."""
    counts = np.bincount(y, minlength=n_classes).astype(np.float64)
    present = counts > 0
    w = np.zeros(n_classes)
    w[present] = counts.sum() / (present.sum() * counts[present])
    return torch.tensor(w, dtype=torch.float32)


Batches = Callable[[np.random.Generator | None], Iterable[tuple[tuple[Any, ...], torch.Tensor]]]


def fit_loop(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    train_batches: Batches,
    val_batches: Batches,
    y_val: np.ndarray,
    weights: torch.Tensor,
    settings: TrainSettings,
    device: torch.device,
    seed: int,
    trainable: Callable[[], None] | None = None,
) -> list[dict[str, Any]]:
    """Train with early stopping on validation UAR; leave the best epoch's weights in ``model``.

    ``train_batches(rng)`` yields ``(inputs, y)`` in a seeded random order; ``val_batches(None)``
    in a fixed order. Returns the history (epoch, train_loss, val_loss, val_uar).
    """
    rng = np.random.default_rng(seed)
    weights = weights.to(device)
    use_amp = settings.mixed_precision and device.type == "cuda"
    scaler = (
        torch.amp.GradScaler("cuda", enabled=use_amp and not torch.cuda.is_bf16_supported())
        if device.type == "cuda"
        else None
    )
    history: list[dict[str, Any]] = []
    best: tuple[float, float] = (-1.0, float("inf"))
    best_state: dict[str, torch.Tensor] | None = None
    stale = 0
    for epoch in range(1, settings.epochs + 1):
        model.train()
        if trainable is not None:
            trainable()
        total, count, step = 0.0, 0, 0
        optimizer.zero_grad(set_to_none=True)
        for inputs, y in train_batches(rng):
            y = y.to(device)
            with autocast(device, use_amp):
                loss = F.cross_entropy(model(*inputs).float(), y, weight=weights)
            (
                scaler.scale(loss / settings.grad_accum) if scaler else loss / settings.grad_accum
            ).backward()
            step += 1
            if step % settings.grad_accum == 0:
                _step(optimizer, scaler)
            total += float(loss.detach()) * len(y)
            count += len(y)
        if step % settings.grad_accum:
            _step(optimizer, scaler)
        logits, val_loss = predict(model, val_batches, device, use_amp, y_val, weights)
        uar = float(balanced_accuracy_score(y_val, logits.argmax(axis=1)))
        history.append(
            {
                "epoch": epoch,
                "train_loss": total / max(count, 1),
                "val_loss": val_loss,
                "val_uar": uar,
            }
        )
        if uar > best[0] or (uar == best[0] and val_loss < best[1]):
            best, stale = (uar, val_loss), 0
            best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
        else:
            stale += 1
            if stale >= settings.patience:
                break
    if best_state is not None:
        model.load_state_dict(best_state)
    model.eval()
    return history


def _step(optimizer: torch.optim.Optimizer, scaler: Any) -> None:
    if scaler is not None and scaler.is_enabled():
        scaler.step(optimizer)
        scaler.update()
    else:
        optimizer.step()
    optimizer.zero_grad(set_to_none=True)


def predict(
    model: nn.Module,
    batches: Batches,
    device: torch.device,
    use_amp: bool = False,
    y: np.ndarray | None = None,
    weights: torch.Tensor | None = None,
) -> tuple[np.ndarray, float]:
    """Class logits of every row as float64 (and the weighted loss when ``y`` is given)."""
    model.eval()
    parts, losses, n = [], 0.0, 0
    with torch.inference_mode(), autocast(device, use_amp):
        for inputs, yb in batches(None):
            logits = model(*inputs).float()
            parts.append(logits.cpu())
            if y is not None:
                yb = yb.to(device)
                losses += float(F.cross_entropy(logits, yb, weight=weights, reduction="sum"))
                n += len(yb)
    out = torch.cat(parts).numpy().astype(np.float64)
    return out, (losses / n if n else float("nan"))


# ---------------------------------------------------------------------------------------------
# Learners: fit(train, val) / predict_proba(rows) / save(folder) -> model card fields, and (for
# the calibration record) predict_logits(rows) and the temperature fitted on val


class _HeadLearner:
    """What the probe and finetune learners share: a fold's training rows (augmented copies and
    class balancing, :class:`TrainingRows`), :func:`fit_loop` with early stopping on the
    validation rows, then the temperature fitted on the same rows."""

    y: torch.Tensor
    n_classes: int
    settings: TrainSettings
    seed: int
    device: torch.device
    training: TrainingRows
    temperature: float

    def _batches(self, idx: np.ndarray) -> Batches:
        raise NotImplementedError

    def _threads(self) -> contextlib.AbstractContextManager[Any]:
        """Where the thread count matters (the probe), the context that fixes it."""
        return contextlib.nullcontext()

    def predict_logits(self, idx: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def _fit(
        self, model: nn.Module, opt: torch.optim.Optimizer, train: np.ndarray, val: np.ndarray
    ) -> list[dict[str, Any]]:
        rows = self.training.rows(train, self.y.numpy())
        with self._threads():
            history = fit_loop(
                model,
                opt,
                self._batches(rows),
                self._batches(val),
                self.y[val].numpy(),
                class_weights(self.y[rows].numpy(), self.n_classes),
                self.settings,
                self.device,
                self.seed,
            )
        self.temperature = fit_temperature(self.predict_logits(val), self.y[val].numpy())
        return history

    def predict_proba(self, idx: np.ndarray) -> np.ndarray:
        return softmax(self.predict_logits(idx), self.temperature)


class ProbeLearner(_HeadLearner):
    """A :class:`LayerWeightedHead` on stored features (n, layers, dim); rows past the labelled
    ones are augmented copies (``training``), used for fitting only."""

    def __init__(
        self,
        x: np.ndarray,
        y: np.ndarray,
        n_classes: int,
        settings: TrainSettings,
        seed: int,
        device: torch.device,
        training: TrainingRows | None = None,
    ):
        self.x = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32)).to(device)
        self.y = torch.from_numpy(y.astype(np.int64))
        self.n_classes, self.settings, self.seed, self.device = n_classes, settings, seed, device
        self.training = training or TrainingRows()
        self.head: LayerWeightedHead | None = None
        self.temperature = 1.0

    def _batches(self, idx: np.ndarray) -> Batches:
        size = self.settings.batch_size

        def gen(rng: np.random.Generator | None) -> Iterable[tuple[tuple[Any, ...], torch.Tensor]]:
            order = rng.permutation(idx) if rng is not None else idx
            for s in range(0, len(order), size):
                part = torch.from_numpy(order[s : s + size]).to(self.device)
                yield (self.x[part],), self.y[part.cpu()]

        return gen

    def _threads(self) -> contextlib.AbstractContextManager[Any]:
        return torch_threads(PROBE_THREADS)

    def fit(self, train: np.ndarray, val: np.ndarray) -> list[dict[str, Any]]:
        deterministic_torch()
        seed_everything(self.seed)
        s = self.settings
        self.head = LayerWeightedHead(
            self.x.shape[1], self.x.shape[2], self.n_classes, s.hidden, s.dropout
        ).to(self.device)
        opt = torch.optim.AdamW(self.head.parameters(), lr=s.lr, weight_decay=s.weight_decay)
        return self._fit(self.head, opt, train, val)

    def predict_logits(self, idx: np.ndarray) -> np.ndarray:
        assert self.head is not None
        with torch_threads(PROBE_THREADS):
            return predict(self.head, self._batches(idx), self.device)[0]

    def save(self, out_dir: Path) -> dict[str, Any]:
        assert self.head is not None
        save_tensors(self.head.state_dict(), out_dir / "head.safetensors")
        return {
            "layer_weights": self.head.layer_weights().detach().cpu().tolist(),
            "n_layers": int(self.x.shape[1]),
            "dim": int(self.x.shape[2]),
            "temperature": self.temperature,
        }


class FinetuneLearner(_HeadLearner):
    """Backbone + head trained end to end on waveforms (one copy of the clips in memory, and of
    their augmented copies after them, ``training``)."""

    def __init__(
        self,
        waves: list[np.ndarray],
        y: np.ndarray,
        n_classes: int,
        backbone: BackboneSettings,
        settings: TrainSettings,
        seed: int,
        device: torch.device,
        training: TrainingRows | None = None,
    ):
        self.waves, self.y = waves, torch.from_numpy(y.astype(np.int64))
        self.n_classes, self.backbone_settings = n_classes, backbone
        self.settings, self.seed, self.device = settings, seed, device
        self.training = training or TrainingRows()
        self.model: FinetuneModel | None = None
        self.prep: Preprocessing | None = None
        self.temperature = 1.0

    def _batches(self, idx: np.ndarray) -> Batches:
        size = self.settings.batch_size

        def gen(rng: np.random.Generator | None) -> Iterable[tuple[tuple[Any, ...], torch.Tensor]]:
            assert self.prep is not None
            order = rng.permutation(idx) if rng is not None else idx
            for s in range(0, len(order), size):
                part = order[s : s + size]
                values, lengths, mask = self.prep.batch([self.waves[i] for i in part], self.device)
                yield (values, lengths, mask), self.y[torch.from_numpy(part)]

        return gen

    def fit(self, train: np.ndarray, val: np.ndarray) -> list[dict[str, Any]]:
        deterministic_torch()
        seed_everything(self.seed)
        s = self.settings
        backbone, self.prep = load_backbone(self.backbone_settings)
        # LayerDrop would skip layers, and so hidden states, at random: the layer-weighted head
        # needs every layer at every step.
        backbone.config.layerdrop = 0.0
        n_layers = backbone.config.num_hidden_layers + 1
        dim = backbone.config.hidden_size * (
            2 if self.backbone_settings.pooling == "mean+std" else 1
        )
        head = LayerWeightedHead(n_layers, dim, self.n_classes, s.hidden, s.dropout)
        self.model = FinetuneModel(backbone, head, self.backbone_settings.pooling).to(self.device)
        if s.freeze_feature_encoder:
            for p in backbone.feature_extractor.parameters():
                p.requires_grad = False
        groups = [
            {"params": [p for p in backbone.parameters() if p.requires_grad], "lr": s.backbone_lr},
            {"params": list(head.parameters()), "lr": s.lr},
        ]
        opt = torch.optim.AdamW(groups, weight_decay=s.weight_decay)
        return self._fit(self.model, opt, train, val)

    def predict_logits(self, idx: np.ndarray) -> np.ndarray:
        assert self.model is not None
        use_amp = self.settings.mixed_precision and self.device.type == "cuda"
        return predict(self.model, self._batches(idx), self.device, use_amp)[0]

    def save(self, out_dir: Path) -> dict[str, Any]:
        assert self.model is not None and self.prep is not None
        save_tensors(self.model.head.state_dict(), out_dir / "head.safetensors")
        save_pretrained_atomic(self.model.backbone, out_dir / "backbone")
        cfg = self.model.backbone.config
        return {
            "layer_weights": self.model.head.layer_weights().detach().cpu().tolist(),
            "n_layers": cfg.num_hidden_layers + 1,
            "dim": cfg.hidden_size,
            "finetuned_backbone": "backbone",
            "temperature": self.temperature,
            "backbone": BackboneRef.from_reference(
                backbone_reference(self.backbone_settings, self.model.backbone)
            ),
            "preprocessing": InputPreprocessing.from_mapping(self.prep.as_dict()),
        }


def save_tensors(state: Mapping[str, torch.Tensor], path: Path) -> None:
    from safetensors.torch import save_file

    with atomic_path(path, suffix=".tmp.safetensors") as tmp:
        save_file({k: v.detach().cpu().contiguous() for k, v in state.items()}, str(tmp))


def save_pretrained_atomic(model: Any, path: Path) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(tmp)
    shutil.rmtree(path, ignore_errors=True)
    os.replace(tmp, path)


# ---------------------------------------------------------------------------------------------
# One backbone model, end to end


def check_features_match(data: LabelledData, name: str, backbone: BackboneSettings) -> None:
    """Refuse stored features computed from other weights than the backbone settings name."""
    made = (data.meta.get("checkpoint"), data.meta.get("weights"))
    revision = (data.meta.get("backbone") or {}).get("revision")
    if made != (backbone.checkpoint, backbone.weights) or (
        backbone.weights == "pretrained" and revision != backbone.revision
    ):
        raise ConfigError(
            f"features of {name} were computed from {made[0]} ({made[1]} weights"
            f"{f', revision {revision}' if revision else ''}) but the config says "
            f"{backbone.checkpoint} ({backbone.weights} weights): re-run the featurize stage "
            f"for {name}"
        )


def load_waves(data: LabelledData, sample_rate: int) -> list[np.ndarray]:
    waves = []
    for r in data.rows:
        try:
            waves.append(load_audio(r.path, sample_rate)[0])
        except AudioError as err:
            raise AudioError(f"{r.path}: {err} (re-run the clean stage)") from err
    return waves


def augmented_waves(
    data: LabelledData,
    waves: list[np.ndarray],
    sample_rate: int,
    augment: AugmentSettings,
    protocol: str,
) -> tuple[list[np.ndarray], np.ndarray, TrainingRows]:
    """Finetune's inputs: the clips' waves followed by the augmented copies of those that can
    be training rows (made here: there is no feature store), their labels, and how folds use
    them."""
    where = {r.clip_id: i for i, r in enumerate(data.rows)}
    copies = plan_copies(training_clips(data.rows, protocol), augment)
    base = np.array([where[c.clip_id] for c in copies], dtype=np.int64)
    extra = [augment_wave(waves[where[c.clip_id]], sample_rate, c) for c in copies]
    return (
        waves + extra,
        np.concatenate([data.y, data.y[base]]),
        TrainingRows(base, augment.oversample, augment.seed),
    )


def train_backbone(
    name: str,
    backbone: BackboneSettings,
    settings: TrainSettings,
    evaluation: EvalSettings,
    *,
    seed: int,
    features: Path,
    splits: Path,
    outputs: TrainOutputs,
    audio: Mapping[str, Any] | None = None,
    augment: AugmentSettings | None = None,
) -> dict[str, Any]:
    """Train and evaluate one backbone model (probe on ``features`` or finetune on the clips of
    ``splits``); write it to ``outputs``. ``audio``: the clean/VAD settings for the card;
    ``augment``: augmented copies (the store's, or made here for finetune) and class balancing
    of the training rows."""
    deterministic_torch()
    augment = augment or AugmentSettings()
    device = pick_device()
    if device.type == "cpu":
        torch.set_num_threads(cpu_threads())
    card: dict[str, Any] = {
        "pooling": backbone.pooling,
        "head": HeadShape(hidden=settings.hidden, dropout=settings.dropout),
        "train": dataclasses.asdict(settings),
        "audio": dict(audio) if audio is not None else None,
        "augment": dataclasses.asdict(augment) if augment.enabled else None,
    }
    make: Callable[[], Learner]
    if settings.mode == "probe":
        data = load_labelled_features(features)
        check_features_match(data, name, backbone)
        card["backbone"] = BackboneRef.from_reference(data.meta.get("backbone") or {})
        prep = data.meta.get("preprocessing") or {}
        card["preprocessing"] = InputPreprocessing.from_mapping(prep)
        assert data.features is not None
        x, y, training = stack_augmented(
            features, [r.clip_id for r in data.rows], data.features, data.y, augment
        )
        make = functools.partial(
            ProbeLearner, x, y, len(data.labels), settings, seed, device, training
        )
    else:
        data = labelled_data(read_records(splits, SplitRow))
        waves, y = load_waves(data, backbone.sample_rate), data.y
        training = TrainingRows(oversample=augment.oversample, seed=augment.seed)
        if augment.copies:
            waves, y, training = augmented_waves(
                data, waves, backbone.sample_rate, augment, evaluation.protocol
            )
        make = functools.partial(
            FinetuneLearner, waves, y, len(data.labels), backbone, settings, seed, device, training
        )
    result = evaluate(data, make, evaluation.protocol)
    return write_outputs(
        name,
        settings.mode,
        data,
        result,
        settings=evaluation,
        seed=seed,
        backbone=(backbone.weights, backbone.checkpoint),
        card_fields=card,
        outputs=outputs,
    )


def train_backbones(
    backbones: Mapping[str, BackboneSettings],
    settings: TrainSettings,
    evaluation: EvalSettings,
    *,
    seed: int,
    features: Mapping[str, Path],
    splits: Path,
    outputs: Mapping[str, TrainOutputs],
    audio: Mapping[str, Any] | None = None,
    augment: AugmentSettings | None = None,
    cache_root: str | Path = DEFAULT_CACHE_ROOT,
) -> dict[str, dict[str, Any]]:
    """:func:`train_backbone` for each backbone, in one process: torch, scikit-learn and the
    plotting are imported once, not once per backbone. A backbone whose features, split,
    settings and code match a cached run is placed from the cache, so that changing one
    backbone's settings trains that backbone alone."""
    cache = StageCache(
        "train",
        {"train": settings, "eval": evaluation, "seed": seed, "audio": audio, "augment": augment},
        CODE,
        PACKAGES,
        root=cache_root,
    )
    inputs = content_digest([splits])
    if settings.mode == "finetune":
        inputs += split_digest(read_records(splits, SplitRow))
    summaries = {}
    for name, backbone in backbones.items():
        where = outputs[name]
        key = params_digest(
            {
                "name": name,
                "backbone": backbone,
                "features": tree_digest(features[name]),
                "inputs": inputs,
            }
        )
        summaries[name] = cache.place(
            key,
            {
                "model": where.model_dir,
                "metrics": where.metrics,
                "details": where.details,
                "plots": where.plots,
            },
            functools.partial(
                train_backbone,
                name,
                backbone,
                settings,
                evaluation,
                seed=seed,
                features=features[name],
                splits=splits,
                outputs=where,
                audio=audio,
                augment=augment,
            ),
        )
        if summaries[name]["cached"]:
            log.info("train %s: unchanged, placed from the cache", name)
    cache.save_live()
    return summaries
