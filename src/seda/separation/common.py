"""Helpers shared by the separation backends: settings coercion and chunked streaming."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from seda.audio import AudioError, iter_audio_blocks
from seda.config import build
from seda.io import atomic_path

T = TypeVar("T")


def coerce_settings(cls: type[T], settings: Any) -> T:
    """``settings`` as ``cls``: itself, built from a mapping, or the shared fields of a dataclass.

    Lets a backend be built from the stage's own settings object as well as from its own class.
    """
    if isinstance(settings, cls):
        return settings
    if isinstance(settings, Mapping):
        return build(cls, settings, "separate")
    if dataclasses.is_dataclass(settings) and not isinstance(settings, type):
        names = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
        return cls(**{k: v for k, v in dataclasses.asdict(settings).items() if k in names})
    raise TypeError(f"cannot use {type(settings).__name__} as {cls.__name__}")


def stream_separate(
    in_path: str | Path,
    out_path: str | Path,
    voice_fn: Callable[[np.ndarray], np.ndarray],
    samplerate: int,
    chunk_seconds: float,
    crossfade_seconds: float = 1.0,
    out_samplerate: int | None = None,
) -> float:
    """Write ``voice_fn`` of ``in_path`` as a PCM16 WAV in bounded memory; return its duration.

    The input is decoded in ``chunk_seconds`` blocks at ``samplerate``; each block is separated
    with the last ``crossfade_seconds`` of the previous block prepended and the overlap
    cross-faded, so an hour-long file needs one block of memory and has no seams. The output is
    resampled to ``out_samplerate`` (streaming) when that differs.
    """
    import soundfile as sf
    import soxr

    out_sr = out_samplerate or samplerate
    resampler = None if out_sr == samplerate else soxr.ResampleStream(samplerate, out_sr, 1)
    overlap = int(crossfade_seconds * samplerate)
    written = 0

    def emit(fh: sf.SoundFile, y: np.ndarray, last: bool) -> int:
        if resampler is not None:
            y = resampler.resample_chunk(np.ascontiguousarray(y, dtype=np.float32), last=last)
        fh.write(np.clip(y, -1.0, 1.0))
        return y.size

    with (
        atomic_path(out_path, suffix=".tmp.wav") as tmp,
        sf.SoundFile(str(tmp), "w", out_sr, 1, subtype="PCM_16", format="WAV") as fh,
    ):
        prev_in = np.zeros(0, dtype=np.float32)
        held = np.zeros(0, dtype=np.float32)
        for _, block in iter_audio_blocks(in_path, samplerate, chunk_seconds):
            x = np.concatenate([prev_in, block])
            voice = np.asarray(voice_fn(x), dtype=np.float32)
            if voice.shape != x.shape:
                raise RuntimeError(f"separator returned {voice.shape} samples for {x.shape}")
            if held.size:
                fade = np.linspace(0.0, 1.0, held.size, dtype=np.float32)
                voice[: held.size] = held * (1.0 - fade) + voice[: held.size] * fade
            keep = min(overlap, x.size)
            written += emit(fh, voice[: x.size - keep], last=False)
            held, prev_in = voice[x.size - keep :], x[x.size - keep :]
        if written == 0 and held.size == 0:
            raise AudioError("no audio frames (empty or truncated file)")
        written += emit(fh, held, last=True)
    return written / out_sr
