"""One recording to speech clips: decode, denoise, find speech, cut, judge, normalise.

Per file: decode (any format, rate, width or channel count) to mono at ``clean.sample_rate``,
streamed in ``block_seconds`` blocks so an hour-long file never sits in memory whole (peak
memory is about two blocks plus the resampler's state); spectral-gating noise reduction; voice
activity detection; speech regions merged across short pauses, padded and split when too long;
clips that are too short, silent or clipped are rejected with a reason; the rest are normalised
to a target loudness.
"""

from __future__ import annotations

import hashlib
import io
import itertools
import math
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import soundfile as sf
import soxr

from seda.audio import AudioError, AudioInfo, audio_info, iter_audio_blocks
from seda.errors import ConfigError
from seda.io import atomic_path
from seda.segment.denoise import NoiseReduceSettings, reduce_noise
from seda.segment.loudness import LoudnessSettings, normalise_loudness, rms_dbfs
from seda.segment.vad import Region, VadSettings, detect_speech

# A sample at or above this magnitude counts as full scale (8-bit PCM peaks at 127/128).
FULL_SCALE = 0.99
# Resolution of the per-file clipping counts (kept for the whole file: 360k ints per hour).
_COUNT_FRAME_SECONDS = 0.01
# Frame length of the energy curve used to choose split points.
_SPLIT_FRAME_SECONDS = 0.02
# Audio kept before a carried-over region so the VAD sees its onset again.
_VAD_CONTEXT_SECONDS = 0.5


@dataclass
class ClipSettings:
    # TurEV-DB's single words hold 0.5-0.8 s of speech: a 1 s minimum would drop 92% of them.
    min_seconds: float = 0.3
    max_seconds: float = 8.0
    # Speech regions closer than this are merged into one clip.
    merge_gap_seconds: float = 0.3
    pad_seconds: float = 0.1
    # How over-long regions are cut: at the quietest point (energy) or into equal parts (even).
    split: str = "energy"


@dataclass
class RejectSettings:
    # A clip whose RMS is below this is silence.
    min_rms_dbfs: float = -50.0
    # A clip with more than this share of samples at full scale is clipped.
    max_clipped_fraction: float = 0.01


@dataclass
class CleanSettings:
    sample_rate: int = 16000
    noise_reduce: NoiseReduceSettings = field(default_factory=NoiseReduceSettings)
    loudness: LoudnessSettings = field(default_factory=LoudnessSettings)
    clips: ClipSettings = field(default_factory=ClipSettings)
    reject: RejectSettings = field(default_factory=RejectSettings)
    # Long files are streamed in blocks of this length (bounded memory).
    block_seconds: float = 300.0


def validate_clean(s: CleanSettings) -> None:
    """Raise :class:`ConfigError` naming the key of an unusable setting."""
    c = s.clips
    checks = [
        (s.sample_rate >= 8000, f"clean.sample_rate must be >= 8000, not {s.sample_rate}"),
        (
            0.0 <= s.noise_reduce.strength <= 1.0,
            f"clean.noise_reduce.strength must be in [0, 1], not {s.noise_reduce.strength}",
        ),
        (
            s.loudness.method in ("lufs", "peak", "none"),
            f"clean.loudness.method must be lufs, peak or none, not {s.loudness.method!r}",
        ),
        (
            s.loudness.peak_dbfs <= 0.0,
            f"clean.loudness.peak_dbfs must be <= 0, not {s.loudness.peak_dbfs}",
        ),
        (
            0.0 < c.min_seconds < c.max_seconds,
            f"clean.clips.min_seconds must be > 0 and below clean.clips.max_seconds "
            f"({c.max_seconds}), not {c.min_seconds}",
        ),
        (
            c.merge_gap_seconds >= 0 and c.pad_seconds >= 0,
            f"clean.clips.merge_gap_seconds and pad_seconds must be >= 0, not "
            f"{c.merge_gap_seconds} and {c.pad_seconds}",
        ),
        (
            c.split in ("energy", "even"),
            f"clean.clips.split must be energy or even, not {c.split!r}",
        ),
        (
            0.0 <= s.reject.max_clipped_fraction <= 1.0,
            "clean.reject.max_clipped_fraction must be in [0, 1], not "
            f"{s.reject.max_clipped_fraction}",
        ),
        (
            s.block_seconds >= 2 * c.max_seconds,
            f"clean.block_seconds must be at least twice clean.clips.max_seconds, not "
            f"{s.block_seconds}",
        ),
    ]
    for ok, message in checks:
        if not ok:
            raise ConfigError(message)


