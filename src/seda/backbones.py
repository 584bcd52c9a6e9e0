"""Self-supervised speech backbones (HuBERT, wav2vec 2.0, WavLM, data2vec-audio) behind one loader.

``weights: pretrained`` loads the real checkpoint (a hub id or a local directory); ``weights:
random`` builds the architecture from ``random_init`` with a fixed seed, so that the whole
pipeline runs offline on tiny models. A pretrained request never falls back to random weights:
a checkpoint that is neither cached nor reachable is an error saying how to point the config at
a local copy.
"""

from __future__ import annotations

import logging
import os
import warnings
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from seda.config import ConfigError
from seda.io import sha256_file

log = logging.getLogger(__name__)

ARCHS = ("hubert", "wav2vec2", "wavlm", "data2vec-audio")
WEIGHTS = ("random", "pretrained")
POOLINGS = ("mean", "mean+std")
_WEIGHT_FILES = ("config.json", "model.safetensors", "pytorch_model.bin")

# transformers' WavLM attention passes a bool padding mask beside a float position bias; torch
# warns on every batch about that mix, which is harmless here and buries the progress bar.
warnings.filterwarnings("ignore", message="Support for mismatched key_padding_mask")


@dataclass
class BackboneSettings:
    """One ``conf/backbone/<name>.yaml`` (composed into ``params.yaml`` as ``backbones.<name>``)."""

    arch: str
    checkpoint: str
    weights: str = "random"
    sample_rate: int = 16000
    pooling: str = "mean"
    # Architecture kwargs of the randomly initialised model (weights: random).
    random_init: dict[str, Any] = field(default_factory=dict)
    init_seed: int = 0
    # A featurize batch holds at most this much padded audio and this many clips.
    batch_seconds: float = 64.0
    max_batch_size: int = 16

    def __post_init__(self) -> None:
        if self.arch not in ARCHS:
            raise ConfigError(f"backbone arch {self.arch!r} unknown: use one of {', '.join(ARCHS)}")
        if self.weights not in WEIGHTS:
            raise ConfigError(
                f"backbone weights {self.weights!r} unknown: use random or pretrained"
            )
        if self.pooling not in POOLINGS:
            raise ConfigError(f"pooling {self.pooling!r} unknown: use one of {', '.join(POOLINGS)}")
        if self.batch_seconds <= 0 or self.max_batch_size < 1:
            raise ConfigError("batch_seconds must be > 0 and max_batch_size >= 1")


class BackboneUnavailableError(ConfigError):
    """A pretrained checkpoint that is neither cached nor reachable (never replaced by random)."""


