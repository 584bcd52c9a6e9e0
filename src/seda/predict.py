"""``seda predict``: emotion over time in any audio, with a trained model from ``models/<model>/``.

Inputs are files, folders (searched recursively) or URLs of any site yt-dlp supports (downloaded
through the collect stage's :class:`~seda.stages.collect.YtdlpCollector` into a cache, so a rerun
downloads nothing). Each file is cut into speech segments as the clean stage cuts the training
clips (16 kHz, noise reduction, VAD, loudness), with the settings saved in the model (else
``params.yaml``, else the defaults), and every segment gets the probability of every label. Per
source, a summary gives the share of speech time per emotion.

A segment's probabilities do not depend on the audio around it: the baseline standardises every
segment with the statistics fixed at training time, unless ``--same-speaker`` says that all
segments of a source are one speaker (then they are standardised together, as each training
speaker was); neural models embed every segment on its own. Speech without a pause that is
longer than the window (``--window``, by default the longest training clip) is not cut into
pieces that mix emotions: windows overlapping by half are predicted, and every half-window step
gets the mean probabilities of the windows covering it, so a change of emotion is located to
within one window.

Files are cut in worker processes and streamed in blocks. The baseline's features are computed
where a file is cut (by helper processes beside it when there are fewer files than workers), so
that only features travel, memory stays flat however long the file, and one long file still
uses every core.

A file that cannot be used is reported and skipped; the exit status is non-zero only when
nothing at all could be predicted.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import math
import sys
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import soxr

from seda.audio import AudioError, FfmpegMissingError, audio_info, iter_audio_blocks
from seda.config import ConfigError, build, load_params
from seda.features.classic import clip_features
from seda.io import write_csv_atomic, write_json_atomic
from seda.logs import setup_logging
from seda.models.loading import LoadedModel, available_models, load_model
from seda.palette import label_colours
from seda.parallel import map_files, resolve_workers, worker_pool
from seda.segment.clips import (
    CleanSettings,
    Clip,
    ClipReject,
    clean_file,
    validate_clean,
)
from seda.segment.loudness import LoudnessSettings, normalise_loudness
from seda.segment.vad import VadSettings, validate_vad

log = logging.getLogger(__name__)

CACHE_DIR = Path("data/cache/predict")
MODELS_DIR = Path("models")
METRICS_DIR = Path("reports/metrics")
PARAMS_FILE = Path("params.yaml")
# Audio and video containers ffmpeg decodes (video files: their audio track).
AUDIO_EXTENSIONS = frozenset(
    {
        *(".wav", ".flac", ".ogg", ".oga", ".opus", ".mp3", ".m4a", ".aac", ".aiff", ".aif"),
        *(".wma", ".webm", ".mp4", ".mkv", ".mka"),
    }
)
BEST = "best"
# Whole sources are buffered until this much speech is pending, then predicted in one call
# (bounded memory; a segment's result does not depend on what else is in the call).
FLUSH_SECONDS = 600.0
ENVELOPE_BINS = 2400
# Most processes computing one file's baseline features beside the one cutting it (when there
# are fewer files than workers). A window's features cost about 1.4 times the cutting of its
# audio (noise reduction and Silero VAD) on TurEV-DB's words, about 2.3 times on continuous
# speech (windows overlap by half): more helpers would wait for the cutting.
MAX_HELPERS = 4
# The helpers' CPU priority below the cutting process's: the cutting is the critical path (its
# noise reduction and VAD run in order), the helpers fill the CPU time it leaves.
HELPER_NICE = 10
TABLE_ROWS = 40
SOURCES_PER_PAGE = 6


@dataclass(frozen=True)
class Source:
    """One audio input: ``name`` is what the user gave (path or URL), ``path`` the local file."""

    name: str
    path: str
    title: str = ""


@dataclass
class SourceResult:
    source: str
    path: str
    title: str
    duration: float
    segments: list[dict[str, Any]] = field(default_factory=list)
    skipped: list[dict[str, Any]] = field(default_factory=list)
    envelope: np.ndarray | None = None  # (2, bins): min and max of the waveform per time bin


@dataclass
class Failure:
    source: str
    reason: str


@dataclass(frozen=True)
class SegmentTask:
    index: int
    path: str
    clean: CleanSettings
    vad: VadSettings
    envelope_bins: int = 0
    # Seconds; speech regions longer than this are predicted in overlapping windows.
    window: float = 8.0
    # The baseline's BaselineSettings: each window's features are computed while the file is
    # cut (at feature_rate), by ``helpers`` processes of their own when > 0, and only the
    # features go back, never audio. None (neural models): the windows' audio goes back.
    features: Any = None
    feature_rate: int = 16000
    helpers: int = 0


@dataclass
class Span:
    """One speech region: the ``windows`` the model sees and the ``steps`` (start, end in
    seconds) reported. A region no longer than the window is one window and one step; a longer
    one has ``n`` steps of at most half a window and ``n - 1`` windows, window ``k`` covering
    steps ``k`` and ``k + 1``."""

    start: float
    end: float
    steps: list[tuple[float, float]]
    windows: list[np.ndarray]  # each window's audio; empty when ``features`` are given
    # Each window's baseline features (None: it has none), when the task asked for them.
    features: list[np.ndarray | None] = field(default_factory=list)

    @property
    def n_windows(self) -> int:
        return len(self.features) or len(self.windows)


# ---------------------------------------------------------------------------------------------
# Inputs


def resolve_inputs(
    inputs: Sequence[str], cache_dir: Path = CACHE_DIR
) -> tuple[list[Source], list[Failure]]:
    """Local files, audio files under folders, and downloads of URLs, each once, in order."""
    from seda.collect import URL_SCHEME

    sources: list[Source] = []
    failures: list[Failure] = []
    urls: list[str] = []
    for arg in inputs:
        path = Path(arg).expanduser()
        if path.is_dir():
            found = sorted(
                p
                for p in path.rglob("*")
                if p.is_file()
                and p.suffix.lower() in AUDIO_EXTENSIONS
                and not any(part.startswith(".") for part in p.relative_to(path).parts)
            )
            if not found:
                failures.append(Failure(arg, "no audio files in this folder"))
            sources.extend(Source(p.as_posix(), str(p)) for p in found)
        elif path.is_file():
            sources.append(Source(arg, str(path)))
        elif URL_SCHEME.match(arg):
            urls.append(arg)
        else:
            failures.append(Failure(arg, "no such file, folder or URL"))
    if urls:
        got, failed = download(urls, cache_dir)
        sources.extend(got)
        failures.extend(failed)
    seen: set[str] = set()
    unique = []
    for s in sources:
        key = str(Path(s.path).resolve())
        if key not in seen:
            seen.add(key)
            unique.append(s)
    return unique, failures


def download(
    urls: Sequence[str], cache_dir: Path = CACHE_DIR
) -> tuple[list[Source], list[Failure]]:
    """Fetch URLs with the collector (best audio as WAV, cached); playlists give one source per
    entry. ``file://`` URLs are allowed (the user named the file)."""
    from seda.collect import SourceRow, YoutubeSettings, YtdlpCollector, YtdlpSettings

    settings = YoutubeSettings(
        name="predict",
        allow_file_urls=any(u.lower().startswith("file:") for u in urls),
        ytdlp=YtdlpSettings(retries=2, backoff_seconds=1.0),
    )
    collector = YtdlpCollector(settings, cache_dir, cache_dir / "ytdlp")
    sources: list[Source] = []
    failures: list[Failure] = []
    collector.open()
    try:
        for line, url in enumerate(urls, start=1):
            keys, errors = collector.fetch(SourceRow(line, url, "unknown"))
            failures.extend(Failure(url, e.removeprefix("ERROR: ")) for e in errors)
            for key in keys:
                meta = collector.load_meta(key)
                if meta is None:
                    failures.append(Failure(url, "download missing from the cache"))
                    continue
                name = url if len(keys) == 1 else (meta.get("webpage_url") or url)
                sources.append(
                    Source(name, str(collector.cache / meta["wav"]), meta.get("title") or "")
                )
    finally:
        collector.close()
    return sources, failures


