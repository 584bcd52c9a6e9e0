"""Shared audio I/O: decoding any input to float32 mono at a chosen rate, streaming, writing WAV.

soundfile (libsndfile) decodes WAV/FLAC/OGG of every common sample format (8/16/24/32-bit PCM,
float) directly and lets long files be streamed in blocks; anything else (m4a, webm, mp3 from
yt-dlp) goes through ffmpeg. Resampling uses soxr, which also streams.
"""

from __future__ import annotations

import logging
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr

from seda.errors import UserError
from seda.io import atomic_path, normalise_reason

log = logging.getLogger(__name__)


class AudioError(UserError):
    """An input that cannot be used as audio; the message is shown to the user as the reason."""


class FfmpegMissingError(UserError, RuntimeError):
    """Neither a system ffmpeg nor the imageio-ffmpeg binary is available."""


_FFMPEG: str | None = None


def find_ffmpeg() -> str:
    """Path of the system ffmpeg, else the binary shipped in the imageio-ffmpeg wheel."""
    global _FFMPEG
    if _FFMPEG:
        return _FFMPEG
    exe = shutil.which("ffmpeg")
    if exe is None:
        try:
            import imageio_ffmpeg

            exe = imageio_ffmpeg.get_ffmpeg_exe()
        except (ImportError, RuntimeError) as err:
            raise FfmpegMissingError(
                "ffmpeg not found: install it with your system's package manager "
                "(for example `apt-get install ffmpeg`) or `pip install imageio-ffmpeg`"
            ) from err
    _FFMPEG = exe
    return exe


@dataclass(frozen=True)
class AudioInfo:
    samplerate: int
    channels: int
    frames: int
    subtype: str

    @property
    def duration(self) -> float:
        return self.frames / self.samplerate if self.samplerate else 0.0


def audio_info(path: str | Path) -> AudioInfo:
    """Header facts of a file, raising :class:`AudioError` with a readable reason for bad input."""
    path = Path(path)
    _check_nonempty(path)
    try:
        info = sf.info(str(path))
    except (sf.LibsndfileError, RuntimeError) as err:
        return _ffprobe_info(path, err)
    if info.frames <= 0:
        raise AudioError("no audio frames (empty or truncated file)")
    return AudioInfo(int(info.samplerate), int(info.channels), int(info.frames), str(info.subtype))


def _check_nonempty(path: Path) -> None:
    if not path.exists():
        raise AudioError(f"file not found: {path}")
    if path.stat().st_size == 0:
        raise AudioError("empty file (0 bytes)")


def _ffprobe_info(path: Path, sf_error: Exception) -> AudioInfo:
    """Fallback for formats libsndfile cannot read: decode with ffmpeg to count samples."""
    y, sr = _ffmpeg_decode(path, samplerate=None)
    if y.size == 0:
        raise AudioError(f"not decodable audio ({_short(sf_error)})")
    return AudioInfo(sr, 1, int(y.size), "ffmpeg")


def _short(err: Exception) -> str:
    return normalise_reason(str(err))[:200]


def load_audio(
    path: str | Path,
    samplerate: int | None = None,
    *,
    start: float = 0.0,
    end: float | None = None,
) -> tuple[np.ndarray, int]:
    """Decode ``path`` to float32 mono, optionally resampled and trimmed to [start, end) seconds.

    Raises :class:`AudioError` for empty, undecodable, silent-header or non-finite input.
    """
    path = Path(path)
    _check_nonempty(path)
    try:
        with sf.SoundFile(str(path)) as fh:
            sr = int(fh.samplerate)
            first = round(start * sr)
            last = fh.frames if end is None else min(fh.frames, round(end * sr))
            if fh.frames <= 0:
                raise AudioError("no audio frames (empty or truncated file)")
            fh.seek(min(first, fh.frames))
            data = fh.read(max(0, last - first), dtype="float32", always_2d=True)
        y = data.mean(axis=1) if data.shape[1] > 1 else data[:, 0]
    except (sf.LibsndfileError, RuntimeError) as err:
        y, sr = _ffmpeg_decode(path, samplerate=None)
        if y.size == 0:
            raise AudioError(f"not decodable audio ({_short(err)})") from err
        y = y[round(start * sr) : None if end is None else round(end * sr)]
    y = np.ascontiguousarray(y, dtype=np.float32)
    check_finite(y)
    if samplerate and samplerate != sr:
        y = soxr.resample(y, sr, samplerate, quality="HQ").astype(np.float32)
        sr = samplerate
    return y, sr


