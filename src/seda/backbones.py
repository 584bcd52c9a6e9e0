"""Self-supervised speech backbones (HuBERT, wav2vec 2.0, WavLM, data2vec-audio) behind one loader.

``weights: pretrained`` loads the real checkpoint: a hub id pinned to a commit (``revision``), read
from a folder ``seda models fetch`` wrote (``local_dir``) or from the hub cache (downloading it
there when the hub is reachable), or a local directory. ``weights: random`` builds the
architecture from ``random_init`` with a fixed seed, so that the whole pipeline runs offline on
tiny models. A pretrained request never falls back to random weights: a checkpoint that is
neither fetched, cached nor reachable is an error saying how to get a local copy.

Every pretrained model is loaded from a folder, so the weights file it was read from is known:
:func:`weights_sha256` hashes it, and :func:`backbone_reference` records that hash with the
revision for the features' meta and the model card.
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

from seda.checkpoints import (
    WEIGHT_FILES,
    file_sha256,
    is_commit,
    is_local_path,
    verify_fetched,
    weights_file,
)
from seda.config import ConfigError
from seda.parallel import cpu_cores

log = logging.getLogger(__name__)

ARCHS = ("hubert", "wav2vec2", "wavlm", "data2vec-audio")
WEIGHTS = ("random", "pretrained")
POOLINGS = ("mean", "mean+std")
_HASHED_FILES = ("config.json", *WEIGHT_FILES)

# transformers' WavLM attention passes a bool padding mask beside a float position bias; torch
# warns on every batch about that mix, which is harmless here and buries the progress bar.
warnings.filterwarnings("ignore", message="Support for mismatched key_padding_mask")


@dataclass
class FeaturizeBatch:
    """How the featurize stages batch clips, for every backbone at once (config group
    ``featurize_batch``; a backbone's own ``batch_seconds``/``max_batch_size`` override it).

    The defaults suit CPU cores; a GPU is launch-bound at this size and wants the ``gpu`` option
    (``benchmarks/featurize_gpu.py``). Batching changes the padding beside each clip, and so the
    features of backbones without an attention mask: it is a tracked setting, not a device's.
    """

    batch_seconds: float = 64.0  # at most this much padded audio per batch
    max_batch_size: int = 16  # and at most this many clips

    def __post_init__(self) -> None:
        check_batch(self.batch_seconds, self.max_batch_size, "featurize_batch.")


def check_batch(batch_seconds: float, max_batch_size: int, prefix: str = "") -> None:
    """The range check of a batch size, shared by the group's section and each backbone's."""
    if batch_seconds <= 0 or max_batch_size < 1:
        raise ConfigError(
            f"{prefix}batch_seconds must be > 0 and {prefix}max_batch_size >= 1, "
            f"not {batch_seconds} and {max_batch_size}"
        )


@dataclass
class BackboneSettings:
    """One ``conf/backbone/<name>.yaml`` (composed into ``params.yaml`` as ``backbones.<name>``)."""

    arch: str
    # A hub id (pinned by revision) or a local directory holding config.json + weights.
    checkpoint: str
    weights: str = "random"
    # The hub commit (40 hex digits) of checkpoint; required for a hub id with weights: pretrained.
    revision: str | None = None
    # The folder `seda models fetch --dest` wrote (holding <checkpoint>/<revision>/); null = the
    # hub cache.
    local_dir: str | None = None
    sample_rate: int = 16000
    pooling: str = "mean"
    # Architecture kwargs of the randomly initialised model (weights: random).
    random_init: dict[str, Any] = field(default_factory=dict)
    init_seed: int = 0
    # A featurize batch holds at most this much padded audio and this many clips (conf/backbone
    # takes them from featurize_batch).
    batch_seconds: float = FeaturizeBatch.batch_seconds
    max_batch_size: int = FeaturizeBatch.max_batch_size

    def __post_init__(self) -> None:
        if self.arch not in ARCHS:
            raise ConfigError(f"backbone arch {self.arch!r} unknown: use one of {', '.join(ARCHS)}")
        if self.weights not in WEIGHTS:
            raise ConfigError(
                f"backbone weights {self.weights!r} unknown: use random or pretrained"
            )
        if self.pooling not in POOLINGS:
            raise ConfigError(f"pooling {self.pooling!r} unknown: use one of {', '.join(POOLINGS)}")
        check_batch(self.batch_seconds, self.max_batch_size)
        # A hub id is pinned to a commit; a local directory needs none (its files are hashed).
        needs_commit = self.revision is not None or not is_local_path(self.checkpoint)
        if self.weights == "pretrained" and needs_commit and not is_commit(self.revision):
            raise ConfigError(
                f"backbone revision {self.revision!r} of {self.checkpoint} is not a commit id: "
                "weights: pretrained needs revision set to the checkpoint's 40-hex commit "
                "(a branch or tag like 'main' moves), or keep this backbone random "
                "(backbones.<name>.weights=random)"
            )


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


# arch -> (transformers.models.<package>, config class, model class). Importing the two modules
# directly skips the lazy top-level ``transformers`` namespace, whose first attribute access
# scans every model package (about 2 s of each featurize stage's start-up).
_ARCHES = {
    "hubert": ("hubert", "HubertConfig", "HubertModel"),
    "wav2vec2": ("wav2vec2", "Wav2Vec2Config", "Wav2Vec2Model"),
    "wavlm": ("wavlm", "WavLMConfig", "WavLMModel"),
    "data2vec-audio": ("data2vec", "Data2VecAudioConfig", "Data2VecAudioModel"),
}


def _classes(arch: str) -> tuple[type, type]:
    import importlib

    package, config_name, model_name = _ARCHES[arch]
    base = f"transformers.models.{package}"
    config_module = (
        "configuration_data2vec_audio" if package == "data2vec" else f"configuration_{package}"
    )
    model_module = "modeling_data2vec_audio" if package == "data2vec" else f"modeling_{package}"
    config_cls = getattr(importlib.import_module(f"{base}.{config_module}"), config_name)
    model_cls = getattr(importlib.import_module(f"{base}.{model_module}"), model_name)
    return config_cls, model_cls


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


def _unavailable(settings: BackboneSettings, why: str) -> BackboneUnavailableError:
    if is_local_path(settings.checkpoint):
        fix = (
            "Download it once where there is internet (e.g. `hf download <hub id> --revision "
            "<commit> --local-dir /path/to/model`) and point the config at that directory, e.g. "
            "`dvc exp run -S backbones.<name>.checkpoint=/path/to/model`"
        )
    else:
        fix = (
            "Fetch it once where there is internet (`seda models fetch --dest models/hub <name>`) "
            "and point the config at that folder, e.g. "
            "`dvc exp run -S backbones.<name>.local_dir=models/hub`"
        )
    return BackboneUnavailableError(
        f"backbone checkpoint {settings.checkpoint!r} ({settings.arch}) cannot be loaded: "
        f"{why.rstrip('. ')}. {fix}; or run the offline demo with random weights: "
        "`dvc exp run -S backbone_weights=random`."
    )


def checkpoint_dir(settings: BackboneSettings) -> Path:
    """The folder a pretrained backbone is loaded from: the checkpoint itself when it is a
    directory, else the fetched folder under ``local_dir``, else the hub cache's snapshot of the
    pinned revision (downloaded into the cache when the hub is reachable)."""
    checkpoint = settings.checkpoint
    if is_local_path(checkpoint):
        local = Path(checkpoint).expanduser()
        if not (local / "config.json").is_file():
            raise _unavailable(settings, f"no config.json in directory {local}")
        return local
    assert settings.revision is not None  # __post_init__: a pretrained hub id is pinned
    if settings.local_dir:
        try:
            return verify_fetched(settings.local_dir, checkpoint, settings.revision)
        except ConfigError as err:
            raise BackboneUnavailableError(
                f"backbone checkpoint {checkpoint!r} ({settings.arch}): {err}"
            ) from err
    return _hub_snapshot(settings)


def _hub_file(repo_id: str, name: str, revision: str) -> Path | None:
    """``name`` of ``repo_id`` at ``revision`` in the hub cache; None when that commit has no such
    file. Unreachable and uncached is an error, never taken for "absent"."""
    from huggingface_hub import hf_hub_download, try_to_load_from_cache
    from huggingface_hub.errors import LocalEntryNotFoundError, RemoteEntryNotFoundError

    try:
        return Path(hf_hub_download(repo_id, name, revision=revision))
    except RemoteEntryNotFoundError:
        return None
    except LocalEntryNotFoundError:
        cached = try_to_load_from_cache(repo_id, name, revision=revision)
        if cached is not None and not isinstance(cached, str):  # cached "no such file"
            return None
        raise


def _hub_snapshot(settings: BackboneSettings) -> Path:
    from huggingface_hub.errors import EntryNotFoundError

    repo_id, revision = settings.checkpoint, str(settings.revision)
    try:
        config = _hub_file(repo_id, "config.json", revision)
        weights = next(
            (w for w in WEIGHT_FILES if _hub_file(repo_id, w, revision) is not None), None
        )
        _hub_file(repo_id, "preprocessor_config.json", revision)
    except (OSError, ValueError, EntryNotFoundError) as err:
        raise _unavailable(settings, " ".join(str(err).split())[:300]) from err
    if config is None or weights is None:
        raise _unavailable(
            settings, f"revision {revision} has no config.json or no {' or '.join(WEIGHT_FILES)}"
        )
    return config.parent


def _pretrained_backbone(settings: BackboneSettings) -> tuple[torch.nn.Module, Preprocessing]:
    from transformers import AutoConfig, AutoFeatureExtractor

    _, model_cls = _classes(settings.arch)
    checkpoint = settings.checkpoint
    source = str(checkpoint_dir(settings))
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


def weights_sha256(model_or_dir: torch.nn.Module | str | Path) -> str | None:
    """sha256 of the weights file a pretrained backbone was loaded from, or None (random weights).

    Takes the loaded model (its ``name_or_path`` is the folder :func:`load_backbone` read) or a
    checkpoint folder; the file is the one ``from_pretrained`` reads there (safetensors first).
    """
    if isinstance(model_or_dir, (str, Path)):
        folder = str(model_or_dir)
    else:
        folder = str(getattr(model_or_dir, "name_or_path", "") or "")
    if not folder or not Path(folder).is_dir():
        return None
    path = weights_file(folder)
    return file_sha256(path) if path is not None else None


def backbone_reference(settings: BackboneSettings, model: torch.nn.Module) -> dict[str, Any]:
    """What identifies the backbone weights, for the features' meta and the model card.

    Always ``arch``, ``checkpoint``, ``weights``; random weights add ``random_init`` and
    ``init_seed``; pretrained weights add ``revision`` (the pinned commit; None for a local
    directory), ``weights_file`` and ``weights_sha256`` (the file actually loaded), and for a
    local checkpoint directory ``sha256`` of its config and weights files by name.
    """
    ref: dict[str, Any] = {
        "arch": settings.arch,
        "checkpoint": settings.checkpoint,
        "weights": settings.weights,
    }
    if settings.weights == "random":
        ref["random_init"] = dict(settings.random_init)
        ref["init_seed"] = settings.init_seed
        return ref
    folder = str(getattr(model, "name_or_path", "") or "")
    loaded = weights_file(folder) if folder else None
    ref["revision"] = settings.revision
    ref["weights_file"] = loaded.name if loaded is not None else None
    ref["weights_sha256"] = weights_sha256(model)
    if is_local_path(settings.checkpoint):
        local = Path(settings.checkpoint).expanduser()
        ref["sha256"] = {
            name: file_sha256(local / name) for name in _HASHED_FILES if (local / name).is_file()
        }
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
    """Torch CPU threads: the cores this process may run on (a SLURM job's CPUs, not the
    node's), or ``SEDA_THREADS`` (set by parallel launchers)."""
    return max(1, int(os.environ.get("SEDA_THREADS") or cpu_cores()))


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