def audio_settings(
    model: LoadedModel, params_file: Path = PARAMS_FILE
) -> tuple[CleanSettings, VadSettings, str]:
    """Clean/VAD settings: those saved with the model, else params.yaml's, else the defaults."""
    saved = model.audio_settings
    if saved.get("clean") is not None and saved.get("vad") is not None:
        sections, origin = saved, f"model {model.name}"
    elif params_file.is_file():
        sections, origin = load_params(params_file), str(params_file)
    else:
        sections, origin = {}, "defaults"
    clean = build(CleanSettings, sections.get("clean"), "clean")
    vad = build(VadSettings, sections.get("vad"), "vad")
    validate_clean(clean)
    validate_vad(vad)
    return clean, vad, origin


def pick_model(name: str, models_dir: Path = MODELS_DIR, metrics_dir: Path = METRICS_DIR) -> str:
    """``best``: the model with the highest test UAR in reports/metrics among those trained."""
    have = available_models(models_dir)
    if name != BEST:
        if name not in have:
            known = ", ".join(have) or "none"
            if "/" in name or "\\" in name:
                raise ConfigError(
                    f"--model takes the name of a model under {models_dir}/ (trained: {known}), "
                    f"not a path: {name!r}"
                )
            raise ConfigError(
                f"no trained model {name!r} in {models_dir}/ (trained: {known}); name it "
                f"in the train stage of dvc.yaml and run `dvc repro train` (or train_baseline)"
            )
        return name
    if not have:
        raise ConfigError(f"no trained model in {models_dir}/: run `dvc repro` first")
    from seda.metrics import HeadlineMetrics

    scores: dict[str, float] = {}
    for m in have:
        try:
            scores[m] = HeadlineMetrics.read(metrics_dir / f"{m}.json").uar
        except (OSError, ValueError):  # not evaluated, or not a headline metrics file
            continue
    if not scores:
        if len(have) == 1:
            return have[0]
        raise ConfigError(f"no metrics to choose the best of {', '.join(have)}: pass --model")
    best = max(sorted(scores), key=scores.__getitem__)
    log.info("predict: best model by test UAR is %s (%.3f)", best, scores[best])
    return best