def merge_regions(regions: list[Region], gap: int) -> list[Region]:
    """Join sorted regions separated by less than ``gap`` samples."""
    merged: list[list[int]] = []
    for s, e in sorted(regions):
        if merged and s - merged[-1][1] < gap:
            merged[-1][1] = max(merged[-1][1], e)
        else:
            merged.append([s, e])
    return [(s, e) for s, e in merged]


def split_region(
    start: int, end: int, y: np.ndarray, offset: int, sr: int, clips: ClipSettings
) -> list[Region]:
    """Cut [start, end) into the fewest pieces of at most ``max_seconds``, each cut at the
    quietest 20 ms frame (``split: energy``) within half to one and a half of the even piece
    length and leaving every piece at least ``min_seconds``; else into equal parts.
    ``y[i - offset]`` is the sample at global index ``i``."""
    max_len = int(clips.max_seconds * sr)
    min_len = int(clips.min_seconds * sr)
    if end - start <= max_len:
        return [(start, end)]
    pieces: list[Region] = []
    frame = max(1, int(_SPLIT_FRAME_SECONDS * sr))
    s = start
    while end - s > max_len:
        n_pieces = math.ceil((end - s) / max_len)
        target = (end - s) / n_pieces
        lo = int(max(s + min_len, end - (n_pieces - 1) * max_len, s + 0.5 * target))
        hi = int(min(s + max_len, end - min_len, s + 1.5 * target))
        if clips.split != "energy" or hi - lo < frame:
            break
        seg = y[lo - offset : hi - offset]
        n = seg.size // frame
        energy = np.square(seg[: n * frame], dtype=np.float64).reshape(n, frame).mean(axis=1)
        cut = lo + int(np.argmin(energy)) * frame + frame // 2
        pieces.append((s, cut))
        s = cut
    n_even = math.ceil((end - s) / max_len)
    bounds = np.linspace(s, end, n_even + 1).round().astype(int)
    pieces.extend((int(a), int(b)) for a, b in itertools.pairwise(bounds))
    return pieces


class _ClipCounter:
    """Full-scale sample counts per 10 ms of the native-rate input (measured before any gain).

    Blocks are counted by :func:`clean_file`'s read-ahead thread while clips of earlier blocks
    are judged, hence the lock."""

    def __init__(self, native_sr: int) -> None:
        self.native_sr = native_sr
        self.counts = np.zeros(0, dtype=np.int64)
        self.seen = 0
        self.lock = threading.Lock()

    def add(self, block: np.ndarray) -> None:
        with self.lock:
            self._add(block)

    def _add(self, block: np.ndarray) -> None:
        hits = np.flatnonzero(np.abs(block) >= FULL_SCALE) + self.seen
        self.seen += block.size
        n_frames = int(self.seen / self.native_sr / _COUNT_FRAME_SECONDS) + 1
        if n_frames > self.counts.size:
            self.counts = np.concatenate(
                [self.counts, np.zeros(n_frames - self.counts.size, np.int64)]
            )
        if hits.size:
            frames = (hits / self.native_sr / _COUNT_FRAME_SECONDS).astype(np.int64)
            self.counts += np.bincount(frames, minlength=self.counts.size)

    def fraction(self, start_s: float, end_s: float) -> float:
        f0 = int(start_s / _COUNT_FRAME_SECONDS)
        f1 = math.ceil(end_s / _COUNT_FRAME_SECONDS)
        total = max(1.0, (end_s - start_s) * self.native_sr)
        with self.lock:
            hits = float(self.counts[f0:f1].sum())
        return min(1.0, hits / total)


