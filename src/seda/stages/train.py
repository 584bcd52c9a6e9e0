"""Stage train: fit one model, evaluate it on unseen speakers/videos, write model + metrics + plots.

``python -m seda.stages.train <model>`` with ``train.mode``:

- ``probe`` (default): a learnable softmax-weighted sum over the cached layers of
  ``data/features/<model>/`` followed by a small MLP (the SUPERB recipe: the backbone stays
  frozen, so a probe trains in seconds and compares what each backbone's layers know).
- ``finetune``: the backbone and the same head end to end on the clips (CNN feature encoder
  frozen by default, mixed precision on CUDA, gradient accumulation).
- ``baseline`` (model name): :class:`seda.baseline.BaselineModel` on the classical features.

``eval.protocol``: ``holdout`` (train / val / test columns of the split) or ``loso``
(leave-one-group-out over the ``fold`` column: the next fold is the validation fold, test
predictions are pooled over folds). Early stopping and every other choice use validation data
only; the test rows are predicted once, after training. ``models/<model>/`` always holds the
model trained on the holdout train split (the deployable one); the metrics follow the protocol.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import logging
import os
import shutil
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from sklearn.metrics import balanced_accuracy_score
from torch import nn
from torch.nn import functional as F

from seda.audio import AudioError, load_audio
from seda.backbones import (
    BackboneSettings,
    Preprocessing,
    autocast,
    backbone_reference,
    cpu_threads,
    frame_lengths,
    load_backbone,
    pick_device,
    pool_hidden_states,
)
from seda.config import ConfigError, build, load_params
from seda.entry import stage_main
from seda.features import load_features
from seda.io import atomic_path, read_csv, write_json_atomic

log = logging.getLogger(__name__)

FEATURES_DIR = Path("data/features")
SPLITS_CSV = Path("data/splits/splits.csv")
MODELS_DIR = Path("models")
METRICS_DIR = Path("reports/metrics")
PLOTS_DIR = Path("reports/plots")
BASELINE = "baseline"
UNLABELLED = "unknown"
PROBE_THREADS = 1
# models/<model>/model.json identifies itself so that a loader (seda.model_io) can refuse files
# it does not understand; bump the version when the folder's layout or keys change.
MODEL_FORMAT = "seda-model"
MODEL_FORMAT_VERSION = 1


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
        if self.mode not in ("probe", "finetune"):
            raise ConfigError(f"train.mode must be probe or finetune, got {self.mode!r}")
        if self.epochs < 1 or self.batch_size < 1 or self.grad_accum < 1 or self.patience < 1:
            raise ConfigError("train.epochs, batch_size, grad_accum and patience must be >= 1")
        if not 0 <= self.dropout < 1:
            raise ConfigError(f"train.dropout must be in [0, 1), got {self.dropout}")


@dataclass
class EvalSettings:
    """The ``eval`` section."""

    protocol: str = "holdout"  # holdout | loso
    n_bootstrap: int = 1000

    def __post_init__(self) -> None:
        if self.protocol not in ("holdout", "loso"):
            raise ConfigError(f"eval.protocol must be holdout or loso, got {self.protocol!r}")


@dataclass
class Fold:
    train: np.ndarray
    val: np.ndarray
    test: np.ndarray


# ---------------------------------------------------------------------------------------------
# Evaluation protocols


def holdout_fold(rows: Sequence[dict[str, str]], need_test: bool = True) -> Fold:
    """Rows by their ``split`` column; train and val (and test when needed) must be non-empty."""
    split = np.array([r["split"] for r in rows])
    fold = Fold(*(np.flatnonzero(split == s) for s in ("train", "val", "test")))
    for name in ("train", "val", "test")[: 3 if need_test else 2]:
        if len(getattr(fold, name)) == 0:
            raise ConfigError(f"the {name} split has no labelled clips: check the split settings")
    return fold


def loso_folds(rows: Sequence[dict[str, str]]) -> list[Fold]:
    """Leave-one-group-out over the ``fold`` column; fold k+1 (cyclic) validates fold k's model."""
    fold_of = np.array([int(r["fold"]) for r in rows])
    ids = sorted(set(fold_of.tolist()))
    if len(ids) < 3:
        raise ConfigError(
            f"eval.protocol=loso needs at least 3 folds (test, validation, training), got "
            f"{len(ids)}: use eval.protocol=holdout or more speaker groups"
        )
    folds = []
    for k, test_id in enumerate(ids):
        val_id = ids[(k + 1) % len(ids)]
        folds.append(
            Fold(
                np.flatnonzero((fold_of != test_id) & (fold_of != val_id)),
                np.flatnonzero(fold_of == val_id),
                np.flatnonzero(fold_of == test_id),
            )
        )
    return folds