# ---------------------------------------------------------------------------------------------
# Segmentation (worker) and prediction


def window_steps(n: int, window: int) -> tuple[list[tuple[int, int]], list[tuple[int, int]]]:
    """(steps, windows) as sample ranges of a region of ``n`` samples: one of each when
    ``n <= window``; else ``m = ceil(2 n / window)`` equal steps tiling the region and ``m - 1``
    windows of two steps each (hop = half a window, window length at most ``window``)."""
    if n <= window:
        return [(0, n)], [(0, n)]
    m = math.ceil(2 * n / window)
    bounds = [round(k * n / m) for k in range(m + 1)]
    steps = [(bounds[k], bounds[k + 1]) for k in range(m)]
    return steps, [(bounds[k], bounds[k + 2]) for k in range(m - 1)]


def smooth_windows(proba: np.ndarray, n_steps: int) -> np.ndarray:
    """(n_steps, k) probabilities of the steps of :func:`window_steps`: the mean of the windows
    covering each step (windows without features, NaN rows, left out; NaN where none is left)."""
    if len(proba) == n_steps:  # one window, one step
        return proba
    out = np.full((n_steps, proba.shape[1]), np.nan)
    for k in range(n_steps):
        cover = proba[max(0, k - 1) : min(k, len(proba) - 1) + 1]
        cover = cover[np.all(np.isfinite(cover), axis=1)]
        if len(cover):
            out[k] = cover.mean(axis=0)
    return out


def segment_file(task: SegmentTask) -> dict[str, Any]:
    """Worker: the speech regions of one file (+ its envelope), found as the clean stage finds
    them, each with the windows to predict (see :class:`Span`): their audio, or with
    ``task.features`` the baseline's features of each, computed as the file is cut."""
    info = audio_info(task.path)
    clean = task.clean
    sr = clean.sample_rate
    # Long regions come out whole (the clean stage would cut them at max_seconds) and are
    # windowed here; loudness is then normalised per window, as per training clip.
    whole = dataclasses.replace(
        clean,
        clips=dataclasses.replace(clean.clips, max_seconds=clean.block_seconds / 2),
        loudness=LoudnessSettings(method="none"),
    )
    window = int(task.window * sr)  # as the clean stage's max_seconds in samples
    spans: list[Span] = []
    skipped: list[dict[str, Any]] = []
    featurizer = None if task.features is None else _WindowFeatures(task, sr)
    try:
        for out in clean_file(task.path, whole, task.vad, info):
            if isinstance(out, ClipReject):
                skipped.append(
                    {"start": round(out.start, 3), "end": round(out.end, 3), "reason": out.reason}
                )
            elif isinstance(out, Clip):
                steps, windows = window_steps(out.audio.size, window)
                audio = [normalise_loudness(out.audio[a:b], sr, clean.loudness) for a, b in windows]
                times = [(out.start + a / sr, out.start + b / sr) for a, b in steps]
                span = Span(out.start, out.end, times, audio)
                if featurizer is not None:
                    span.features, span.windows = [featurizer.submit(w) for w in audio], []
                spans.append(span)
        if featurizer is not None:
            for span in spans:
                span.features = [featurizer.result(f) for f in span.features]
    finally:
        if featurizer is not None:
            featurizer.close()
    envelope = None
    if task.envelope_bins:
        envelope = waveform_envelope(task.path, info.duration, task.envelope_bins)
    return {"duration": info.duration, "spans": spans, "skipped": skipped, "envelope": envelope}