@dataclass
class Clip:
    index: int
    start: float
    end: float
    audio: np.ndarray


@dataclass
class ClipReject:
    index: int
    start: float
    end: float
    reason: str


def _native_chunks(
    path: Path, native_sr: int, block_seconds: float, counter: _ClipCounter, sr: int
) -> Iterator[tuple[np.ndarray, bool]]:
    """(block at ``sr``, is_last) from native-rate blocks, counting full-scale samples first.

    One block is held back so the resampler's tail joins the last block: a short file is then
    one block and goes through the VAD once."""
    stream = None if native_sr == sr else soxr.ResampleStream(native_sr, sr, 1, "float32", "HQ")
    pending: np.ndarray | None = None
    for _, block in iter_audio_blocks(path, native_sr, block_seconds):
        counter.add(block)
        out = block if stream is None else stream.resample_chunk(block)
        if pending is not None and pending.size:
            yield pending, False
        pending = np.asarray(out, dtype=np.float32)
    tail = np.zeros(0, np.float32)
    if stream is not None:
        tail = np.asarray(stream.resample_chunk(tail, last=True), dtype=np.float32)
    yield (tail if pending is None else np.concatenate([pending, tail])), True


T = TypeVar("T")
_END = object()


def _read_ahead(items: Iterator[T]) -> Iterator[T]:
    """``items``, each computed in a helper thread while the caller works on the one before:
    decoding and noise reduction of the next block overlap the VAD of this one (both release
    the GIL), which shortens one long file's critical path. One item ahead, so memory stays
    about one block more."""
    with ThreadPoolExecutor(1, thread_name_prefix="seda-read-ahead") as pool:
        pending = pool.submit(next, items, _END)
        while (item := pending.result()) is not _END:
            pending = pool.submit(next, items, _END)
            yield item


def _denoised_chunks(
    path: Path, info: AudioInfo, clean: CleanSettings, counter: _ClipCounter
) -> Iterator[tuple[np.ndarray, bool]]:
    """(block at ``clean.sample_rate``, noise reduced; is_last)."""
    sr = clean.sample_rate
    for chunk, last in _native_chunks(path, info.samplerate, clean.block_seconds, counter, sr):
        yield reduce_noise(chunk, sr, clean.noise_reduce), last


def clean_file(
    path: str | Path, clean: CleanSettings, vad: VadSettings, info: AudioInfo | None = None
) -> Iterator[Clip | ClipReject]:
    """Clips and clip rejects of one file, in time order, streamed block by block.

    Raises :class:`AudioError` for a file that is unusable as a whole (empty, undecodable,
    NaN/inf samples). Regions that run up to a block's end are carried into the next block
    (with VAD context) so no clip is cut at a block boundary. ``info``: the header, when the
    caller has read it already (for ffmpeg-only formats reading it means decoding).
    """
    path = Path(path)
    info = info or audio_info(path)
    sr = clean.sample_rate
    c = clean.clips
    gap, pad = int(c.merge_gap_seconds * sr), int(c.pad_seconds * sr)
    guard = gap + pad + int(1.0 * sr)
    context = pad + int(_VAD_CONTEXT_SECONDS * sr)
    carry_limit = int(clean.block_seconds * sr)
    counter = _ClipCounter(info.samplerate)
    buf, buf0, done, index = np.zeros(0, np.float32), 0, 0, 0
    prev_end = 0
    for chunk, last in _read_ahead(_denoised_chunks(path, info, clean, counter)):
        buf = np.concatenate([buf, chunk])
        buf_end = buf0 + buf.size
        regions = [(s + buf0, e + buf0) for s, e in detect_speech(buf, sr, vad)]
        regions = [(max(s, done), e) for s, e in merge_regions(regions, gap) if e > done]
        if last:
            final, keep_from = regions, buf_end
        else:
            final = [r for r in regions if r[1] < buf_end - guard]
            rest = regions[len(final) :]
            keep_from = rest[0][0] if rest else buf_end - guard
            if buf_end - keep_from > carry_limit:
                final.append((keep_from, buf_end - guard))
                keep_from = buf_end - guard
        for s, e in final:
            s, e = max(s - pad, prev_end, buf0), min(e + pad, buf_end)
            prev_end = e
            for a, b in split_region(s, e, buf, buf0, sr, c):
                yield _judge(index, a, b, buf[a - buf0 : b - buf0], sr, clean, counter)
                index += 1
        done = max(done, keep_from)
        new0 = max(buf0, keep_from - context)
        buf, buf0 = buf[new0 - buf0 :], new0
    if index == 0:
        raise AudioError("no speech detected")