def check_disjoint(rows: Sequence[dict[str, str]], fold: Fold) -> None:
    """Refuse a fold where a clip, speaker or source appears in training and test alike."""
    for key in ("clip_id", "speaker", "source_id"):
        train = {rows[i][key] for i in np.concatenate([fold.train, fold.val])}
        shared = train & {rows[i][key] for i in fold.test}
        if shared:
            raise ConfigError(
                f"{key} {sorted(shared)[:3]} in both training and test rows: the split leaks"
            )


# ---------------------------------------------------------------------------------------------
# Heads and the shared training loop


class LayerWeightedHead(nn.Module):
    """Softmax-weighted sum of layer-normalised pooled layers, then an MLP."""

    def __init__(self, n_layers: int, dim: int, n_classes: int, hidden: int, dropout: float):
        super().__init__()
        self.layer_logits = nn.Parameter(torch.zeros(n_layers))
        if hidden > 0:
            self.mlp = nn.Sequential(
                nn.Dropout(dropout),
                nn.Linear(dim, hidden),
                nn.ReLU(),
                nn.Dropout(dropout),
                nn.Linear(hidden, n_classes),
            )
        else:
            self.mlp = nn.Sequential(nn.Dropout(dropout), nn.Linear(dim, n_classes))

    def layer_weights(self) -> torch.Tensor:
        return torch.softmax(self.layer_logits, dim=0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # x: (batch, n_layers, dim)
        # Layers differ in scale by orders of magnitude; normalising each lets the weights mix.
        x = F.layer_norm(x.float(), x.shape[-1:])
        return self.mlp(torch.einsum("l,bld->bd", self.layer_weights(), x))


class FinetuneModel(nn.Module):
    """Backbone -> pooled hidden states of every layer -> :class:`LayerWeightedHead`."""

    def __init__(self, backbone: nn.Module, head: LayerWeightedHead, pooling: str):
        super().__init__()
        self.backbone = backbone
        self.head = head
        self.pooling = pooling

    def forward(
        self, values: torch.Tensor, lengths: torch.Tensor, mask: torch.Tensor | None
    ) -> torch.Tensor:
        out = self.backbone(values, attention_mask=mask, output_hidden_states=True)
        n_frames = frame_lengths(self.backbone, lengths)
        return self.head(pool_hidden_states(out.hidden_states, n_frames, self.pooling))


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
        prob, val_loss = predict(model, val_batches, device, use_amp, y_val, weights)
        uar = float(balanced_accuracy_score(y_val, prob.argmax(axis=1)))
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
    """Class probabilities of every row (and the weighted loss when ``y`` is given)."""
    model.eval()
    probs, losses, n = [], 0.0, 0
    with torch.inference_mode(), autocast(device, use_amp):
        for inputs, yb in batches(None):
            logits = model(*inputs).float()
            probs.append(torch.softmax(logits, dim=1).cpu())
            if y is not None:
                yb = yb.to(device)
                losses += float(F.cross_entropy(logits, yb, weight=weights, reduction="sum"))
                n += len(yb)
    prob = torch.cat(probs).numpy().astype(np.float64)
    return prob, (losses / n if n else float("nan"))


# ---------------------------------------------------------------------------------------------
# Learners: probe, finetune, baseline share fit(train, val) / predict_proba(rows) / save(dir)


@contextlib.contextmanager
def torch_threads(n: int) -> Iterator[None]:
    """Run a block on ``n`` CPU threads (then restore): a probe's small matrices gain nothing
    from more threads, and spinning threads slow it down badly when the cores are shared."""
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def seed_everything(seed: int) -> None:
    torch.manual_seed(seed)
    np.random.seed(seed % 2**32)


class ProbeLearner:
    """A :class:`LayerWeightedHead` on cached features (n, layers, dim)."""

    def __init__(
        self,
        x: np.ndarray,
        y: np.ndarray,
        n_classes: int,
        settings: TrainSettings,
        seed: int,
        device: torch.device,
    ):
        self.x = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32)).to(device)
        self.y = torch.from_numpy(y.astype(np.int64))
        self.n_classes, self.settings, self.seed, self.device = n_classes, settings, seed, device
        self.head: LayerWeightedHead | None = None

    def _batches(self, idx: np.ndarray) -> Batches:
        size = self.settings.batch_size

        def gen(rng: np.random.Generator | None) -> Iterable[tuple[tuple[Any, ...], torch.Tensor]]:
            order = rng.permutation(idx) if rng is not None else idx
            for s in range(0, len(order), size):
                part = torch.from_numpy(order[s : s + size]).to(self.device)
                yield (self.x[part],), self.y[part.cpu()]

        return gen

    def fit(self, train: np.ndarray, val: np.ndarray) -> list[dict[str, Any]]:
        seed_everything(self.seed)
        s = self.settings
        self.head = LayerWeightedHead(
            self.x.shape[1], self.x.shape[2], self.n_classes, s.hidden, s.dropout
        ).to(self.device)
        opt = torch.optim.AdamW(self.head.parameters(), lr=s.lr, weight_decay=s.weight_decay)
        with torch_threads(PROBE_THREADS):
            return fit_loop(
                self.head,
                opt,
                self._batches(train),
                self._batches(val),
                self.y[val].numpy(),
                class_weights(self.y[train].numpy(), self.n_classes),
                s,
                self.device,
                self.seed,
            )

    def predict_proba(self, idx: np.ndarray) -> np.ndarray:
        assert self.head is not None
        with torch_threads(PROBE_THREADS):
            return predict(self.head, self._batches(idx), self.device)[0]

    def save(self, out_dir: Path) -> dict[str, Any]:
        assert self.head is not None
        _save_tensors(self.head.state_dict(), out_dir / "head.safetensors")
        return {
            "layer_weights": self.head.layer_weights().detach().cpu().tolist(),
            "n_layers": int(self.x.shape[1]),
            "dim": int(self.x.shape[2]),
        }