class _WindowFeatures:
    """The baseline's features of one file's windows, computed while the file is being cut: by
    the task's helper processes (at most two windows waiting per helper, so memory stays flat
    however long the file), else in this process."""

    def __init__(self, task: SegmentTask, clip_sr: int) -> None:
        self.settings, self.rate, self.clip_sr = task.features, task.feature_rate, clip_sr
        self.pool = worker_pool(task.helpers, HELPER_NICE) if task.helpers else None
        self.limit = 2 * task.helpers
        self.running: set[Future[np.ndarray | None]] = set()

    def submit(self, audio: np.ndarray) -> Future[np.ndarray | None] | np.ndarray | None:
        if self.clip_sr != self.rate:
            audio = soxr.resample(audio, self.clip_sr, self.rate).astype(np.float32)
        item = (audio, self.rate, self.settings)
        if self.pool is None:
            return clip_features(item)
        if len(self.running) >= self.limit:
            _, self.running = wait(self.running, return_when=FIRST_COMPLETED)
        future = self.pool.submit(clip_features, item)
        self.running.add(future)
        return future

    @staticmethod
    def result(value: Any) -> np.ndarray | None:
        return value.result() if isinstance(value, Future) else value

    def close(self) -> None:
        if self.pool is not None:
            self.pool.shutdown(cancel_futures=True)


