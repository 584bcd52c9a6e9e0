"""Demucs (Meta, PyTorch) voice separation in seda's own environment.

Only ``demucs.pretrained.get_model`` and ``demucs.apply.apply_model`` are used; audio is decoded
and written by seda (``demucs.audio``'s I/O is not needed). Long files are cut into
``chunk_seconds`` blocks with a cross-faded overlap (``common.stream_separate``),
and inside each block ``apply_model(split=True)`` runs the network on ``segment``-second windows,
so memory is bounded whatever the file length. Only the ``vocals`` stem is kept.
"""

from __future__ import annotations

import functools
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from seda.errors import ConfigError
from seda.separation.common import (
    Job,
    SeparationBackend,
    coerce_settings,
    run_per_file,
    stream_separate,
)

log = logging.getLogger(__name__)


@dataclass
class DemucsSettings:
    backend: str = "demucs"
    # A pretrained name (htdemucs, htdemucs_ft, mdx_extra, ...) or signature.
    model: str = "htdemucs"
    # Local folder with the model files (<name>.yaml + <sig>.th), for offline use; None: the
    # HuggingFace / torch hub caches, downloading when online.
    repo: str | None = None
    # auto (cuda when available), cpu, cuda, cuda:1, ...
    device: str = "auto"
    # Network window in seconds (None: the model's own; HTDemucs allows at most its 7.8 s).
    segment: float | None = None
    # Random time shifts averaged (better by ~0.2 dB, `shifts` times slower).
    shifts: int = 0
    # Overlap of consecutive network windows (fraction).
    overlap: float = 0.25
    # Outer blocks (seconds) the file is streamed in, cross-faded over `crossfade_seconds`.
    chunk_seconds: float = 300.0
    crossfade_seconds: float = 1.0
    # Sample rate of the written voice stems (mono PCM16).
    sample_rate: int = 44100


class DemucsBackend(SeparationBackend):
    """Voice stems by a Demucs model, files one after another in this process (torch threads)."""

    name: ClassVar[str] = "demucs"
    settings_class: ClassVar[type] = DemucsSettings
    code = ("seda.separation.demucs_backend",)
    packages = ("demucs", "torch", "numpy", "soundfile", "soxr", "imageio-ffmpeg")

    def __init__(self, settings: Any, workers: int | None = None, model: Any = None) -> None:
        """``model``: an already built Demucs model (tests inject a small random one)."""
        super().__init__(coerce_settings(DemucsSettings, settings), workers)
        self.settings: DemucsSettings
        s = self.settings
        if s.chunk_seconds <= 2 * s.crossfade_seconds or s.shifts < 0 or not 0 <= s.overlap < 1:
            raise ConfigError(
                "separate: need chunk_seconds > 2 x crossfade_seconds, shifts >= 0 and "
                "0 <= overlap < 1"
            )
        self.device = resolve_device(s.device)
        self.model = model if model is not None else load_demucs_model(s.model, s.repo)
        if "vocals" not in self.model.sources:
            raise ConfigError(
                f"Demucs model {s.model!r} has no 'vocals' stem: {self.model.sources}"
            )

    def separate_batch(self, jobs: list[Job]) -> list[str | None]:
        return run_per_file(self._separate_job, jobs, workers=1, desc="separate: demucs")

    def _separate_job(self, job: Job) -> float:
        return self.separate_file(*job)

    def separate_file(self, in_path: str | Path, out_path: str | Path) -> float:
        """Write the vocals stem of ``in_path`` to ``out_path``; return its duration in seconds."""
        s = self.settings
        voice = functools.partial(
            demucs_voice,
            model=self.model,
            device=self.device,
            segment=s.segment,
            shifts=s.shifts,
            overlap=s.overlap,
        )
        return stream_separate(
            in_path,
            out_path,
            voice,
            samplerate=int(self.model.samplerate),
            chunk_seconds=s.chunk_seconds,
            crossfade_seconds=s.crossfade_seconds,
            out_samplerate=s.sample_rate,
        )


def resolve_device(device: str) -> str:
    """``auto`` -> ``cuda`` when a GPU is visible, else ``cpu``; others are checked."""
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    try:
        dev = torch.device(device)
    except RuntimeError as err:
        raise ConfigError(f"separate.device {device!r}: {err}") from err
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"separate.device {device!r}: no CUDA GPU is available (use auto or cpu)")
    return device


@functools.lru_cache(maxsize=2)
def load_demucs_model(name: str, repo: str | None = None) -> Any:
    """The pretrained model ``name`` (from ``repo`` or the caches), in eval mode.

    Offline and not cached, Demucs' download fails after a while; that becomes one
    :class:`ConfigError` saying where the weights were looked for and how to provide them.
    """
    from demucs.pretrained import get_model

    if repo is not None and not Path(repo).is_dir():
        raise ConfigError(f"separate.repo {repo!r} is not a folder of Demucs model files")
    try:
        model = get_model(name, repo=Path(repo) if repo else None)
    except (Exception, SystemExit) as err:
        where = f"in {repo}" if repo else "in the HuggingFace or torch hub caches"
        raise ConfigError(
            f"Demucs model {name!r} could not be loaded ({type(err).__name__}: "
            f"{str(err)[:150]}): its weights are not {where} and Demucs downloads them only with "
            "internet access; copy the model files (<name>.yaml and the .th/.safetensors they "
            "list) into a folder and set separate.repo to it"
        ) from err
    model.eval()
    return model


def demucs_voice(
    y: np.ndarray,
    model: Any,
    device: str = "cpu",
    segment: float | None = None,
    shifts: int = 0,
    overlap: float = 0.25,
) -> np.ndarray:
    """Vocals estimate (mono, same length) of mono ``y`` at ``model.samplerate``.

    The mixture is duplicated to the model's channels and normalised as Demucs' own CLI does
    (zero mean, unit std; undone on the output); an all-silent block returns silence.
    """
    import torch
    from demucs.apply import apply_model

    y = np.asarray(y, dtype=np.float32)
    std = float(y.std())
    if y.size == 0 or std < 1e-8:
        return np.zeros_like(y)
    mean = float(y.mean())
    x = torch.from_numpy((y - mean) / std)
    mix = x.expand(int(model.audio_channels), -1)[None]
    limit = _max_segment(model)
    if segment is not None and limit is not None:
        segment = min(segment, limit)
    with torch.inference_mode():
        sources = apply_model(
            model,
            mix,
            shifts=shifts,
            split=True,
            overlap=overlap,
            device=device,
            segment=segment,
            progress=False,
        )
    vocals = sources[0, list(model.sources).index("vocals")].mean(dim=0).cpu().numpy()
    return (vocals * std + mean).astype(np.float32)


def _max_segment(model: Any) -> float | None:
    """The longest window the model accepts (HTDemucs: its training segment), None if any."""
    if hasattr(model, "max_allowed_segment"):
        limit = float(model.max_allowed_segment)
        return None if limit == float("inf") else limit
    from demucs.htdemucs import HTDemucs

    return float(model.segment) if isinstance(model, HTDemucs) else None
