"""A small, offline, deterministic synthetic corpus that exercises the whole pipeline.

Each item is speech-like sound (voiced syllables from a harmonic source with an F0 contour through
formant resonators, unvoiced noise bursts, pauses and a few long silences) over a music bed
(chords and a simple beat) and background noise. Every synthetic speaker has its own pitch,
formant scale and speaking rate; every emotion its own prosody (angry: loud, high, fast, bright;
happy: high, lively pitch; calm: moderate, flat; sad: soft, low, slow, falling, breathy), with
seeded random variation per item, so the classes are learnable but overlap. It shows the
machinery; it says nothing about real emotion.

Output (:func:`generate`, into a folder the caller names):
- ``media/<item>.wav`` (a few ``.flac`` / ``.ogg`` so the collector's conversion path runs),
- ``sources.csv`` with ``url,label,speaker,start,end,title``. ``url`` is a path relative to the
  demo folder (``media/<item>.wav``), the ``root`` of the demo dataset settings; the collector
  (``allow_file_urls``) resolves it against ``root`` and downloads it through yt-dlp as a
  ``file://`` URL like any web video, storing the portable ``file:<relative path>``.
- ``reference/<item>.wav``: the clean voice of every item exactly as mixed into its media file
  (same gain, sample rate and length; PCM16 WAV), the ground truth that the figures stage scores
  separation against (SI-SDR). It covers the whole item even where the sources row asks for a
  section: cut it at the row's ``start``/``end``. Not in ``sources.csv``: it is not collected.
- ``unlabelled_items_per_speaker`` extra items per speaker (after all labelled ones) whose
  sources row says ``unknown``: the material of the pseudo-labelling (label) stage. Their true
  emotion (a fixed rotation over the labels) is written only to ``truth.csv``
  (``item_id,speaker,label``; ``item_id`` is the ``source_id`` of the collected rows), which is
  not collected, so pseudo-labels can be scored against it. Appending them leaves the bytes of
  every labelled item unchanged.

Bytes are identical for the same parameters: all randomness comes from ``numpy`` generators
seeded by (seed, speaker, label, item); OGG stream serial numbers (random in libsndfile) are
rewritten to a fixed value; file modification times are pinned (yt-dlp reports them as the
upload date of a ``file://`` item).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf
from scipy import signal

from seda.audio import write_wav
from seda.errors import ConfigError
from seda.io import atomic_path, write_csv_atomic
from seda.records import UNLABELLED

LABELS = ("angry", "calm", "happy", "sad")
SOURCES_COLUMNS = ("url", "label", "speaker", "start", "end", "title")
TRUTH_COLUMNS = ("item_id", "speaker", "label")
MEDIA_SUFFIXES = (".wav", ".flac", ".ogg")
# Sub-folder of ``out_dir`` with the clean voice of every item (``<item_id>.wav``).
REFERENCE_DIR = "reference"
# 2024-01-01T00:00:00Z: pinned mtime of every generated file.
FIXED_MTIME = 1704067200
# Nominal RMS of speech at 0 dB emotion gain; music and noise levels are relative to it, so the
# bed carries no emotion cue.
SPEECH_REF_RMS = 0.1
# Titles that a collector must survive (path separators, parent refs, newline, non-Latin text).
AWKWARD_TITLES = (
    "Öfkeli konuşma / kayıt 1",
    "../../etc/passwd ..\\kötü",
    "first line\nsecond line",
    "كلام حزين — تجربة",
    "Şarkı: ığüşöç İĞÜŞÖÇ",
)
# Vowel formants F1..F3 (Hz) of an adult male voice, scaled per speaker.
VOWELS = np.array(
    [[730, 1090, 2440], [530, 1840, 2480], [270, 2290, 3010], [570, 840, 2410], [300, 870, 2240]],
    dtype=float,
)
FORMANT_BANDWIDTHS = np.array([80.0, 110.0, 160.0])
MAJOR, MINOR = (0, 4, 7), (0, 3, 7)
PROGRESSION = ((0, MAJOR), (7, MAJOR), (9, MINOR), (5, MAJOR))


@dataclass
class DemoSettings:
    speakers: int = 5
    items_per_speaker_and_label: int = 1
    # Extra items per speaker labelled `unknown` (true emotion in truth.csv only): the material
    # of `seda label`.
    unlabelled_items_per_speaker: int = 1
    item_seconds: float = 24.0
    sample_rate: int = 22050
    music_bed_db: float = -12.0
    noise_db: float = -35.0
    seed: int = 1234


@dataclass(frozen=True)
class Prosody:
    """How an emotion shapes speech: the cues a classifier can learn."""

    f0_scale: float
    pitch_range_st: float  # spread of syllable pitch targets, semitones
    declination_st: float  # pitch fall over a phrase (negative: rise)
    rate: float  # syllables per second relative to neutral
    gain_db: float
    tilt: float  # one-pole low-pass coefficient on the source: higher = darker, softer voice
    breath: float  # share of aspiration noise in voiced sound
    pause_scale: float


PROSODY = {
    "angry": Prosody(1.35, 3.0, 2.0, 1.30, 0.0, 0.45, 0.02, 0.7),
    "calm": Prosody(1.00, 1.2, 1.5, 0.90, -7.0, 0.75, 0.05, 1.2),
    "happy": Prosody(1.25, 5.0, -1.0, 1.15, -3.0, 0.60, 0.04, 0.9),
    "sad": Prosody(0.88, 1.0, 4.0, 0.70, -10.0, 0.88, 0.12, 1.6),
}


@dataclass(frozen=True)
class Speaker:
    f0: float
    formant_scale: float
    rate: float


@dataclass(frozen=True)
class DemoItem:
    item_id: str
    speaker: int
    label: str  # the emotion it is synthesised with (the truth, also for unlabelled items)
    index: int
    suffix: str
    labelled: bool = True

    @property
    def source_label(self) -> str:
        """The label the sources table gives: the emotion, or ``unknown``."""
        return self.label if self.labelled else UNLABELLED


def make_speaker(settings: DemoSettings, speaker: int) -> Speaker:
    """Voice of one synthetic speaker; alternating lower and higher voices."""
    rng = np.random.default_rng([settings.seed, speaker])
    low = speaker % 2 == 1
    f0 = rng.uniform(95.0, 135.0) if low else rng.uniform(175.0, 235.0)
    scale = (1.0 if low else 1.16) * rng.uniform(0.95, 1.05)
    return Speaker(f0=f0, formant_scale=scale, rate=rng.uniform(0.9, 1.1))


def _suffix(k: int) -> str:
    return ".flac" if k % 8 == 3 else ".ogg" if k % 8 == 6 else ".wav"


def plan_items(settings: DemoSettings) -> list[DemoItem]:
    """All items in a fixed order; every 8th item is FLAC, every 8th (offset) OGG.

    The unlabelled items come after all labelled ones (so adding them changes no labelled item);
    their emotions rotate over the labels, shifted per speaker, so every emotion occurs.
    """
    items = []
    k = 0
    for s in range(1, settings.speakers + 1):
        for label in LABELS:
            for i in range(1, settings.items_per_speaker_and_label + 1):
                items.append(DemoItem(f"demo_s{s}_{label}_{i}", s, label, k, _suffix(k)))
                k += 1
    n_unlabelled = settings.unlabelled_items_per_speaker
    for s in range(1, settings.speakers + 1):
        for i in range(1, n_unlabelled + 1):
            label = LABELS[((s - 1) * n_unlabelled + i - 1) % len(LABELS)]
            item_id = f"demo_s{s}_{UNLABELLED}_{i}"
            items.append(DemoItem(item_id, s, label, k, _suffix(k), labelled=False))
            k += 1
    return items


def synthesize_parts(settings: DemoSettings, item: DemoItem) -> dict[str, np.ndarray]:
    """Speech, music bed and noise of one item, each scaled to its level (float64)."""
    sr = settings.sample_rate
    n = round(settings.item_seconds * sr)
    rng = np.random.default_rng([settings.seed, item.speaker, LABELS.index(item.label), item.index])
    speech = _speech(rng, settings, make_speaker(settings, item.speaker), PROSODY[item.label], n)
    music = _scale_to_rms(
        _music_bed(rng, sr, n), SPEECH_REF_RMS * 10 ** (settings.music_bed_db / 20)
    )
    noise = _scale_to_rms(_pink_noise(rng, n), SPEECH_REF_RMS * 10 ** (settings.noise_db / 20))
    return {"speech": speech, "music": music, "noise": noise}


def mix_parts(parts: dict[str, np.ndarray]) -> tuple[np.ndarray, float]:
    """Speech + music bed + noise as float32, and the gain that kept its peak at most 0.98.

    The same gain applies to every part, so ``gain * parts["speech"]`` is the voice as mixed.
    """
    mix = parts["speech"] + parts["music"] + parts["noise"]
    peak = float(np.max(np.abs(mix)))
    gain = 0.98 / peak if peak > 0.98 else 1.0
    if gain != 1.0:
        mix *= gain
    return mix.astype(np.float32), gain


def synthesize_item_and_reference(
    settings: DemoSettings, item: DemoItem
) -> tuple[np.ndarray, np.ndarray]:
    """(mixture, clean voice exactly as mixed), both float32 of the same length."""
    parts = synthesize_parts(settings, item)
    mix, gain = mix_parts(parts)
    return mix, (parts["speech"] * gain).astype(np.float32)


def _scale_to_rms(y: np.ndarray, rms: float) -> np.ndarray:
    current = float(np.sqrt(np.mean(y**2)))
    return y * (rms / current) if current > 0 else y


def _speech(
    rng: np.random.Generator, settings: DemoSettings, spk: Speaker, pro: Prosody, n: int
) -> np.ndarray:
    """Phrases of words of syllables, with pauses and one or two long silences."""
    sr = settings.sample_rate
    out = np.zeros(n)
    f0 = spk.f0 * pro.f0_scale * np.exp(rng.normal(0, 0.06))
    rate = spk.rate * pro.rate * np.exp(rng.normal(0, 0.08))
    gain_db = pro.gain_db + rng.normal(0, 1.5)
    pitch_range = pro.pitch_range_st * np.exp(rng.normal(0, 0.15))
    tilt = float(np.clip(pro.tilt + rng.normal(0, 0.03), 0.2, 0.95))
    hiss = signal.butter(2, min(2500.0, 0.4 * sr), "highpass", fs=sr, output="sos")
    long_scale = min(1.0, settings.item_seconds / 24.0)
    long_at = sorted(rng.uniform(0.2, 0.8, size=1 + int(rng.random() < 0.5)) * n)
    t = int(rng.uniform(0.2, 0.8) * sr)
    while t < n - int(0.3 * sr):
        n_syll = int(rng.integers(4, 14))
        for k in range(n_syll):
            phrase_pos = k / max(1, n_syll - 1)
            if rng.random() < 0.4:
                burst = _burst(rng, sr, hiss, gain_db)
                t = _add(out, burst, t)
            semis = rng.normal(0, pitch_range) - pro.declination_st * phrase_pos
            syl_f0 = f0 * 2 ** (semis / 12)
            seconds = 0.19 / rate * rng.uniform(0.7, 1.3)
            syl = _syllable(rng, sr, syl_f0, seconds, spk, pro, tilt, gain_db, pitch_range)
            t = _add(out, syl, t)
            gap = 0.03 if rng.random() < 0.6 else rng.uniform(0.08, 0.25)
            t += int(gap * pro.pause_scale * sr)
        t += int(rng.uniform(0.3, 0.9) * pro.pause_scale * sr)
        if long_at and t >= long_at[0]:
            long_at.pop(0)
            t += int(rng.uniform(2.5, 5.0) * long_scale * sr)
    return out


def _add(out: np.ndarray, y: np.ndarray, t: int) -> int:
    """Add ``y`` into ``out`` at sample ``t`` (cut at the end); return the sample after it."""
    stop = min(len(out), t + len(y))
    if stop > t:
        out[t:stop] += y[: stop - t]
    return t + len(y)


def _syllable(
    rng: np.random.Generator,
    sr: int,
    f0: float,
    seconds: float,
    spk: Speaker,
    pro: Prosody,
    tilt: float,
    gain_db: float,
    pitch_range: float,
) -> np.ndarray:
    """A voiced syllable: sawtooth glottal source with F0 glide and jitter, through 3 formants."""
    m = max(16, int(seconds * sr))
    pos = np.linspace(0.0, 1.0, m)
    glide = rng.normal(0, 0.35 * pitch_range + 0.3) * (pos - 0.5)
    jitter = np.interp(pos, np.linspace(0, 1, 8), rng.normal(0, 0.15, 8))
    f0_track = f0 * 2 ** ((glide + jitter) / 12)
    phase = np.cumsum(f0_track / sr) + rng.random()
    source = 2.0 * (phase % 1.0) - 1.0
    source = signal.lfilter([1.0 - tilt], [1.0, -tilt], source)
    source = source / (np.std(source) + 1e-9) + pro.breath * 8 * rng.standard_normal(m)
    formants = VOWELS[rng.integers(len(VOWELS))] * spk.formant_scale
    formants = formants * (1.0 + 0.08 * (pro.rate - 1.0)) * rng.uniform(0.96, 1.04, 3)
    voiced = signal.sosfilt(_formant_sos(formants, sr), source)
    envelope = _envelope(m, attack=int(0.015 * sr), release=int(0.05 * sr))
    y = voiced * envelope
    level = SPEECH_REF_RMS * 10 ** ((gain_db + rng.normal(0, 1.5)) / 20)
    return _scale_to_rms(y, level)


def _formant_sos(formants: np.ndarray, sr: int) -> np.ndarray:
    """Cascade of two-pole resonators, each with unit gain at DC."""
    sos = []
    for f, bw in zip(formants, FORMANT_BANDWIDTHS, strict=True):
        f = min(f, 0.45 * sr)
        r = np.exp(-np.pi * bw / sr)
        a1, a2 = -2 * r * np.cos(2 * np.pi * f / sr), r * r
        sos.append([1 + a1 + a2, 0.0, 0.0, 1.0, a1, a2])
    return np.asarray(sos)


def _envelope(m: int, attack: int, release: int) -> np.ndarray:
    env = np.ones(m)
    attack, release = min(attack, m // 2), min(release, m // 2)
    env[:attack] = 0.5 - 0.5 * np.cos(np.linspace(0, np.pi, attack))
    env[m - release :] = 0.5 + 0.5 * np.cos(np.linspace(0, np.pi, release))
    return env


def _burst(rng: np.random.Generator, sr: int, hiss: np.ndarray, gain_db: float) -> np.ndarray:
    """An unvoiced consonant: high-passed noise with a smooth envelope."""
    m = int(rng.uniform(0.03, 0.09) * sr)
    y = signal.sosfilt(hiss, rng.standard_normal(m)) * np.hanning(m)
    return _scale_to_rms(y, SPEECH_REF_RMS * 0.3 * 10 ** (gain_db / 20))


def _music_bed(rng: np.random.Generator, sr: int, n: int) -> np.ndarray:
    """Four-chord loop of decaying harmonic notes plus kick and hi-hat on a steady tempo."""
    beat = 60.0 / rng.uniform(80, 120)
    bar = int(4 * beat * sr)
    root = int(rng.integers(45, 57))
    t = np.arange(bar) / sr
    decay = np.exp(-t / (2.0 * beat)) * np.minimum(1.0, t / 0.02)
    chords = []
    for offset, quality in PROGRESSION:
        chord = np.zeros(bar)
        for interval in quality:
            freq = 440.0 * 2 ** ((root + offset + interval - 69) / 12)
            for h, amp in ((1, 1.0), (2, 0.4), (3, 0.2)):
                chord += amp * np.sin(2 * np.pi * freq * h * t)
        chords.append(chord * decay)
    loop = np.concatenate(chords)
    bed = np.tile(loop, n // len(loop) + 1)[:n]
    kick_len = int(0.15 * sr)
    tk = np.arange(kick_len) / sr
    kick = 3.0 * np.sin(2 * np.pi * 55 * tk * (1 + 1.5 * np.exp(-tk / 0.02))) * np.exp(-tk / 0.05)
    hat_len = int(0.03 * sr)
    hat_filter = signal.butter(2, min(6000.0, 0.4 * sr), "highpass", fs=sr, output="sos")
    step = int(beat * sr)
    for start in range(0, n, step):
        _add(bed, kick, start)
        hat = signal.sosfilt(hat_filter, rng.standard_normal(hat_len)) * np.hanning(hat_len)
        _add(bed, 0.8 * hat, start + step // 2)
    return bed


def _pink_noise(rng: np.random.Generator, n: int) -> np.ndarray:
    """Approximately 1/f noise (Kellet's filter on white noise)."""
    b = [0.049922035, -0.095993537, 0.050612699, -0.004408786]
    a = [1.0, -2.494956002, 2.017265875, -0.522189400]
    return signal.lfilter(b, a, rng.standard_normal(n))


def write_media(path: Path, y: np.ndarray, sr: int, serial: int) -> None:
    """Write WAV/FLAC/OGG atomically, with reproducible bytes and a pinned mtime."""
    if path.suffix == ".wav":
        write_wav(path, y, sr)
    else:
        fmt, subtype = ("FLAC", "PCM_16") if path.suffix == ".flac" else ("OGG", "VORBIS")
        with atomic_path(path) as tmp:
            sf.write(str(tmp), y, sr, format=fmt, subtype=subtype)
            if fmt == "OGG":
                tmp.write_bytes(set_ogg_serial(tmp.read_bytes(), serial))
    os.utime(path, (FIXED_MTIME, FIXED_MTIME))


def _ogg_crc_table() -> list[int]:
    table = []
    for i in range(256):
        r = i << 24
        for _ in range(8):
            r = ((r << 1) ^ 0x04C11DB7) if r & 0x80000000 else (r << 1)
        table.append(r & 0xFFFFFFFF)
    return table


_OGG_CRC = _ogg_crc_table()


def set_ogg_serial(data: bytes, serial: int) -> bytes:
    """Give every Ogg page of a single-stream file ``serial`` and recompute the page CRCs.

    libsndfile draws the stream serial number from the clock, which would make the demo differ
    byte-wise between runs; the page layout (RFC 3533) makes the fix local to each header.
    """
    buf = bytearray(data)
    pos = 0
    while pos < len(buf):
        if buf[pos : pos + 4] != b"OggS":
            raise ValueError(f"not an Ogg page at byte {pos}")
        n_segments = buf[pos + 26]
        body = sum(buf[pos + 27 : pos + 27 + n_segments])
        end = pos + 27 + n_segments + body
        buf[pos + 14 : pos + 18] = serial.to_bytes(4, "little")
        buf[pos + 22 : pos + 26] = b"\0\0\0\0"
        crc = 0
        for byte in buf[pos:end]:
            crc = ((crc << 8) & 0xFFFFFFFF) ^ _OGG_CRC[(crc >> 24) ^ byte]
        buf[pos + 22 : pos + 26] = crc.to_bytes(4, "little")
        pos = end
    return bytes(buf)


def source_rows(settings: DemoSettings, items: list[DemoItem]) -> list[dict[str, Any]]:
    """The sources table: awkward titles on the first rows, a start/end section on one row."""
    rows = []
    section_row = min(5, len(items) - 1)
    for k, item in enumerate(items):
        title = (
            AWKWARD_TITLES[k]
            if k < len(AWKWARD_TITLES)
            else (f"Demo speaker {item.speaker} {item.source_label} #{item.index}")
        )
        row: dict[str, Any] = {
            "url": f"media/{item.item_id}{item.suffix}",
            "label": item.source_label,
            "speaker": f"demo_s{item.speaker}",
            "title": title,
        }
        if k == section_row:
            row["start"] = "1.5"
            row["end"] = f"{1.5 + settings.item_seconds / 2:g}"
        rows.append(row)
    return rows


def truth_rows(items: list[DemoItem]) -> list[dict[str, str]]:
    """The true emotion of every unlabelled item (never shown to the pipeline)."""
    return [
        {"item_id": it.item_id, "speaker": f"demo_s{it.speaker}", "label": it.label}
        for it in items
        if not it.labelled
    ]


def validate(settings: DemoSettings) -> None:
    if settings.speakers < 1 or settings.items_per_speaker_and_label < 1:
        raise ConfigError("demo.speakers and demo.items_per_speaker_and_label must be >= 1")
    if settings.unlabelled_items_per_speaker < 0:
        raise ConfigError(
            "demo.unlabelled_items_per_speaker must be >= 0 "
            f"(got {settings.unlabelled_items_per_speaker})"
        )
    if settings.item_seconds < 4.0:
        raise ConfigError(f"demo.item_seconds must be >= 4 (got {settings.item_seconds})")
    if settings.sample_rate < 8000:
        raise ConfigError(f"demo.sample_rate must be >= 8000 (got {settings.sample_rate})")


def _remove_stale(folder: Path, wanted: set[str]) -> None:
    """Drop media left by earlier parameters (e.g. fewer speakers now)."""
    if folder.exists():
        for stale in folder.iterdir():
            if stale.suffix in MEDIA_SUFFIXES and stale.name not in wanted:
                stale.unlink()


def generate(settings: DemoSettings, out_dir: str | Path) -> dict[str, Any]:
    """Write the whole demo corpus into ``out_dir``; return a summary."""
    from tqdm.auto import tqdm

    validate(settings)
    out = Path(out_dir)
    media, reference = out / "media", out / REFERENCE_DIR
    items = plan_items(settings)
    _remove_stale(media, {f"{it.item_id}{it.suffix}" for it in items})
    _remove_stale(reference, {f"{it.item_id}.wav" for it in items})
    for item in tqdm(items, desc="demo", unit="item", disable=None):
        y, voice = synthesize_item_and_reference(settings, item)
        write_media(media / f"{item.item_id}{item.suffix}", y, settings.sample_rate, item.index + 1)
        write_media(reference / f"{item.item_id}.wav", voice, settings.sample_rate, item.index + 1)
    sources = out / "sources.csv"
    write_csv_atomic(sources, source_rows(settings, items), SOURCES_COLUMNS)
    truth = out / "truth.csv"
    write_csv_atomic(truth, truth_rows(items), TRUTH_COLUMNS)
    for path in (sources, truth):
        os.utime(path, (FIXED_MTIME, FIXED_MTIME))
    return {
        "items": len(items),
        "unlabelled": sum(not it.labelled for it in items),
        "seconds": len(items) * settings.item_seconds,
        "formats": sorted({it.suffix for it in items}),
        "sources": sources.as_posix(),
        "truth": truth.as_posix(),
        "reference": reference.as_posix(),
    }
