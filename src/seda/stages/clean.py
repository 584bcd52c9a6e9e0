"""Stage ``clean``: cut each separated item into loudness-normalised 16 kHz speech clips.

Per item: decode (any format, rate, width or channel count) to mono at ``clean.sample_rate``,
streamed in ``block_seconds`` blocks so an hour-long file never sits in memory whole (peak
memory is about two blocks plus the resampler's state); spectral-gating noise reduction; voice
activity detection (``seda.vad``); speech regions merged across short pauses, padded and split
when too long; clips that are too short, silent or clipped are dropped with a reason in
``rejected.csv``; the rest are normalised to a target loudness. Results are cached per input
content and settings, so a rerun after adding files decodes only the new ones.
"""

from __future__ import annotations

import argparse
import itertools
import logging
import math
import re
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import soxr

from seda.audio import (
    AudioError,
    AudioInfo,
    FfmpegMissingError,
    audio_info,
    iter_audio_blocks,
    write_wav,
)
from seda.cache import DEFAULT_CACHE_ROOT, StageCache, link_or_copy
from seda.config import ConfigError, build, load_params
from seda.entry import stage_main
from seda.io import CLIP_COLUMNS, RejectLog, read_csv, rel_to_cwd, sha256_file, write_csv_atomic
from seda.parallel import map_files
from seda.vad import Region, VadSettings, detect_speech, validate_vad

log = logging.getLogger(__name__)

STAGE = "clean"
IN_MANIFEST = Path("data/separated/manifest.csv")
OUT_DIR = Path("data/clean")
COLUMNS = CLIP_COLUMNS
REJECT_EXTRA = ("start", "end")
# Bump when the processing changes in a way the settings do not capture (invalidates the cache).
CACHE_VERSION = 1
# A sample at or above this magnitude counts as full scale (8-bit PCM peaks at 127/128).
FULL_SCALE = 0.99
# Resolution of the per-file clipping counts (kept for the whole file: 360k ints per hour).
_COUNT_FRAME_SECONDS = 0.01
# Frame length of the energy curve used to choose split points.
_SPLIT_FRAME_SECONDS = 0.02
# Audio kept before a carried-over region so the VAD sees its onset again.
_VAD_CONTEXT_SECONDS = 0.5
# pyloudnorm's gating block; shorter clips fall back to peak normalisation.
_LUFS_BLOCK_SECONDS = 0.4
_SAFE_ID = re.compile(r"[a-z0-9_-]+")


class StageInputError(Exception):
    """The stage's input manifest is missing or unusable; the message says what to do."""


@dataclass
class NoiseReduceSettings:
    enabled: bool = True
    strength: float = 0.8
    stationary: bool = False


@dataclass
class LoudnessSettings:
    method: str = "lufs"
    target_lufs: float = -23.0
    peak_dbfs: float = -1.0


@dataclass
class ClipSettings:
    min_seconds: float = 1.0
    max_seconds: float = 8.0
    merge_gap_seconds: float = 0.3
    pad_seconds: float = 0.1
    # How over-long regions are cut: at the quietest point (energy) or into equal parts (even).
    split: str = "energy"


@dataclass
class RejectSettings:
    min_rms_dbfs: float = -50.0
    max_clipped_fraction: float = 0.01


@dataclass
class CleanSettings:
    sample_rate: int = 16000
    noise_reduce: NoiseReduceSettings = field(default_factory=NoiseReduceSettings)
    loudness: LoudnessSettings = field(default_factory=LoudnessSettings)
    clips: ClipSettings = field(default_factory=ClipSettings)
    reject: RejectSettings = field(default_factory=RejectSettings)
    block_seconds: float = 300.0