def check_finite(y: np.ndarray) -> None:
    bad = int(np.count_nonzero(~np.isfinite(y)))
    if bad:
        raise AudioError(f"{bad} NaN/inf samples")


def iter_audio_blocks(
    path: str | Path, samplerate: int, block_seconds: float = 300.0
) -> Iterator[tuple[float, np.ndarray]]:
    """Stream a file as (start_seconds, mono float32 block at ``samplerate``) in bounded memory.

    Used for hour-long inputs: only one block (plus the resampler's state) is held at a time.
    """
    path = Path(path)
    _check_nonempty(path)
    try:
        fh = sf.SoundFile(str(path))
    except (sf.LibsndfileError, RuntimeError):
        y, sr = load_audio(path, samplerate)
        step = int(block_seconds * sr)
        for i in range(0, max(len(y), 1), step):
            yield i / sr, y[i : i + step]
        return
    with fh:
        if fh.frames <= 0:
            raise AudioError("no audio frames (empty or truncated file)")
        sr_in = int(fh.samplerate)
        stream = (
            None if sr_in == samplerate else soxr.ResampleStream(sr_in, samplerate, 1, "float32")
        )
        emitted = 0
        block = max(1, int(block_seconds * sr_in))
        while True:
            data = fh.read(block, dtype="float32", always_2d=True)
            last = data.shape[0] < block
            mono = data.mean(axis=1) if data.shape[1] > 1 else data[:, 0]
            mono = np.ascontiguousarray(mono, dtype=np.float32)
            check_finite(mono)
            out = mono if stream is None else stream.resample_chunk(mono, last=last)
            if out.size:
                yield emitted / samplerate, out.astype(np.float32, copy=False)
                emitted += out.size
            if last:
                break


def _ffmpeg_decode(path: Path, samplerate: int | None) -> tuple[np.ndarray, int]:
    sr = samplerate or _ffmpeg_native_rate(path) or 16000
    cmd = [
        find_ffmpeg(),
        "-nostdin",
        "-v",
        "error",
        "-i",
        str(path),
        "-vn",
        "-f",
        "f32le",
        "-ac",
        "1",
        "-ar",
        str(sr),
        "-",
    ]
    proc = subprocess.run(cmd, capture_output=True, check=False)
    if proc.returncode != 0 and not proc.stdout:
        raise AudioError(
            f"not decodable audio ({_short(Exception(proc.stderr.decode(errors='replace')))})"
        )
    y = np.frombuffer(proc.stdout, dtype="<f4").astype(np.float32)
    return y, sr


def _ffmpeg_native_rate(path: Path) -> int | None:
    proc = subprocess.run(
        [find_ffmpeg(), "-nostdin", "-hide_banner", "-i", str(path)],
        capture_output=True,
        check=False,
    )
    text = proc.stderr.decode(errors="replace")
    for token in text.split(","):
        token = token.strip()
        if token.endswith(" Hz"):
            try:
                return int(token[:-3])
            except ValueError:
                continue
    return None


def write_wav(path: str | Path, y: np.ndarray, samplerate: int, subtype: str = "PCM_16") -> None:
    """Write mono audio as WAV atomically (temporary name, then rename)."""
    with atomic_path(path, suffix=".tmp.wav") as tmp:
        sf.write(
            str(tmp), np.asarray(y, dtype=np.float32), samplerate, subtype=subtype, format="WAV"
        )


def to_wav_with_ffmpeg(src: str | Path, dst: str | Path, samplerate: int | None = None) -> None:
    """Convert any ffmpeg-readable file to 16-bit WAV atomically (channels kept)."""
    with atomic_path(dst, suffix=".tmp.wav") as tmp:
        cmd = [
            find_ffmpeg(),
            "-nostdin",
            "-v",
            "error",
            "-y",
            "-i",
            str(src),
            "-vn",
            "-acodec",
            "pcm_s16le",
        ]
        if samplerate:
            cmd += ["-ar", str(samplerate)]
        cmd += [str(tmp)]
        proc = subprocess.run(cmd, capture_output=True, check=False)
        if proc.returncode != 0:
            raise AudioError(
                f"ffmpeg could not convert {Path(src).name}: "
                f"{_short(Exception(proc.stderr.decode(errors='replace')))}"
            )