class FinetuneLearner:
    """Backbone + head trained end to end on waveforms (one copy of the clips in memory)."""

    def __init__(
        self,
        waves: list[np.ndarray],
        y: np.ndarray,
        n_classes: int,
        backbone: BackboneSettings,
        settings: TrainSettings,
        seed: int,
        device: torch.device,
    ):
        self.waves, self.y = waves, torch.from_numpy(y.astype(np.int64))
        self.n_classes, self.backbone_settings = n_classes, backbone
        self.settings, self.seed, self.device = settings, seed, device
        self.model: FinetuneModel | None = None
        self.prep: Preprocessing | None = None

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
        return fit_loop(
            self.model,
            opt,
            self._batches(train),
            self._batches(val),
            self.y[val].numpy(),
            class_weights(self.y[train].numpy(), self.n_classes),
            s,
            self.device,
            self.seed,
        )

    def predict_proba(self, idx: np.ndarray) -> np.ndarray:
        assert self.model is not None
        use_amp = self.settings.mixed_precision and self.device.type == "cuda"
        return predict(self.model, self._batches(idx), self.device, use_amp)[0]

    def save(self, out_dir: Path) -> dict[str, Any]:
        assert self.model is not None
        _save_tensors(self.model.head.state_dict(), out_dir / "head.safetensors")
        _save_pretrained_atomic(self.model.backbone, out_dir / "backbone")
        cfg = self.model.backbone.config
        return {
            "layer_weights": self.model.head.layer_weights().detach().cpu().tolist(),
            "n_layers": cfg.num_hidden_layers + 1,
            "dim": cfg.hidden_size,
            "finetuned_backbone": "backbone",
            "backbone": backbone_reference(self.backbone_settings, self.model.backbone),
            "preprocessing": self.prep.as_dict() if self.prep else None,
        }


class BaselineLearner:
    """:class:`seda.baseline.BaselineModel` on (n, 1, d) classical features."""

    def __init__(
        self,
        x: np.ndarray,
        y: np.ndarray,
        labels: Sequence[str],
        speakers: Sequence[str],
        params: dict[str, Any],
    ):
        from seda import baseline

        self.baseline = baseline
        self.settings = build(baseline.BaselineSettings, params.get("baseline"), "baseline")
        self.x, self.y, self.labels = x[:, 0, :].astype(np.float64), y, list(labels)
        self.speakers = np.asarray(speakers)
        self.model: Any = None

    def fit(self, train: np.ndarray, val: np.ndarray) -> list[dict[str, Any]]:
        self.model = self.baseline.BaselineModel(self.settings).fit(
            self.x[train], [self.labels[i] for i in self.y[train]], self.speakers[train]
        )
        return []

    def predict_proba(self, idx: np.ndarray) -> np.ndarray:
        proba = self.model.predict_proba(self.x[idx], self.speakers[idx])
        out = np.zeros((len(idx), len(self.labels)))
        for j, label in enumerate(self.model.labels):
            out[:, self.labels.index(label)] = proba[:, j]
        return out

    def save(self, out_dir: Path) -> dict[str, Any]:
        self.model.save(out_dir / "baseline.safetensors")
        return {"classifier": self.settings.classifier, "best_params": self.model.best_params}


