"""Pictures of a dataset: what each emotion looks like, and what voice separation did.

- waveplots: the waveform of one test clip per emotion (the first by clip_id), one panel each;
- spectrograms: the same clips as log-mel spectrograms on one shared dB colour scale;
- separation: raw mixture above separated voice of one item; with a third panel, the clean
  reference voice, when the item has one (the demo corpus keeps them, one ``<media stem>.wav``
  per source), and SI-SDR against it in the panel titles.

Every choice is by sorted id, so the same data always give the same figures.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import librosa
import librosa.display
import numpy as np
from matplotlib.figure import Figure

from seda.audio import AudioError, load_audio
from seda.palette import label_colours
from seda.plots import save_figure
from seda.records import UNLABELLED
from seda.separation.quality import si_sdr
from seda.separation.references import find_reference

log = logging.getLogger(__name__)

DB_RANGE = 80.0
# An example clip: its split row, its samples and their sample rate.
Example = tuple[Mapping[str, Any], np.ndarray, int]


@dataclass
class FiguresSettings:
    """The ``figures`` section."""

    n_mels: int = 128
    hop_length: int = 256
    # Length of the excerpt shown in separation.png.
    separation_seconds: float = 15.0
    dpi: int = 120


def pick_examples(rows: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """The first test clip by clip_id of each label (labels sorted), for a stable choice."""
    test = [r for r in rows if r.get("split") == "test"]
    if not test:
        log.warning("figures: no test clips; examples are taken from all splits")
        test = list(rows)
    first: dict[str, Mapping[str, Any]] = {}
    labelled = (r for r in test if r["label"] not in ("", UNLABELLED))
    for r in sorted(labelled, key=lambda r: r["clip_id"]):
        first.setdefault(r["label"], r)
    return [dict(first[lab]) for lab in sorted(first)]


def _grid(n: int) -> tuple[int, int]:
    ncols = 1 if n <= 3 else 2
    return math.ceil(n / ncols), ncols


def _subplots(nrows: int, ncols: int, figsize: tuple[float, float], **kwargs: Any) -> tuple:
    """A figure outside pyplot (no global state; PNGs are drawn by the Agg renderer)."""
    fig = Figure(figsize=figsize, layout="constrained")
    return fig, fig.subplots(nrows, ncols, **kwargs)


def plot_waveplots(clips: Sequence[Example], path: Path, dpi: int = 120) -> None:
    """One waveform panel per clip (librosa.display.waveshow), amplitude on a shared scale."""
    colours = label_colours([row["label"] for row, _, _ in clips])
    nrows, ncols = _grid(len(clips))
    fig, axes = _subplots(
        nrows,
        ncols,
        figsize=(6.5 * ncols, 2.4 * nrows + 0.6),
        sharey=True,
        squeeze=False,
    )
    peak = max(float(np.abs(y).max()) for _, y, _ in clips) or 1.0
    for ax, (row, y, sr) in zip(axes.flat, clips, strict=False):
        librosa.display.waveshow(y, sr=sr, ax=ax, color=colours[row["label"]], axis="s")
        ax.set_title(f"{row['label']}  ·  {row['clip_id']}", fontsize=11)
        ax.set_xlabel("Time (s)")
        ax.set_ylabel("Amplitude")
        ax.set_xlim(0, len(y) / sr)
        ax.set_ylim(-1.05 * peak, 1.05 * peak)
        ax.grid(alpha=0.25)
    for ax in list(axes.flat)[len(clips) :]:
        ax.set_visible(False)
    fig.suptitle("Waveforms: first test clip of each emotion", fontsize=13)
    save_figure(fig, path, dpi=dpi, bbox_inches="tight")


def log_mel_db(y: np.ndarray, sr: int, n_mels: int, hop_length: int) -> np.ndarray:
    """Log-mel power spectrogram in dB relative to its own peak (so clips compare by shape)."""
    mel = librosa.feature.melspectrogram(
        y=y, sr=sr, n_mels=n_mels, hop_length=hop_length, n_fft=4 * hop_length, fmax=sr / 2
    )
    return librosa.power_to_db(mel, ref=np.max, top_db=DB_RANGE)


def plot_spectrograms(
    clips: Sequence[Example],
    path: Path,
    settings: FiguresSettings,
) -> None:
    """One log-mel panel per clip (librosa.display.specshow), one shared dB colour bar."""
    nrows, ncols = _grid(len(clips))
    fig, axes = _subplots(
        nrows,
        ncols,
        figsize=(6.5 * ncols + 1.0, 2.8 * nrows + 0.6),
        squeeze=False,
    )
    image = None
    for ax, (row, y, sr) in zip(axes.flat, clips, strict=False):
        db = log_mel_db(y, sr, settings.n_mels, settings.hop_length)
        image = librosa.display.specshow(
            db,
            sr=sr,
            hop_length=settings.hop_length,
            x_axis="s",
            y_axis="mel",
            fmax=sr / 2,
            ax=ax,
            cmap="magma",
            vmin=-DB_RANGE,
            vmax=0.0,
        )
        ax.set_title(f"{row['label']}  ·  {row['clip_id']}", fontsize=11)
        ax.set_xlabel("Time (s)")
        ax.set_ylabel("Frequency (Hz)")
    for ax in list(axes.flat)[len(clips) :]:
        ax.set_visible(False)
    if image is not None:
        fig.colorbar(image, ax=axes, format="%+2.0f dB", label="Level (dB re. peak)", shrink=0.9)
    fig.suptitle("Log-mel spectrograms: first test clip of each emotion", fontsize=13)
    save_figure(fig, path, dpi=settings.dpi, bbox_inches="tight")


def separation_scores(
    reference: np.ndarray, mixture: np.ndarray, voice: np.ndarray
) -> tuple[float, float]:
    """SI-SDR (dB) of the mixture and of the separated voice against the clean reference voice.

    The gain of separation is the second minus the first. Arrays must share one sample rate.
    """
    return si_sdr(reference, mixture), si_sdr(reference, voice)


def plot_separation(
    item_id: str,
    mixture: np.ndarray,
    voice: np.ndarray,
    sr: int,
    path: Path,
    settings: FiguresSettings,
    backend: str = "",
    reference: np.ndarray | None = None,
    offset: float = 0.0,
) -> tuple[float, float] | None:
    """Mixture, separated voice (and the clean reference voice) one above the other.

    Same mel axes and one dB scale (re. the mixture's peak). With a reference, SI-SDR of the
    mixture and of the voice against it go into the titles and are returned; else None.
    ``offset`` (s) is where the excerpt starts in the source, for the title.
    """
    signals = [mixture, voice] + ([] if reference is None else [reference])
    mels = [
        librosa.feature.melspectrogram(
            y=y,
            sr=sr,
            n_mels=settings.n_mels,
            hop_length=settings.hop_length,
            n_fft=4 * settings.hop_length,
        )
        for y in signals
    ]
    titles = ["Raw mixture", f"Separated voice{f' ({backend})' if backend else ''}"]
    scores = None
    if reference is not None:
        scores = separation_scores(reference, mixture, voice)
        titles[0] += f"  ·  SI-SDR {scores[0]:+.1f} dB"
        titles[1] += (
            f"  ·  SI-SDR {scores[1]:+.1f} dB ({scores[1] - scores[0]:+.1f} dB vs. mixture)"
        )
        titles.append("Reference voice (clean, as mixed)")
    ref = float(mels[0].max()) or 1.0
    fig, axes = _subplots(len(mels), 1, figsize=(11, 3.2 * len(mels)), sharex=True)
    image = None
    for ax, mel, title in zip(axes, mels, titles, strict=True):
        db = librosa.power_to_db(mel, ref=ref, top_db=None)
        image = librosa.display.specshow(
            db,
            sr=sr,
            hop_length=settings.hop_length,
            x_axis="s",
            y_axis="mel",
            ax=ax,
            cmap="magma",
            vmin=-DB_RANGE,
            vmax=0.0,
        )
        ax.set_title(title, fontsize=11)
        ax.set_ylabel("Frequency (Hz)")
        ax.set_xlabel("")
    axes[-1].set_xlabel("Time (s)")
    fig.colorbar(
        image, ax=axes, format="%+2.0f dB", label="Level (dB re. mixture peak)", shrink=0.9
    )
    span = f"first {len(mixture) / sr:.0f} s"
    if offset:
        span = f"{len(mixture) / sr:.0f} s from {offset:g} s of the source"
    fig.suptitle(f"Voice separation: {item_id} ({span})", fontsize=13)
    save_figure(fig, path, dpi=settings.dpi, bbox_inches="tight")
    return scores


def pick_separation_item(
    raw_rows: Sequence[Mapping[str, Any]], sep_rows: Sequence[Mapping[str, Any]]
) -> tuple[Mapping[str, Any], Path] | None:
    """(raw row, voice path) of the first item by id whose voice stem is a separate file."""
    raw = {r["id"]: r for r in raw_rows}
    for r in sorted(sep_rows, key=lambda r: r["id"]):
        row, voice = raw.get(r["id"]), Path(r["path"])
        if row is None:
            continue
        src = Path(row["path"])
        if src.exists() and voice.exists() and src.resolve() != voice.resolve():
            return row, voice
    return None


def load_examples(examples: Sequence[Mapping[str, Any]]) -> list[Example]:
    """The examples' audio at its own rate; unreadable clips are left out with a warning."""
    clips = []
    for row in examples:
        try:
            y, sr = load_audio(row["path"])
        except AudioError as err:
            log.warning("figures: skipped %s: %s", row["clip_id"], err)
            continue
        clips.append((row, y, sr))
    return clips


def draw_examples(clips: Sequence[Example], out_dir: Path, settings: FiguresSettings) -> list[str]:
    """waveplots.png and spectrograms.png of the example clips in ``out_dir``; the file names."""
    plot_waveplots(clips, out_dir / "waveplots.png", settings.dpi)
    plot_spectrograms(clips, out_dir / "spectrograms.png", settings)
    return ["waveplots.png", "spectrograms.png"]


def make_separation_figure(
    raw_rows: Sequence[Mapping[str, Any]],
    sep_rows: Sequence[Mapping[str, Any]],
    out: Path,
    settings: FiguresSettings,
    sample_rate: int,
    backend: str,
    references: Path | None = None,
) -> dict[str, Any] | None:
    """Draw ``out`` when separation wrote voice stems (else None); a summary when drawn.

    All signals are loaded at ``sample_rate`` (the separate stage's rate; the reference is
    resampled to it). A raw item that is a section of its source (``section_start``) is matched
    by cutting the reference at the same offset.
    """
    picked = pick_separation_item(raw_rows, sep_rows)
    if picked is None:
        return None
    row, voice_path = picked
    seconds = settings.separation_seconds
    mixture, sr = load_audio(row["path"], sample_rate, end=seconds)
    voice, _ = load_audio(voice_path, sample_rate, end=seconds)
    signals = [mixture, voice]
    offset = float(row.get("section_start") or 0.0)
    reference_path = find_reference(row, references)
    if reference_path is not None:
        try:
            reference, _ = load_audio(
                reference_path, sample_rate, start=offset, end=offset + seconds
            )
        except AudioError as err:
            log.warning("figures: reference %s not used: %s", reference_path, err)
        else:
            signals.append(reference)
    n = min(len(y) for y in signals)
    scores = plot_separation(
        row["id"],
        mixture[:n],
        voice[:n],
        sr,
        out,
        settings,
        backend,
        reference=signals[2][:n] if len(signals) == 3 else None,
        offset=offset,
    )
    summary: dict[str, Any] = {"item": row["id"], "reference": None}
    if scores is not None:
        summary.update(
            reference=str(reference_path), si_sdr_mixture=scores[0], si_sdr_separated=scores[1]
        )
        log.info(
            "figures: %s: SI-SDR mixture %+.1f dB, separated %+.1f dB",
            row["id"],
            scores[0],
            scores[1],
        )
    return summary