@dataclass
class Preprocessing:
    """How a waveform becomes model input, as the checkpoint's feature extractor does it."""

    sample_rate: int = 16000
    do_normalize: bool = True
    # Whether the model is given the padding mask (models with group-norm feature encoders,
    # e.g. wav2vec2-base, expect zero padding without a mask).
    return_attention_mask: bool = True

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def batch(
        self, waves: Sequence[np.ndarray], device: torch.device | str = "cpu"
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """Pad (and normalise) waveforms: ``(input_values, lengths, attention_mask or None)``.

        Normalisation is per clip over its valid samples (the transformers feature extractor's
        zero-mean unit-variance rule); padding stays zero.
        """
        lengths = torch.tensor([len(w) for w in waves], dtype=torch.long)
        out = np.zeros((len(waves), int(lengths.max())), dtype=np.float32)
        for i, w in enumerate(waves):
            w = np.asarray(w, dtype=np.float32)
            if self.do_normalize:
                w = (w - w.mean()) / np.sqrt(w.var() + 1e-7)
            out[i, : len(w)] = w
        values = torch.from_numpy(out).to(device, non_blocking=True)
        mask = None
        if self.return_attention_mask:
            mask = (torch.arange(out.shape[1])[None, :] < lengths[:, None]).long().to(device)
        return values, lengths, mask


def _classes(arch: str) -> tuple[type, type]:
    import transformers as tf

    return {
        "hubert": (tf.HubertConfig, tf.HubertModel),
        "wav2vec2": (tf.Wav2Vec2Config, tf.Wav2Vec2Model),
        "wavlm": (tf.WavLMConfig, tf.WavLMModel),
        "data2vec-audio": (tf.Data2VecAudioConfig, tf.Data2VecAudioModel),
    }[arch]


def load_backbone(settings: BackboneSettings) -> tuple[torch.nn.Module, Preprocessing]:
    """The backbone (eval mode, returning all hidden states) and its preprocessing."""
    if settings.weights == "random":
        return _random_backbone(settings)
    return _pretrained_backbone(settings)


def _random_backbone(settings: BackboneSettings) -> tuple[torch.nn.Module, Preprocessing]:
    config_cls, model_cls = _classes(settings.arch)
    try:
        config = config_cls(**settings.random_init, output_hidden_states=True)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(settings.init_seed)
            model = model_cls(config)
    except (TypeError, ValueError) as err:
        raise ConfigError(f"random_init of {settings.arch}: {err}") from err
    model.eval()
    return model, Preprocessing(settings.sample_rate, True, True)


def _is_local(checkpoint: str) -> bool:
    """A directory path (absolute, relative or existing) rather than a hub id."""
    return checkpoint.startswith(("/", "./", "../", "~")) or Path(checkpoint).expanduser().exists()


def _unavailable(settings: BackboneSettings, why: str) -> BackboneUnavailableError:
    return BackboneUnavailableError(
        f"backbone checkpoint {settings.checkpoint!r} ({settings.arch}) cannot be loaded: "
        f"{why.rstrip('. ')}. "
        "Download it once where there is internet (e.g. `hf download "
        f"{'<hub id>' if _is_local(settings.checkpoint) else settings.checkpoint} "
        "--local-dir /path/to/model`) and point the config at that directory, e.g. "
        "`dvc exp run -S backbones.<name>.checkpoint=/path/to/model`; or run the offline demo "
        "with random weights: `dvc exp run -S backbone_weights=random`."
    )


def _pretrained_backbone(settings: BackboneSettings) -> tuple[torch.nn.Module, Preprocessing]:
    from transformers import AutoConfig, AutoFeatureExtractor

    _, model_cls = _classes(settings.arch)
    checkpoint = settings.checkpoint
    local = Path(checkpoint).expanduser()
    is_path = _is_local(checkpoint)
    if is_path and not (local / "config.json").is_file():
        raise _unavailable(settings, f"no config.json in directory {local}")
    source = str(local) if is_path else checkpoint
    try:
        config = AutoConfig.from_pretrained(source)
        if config.model_type != settings.arch:
            raise ConfigError(
                f"checkpoint {checkpoint!r} is a {config.model_type!r} model, but the backbone "
                f"config says arch {settings.arch!r}"
            )
        model = model_cls.from_pretrained(source, output_hidden_states=True)
    except ConfigError:
        raise
    except (OSError, ValueError) as err:
        raise _unavailable(settings, " ".join(str(err).split())[:300]) from err
    model.eval()
    try:
        fe = AutoFeatureExtractor.from_pretrained(source)
        prep = Preprocessing(
            int(getattr(fe, "sampling_rate", settings.sample_rate)),
            bool(getattr(fe, "do_normalize", True)),
            bool(getattr(fe, "return_attention_mask", True)),
        )
    except (OSError, ValueError):
        log.warning(
            "%s has no preprocessor_config.json: normalising input, passing the mask", source
        )
        prep = Preprocessing(settings.sample_rate, True, True)
    if prep.sample_rate != settings.sample_rate:
        raise ConfigError(
            f"{checkpoint} expects {prep.sample_rate} Hz audio but sample_rate is "
            f"{settings.sample_rate}"
        )
    return model, prep


def backbone_reference(settings: BackboneSettings, model: torch.nn.Module) -> dict[str, Any]:
    """What identifies the backbone weights: checkpoint + weights, and hashes of a local copy."""
    ref: dict[str, Any] = {
        "arch": settings.arch,
        "checkpoint": settings.checkpoint,
        "weights": settings.weights,
    }
    if settings.weights == "random":
        ref["random_init"] = dict(settings.random_init)
        ref["init_seed"] = settings.init_seed
        return ref
    local = Path(settings.checkpoint).expanduser()
    if local.is_dir():
        ref["sha256"] = {
            name: sha256_file(local / name) for name in _WEIGHT_FILES if (local / name).is_file()
        }
    else:
        ref["revision"] = getattr(getattr(model, "config", None), "_commit_hash", None)
    return ref


def frame_lengths(model: torch.nn.Module, lengths: torch.Tensor) -> torch.Tensor:
    """Number of output frames of each input length (the CNN feature encoder's arithmetic)."""
    return model._get_feat_extract_output_lengths(lengths).long()


def min_samples(model: torch.nn.Module) -> int:
    """The shortest input (in samples) that yields at least one frame."""
    n = 1
    while int(frame_lengths(model, torch.tensor([n]))[0]) < 1:
        n *= 2
    lo, hi = n // 2, n
    while lo + 1 < hi:
        mid = (lo + hi) // 2
        if int(frame_lengths(model, torch.tensor([mid]))[0]) >= 1:
            hi = mid
        else:
            lo = mid
    return hi


def pool_hidden_states(
    hidden_states: Sequence[torch.Tensor], n_frames: torch.Tensor, pooling: str = "mean"
) -> torch.Tensor:
    """Pool every layer over its valid frames: (batch, n_layers, dim) or (..., 2*dim) for mean+std.

    Padding frames are excluded, so a clip gets the same vector whatever it was batched with
    (up to the padding's effect on the encoder itself).
    """
    stacked = torch.stack([h.float() for h in hidden_states], dim=1)  # (B, L, T, D)
    t = stacked.shape[2]
    n = n_frames.to(stacked.device).clamp(1, t)
    mask = (torch.arange(t, device=stacked.device)[None, :] < n[:, None]).to(stacked.dtype)
    mask = mask[:, None, :, None]
    denom = n.to(stacked.dtype)[:, None, None]
    mean = (stacked * mask).sum(dim=2) / denom
    if pooling == "mean":
        return mean
    var = (((stacked - mean[:, :, None, :]) * mask) ** 2).sum(dim=2) / denom
    return torch.cat([mean, var.clamp_min(0).sqrt()], dim=-1)


def cpu_threads() -> int:
    """Torch CPU threads: all cores, or ``SEDA_THREADS`` (set by parallel launchers)."""
    return max(1, int(os.environ.get("SEDA_THREADS") or os.cpu_count() or 1))


def pick_device() -> torch.device:
    """CUDA when present (``SEDA_DEVICE`` overrides, e.g. ``cpu``)."""
    wanted = os.environ.get("SEDA_DEVICE")
    if wanted:
        return torch.device(wanted)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def autocast(device: torch.device, enabled: bool = True) -> Any:
    """bf16 autocast on CUDA (fp16 where bf16 is unsupported); a no-op context on CPU."""
    if device.type != "cuda" or not enabled:
        return torch.autocast(device_type=device.type, enabled=False)
    dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return torch.autocast(device_type="cuda", dtype=dtype)