def validate_clean(s: CleanSettings) -> None:
    """Raise :class:`ConfigError` naming the key of an unusable setting."""
    c = s.clips
    checks = [
        (s.sample_rate >= 8000, f"clean.sample_rate must be >= 8000, not {s.sample_rate}"),
        (0.0 <= s.noise_reduce.strength <= 1.0, "clean.noise_reduce.strength must be in [0, 1]"),
        (
            s.loudness.method in ("lufs", "peak", "none"),
            "clean.loudness.method must be lufs, peak or none",
        ),
        (s.loudness.peak_dbfs <= 0.0, "clean.loudness.peak_dbfs must be <= 0"),
        (0.0 < c.min_seconds < c.max_seconds, "clean.clips needs 0 < min_seconds < max_seconds"),
        (
            c.merge_gap_seconds >= 0 and c.pad_seconds >= 0,
            "clean.clips.merge_gap_seconds and pad_seconds must be >= 0",
        ),
        (c.split in ("energy", "even"), "clean.clips.split must be energy or even"),
        (
            0.0 <= s.reject.max_clipped_fraction <= 1.0,
            "clean.reject.max_clipped_fraction must be in [0, 1]",
        ),
        (
            s.block_seconds >= 2 * c.max_seconds,
            "clean.block_seconds must be at least twice clean.clips.max_seconds",
        ),
    ]
    for ok, message in checks:
        if not ok:
            raise ConfigError(message)


# --- signal helpers ---------------------------------------------------------------------------


def rms_dbfs(y: np.ndarray) -> float:
    """RMS level in dB relative to full scale (-inf for digital silence)."""
    if y.size == 0:
        return -math.inf
    rms = float(np.sqrt(np.mean(np.square(y, dtype=np.float64))))
    return 20.0 * math.log10(rms) if rms > 0 else -math.inf