def waveform_envelope(path: str | Path, duration: float, bins: int, sr: int = 8000) -> np.ndarray:
    """(2, bins) min and max of the signal per time bin, streamed in bounded memory."""
    total = max(1, round(duration * sr))
    lo = np.zeros(bins, np.float32)
    hi = np.zeros(bins, np.float32)
    seen = 0
    for _, block in iter_audio_blocks(path, sr, 120.0):
        idx = np.minimum((np.arange(seen, seen + block.size) * bins) // total, bins - 1)
        starts = np.concatenate([[0], np.flatnonzero(np.diff(idx)) + 1])
        where = idx[starts]
        lo[where] = np.minimum(lo[where], np.minimum.reduceat(block, starts))
        hi[where] = np.maximum(hi[where], np.maximum.reduceat(block, starts))
        seen += block.size
    return np.stack([lo, hi])


def predict_sources(
    sources: Sequence[Source],
    model: LoadedModel,
    clean: CleanSettings,
    vad: VadSettings,
    *,
    workers: int | None = 1,
    envelope: bool = False,
    flush_seconds: float = FLUSH_SECONDS,
    window: float | None = None,
    same_speaker: bool = False,
    executor: str | None = None,
) -> tuple[list[SourceResult], list[Failure]]:
    """Segment every source (worker processes, progress bar) and predict its segments; a bad
    source becomes a :class:`Failure`, the others go on.

    ``window``: seconds of the overlapping windows of long pause-free speech (default: the
    longest clip, ``clean.clips.max_seconds``). ``same_speaker``: all segments of one source
    are one speaker (the baseline standardises them together); else each segment is
    standardised with the statistics fixed at training time."""
    window = check_window(clean, window)
    # The baseline's windows are featurised where they are cut, by helper processes when there
    # are fewer files than workers (one long file then still uses every core).
    budget = resolve_workers(workers)
    cutters = min(budget, max(1, len(sources)))
    features = model.feature_settings
    helpers = 0 if features is None or cutters >= budget else min(MAX_HELPERS, budget // cutters)
    bins = ENVELOPE_BINS if envelope else 0
    tasks = [
        SegmentTask(i, s.path, clean, vad, bins, window, features, model.sample_rate, helpers)
        for i, s in enumerate(sources)
    ]
    results: dict[int, SourceResult] = {}
    failures: dict[int, Failure] = {}
    pending: list[tuple[int, dict[str, Any]]] = []
    pending_seconds = 0.0

    def flush() -> None:
        nonlocal pending_seconds
        if pending:
            _predict_pending(pending, sources, model, clean.sample_rate, results, same_speaker)
        pending.clear()
        pending_seconds = 0.0

    for outcome in map_files(
        segment_file,
        tasks,
        workers=workers,
        desc="predict",
        executor=executor,
        known_errors=(AudioError, FfmpegMissingError, OSError),
    ):
        i = outcome.item.index
        if outcome.error is not None:
            failures[i] = Failure(sources[i].name, outcome.error)
            log.warning("predict: skipped %s: %s", sources[i].name, outcome.error)
            continue
        pending.append((i, outcome.result))
        pending_seconds += sum(span.end - span.start for span in outcome.result["spans"])
        if pending_seconds >= flush_seconds:
            flush()
    flush()
    ordered = [results[i] for i in range(len(sources)) if i in results]
    return ordered, [failures[i] for i in sorted(failures)]


def _predict_pending(
    pending: list[tuple[int, dict[str, Any]]],
    sources: Sequence[Source],
    model: LoadedModel,
    clip_sr: int,
    results: dict[int, SourceResult],
    same_speaker: bool = False,
) -> None:
    rows: list[Any] = []  # per window: the baseline's features, or the audio at the model's rate
    groups: list[str] = []
    for i, seg in pending:
        for span in seg["spans"]:
            rows += span.features
            for audio in span.windows:
                if clip_sr != model.sample_rate:
                    audio = soxr.resample(audio, clip_sr, model.sample_rate).astype(np.float32)
                rows.append(audio)
            groups += [f"source-{i}"] * span.n_windows
    by_source = groups if same_speaker else None
    if model.feature_settings is not None:  # featurised where the windows were cut
        proba = model.predict_features(rows, by_source)
    else:
        proba = model.predict_proba(rows, by_source)
    for i, seg in pending:
        s = sources[i]
        results[i] = SourceResult(
            s.name,
            s.path,
            s.title,
            round(seg["duration"], 3),
            [],
            list(seg["skipped"]),
            seg["envelope"],
        )
    row = 0
    for i, seg in pending:
        for span in seg["spans"]:
            n = span.n_windows
            steps = smooth_windows(proba[row : row + n], len(span.steps))
            row += n
            for (start, end), p in zip(span.steps, steps, strict=True):
                _add_segment(results[i], start, end, p, model.labels)
        results[i].skipped.sort(key=lambda r: r["start"])
    assert row == len(proba)


def _add_segment(
    result: SourceResult, start: float, end: float, p: np.ndarray, labels: Sequence[str]
) -> None:
    span = {"start": round(start, 3), "end": round(end, 3)}
    if not np.all(np.isfinite(p)):
        result.skipped.append({**span, "reason": "no features"})
        return
    k = int(np.argmax(p))
    result.segments.append(
        {
            **span,
            "label": labels[k],
            "probability": float(p[k]),
            "probs": {lab: float(v) for lab, v in zip(labels, p, strict=True)},
        }
    )


def check_window(clean: CleanSettings, window: float | None) -> float:
    """The window in seconds (default ``clean.clips.max_seconds``), or :class:`ConfigError`."""
    if window is None:
        return float(clean.clips.max_seconds)
    if not clean.clips.min_seconds <= window <= clean.block_seconds / 2:
        raise ConfigError(
            f"--window {window:g}: use {clean.clips.min_seconds:g} to "
            f"{clean.block_seconds / 2:g} seconds (the training clips were at most "
            f"{clean.clips.max_seconds:g} s)"
        )
    return float(window)


# ---------------------------------------------------------------------------------------------
# Summaries and outputs


def summarise(result: SourceResult, labels: Sequence[str]) -> dict[str, Any]:
    """Seconds and share of speech time per predicted emotion, and the dominant one."""
    seconds = dict.fromkeys(labels, 0.0)
    for seg in result.segments:
        seconds[seg["label"]] += seg["end"] - seg["start"]
    speech = sum(seconds.values())
    share = {k: (v / speech if speech > 0 else 0.0) for k, v in seconds.items()}
    return {
        "speech_seconds": round(speech, 3),
        "segments": len(result.segments),
        "dominant": max(labels, key=lambda k: seconds[k]) if speech > 0 else "",
        "seconds": {k: round(v, 3) for k, v in seconds.items()},
        "share": {k: round(v, 4) for k, v in share.items()},
    }


def segment_rows(results: Sequence[SourceResult], labels: Sequence[str]) -> list[dict[str, Any]]:
    rows = []
    for r in results:
        for seg in r.segments:
            rows.append(
                {
                    "source": r.source,
                    "start": seg["start"],
                    "end": seg["end"],
                    "duration": round(seg["end"] - seg["start"], 3),
                    "label": seg["label"],
                    "probability": round(seg["probability"], 6),
                    **{f"prob_{k}": round(seg["probs"][k], 6) for k in labels},
                }
            )
    return rows


def summary_rows(results: Sequence[SourceResult], labels: Sequence[str]) -> list[dict[str, Any]]:
    rows = []
    for r in results:
        s = summarise(r, labels)
        rows.append(
            {
                "source": r.source,
                "title": r.title,
                "duration": r.duration,
                "speech_seconds": s["speech_seconds"],
                "segments": s["segments"],
                "skipped_segments": len(r.skipped),
                "dominant": s["dominant"],
                **{f"share_{k}": s["share"][k] for k in labels},
            }
        )
    return rows


def write_results(
    path: Path,
    results: Sequence[SourceResult],
    failures: Sequence[Failure],
    model: LoadedModel,
    audio_origin: str,
    how: dict[str, Any] | None = None,
) -> list[Path]:
    """``.csv``: one row per segment (+ ``<stem>_summary.csv`` per source); ``.json``: all,
    with ``how`` (window, standardisation) as written by :func:`run`."""
    labels = model.labels
    if path.suffix.lower() == ".csv":
        columns = ["source", "start", "end", "duration", "label", "probability"]
        columns += [f"prob_{k}" for k in labels]
        write_csv_atomic(path, segment_rows(results, labels), columns)
        summary_path = path.with_name(f"{path.stem}_summary.csv")
        summary_columns = ["source", "title", "duration", "speech_seconds", "segments"]
        summary_columns += ["skipped_segments", "dominant", *[f"share_{k}" for k in labels]]
        write_csv_atomic(summary_path, summary_rows(results, labels), summary_columns)
        return [path, summary_path]
    write_json_atomic(
        path,
        {
            "model": model.name,
            "mode": model.mode,
            "labels": labels,
            "audio_settings": audio_origin,
            **(how or {}),
            "sources": [
                {
                    "source": r.source,
                    "title": r.title,
                    "duration": r.duration,
                    "summary": summarise(r, labels),
                    "segments": r.segments,
                    "skipped": r.skipped,
                }
                for r in results
            ],
            "failures": [{"source": f.source, "reason": f.reason} for f in failures],
        },
    )
    return [path]


def print_report(
    results: Sequence[SourceResult],
    failures: Sequence[Failure],
    labels: Sequence[str],
    model_name: str,
    max_rows: int = TABLE_ROWS,
) -> None:
    """Segments (the first ``max_rows`` of each source) and one summary row per source."""
    from rich.console import Console
    from rich.table import Table

    console = Console(width=max(100, Console().width))
    colours = label_colours(labels)
    for r in results:
        table = Table(title=f"{r.source}  ({_clock(r.duration)}, model {model_name})")
        for col in ("start", "end", "emotion", "p"):
            table.add_column(col, justify="right" if col != "emotion" else "left")
        for k in labels:
            table.add_column(f"p({k})", justify="right")
        for seg in r.segments[:max_rows]:
            table.add_row(
                _clock(seg["start"], 1),
                _clock(seg["end"], 1),
                f"[bold {colours[seg['label']]}]{seg['label']}[/]",
                f"{seg['probability']:.2f}",
                *[f"{seg['probs'][k]:.2f}" for k in labels],
            )
        if len(r.segments) > max_rows:
            table.caption = f"first {max_rows} of {len(r.segments)} segments: --out for all"
        console.print(table)
    summary = Table(title="share of speech time per emotion")
    for col in ("source", "speech", "segments", "dominant", *labels):
        summary.add_column(col, justify="left" if col in ("source", "dominant") else "right")
    for r in results:
        s = summarise(r, labels)
        summary.add_row(
            r.source,
            _clock(s["speech_seconds"]),
            str(s["segments"]),
            s["dominant"] or "-",
            *[f"{100 * s['share'][k]:.0f}%" for k in labels],
        )
    console.print(summary)


def _clock(seconds: float, decimals: int = 0) -> str:
    seconds = max(0.0, float(seconds))
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    sec = f"{s:0{3 + decimals if decimals else 2}.{decimals}f}"
    return f"{int(h)}:{int(m):02d}:{sec}" if h >= 1 else f"{int(m)}:{sec}"


# ---------------------------------------------------------------------------------------------
# Timeline figure


def plot_timeline(
    results: Sequence[SourceResult],
    labels: Sequence[str],
    path: Path,
    model_name: str = "",
    per_page: int = SOURCES_PER_PAGE,
) -> list[Path]:
    """Per source: the waveform coloured by predicted emotion (grey where no speech was found)
    with a strip of every label's probability underneath. More than ``per_page`` sources go to
    further pages ``<stem>-2.png``, ... Returns the files written."""
    from matplotlib.figure import Figure
    from matplotlib.patches import Patch
    from matplotlib.ticker import FuncFormatter, MaxNLocator

    from seda.plots import save_figure

    colours = label_colours(labels)
    pages = [results[i : i + per_page] for i in range(0, len(results), per_page)] or [[]]
    written = []
    for n, page in enumerate(pages, start=1):
        fig = Figure(figsize=(13, 0.9 + 2.9 * max(1, len(page))), layout="constrained")
        grid = fig.add_gridspec(max(1, len(page)) * 2, 1, height_ratios=[3, 1] * max(1, len(page)))
        for k, r in enumerate(page):
            ax = fig.add_subplot(grid[2 * k])
            strip = fig.add_subplot(grid[2 * k + 1], sharex=ax)
            _draw_source(ax, strip, r, labels, colours)
            strip.xaxis.set_major_formatter(FuncFormatter(lambda x, _: _clock(x)))
            strip.xaxis.set_major_locator(MaxNLocator(nbins=12, steps=[1, 2, 3, 5, 6, 10]))
            ax.tick_params(labelbottom=False)
        if not page:
            fig.text(0.5, 0.5, "nothing predicted", ha="center", va="center")
        handles = [Patch(color=colours[k], label=k) for k in labels]
        handles.append(Patch(color="#c9c9c9", label="no speech / skipped"))
        fig.legend(
            handles=handles,
            loc="outside upper center",
            ncols=len(handles),
            frameon=False,
            title=f"predicted emotion{f' ({model_name})' if model_name else ''}",
        )
        out = path if n == 1 else path.with_name(f"{path.stem}-{n}{path.suffix}")
        save_figure(fig, out)
        written.append(out)
    return written


def _draw_source(
    ax: Any, strip: Any, r: SourceResult, labels: Sequence[str], colours: dict[str, str]
) -> None:
    duration = max(r.duration, 1e-3)
    if r.envelope is not None:
        lo, hi = r.envelope
        t = (np.arange(lo.size) + 0.5) * duration / lo.size
    else:
        t, lo, hi = np.array([0.0, duration]), np.zeros(2), np.zeros(2)
    peak = float(max(np.abs(lo).max(initial=0), np.abs(hi).max(initial=0), 1e-4))
    ax.fill_between(t, lo / peak, hi / peak, color="#c9c9c9", linewidth=0)
    for seg in r.segments:
        inside = (t >= seg["start"]) & (t <= seg["end"])
        colour = colours[seg["label"]]
        # A light band marks the segment even where its waveform is thin.
        ax.axvspan(seg["start"], seg["end"], color=colour, alpha=0.12, linewidth=0)
        if inside.any():
            ax.fill_between(
                t[inside], lo[inside] / peak, hi[inside] / peak, color=colour, linewidth=0
            )
    ax.set_xlim(0, duration)
    ax.set_ylim(-1.05, 1.05)
    ax.set_yticks([])
    for side in ("top", "right", "left"):
        ax.spines[side].set_visible(False)
    s = summarise(r, labels)
    title = r.title or Path(r.source).name or r.source
    shares = "   ".join(
        f"{k} {100 * s['share'][k]:.0f}%" for k in sorted(labels, key=lambda k: -s["share"][k])
    )
    ax.set_title(
        f"{_short(title, 70)}   ({_clock(r.duration)}, speech {_clock(s['speech_seconds'])})",
        loc="left",
        fontsize=11,
        fontweight="bold",
    )
    ax.set_title(shares, loc="right", fontsize=9, color="#444444")
    if not r.segments:
        ax.text(0.5, 0.5, "no speech segment predicted", transform=ax.transAxes, ha="center")
    if r.segments:
        starts = np.array([seg["start"] for seg in r.segments])
        widths = np.array([seg["end"] - seg["start"] for seg in r.segments])
        bottom = np.zeros(len(r.segments))
        for k in labels:
            p = np.array([seg["probs"][k] for seg in r.segments])
            strip.bar(
                starts,
                p,
                width=widths,
                bottom=bottom,
                align="edge",
                color=colours[k],
                edgecolor="white",
                linewidth=0.4,
            )
            bottom += p
    strip.set_ylim(0, 1)
    strip.set_yticks([0, 0.5, 1])
    strip.set_ylabel("p", rotation=0, labelpad=8, va="center")
    strip.tick_params(axis="y", labelsize=8)
    for side in ("top", "right"):
        strip.spines[side].set_visible(False)
    strip.set_facecolor("#f4f4f4")


def _short(text: str, n: int) -> str:
    return text if len(text) <= n else "…" + text[-(n - 1) :]


# ---------------------------------------------------------------------------------------------
# Command line


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="seda predict",
        description="Predict the emotion of every speech segment of audio files, folders or URLs.",
    )
    parser.add_argument("inputs", nargs="+", metavar="PATH_OR_URL")
    parser.add_argument(
        "--model", default=BEST, help="a model under --models-dir, or best (highest test UAR)"
    )
    parser.add_argument("--models-dir", type=Path, default=MODELS_DIR)
    parser.add_argument("--out", type=Path, help="results file: .csv (per segment) or .json")
    parser.add_argument("--plot", type=Path, help="timeline picture (.png)")
    parser.add_argument(
        "--workers",
        type=int,
        default=None,
        help="processes (0: one per core; default: params.yaml's workers); fewer files than "
        "workers: the spare ones compute the baseline's features beside the cutting",
    )
    parser.add_argument(
        "--executor",
        help="segment through submitit jobs: a file of conf/executor/ (slurm, submitit_local) "
        "or a .yaml path (default: $SEDA_EXECUTOR, else this machine's cores)",
    )
    parser.add_argument("--cache-dir", type=Path, default=CACHE_DIR, help="URL downloads")
    parser.add_argument(
        "--window",
        type=float,
        default=None,
        metavar="SECONDS",
        help="speech without a pause longer than this is predicted in windows overlapping by "
        "half, smoothed over time, one row per half window (default: the longest training "
        "clip, clean.clips.max_seconds)",
    )
    parser.add_argument(
        "--same-speaker",
        action="store_true",
        help="all segments of one source are one speaker: the baseline standardises its "
        "features over each source, as it did per speaker in training (default: with the "
        "statistics fixed at training time, so that a segment's result never depends on the "
        "rest of the file)",
    )
    parser.add_argument("--params", type=Path, default=PARAMS_FILE)
    return parser


def run(
    args: argparse.Namespace, report: Callable[..., None] = print_report
) -> tuple[list[SourceResult], list[Failure]]:
    """Load the model, resolve inputs, predict, write what was asked for."""
    if args.out is not None and args.out.suffix.lower() not in (".csv", ".json"):
        raise ConfigError(f"--out {args.out}: use a .csv or .json file name")
    if args.plot is not None and args.plot.suffix.lower() != ".png":
        raise ConfigError(f"--plot {args.plot}: use a .png file name")
    name = pick_model(args.model, args.models_dir)
    model = load_model(args.models_dir / name)
    clean, vad, origin = audio_settings(model, args.params)
    window = check_window(clean, args.window)
    log.info("predict: model %s (%s), clean/VAD settings from %s", name, model.mode, origin)
    sources, failures = resolve_inputs(args.inputs, args.cache_dir)
    workers = args.workers
    if workers is None:
        workers = (load_params(args.params).get("workers") if args.params.is_file() else 0) or 0
    results, failed = predict_sources(
        sources,
        model,
        clean,
        vad,
        workers=workers,
        envelope=args.plot is not None,
        window=window,
        same_speaker=args.same_speaker,
        executor=args.executor,
    )
    failures = failures + failed
    report(results, failures, model.labels, name)
    standardisation = "per source (--same-speaker)" if args.same_speaker else "training statistics"
    how = {
        "window_seconds": window,
        "standardisation": standardisation if model.mode == "baseline" else "none",
    }
    if args.out is not None:
        for p in write_results(args.out, results, failures, model, origin, how):
            log.info("predict: wrote %s", p)
    if args.plot is not None:
        for p in plot_timeline(results, model.labels, args.plot, name):
            log.info("predict: wrote %s", p)
    return results, failures


def main(argv: list[str] | None = None) -> int:
    """``seda predict``: 0 when at least one source was predicted, 1 when none, 2 on bad usage."""
    setup_logging()
    args = build_parser().parse_args(argv)
    try:
        results, failures = run(args)
    except ConfigError as err:
        print(f"predict: {err}", file=sys.stderr)
        return 2
    for f in failures:
        print(f"predict: skipped {f.source}: {f.reason}", file=sys.stderr)
    if not results:
        print("predict: nothing could be predicted", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
