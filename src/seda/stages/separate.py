"""Stage `separate`: isolate the voice from music beds (YouTube sources) before cleaning.

Backends sit behind :class:`SeparationBackend`, whose unit of work is a whole batch of
(input, output) files, so that a backend may run in another process or virtualenv (Spleeter,
Demucs) without this stage knowing. Built-in: ``none`` (later stages read the raw audio) and
``repet`` (librosa's REPET-SIM soft mask: weight-free, offline, no model download).

Results are cached per input sha256 + settings (:class:`seda.cache.StageCache`), so a rerun after
adding one video separates only that video.
"""

from __future__ import annotations

import functools
import logging
import shutil
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from seda.audio import AudioError, audio_info, iter_audio_blocks
from seda.cache import StageCache, link_or_copy
from seda.config import ConfigError, build, load_params
from seda.entry import stage_main
from seda.io import (
    ITEM_COLUMNS,
    RejectLog,
    atomic_path,
    read_csv,
    rel_to_cwd,
    sha256_file,
    write_csv_atomic,
)
from seda.parallel import map_files
from seda.separation import DemucsBackend, SpleeterBackend

log = logging.getLogger(__name__)

STAGE = "separate"
RAW_MANIFEST = Path("data/raw/manifest.csv")
OUT_DIR = Path("data/separated")
MANIFEST_COLUMNS = ITEM_COLUMNS
# Consecutive chunks overlap by this much and are cross-faded, so chunk edges do not click.
CROSSFADE_SECONDS = 1.0

Job = tuple[Path, Path]


@dataclass(frozen=True)
class SeparateSettings:
    backend: str = "repet"
    sample_rate: int = 22050
    n_fft: int = 2048
    hop_length: int = 512
    min_repeat_seconds: float = 2.0
    margin_voice: float = 10.0
    power: float = 2.0
    chunk_seconds: float = 60.0


# --------------------------------------------------------------------------------------------
# Backends


class SeparationBackend(ABC):
    """Turns mixtures into voice stems, a batch at a time.

    ``separate_batch`` gets (input, output WAV) pairs and returns, per pair, None on success or a
    one-line reason. A backend with ``writes_audio = False`` only validates its inputs and later
    stages read the raw files.
    """

    name: ClassVar[str]
    writes_audio: ClassVar[bool] = True

    def __init__(self, settings: SeparateSettings, workers: int | None = None) -> None:
        self.settings = settings
        self.workers = workers

    @abstractmethod
    def separate_batch(self, jobs: list[Job]) -> list[str | None]: ...


BACKENDS: dict[str, type[SeparationBackend]] = {}


def register_backend(cls: type[SeparationBackend]) -> type[SeparationBackend]:
    """Class decorator adding a backend to :data:`BACKENDS` under its ``name``."""
    BACKENDS[cls.name] = cls
    return cls


def make_backend(settings: SeparateSettings, workers: int | None = None) -> SeparationBackend:
    """The backend named by ``separate.backend``; an unknown name is a :class:`ConfigError`."""
    cls = BACKENDS.get(settings.backend)
    if cls is None:
        known = ", ".join(sorted(BACKENDS))
        raise ConfigError(
            f"unknown separate.backend {settings.backend!r}: known backends are {known}"
        )
    return cls(settings, workers)


def _run_per_file(
    fn: Callable[[Job], Any], jobs: Sequence[Job], workers: int | None, desc: str
) -> list[str | None]:
    """Errors per job, in job order, running ``fn`` over the jobs in worker processes."""
    errors: list[str | None] = [None] * len(jobs)
    items = list(enumerate(jobs))
    indexed = functools.partial(_call_indexed, fn=fn)
    for outcome in map_files(
        indexed, items, workers=workers, desc=desc, known_errors=(AudioError,)
    ):
        errors[outcome.item[0]] = outcome.error
    return errors


def _call_indexed(item: tuple[int, Job], fn: Callable[[Job], Any]) -> Any:
    return fn(item[1])


def _check_readable(job: Job) -> None:
    audio_info(job[0])


@register_backend
class NoSeparation(SeparationBackend):
    """No separation: inputs are only checked to be readable audio (header only, cheap)."""

    name = "none"
    writes_audio = False

    def separate_batch(self, jobs: list[Job]) -> list[str | None]:
        return _run_per_file(_check_readable, jobs, workers=1, desc="separate: check")


