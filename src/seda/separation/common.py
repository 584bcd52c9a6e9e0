"""What every separation backend shares: the backend contract, settings coercion, per-file
worker processes and chunked, cross-faded streaming of a file through a voice estimator."""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import functools
import os
import shutil
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, ClassVar, TypeVar

import numpy as np

from seda.audio import AudioError, iter_audio_blocks
from seda.io import atomic_path
from seda.parallel import ENVIRONMENT_ERRNOS, map_files

T = TypeVar("T")
# (input audio, output voice stem WAV)
Job = tuple[Path, Path]


class SeparationBackend(ABC):
    """Turns mixtures into voice stems, a batch at a time.

    ``separate_batch`` gets (input, output WAV) pairs and returns, per pair, None on success or a
    one-line reason (the input's fault only: a full disk raises). A backend with
    ``writes_audio = False`` only validates its inputs and later stages read the raw files.
    ``code`` (seda modules) and ``packages`` (distributions) are what a stem's bytes depend on:
    the per-file cache keys on them, so editing that code never reuses older stems.
    """

    name: ClassVar[str]
    writes_audio: ClassVar[bool] = True
    settings_class: ClassVar[type]
    code: ClassVar[tuple[str, ...]] = ()
    packages: ClassVar[tuple[str, ...]] = ()

    def __init__(self, settings: Any, workers: int | None = None) -> None:
        self.settings = settings
        self.workers = workers

    @abstractmethod
    def separate_batch(self, jobs: list[Job]) -> list[str | None]: ...


def coerce_settings(cls: type[T], settings: Any) -> T:
    """``settings`` as ``cls``: itself, or the shared fields of another settings dataclass.

    Lets a backend be built from the stage's own settings object as well as from its own class.
    """
    if isinstance(settings, cls):
        return settings
    if dataclasses.is_dataclass(settings) and not isinstance(settings, type):
        names = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
        return cls(**{k: v for k, v in dataclasses.asdict(settings).items() if k in names})
    raise TypeError(f"cannot use {type(settings).__name__} as {cls.__name__}")


def run_per_file(
    fn: Callable[[Job], Any], jobs: Sequence[Job], workers: int | None, desc: str
) -> list[str | None]:
    """Errors per job, in job order, running ``fn`` over the jobs in worker processes."""
    errors: list[str | None] = [None] * len(jobs)
    indexed = functools.partial(_call_indexed, fn=fn)
    for outcome in map_files(
        indexed, list(enumerate(jobs)), workers=workers, desc=desc, known_errors=(AudioError,)
    ):
        errors[outcome.item[0]] = outcome.error
    return errors


def _call_indexed(item: tuple[int, Job], fn: Callable[[Job], Any]) -> Any:
    return fn(item[1])


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
    resampled to ``out_samplerate`` (streaming) when that differs. A write the file system
    refuses (disk full, read-only, ...) raises :class:`OSError` naming ``out_path``.
    """
    import soxr

    out_sr = out_samplerate or samplerate
    resampler = None if out_sr == samplerate else soxr.ResampleStream(samplerate, out_sr, 1)
    overlap = int(crossfade_seconds * samplerate)
    written = 0

    def emit(fh: _StemWriter, y: np.ndarray, last: bool) -> int:
        if resampler is not None:
            y = resampler.resample_chunk(np.ascontiguousarray(y, dtype=np.float32), last=last)
        fh.write(np.clip(y, -1.0, 1.0))
        return y.size

    with atomic_path(out_path, suffix=".tmp.wav") as tmp, _StemWriter(tmp, out_path, out_sr) as fh:
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


class _StemWriter:
    """A mono PCM16 WAV being written to ``tmp``; libsndfile's bare "System error." on a write
    the file system refused becomes an :class:`OSError` naming ``target`` and the cause."""

    def __init__(self, tmp: Path, target: str | Path, samplerate: int) -> None:
        import soundfile as sf

        self._sf, self.target = sf, Path(target)
        self._fh = self._guard(
            lambda: sf.SoundFile(str(tmp), "w", samplerate, 1, subtype="PCM_16", format="WAV")
        )

    def write(self, y: np.ndarray) -> None:
        self._guard(lambda: self._fh.write(y))

    def __enter__(self) -> _StemWriter:
        return self

    def __exit__(self, exc_type: Any, *_: Any) -> None:
        if exc_type is None:
            self._guard(self._fh.close)
        else:
            with contextlib.suppress(self._sf.SoundFileError):
                self._fh.close()  # the exception on its way out says more

    def _guard(self, fn: Callable[[], T]) -> T:
        try:
            return fn()
        except self._sf.SoundFileRuntimeError as err:
            code = _write_errno(self._sf, self.target)
            if code is None:
                raise
            raise OSError(code, os.strerror(code), str(self.target)) from err


def _write_errno(sf: Any, target: Path) -> int | None:
    """The file-system cause of a failed libsndfile write, or None when it is not one."""
    code = getattr(getattr(sf, "_ffi", None), "errno", 0)
    if code in ENVIRONMENT_ERRNOS:
        return code
    try:
        return errno.ENOSPC if shutil.disk_usage(target.parent).free == 0 else None
    except OSError:
        return None