def _save_tensors(state: dict[str, torch.Tensor], path: Path) -> None:
    from safetensors.torch import save_file

    with atomic_path(path, suffix=".tmp.safetensors") as tmp:
        save_file({k: v.detach().cpu().contiguous() for k, v in state.items()}, str(tmp))


def _save_pretrained_atomic(model: Any, path: Path) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(tmp)
    shutil.rmtree(path, ignore_errors=True)
    os.replace(tmp, path)


# ---------------------------------------------------------------------------------------------
# The stage


@dataclass
class Dataset:
    """Labelled rows of one model's input, with features (probe/baseline) or waveforms."""

    rows: list[dict[str, str]]
    y: np.ndarray
    labels: list[str]
    features: np.ndarray | None = None
    meta: dict[str, Any] = dataclasses.field(default_factory=dict)


def _labelled(rows: list[dict[str, str]]) -> tuple[list[int], list[str]]:
    keep = [i for i, r in enumerate(rows) if r["label"] and r["label"] != UNLABELLED]
    if len(keep) < len(rows):
        log.info("train: %d unlabelled clip(s) left out", len(rows) - len(keep))
    labels = sorted({rows[i]["label"] for i in keep})
    if len(labels) < 2:
        raise ConfigError(f"need at least two emotion labels to train, got {labels}")
    return keep, labels


def load_dataset(model_name: str, mode: str) -> Dataset:
    if mode == "finetune" and model_name != BASELINE:
        if not SPLITS_CSV.exists():
            raise ConfigError(f"{SPLITS_CSV} not found: run the split stage first")
        rows = read_csv(SPLITS_CSV)
        keep, labels = _labelled(rows)
        rows = [rows[i] for i in keep]
        return Dataset(rows, np.array([labels.index(r["label"]) for r in rows]), labels)
    feature_dir = FEATURES_DIR / model_name
    if not (feature_dir / "features.npy").exists():
        raise ConfigError(
            f"{feature_dir} has no features: run `python -m seda.stages.featurize "
            f"{model_name}` (or `dvc repro featurize@{model_name}`) first"
        )
    features, rows, meta = load_features(feature_dir)
    keep, labels = _labelled(rows)
    rows = [rows[i] for i in keep]
    y = np.array([labels.index(r["label"]) for r in rows])
    return Dataset(rows, y, labels, features[keep], meta)


def make_learner(
    model_name: str,
    data: Dataset,
    params: dict[str, Any],
    settings: TrainSettings,
    device: torch.device,
) -> Any:
    seed = int(params.get("seed", 0))
    if model_name == BASELINE:
        assert data.features is not None
        return BaselineLearner(
            data.features, data.y, data.labels, [r["speaker"] for r in data.rows], params
        )
    if settings.mode == "probe":
        assert data.features is not None
        return ProbeLearner(data.features, data.y, len(data.labels), settings, seed, device)
    from seda.stages.featurize import backbone_settings

    bb = backbone_settings(params, model_name)
    waves = []
    for r in data.rows:
        try:
            waves.append(load_audio(r["path"], bb.sample_rate)[0])
        except AudioError as err:
            raise AudioError(f"{r['path']}: {err} (re-run the clean stage)") from err
    return FinetuneLearner(waves, data.y, len(data.labels), bb, settings, seed, device)


def fit_fold(
    model_name: str,
    data: Dataset,
    params: dict[str, Any],
    settings: TrainSettings,
    fold: Fold,
    device: torch.device,
) -> tuple[Any, list[dict[str, Any]], float]:
    """A fitted learner on one fold (train rows, early stopping on its val rows), its history and
    the seconds it took."""
    check_disjoint(data.rows, fold)
    start = time.perf_counter()
    learner = make_learner(model_name, data, params, settings, device)
    history = learner.fit(fold.train, fold.val)
    return learner, history, time.perf_counter() - start