def _judge(
    index: int, a: int, b: int, y: np.ndarray, sr: int, clean: CleanSettings, counter: _ClipCounter
) -> Clip | ClipReject:
    start, end = a / sr, b / sr
    r = clean.reject
    dur = end - start
    if dur < clean.clips.min_seconds:
        reason = f"too short ({dur:.2f} s < {clean.clips.min_seconds} s)"
        return ClipReject(index, start, end, reason)
    clipped = counter.fraction(start, end)
    if clipped > r.max_clipped_fraction:
        return ClipReject(
            index,
            start,
            end,
            f"clipped ({clipped:.1%} of samples at full scale > {r.max_clipped_fraction:.1%})",
        )
    level = rms_dbfs(y)
    if level < r.min_rms_dbfs:
        reason = f"silent (RMS {level:.1f} dBFS < {r.min_rms_dbfs} dBFS)"
        return ClipReject(index, start, end, reason)
    return Clip(index, start, end, normalise_loudness(y, sr, clean.loudness))


def cut_clips(
    path: str | Path, folder: str | Path, clean: CleanSettings, vad: VadSettings
) -> dict[str, Any]:
    """Clean one file into ``folder`` (clips ``NNN.wav``) and return its result record.

    The record lists the clips (index, start, end, file, duration, sha256) and clip rejects
    (index, start, end, reason); a file that is bad as a whole gives ``error`` and no files. A
    write the file system refuses raises :class:`OSError` (never a reject).
    """
    folder = Path(folder)
    sr = clean.sample_rate
    clips: list[dict[str, Any]] = []
    rejects: list[dict[str, Any]] = []
    result: dict[str, Any] = {"files": [], "clips": clips, "rejects": rejects, "error": None}
    try:
        info = audio_info(path)
        result["input_seconds"] = info.duration
        for out in clean_file(path, clean, vad, info):
            span = {"index": out.index, "start": round(out.start, 4), "end": round(out.end, 4)}
            if isinstance(out, ClipReject):
                rejects.append({**span, "reason": out.reason})
                continue
            name = f"{out.index:03d}.wav"
            sha = write_clip(folder / name, out.audio, sr)
            duration = round(out.end - out.start, 4)
            clips.append({**span, "file": name, "duration": duration, "sha256": sha})
    except AudioError as err:
        for stale in folder.iterdir():
            stale.unlink()
        result = {
            "files": [],
            "clips": [],
            "rejects": [],
            "error": str(err),
            "input_seconds": result.get("input_seconds", 0.0),
        }
    result["files"] = [c["file"] for c in result["clips"]]
    return result


def write_clip(path: Path, y: np.ndarray, sr: int) -> str:
    """Write mono PCM16 WAV atomically; return its sha256.

    Encoded in memory and written with plain file I/O, so a full disk or read-only folder raises
    :class:`OSError` with its errno and path (libsndfile would only say "System error.").
    """
    buf = io.BytesIO()
    sf.write(buf, np.asarray(y, dtype=np.float32), sr, subtype="PCM_16", format="WAV")
    data = buf.getvalue()
    try:
        with atomic_path(path, suffix=".tmp.wav") as tmp:
            tmp.write_bytes(data)
    except OSError as err:
        if err.errno is None:
            raise
        raise OSError(err.errno, err.strerror, str(path)) from err
    return hashlib.sha256(data).hexdigest()