@register_backend
class RepetBackend(SeparationBackend):
    """librosa REPET-SIM soft-mask separation, one worker process per file."""

    name = "repet"

    def __init__(self, settings: SeparateSettings, workers: int | None = None) -> None:
        super().__init__(settings, workers)
        if settings.chunk_seconds < 3 * settings.min_repeat_seconds:
            raise ConfigError(
                f"separate.chunk_seconds ({settings.chunk_seconds:g}) must be at least 3 x "
                f"separate.min_repeat_seconds ({settings.min_repeat_seconds:g}): REPET needs "
                "repetitions inside one chunk"
            )

    def separate_batch(self, jobs: list[Job]) -> list[str | None]:
        fn = functools.partial(_separate_job, settings=self.settings)
        return _run_per_file(fn, jobs, self.workers, desc="separate: repet")


def _separate_job(job: Job, settings: SeparateSettings) -> None:
    separate_file(job[0], job[1], settings)


# --------------------------------------------------------------------------------------------
# REPET-SIM


def repet_voice(y: np.ndarray, sr: int, settings: SeparateSettings) -> np.ndarray:
    """Voice estimate of a mixture by REPET-SIM (librosa's "vocal separation" example).

    Frames that resemble other frames (cosine nearest neighbours at least ``min_repeat_seconds``
    away) are taken as repeating accompaniment; the voice is what the median of those neighbours
    does not explain, kept through a soft mask with margin ``margin_voice``.
    """
    import librosa

    y = np.asarray(y, dtype=np.float32)
    stft = librosa.stft(y, n_fft=settings.n_fft, hop_length=settings.hop_length)
    mag, phase = librosa.magphase(stft)
    frames = mag.shape[1]
    width = int(
        librosa.time_to_frames(settings.min_repeat_seconds, sr=sr, hop_length=settings.hop_length)
    )
    width = min(width, (frames - 1) // 2 - 1)
    if width < 1:
        log.debug("separate: %d samples are too short to separate; kept as they are", y.size)
        return y.copy()
    repeating = librosa.decompose.nn_filter(
        mag, aggregate=np.median, metric="cosine", width=max(1, width)
    )
    repeating = np.minimum(mag, repeating)
    mask = librosa.util.softmask(
        mag - repeating, settings.margin_voice * repeating, power=settings.power
    )
    voice = librosa.istft(mask * mag * phase, hop_length=settings.hop_length, length=y.size)
    return voice.astype(np.float32)


def separate_file(in_path: str | Path, out_path: str | Path, settings: SeparateSettings) -> float:
    """Write the voice stem of ``in_path`` to ``out_path`` (PCM16 WAV); return its duration.

    The input is streamed in ``chunk_seconds`` blocks; each block is separated with the last
    :data:`CROSSFADE_SECONDS` of the previous one prepended, and the overlap is cross-faded, so
    memory stays bounded for hour-long files without audible seams.
    """
    import soundfile as sf

    sr = settings.sample_rate
    overlap = int(CROSSFADE_SECONDS * sr)
    written = 0
    with (
        atomic_path(out_path, suffix=".tmp.wav") as tmp,
        sf.SoundFile(str(tmp), "w", sr, 1, subtype="PCM_16", format="WAV") as fh,
    ):
        prev_in = np.zeros(0, dtype=np.float32)
        held = np.zeros(0, dtype=np.float32)
        for _, block in iter_audio_blocks(in_path, sr, settings.chunk_seconds):
            x = np.concatenate([prev_in, block])
            voice = repet_voice(x, sr, settings)
            if held.size:
                fade = np.linspace(0.0, 1.0, held.size, dtype=np.float32)
                voice[: held.size] = held * (1.0 - fade) + voice[: held.size] * fade
            keep = min(overlap, x.size)
            out, held = voice[: x.size - keep], voice[x.size - keep :]
            prev_in = x[x.size - keep :]
            fh.write(np.clip(out, -1.0, 1.0))
            written += out.size
        fh.write(np.clip(held, -1.0, 1.0))
        written += held.size
    if written == 0:
        Path(out_path).unlink(missing_ok=True)
        raise AudioError("no audio frames (empty or truncated file)")
    return written / sr


def si_sdr(reference: np.ndarray, estimate: np.ndarray) -> float:
    """Scale-invariant signal-to-distortion ratio in dB (Le Roux et al., 2019).

    Signals are zero-meaned and cut to the shorter length; higher is better.
    """
    n = min(len(reference), len(estimate))
    ref = np.asarray(reference[:n], dtype=np.float64)
    est = np.asarray(estimate[:n], dtype=np.float64)
    ref = ref - ref.mean()
    est = est - est.mean()
    eps = np.finfo(np.float64).eps
    target = (np.dot(est, ref) / (np.dot(ref, ref) + eps)) * ref
    noise = est - target
    return float(10.0 * np.log10((np.dot(target, target) + eps) / (np.dot(noise, noise) + eps)))


# --------------------------------------------------------------------------------------------
# Stage


def separate_manifest(
    rows: list[dict[str, str]],
    settings: SeparateSettings,
    out_dir: Path = OUT_DIR,
    *,
    workers: int | None = None,
    cache_root: Path | None = None,
) -> tuple[list[dict[str, str]], RejectLog, dict[str, int]]:
    """Separate every manifest row; return (output rows, rejects, counts).

    Output rows are the input rows with ``path`` replaced by the voice stem (or left at the raw
    path for a backend that writes no audio).
    """
    backend = make_backend(settings, workers)
    rejects = RejectLog(STAGE)
    counts = {"items": len(rows), "separated": 0, "cached": 0, "rejected": 0}
    if not backend.writes_audio:
        jobs = [(Path(r["path"]), Path(r["path"])) for r in rows]
        errors = backend.separate_batch(jobs)
        kept = []
        for row, err in zip(rows, errors, strict=True):
            if err:
                rejects.add(row["id"], row["path"], err)
            else:
                kept.append(dict(row))
        counts["rejected"] = len(rejects)
        return kept, rejects, counts

    cache = StageCache(STAGE, settings, **({"root": cache_root} if cache_root else {}))
    out_paths: dict[str, Path] = {}
    keys: dict[str, str] = {}
    todo: dict[str, Job] = {}
    for row in rows:
        src = Path(row["path"])
        try:
            key = sha256_file(src)
        except OSError as err:
            rejects.add(row["id"], row["path"], f"cannot read input: {err.strerror or err}")
            continue
        keys[row["id"]] = key
        if cache.load(key) is None and key not in todo:
            todo[key] = (src, cache.begin(key) / "voice.wav")
    failed: dict[str, str] = {}
    if todo:
        errors = backend.separate_batch(list(todo.values()))
        for key, err in zip(list(todo), errors, strict=True):
            if err is None:
                stem_sha = sha256_file(cache.entry_dir(key) / "voice.wav")
                cache.commit(
                    key, {"files": ["voice.wav"], "backend": settings.backend, "sha256": stem_sha}
                )
            else:
                failed[key] = err
                shutil.rmtree(cache.entry_dir(key), ignore_errors=True)
    out_rows = []
    for row in rows:
        key = keys.get(row["id"])
        if key is None:
            continue
        if key in failed:
            rejects.add(row["id"], row["path"], failed[key])
            continue
        dst = out_dir / f"{row['id']}.wav"
        link_or_copy(cache.entry_dir(key) / "voice.wav", dst)
        out_paths[row["id"]] = dst
        # The stem's own hash: the clean stage keys its cache on it, so another separation
        # backend or setting can never reuse clips cut from a different stem.
        stem_sha = (cache.load(key) or {}).get("sha256") or sha256_file(dst)
        out_rows.append({**row, "path": rel_to_cwd(dst), "sha256": stem_sha})
        counts["separated" if key in todo else "cached"] += 1
    _remove_stale(out_dir, set(out_paths.values()))
    counts["rejected"] = len(rejects)
    return out_rows, rejects, counts


def _remove_stale(out_dir: Path, keep: set[Path]) -> None:
    """Voice stems of items no longer in the manifest would otherwise linger in the DVC output."""
    if not out_dir.exists():
        return
    keep_resolved = {p.resolve() for p in keep}
    for wav in out_dir.glob("*.wav"):
        if wav.resolve() not in keep_resolved:
            wav.unlink()


for _model_backend in (SpleeterBackend, DemucsBackend):
    register_backend(SeparationBackend.register(_model_backend))


def settings_for(section: dict[str, Any] | None) -> Any:
    """Build the settings class of the backend the section names (each backend has its own keys)."""
    section = dict(section or {})
    cls = BACKENDS.get(section.get("backend", SeparateSettings.backend))
    return build(getattr(cls, "settings_class", SeparateSettings), section, "separate")


def run(params: dict[str, Any]) -> dict[str, Any]:
    settings = settings_for(params.get("separate"))
    make_backend(settings)
    if not RAW_MANIFEST.exists():
        raise ConfigError(f"{RAW_MANIFEST} not found: run the collect stage first")
    rows = read_csv(RAW_MANIFEST)
    columns = list(rows[0]) if rows else list(MANIFEST_COLUMNS)
    out_rows, rejects, counts = separate_manifest(
        rows, settings, OUT_DIR, workers=params.get("workers")
    )
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    write_csv_atomic(OUT_DIR / "manifest.csv", out_rows, columns)
    rejects.write(OUT_DIR / "rejected.csv")
    summary = {"backend": settings.backend, **counts}
    log.info(
        "separate (%s): %d items, %d separated, %d from cache, %d rejected",
        settings.backend,
        counts["items"],
        counts["separated"],
        counts["cached"],
        counts["rejected"],
    )
    return summary


def main(argv: list[str] | None = None) -> int:
    return stage_main(STAGE, lambda: run(load_params()))


if __name__ == "__main__":
    raise SystemExit(main())