def run(params: dict[str, Any], model_name: str) -> dict[str, Any]:
    """Train + evaluate one model and write models/, reports/metrics/ and reports/plots/."""
    from seda.metrics import classification_metrics
    from seda.plots import write_model_plots

    settings = build(TrainSettings, params.get("train"), "train")
    ev = build(EvalSettings, params.get("eval"), "eval")
    mode = "baseline" if model_name == BASELINE else settings.mode
    bb = None
    if model_name != BASELINE:
        from seda.stages.featurize import backbone_settings

        bb = backbone_settings(params, model_name)
    device = pick_device()
    if device.type == "cpu":
        torch.set_num_threads(cpu_threads())
    data = load_dataset(model_name, settings.mode)
    if bb is not None and data.meta:
        made = (data.meta.get("checkpoint"), data.meta.get("weights"))
        if made != (bb.checkpoint, bb.weights):
            raise ConfigError(
                f"features of {model_name} were computed from {made[0]} ({made[1]} weights) but "
                f"the config says {bb.checkpoint} ({bb.weights}): re-run "
                f"`python -m seda.stages.featurize {model_name}`"
            )

    # The deployable model: trained on the holdout train split, early-stopped on val.
    fold = holdout_fold(data.rows, need_test=ev.protocol == "holdout")
    learner, history, train_seconds = fit_fold(model_name, data, params, settings, fold, device)
    if ev.protocol == "holdout":
        folds = [fold]
        test_idx, prob = fold.test, learner.predict_proba(fold.test)
    else:
        folds = loso_folds(data.rows)
        parts = []
        for k, f in enumerate(folds):
            fold_learner = fit_fold(model_name, data, params, settings, f, device)[0]
            parts.append(fold_learner.predict_proba(f.test))
            log.info("train %s: fold %d/%d done", model_name, k + 1, len(folds))
        test_idx = np.concatenate([f.test for f in folds])
        prob = np.concatenate(parts)

    y_true = data.y[test_idx]
    metrics = classification_metrics(
        y_true, prob, data.labels, n_bootstrap=ev.n_bootstrap, seed=int(params.get("seed", 0))
    )
    weights = bb.weights if bb else None
    checkpoint = bb.checkpoint if bb else None
    metrics.update(
        {
            "model": model_name,
            "backbone_weights": weights,
            "checkpoint": checkpoint,
            "protocol": ev.protocol,
            "mode": mode,
            "n_train": int(np.mean([len(f.train) for f in folds])),
            "n_val": int(np.mean([len(f.val) for f in folds])),
            "n_test": len(test_idx),
            "n_folds": len(folds),
            "train_seconds": round(train_seconds, 3),
        }
    )

    out_dir = MODELS_DIR / model_name
    out_dir.mkdir(parents=True, exist_ok=True)
    saved = learner.save(out_dir)
    write_json_atomic(
        out_dir / "model.json",
        {
            "format": MODEL_FORMAT,
            "format_version": MODEL_FORMAT_VERSION,
            "model": model_name,
            "mode": mode,
            "labels": data.labels,
            **saved,
            "pooling": bb.pooling if bb else None,
            "head": {"hidden": settings.hidden, "dropout": settings.dropout} if bb else None,
            "backbone": saved.pop("backbone", None) or data.meta.get("backbone"),
            "preprocessing": saved.pop("preprocessing", None)
            or (data.meta.get("preprocessing") if data.meta else None),
            # How raw audio became the training clips (clean stage + VAD): predict repeats it.
            "audio": {"clean": params.get("clean"), "vad": params.get("vad")},
            "features": {k: data.meta.get(k) for k in ("shape", "dtype", "pooling", "sample_rate")}
            if data.meta
            else None,
            "trained_on": {
                "split": "train",
                "early_stopping": "val UAR",
                "n_train": len(fold.train),
                "n_val": len(fold.val),
                "best_epoch": _best_epoch(history),
            },
            "train": dataclasses.asdict(settings),
            "seed": int(params.get("seed", 0)),
        },
    )
    write_json_atomic(METRICS_DIR / f"{model_name}.json", metrics)
    write_model_plots(
        model_name,
        y_true,
        prob,
        data.labels,
        [data.rows[i]["clip_id"] for i in test_idx],
        history,
        PLOTS_DIR / model_name,
    )
    summary = {
        "model": model_name,
        "uar": metrics.get("uar"),
        "protocol": ev.protocol,
        "mode": mode,
        "n_test": len(test_idx),
        "train_seconds": round(train_seconds, 2),
    }
    log.info("train %s: %s", model_name, summary)
    return summary


def _best_epoch(history: list[dict[str, Any]]) -> int | None:
    if not history:
        return None
    best = max(history, key=lambda h: (h["val_uar"], -h["val_loss"]))
    return int(best["epoch"])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m seda.stages.train", description=__doc__)
    parser.add_argument("model", help="hubert | wav2vec2 | wavlm | data2vec | baseline")
    args = parser.parse_args(argv)
    return stage_main("train", lambda: run(load_params(), args.model))


if __name__ == "__main__":
    raise SystemExit(main())