def reduce_noise(y: np.ndarray, sr: int, settings: NoiseReduceSettings) -> np.ndarray:
    """Spectral gating (noisereduce); ``strength`` is the share of the noise removed."""
    if not settings.enabled or settings.strength <= 0 or y.size < 2048:
        return y
    import noisereduce

    # noisereduce pads every chunk with 30000 zeros by default: 5x the work on a 1 s word.
    padding = int(min(30000, max(4096, y.size // 8)))
    out = noisereduce.reduce_noise(
        y=y,
        sr=sr,
        stationary=settings.stationary,
        prop_decrease=settings.strength,
        padding=padding,
    )
    return np.nan_to_num(np.asarray(out, dtype=np.float32))


_METERS: dict[int, Any] = {}


def normalise_loudness(y: np.ndarray, sr: int, settings: LoudnessSettings) -> np.ndarray:
    """Gain to ``target_lufs`` (ITU-R BS.1770 via pyloudnorm) or to ``peak_dbfs``; the peak
    never ends above ``peak_dbfs``, so the gain cannot clip. ``none`` keeps the level (loudness is
    itself an emotion cue that per-clip normalisation removes)."""
    if settings.method == "none":
        return y
    ceiling = 10.0 ** (settings.peak_dbfs / 20.0)
    peak = float(np.max(np.abs(y))) if y.size else 0.0
    if peak <= 0.0:
        return y
    gain = ceiling / peak
    if settings.method == "lufs" and y.size >= _LUFS_BLOCK_SECONDS * sr:
        import pyloudnorm

        meter = _METERS.setdefault(sr, pyloudnorm.Meter(sr))
        lufs = meter.integrated_loudness(y.astype(np.float64))
        if math.isfinite(lufs):
            gain = min(10.0 ** ((settings.target_lufs - lufs) / 20.0), ceiling / peak)
    return (y * gain).astype(np.float32)


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
    """Full-scale sample counts per 10 ms of the native-rate input (measured before any gain)."""

    def __init__(self, native_sr: int) -> None:
        self.native_sr = native_sr
        self.counts = np.zeros(0, dtype=np.int64)
        self.seen = 0

    def add(self, block: np.ndarray) -> None:
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
        return min(1.0, float(self.counts[f0:f1].sum()) / total)


# --- per-file processing ----------------------------------------------------------------------


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
    for chunk, last in _native_chunks(path, info.samplerate, clean.block_seconds, counter, sr):
        buf = np.concatenate([buf, reduce_noise(chunk, sr, clean.noise_reduce)])
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


# --- worker and cache -------------------------------------------------------------------------


def cache_settings(clean: CleanSettings, vad: VadSettings) -> dict[str, Any]:
    """Everything that changes a file's clips: the cache key besides the input's sha256."""
    return {"clean": asdict(clean), "vad": asdict(vad), "version": CACHE_VERSION}


@dataclass(frozen=True)
class ItemTask:
    item_id: str
    path: str
    key: str
    cache_root: str
    clean: CleanSettings
    vad: VadSettings


def clean_item(task: ItemTask) -> dict[str, Any]:
    """Worker: clean one input into a cache entry and return its result record.

    A file that is bad as a whole gives ``error`` (cached too: the same bytes stay bad).
    """
    cache = StageCache(STAGE, cache_settings(task.clean, task.vad), root=task.cache_root)
    folder = cache.begin(task.key)
    sr = task.clean.sample_rate
    clips: list[dict[str, Any]] = []
    rejects: list[dict[str, Any]] = []
    result: dict[str, Any] = {"files": [], "clips": clips, "rejects": rejects, "error": None}
    try:
        info = audio_info(task.path)
        result["input_seconds"] = info.duration
        for out in clean_file(task.path, task.clean, task.vad, info):
            span = {"index": out.index, "start": round(out.start, 4), "end": round(out.end, 4)}
            if isinstance(out, ClipReject):
                rejects.append({**span, "reason": out.reason})
                continue
            name = f"{out.index:03d}.wav"
            write_wav(folder / name, out.audio, sr)
            clips.append(
                {
                    **span,
                    "file": name,
                    "duration": round(out.end - out.start, 4),
                    "sha256": sha256_file(folder / name),
                }
            )
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
    cache.commit(task.key, result)
    return result


# --- stage ------------------------------------------------------------------------------------


def run(
    params: dict[str, Any],
    *,
    manifest: str | Path = IN_MANIFEST,
    out_dir: str | Path = OUT_DIR,
    cache_root: str | Path = DEFAULT_CACHE_ROOT,
) -> dict[str, Any]:
    """Clean every item of ``manifest`` into ``out_dir``; return counts for the log/benchmark."""
    clean = build(CleanSettings, params.get("clean"), "clean")
    vad = build(VadSettings, params.get("vad"), "vad")
    validate_clean(clean)
    validate_vad(vad)
    manifest, out_dir = Path(manifest), Path(out_dir)
    if not manifest.exists():
        raise StageInputError(f"{manifest} not found: run the separate stage first")
    rows = read_csv(manifest)
    if rows and not {"id", "path", "label"} <= set(rows[0]):
        raise StageInputError(f"{manifest} lacks the columns id, path and label")
    cache = StageCache(STAGE, cache_settings(clean, vad), root=cache_root)
    rejects = RejectLog(STAGE)
    by_key: dict[str, dict[str, Any]] = {}
    keys: dict[str, str] = {}
    tasks: dict[str, ItemTask] = {}
    todo: list[dict[str, str]] = []
    for row in rows:
        task = _task_for(row, clean, vad, Path(cache_root), rejects, keys)
        if task is None:
            continue
        keys[task.item_id] = task.key
        todo.append(row)
        if task.key in by_key or task.key in tasks:
            continue  # identical bytes under another id: cleaned once
        cached = cache.load(task.key)
        if cached is not None:
            by_key[task.key] = cached
        else:
            tasks[task.key] = task
    n_cached = sum(1 for key in keys.values() if key in by_key)
    for outcome in map_files(
        clean_item,
        list(tasks.values()),
        workers=params.get("workers", 0),
        desc=STAGE,
        known_errors=(AudioError, FfmpegMissingError),
    ):
        if outcome.error is not None:
            by_key[outcome.item.key] = {"clips": [], "rejects": [], "error": outcome.error}
        else:
            by_key[outcome.item.key] = outcome.result
    results = {item_id: by_key[key] for item_id, key in keys.items() if key in by_key}
    clip_rows = _materialise(todo, results, keys, cache, out_dir, rejects)
    write_csv_atomic(out_dir / "manifest.csv", clip_rows, COLUMNS)
    rejects.write(out_dir / "rejected.csv", REJECT_EXTRA)
    summary = {
        "items": len(rows),
        "decoded": len(tasks),
        "cached": n_cached,
        "rejected_items": sum(1 for r in rejects.rows if r.get("start") in (None, "")),
        "clips": len(clip_rows),
        "rejected_clips": sum(1 for r in rejects.rows if r.get("start") not in (None, "")),
        "input_seconds": round(sum(r.get("input_seconds", 0.0) for r in results.values()), 3),
        "clip_seconds": round(sum(float(r["duration"]) for r in clip_rows), 3),
    }
    log.info(
        "clean: %d items (%d decoded, %d cached), %d clips, %d items and %d clips rejected",
        summary["items"],
        summary["decoded"],
        summary["cached"],
        summary["clips"],
        summary["rejected_items"],
        summary["rejected_clips"],
    )
    return summary


def _task_for(
    row: dict[str, str],
    clean: CleanSettings,
    vad: VadSettings,
    cache_root: Path,
    rejects: RejectLog,
    seen: dict[str, str],
) -> ItemTask | None:
    """The worker task for a manifest row, or None after logging why the row is unusable."""
    item_id, label, raw_path = row.get("id", ""), row.get("label", ""), row.get("path", "")
    if not _SAFE_ID.fullmatch(item_id):
        rejects.add(item_id, raw_path, "id is not made of [a-z0-9_-]")
        return None
    if item_id in seen:
        rejects.add(item_id, raw_path, "duplicate id in the input manifest")
        return None
    if not _SAFE_ID.fullmatch(label):
        rejects.add(item_id, raw_path, f"label {label!r} is not a canonical label ([a-z0-9_-])")
        return None
    path = Path(raw_path)
    if not path.is_file():
        rejects.add(item_id, raw_path, "file not found")
        return None
    key = (row.get("sha256") or "").strip().lower() or sha256_file(path)
    return ItemTask(item_id, str(path.resolve()), key, str(cache_root.resolve()), clean, vad)


def _materialise(
    rows: list[dict[str, str]],
    results: dict[str, dict[str, Any]],
    keys: dict[str, str],
    cache: StageCache,
    out_dir: Path,
    rejects: RejectLog,
) -> list[dict[str, Any]]:
    """Link each item's cached clips into ``out_dir/<label>/`` in manifest order; log rejects;
    remove clips left from earlier runs that are no longer produced."""
    clip_rows: list[dict[str, Any]] = []
    for row in rows:
        item_id = row["id"]
        result = results.get(item_id)
        if result is None:
            continue
        if result.get("error"):
            rejects.add(item_id, row["path"], result["error"])
            continue
        for rej in result["rejects"]:
            rejects.add(
                f"{item_id}_{rej['index']:03d}",
                row["path"],
                rej["reason"],
                start=rej["start"],
                end=rej["end"],
            )
        entry = cache.entry_dir(keys[item_id])
        for clip in result["clips"]:
            clip_id = f"{item_id}_{clip['index']:03d}"
            dst = out_dir / row["label"] / f"{clip_id}.wav"
            link_or_copy(entry / clip["file"], dst)
            clip_rows.append(
                {
                    "clip_id": clip_id,
                    "path": rel_to_cwd(dst),
                    "label": row["label"],
                    "speaker": row.get("speaker", ""),
                    "source_id": row.get("source_id", ""),
                    "item_id": item_id,
                    "source_url": row.get("source_url", ""),
                    "start": clip["start"],
                    "end": clip["end"],
                    "duration": clip["duration"],
                    "sha256": clip["sha256"],
                }
            )
    keep = {Path(r["path"]).resolve() for r in clip_rows}
    for old in out_dir.glob("*/*.wav"):
        if old.resolve() not in keep:
            old.unlink()
    return clip_rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m seda.stages.clean", description=__doc__)
    parser.parse_args(argv)
    return stage_main(STAGE, lambda: run(load_params()), (StageInputError,))


if __name__ == "__main__":
    raise SystemExit(main())
