"""Data augmentation of training clips (torchaudio): speed perturbation, additive noise and music
beds at a drawn signal-to-noise ratio.

Only clips that are training rows in some fold are augmented (:func:`training_clips`), never a
validation or test row: under ``holdout`` the train split, under ``loso`` every labelled clip
(each trains the folds that neither test nor validate it; the fold assembly,
:class:`seda.models.folds.TrainingRows`, adds a copy only where its clip is a training row).
:func:`plan_copies` draws what happens to the k-th copy of a clip from a seed made of the
settings' seed, the clip id and k, and writes it down as an :class:`AugmentRow`, which
:func:`augment_wave` then applies: same clip, same settings, same samples, in any process and in
any order. The featurize stages store the features of the copies beside the clips'
(:func:`seda.features.store.save_augmented`); training adds them to the training rows only.
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from seda.audio import AudioError, audio_info, load_audio
from seda.errors import ConfigError
from seda.io import RejectLog
from seda.parallel import map_files
from seda.records import UNLABELLED, SplitRow

# Spectral slope of the additive noise: power falls as 1 / f ** exponent.
NOISE_EXPONENTS = {"white": 0.0, "pink": 1.0, "brown": 2.0}
MUSIC_SUFFIXES = (".wav", ".flac", ".mp3", ".ogg", ".opus", ".m4a")
PROTOCOLS = ("holdout", "loso")


@dataclass
class AugmentSettings:
    """The ``augment`` section (config group ``augment``; ``none`` is the default)."""

    # Augmented copies of each clip that can be a training row; 0: no augmentation (the default,
    # until a preset is measured to help: see the README).
    copies: int = 0
    # Speed factors (tempo and pitch together, torchaudio.functional.speed, as Kaldi's speed
    # perturbation); each copy draws one. [1.0]: no speed change.
    speeds: list[float] = field(default_factory=lambda: [0.9, 1.0, 1.1])
    # SNR range [low, high] in dB of the additive noise, drawn uniformly per copy; []: no noise.
    noise_snr_db: list[float] = field(default_factory=list)
    # Colour of the additive noise: white, pink (1/f) or brown (1/f^2).
    noise: str = "pink"
    # A folder of music files (searched recursively; wav, flac, mp3, ogg, opus, m4a) laid under
    # each copy as a bed from a random file and offset, looped when shorter than the clip;
    # null: no music. Relative paths are from the repository root.
    music: str | None = None
    # SNR range [low, high] in dB of the music bed against the (speed-perturbed) speech, drawn
    # uniformly per copy; [] with music null, a range with a music folder.
    music_snr_db: list[float] = field(default_factory=list)
    # Class balancing: in each fold, repeat training rows of the smaller classes (clips and their
    # copies alike, drawn at random) until every class has as many as the largest. Validation
    # and test rows are never repeated.
    oversample: bool = False
    # Seeds every draw (with the clip id and the copy number).
    seed: int = 0

    def __post_init__(self) -> None:
        if self.copies < 0:
            raise ConfigError(f"augment.copies must be >= 0, got {self.copies}")
        if not self.speeds or any(not 0.5 <= float(s) <= 2.0 for s in self.speeds):
            raise ConfigError(f"augment.speeds must be factors in [0.5, 2], got {self.speeds}")
        for key in ("noise_snr_db", "music_snr_db"):
            value = list(getattr(self, key))
            if value and (len(value) != 2 or float(value[0]) > float(value[1])):
                raise ConfigError(f"augment.{key} must be [low, high] in dB, got {value}")
        if bool(self.music) != bool(self.music_snr_db):
            raise ConfigError(
                "augment.music (a folder of music files) and augment.music_snr_db ([low, high] "
                "dB) go together: set both, or neither"
            )
        if self.noise not in NOISE_EXPONENTS:
            raise ConfigError(
                f"augment.noise must be one of {', '.join(NOISE_EXPONENTS)}, got {self.noise!r}"
            )

    @property
    def enabled(self) -> bool:
        """Whether anything changes training: copies or class balancing."""
        return self.copies > 0 or self.oversample


@dataclass(frozen=True)
class AugmentRow:
    """One augmented copy of a clip and exactly what was done to it (the ``augmented.csv`` of a
    feature store): speed, noise (colour, SNR) and music bed (file, offset, SNR); ``seed``
    draws the noise samples."""

    clip_id: str
    copy: int
    path: str
    speed: float
    noise: str = ""
    noise_snr_db: float | None = None
    music: str = ""
    music_offset: float | None = None
    music_snr_db: float | None = None
    seed: int = 0

    @property
    def name(self) -> str:
        """``<clip_id>~<copy>``: the copy in logs and reject lists."""
        return f"{self.clip_id}~{self.copy}"


def training_clips(rows: Sequence[SplitRow], protocol: str | None) -> list[SplitRow]:
    """The clips that are training rows in some fold, the only ones augmented: the labelled
    clips of the train split (``holdout``), every labelled clip (``loso``)."""
    if protocol not in PROTOCOLS:
        raise ConfigError(f"eval.protocol must be holdout or loso, got {protocol!r}")
    labelled = [r for r in rows if r.label and r.label != UNLABELLED]
    return labelled if protocol == "loso" else [r for r in labelled if r.split == "train"]


def music_files(settings: AugmentSettings) -> list[str]:
    """The music beds of ``settings.music`` as POSIX paths, sorted; [] without music."""
    if not settings.music:
        return []
    root = Path(settings.music)
    if not root.is_dir():
        raise ConfigError(f"augment.music {settings.music!r} is not a folder of music files")
    found = sorted(
        p.as_posix() for p in root.rglob("*") if p.suffix.lower() in MUSIC_SUFFIXES and p.is_file()
    )
    if not found:
        raise ConfigError(f"augment.music {settings.music!r} holds no music files")
    return found


def validate_music(settings: AugmentSettings) -> None:
    """The music folder must be there before anything runs (checked while composing)."""
    if settings.copies and settings.music:
        music_files(settings)


def _clip_seed(clip_id: str) -> int:
    """A stable integer of a clip id (Python's ``hash`` changes from process to process)."""
    return int.from_bytes(hashlib.sha256(clip_id.encode("utf-8")).digest()[:8], "little")


def plan_copies(rows: Sequence[SplitRow], settings: AugmentSettings) -> list[AugmentRow]:
    """``settings.copies`` copies of every row, each drawn from (seed, clip id, copy number)."""
    if settings.copies == 0:
        return []
    music = music_files(settings)
    lengths = {m: audio_info(m).duration for m in music}
    out = []
    for row in rows:
        for k in range(1, settings.copies + 1):
            rng = np.random.default_rng([settings.seed, _clip_seed(row.clip_id), k])
            speed = float(settings.speeds[int(rng.integers(len(settings.speeds)))])
            noise_snr = None
            if settings.noise_snr_db:
                noise_snr = round(float(rng.uniform(*settings.noise_snr_db)), 2)
            bed, offset, music_snr = "", None, None
            if music:
                bed = music[int(rng.integers(len(music)))]
                offset = round(float(rng.uniform(0.0, lengths[bed])), 3)
                music_snr = round(float(rng.uniform(*settings.music_snr_db)), 2)
            out.append(
                AugmentRow(
                    row.clip_id,
                    k,
                    row.path,
                    speed,
                    settings.noise if noise_snr is not None else "",
                    noise_snr,
                    bed,
                    offset,
                    music_snr,
                    int(rng.integers(2**31)),
                )
            )
    return out


def coloured_noise(rng: np.random.Generator, n: int, colour: str) -> np.ndarray:
    """``n`` samples of Gaussian noise whose power falls as 1 / f ** exponent of ``colour``."""
    white = rng.standard_normal(n)
    exponent = NOISE_EXPONENTS[colour]
    if exponent == 0.0 or n < 2:
        return white
    spectrum = np.fft.rfft(white)
    freqs = np.fft.rfftfreq(n)
    freqs[0] = freqs[1]  # no infinite gain at DC
    return np.fft.irfft(spectrum / freqs ** (exponent / 2), n)


@functools.lru_cache(maxsize=4)
def _music(path: str, sample_rate: int) -> np.ndarray:
    return load_audio(path, sample_rate)[0]


def music_bed(path: str, sample_rate: int, offset: float, n: int) -> np.ndarray:
    """``n`` samples of ``path`` from ``offset`` seconds on, looped when the file is shorter."""
    music = _music(path, sample_rate)
    start = round(offset * sample_rate) % len(music)
    return music[(start + np.arange(n)) % len(music)]


def augment_wave(wave: np.ndarray, sample_rate: int, row: AugmentRow) -> np.ndarray:
    """Copy ``row`` of a clip: speed first, then noise and music, each at its SNR against the
    (speed-perturbed) speech (torchaudio's ``add_noise``). Float32, mono.

    Runs on one torch thread (resampling and the energy sums give other last bits on another
    thread count), so call it where no other torch work runs at the same time."""
    from seda.models.determinism import torch_threads

    with torch_threads(1):
        return _augment(wave, sample_rate, row)


def _augment(wave: np.ndarray, sample_rate: int, row: AugmentRow) -> np.ndarray:
    import torch
    from torchaudio import functional as AF

    x = torch.from_numpy(np.ascontiguousarray(wave, dtype=np.float32))[None]
    if row.speed != 1.0:
        x, _ = AF.speed(x, sample_rate, row.speed)
    speech = x.double()
    out = speech
    n = speech.shape[-1]
    if row.noise_snr_db is not None:
        noise = coloured_noise(np.random.default_rng(row.seed), n, row.noise)
        snr = torch.tensor([row.noise_snr_db], dtype=torch.float64)
        out = AF.add_noise(speech, torch.from_numpy(noise)[None], snr)
    if row.music:
        assert row.music_offset is not None and row.music_snr_db is not None
        bed = torch.from_numpy(
            music_bed(row.music, sample_rate, row.music_offset, n).astype(np.float64)
        )[None]
        if float(bed.abs().max()) > 0:  # a silent stretch of the file adds nothing
            snr = torch.tensor([row.music_snr_db], dtype=torch.float64)
            out = out + (AF.add_noise(speech, bed, snr) - speech)
    return out[0].float().numpy()


def _copy_features(
    item: tuple[AugmentRow, Callable[[np.ndarray, int], np.ndarray], int | None],
) -> np.ndarray:
    row, features, sample_rate = item
    wave, sr = load_audio(row.path, sample_rate)
    return features(augment_wave(wave, sr, row), sr)


def augmented_features(
    rows: Sequence[SplitRow],
    settings: AugmentSettings,
    protocol: str | None,
    features: Callable[[np.ndarray, int], np.ndarray],
    sample_rate: int | None,
    workers: int | None,
) -> tuple[np.ndarray | None, list[AugmentRow], RejectLog]:
    """``features(wave, sr)`` of the augmented copies of the clips of ``rows`` that train some
    fold of ``protocol``, on ``workers`` processes (``features`` must pickle: a module-level
    function or a ``functools.partial`` of one): (n_kept, d) float32 (None without copies), the
    copies kept, and the others with their reason."""
    rejects = RejectLog("featurize")
    if not settings.copies:
        return None, [], rejects
    copies = plan_copies(training_clips(rows, protocol), settings)
    items = [(c, features, sample_rate) for c in copies]
    results: dict[str, np.ndarray] = {}
    failed: dict[str, str] = {}
    for outcome in map_files(
        _copy_features, items, workers=workers, desc="augmented copies", known_errors=(AudioError,)
    ):
        name = outcome.item[0].name
        if outcome.error is not None:
            failed[name] = outcome.error
        else:
            results[name] = np.asarray(outcome.result, dtype=np.float32)
    kept = []
    for c in copies:  # in plan order, whatever order the workers finished in
        if c.name in failed:
            rejects.add(c.name, c.path, failed[c.name])
        elif not np.all(np.isfinite(results[c.name])):
            rejects.add(c.name, c.path, "features of the copy are not finite")
        else:
            kept.append(c)
    if not kept:
        raise ConfigError("augment: no copy could be featurised (see the rejected rows)")
    return np.stack([results[c.name] for c in kept]), kept, rejects
