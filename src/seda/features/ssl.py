"""Every clip through a frozen self-supervised backbone, once: the pooled output of every layer.

:func:`write_backbone_features` fills a feature store (:mod:`seda.features.store`) with float16
arrays of shape (n_clips, n_layers + 1, dim), so that the probes never run the backbone again.
Batches group clips of similar length (sorted, at most ``batch_seconds`` of padded audio) so that
little compute goes into padding; the next batch is decoded in a thread while the model runs.
With augmentation on, the augmented copies of the training clips (:mod:`seda.augment`) go through
the same backbone into the store's augmented section.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import math
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple, TypeVar

import numpy as np
import torch
from tqdm.auto import tqdm

from seda.audio import AudioError, audio_info, load_audio
from seda.augment import AugmentRow, AugmentSettings, augment_wave, plan_copies, training_clips
from seda.backbones import (
    BackboneSettings,
    Preprocessing,
    autocast,
    backbone_reference,
    cpu_threads,
    frame_lengths,
    load_backbone,
    min_samples,
    pick_device,
    pool_hidden_states,
)
from seda.cache import DEFAULT_CACHE_ROOT, StageCache
from seda.cluster import ExecutorSettings, load_executor, map_chunks
from seda.config import build
from seda.errors import ConfigError
from seda.features.store import save_augmented, save_features
from seda.io import RejectLog, params_digest
from seda.models.determinism import deterministic_torch
from seda.records import SplitRow, split_digest

log = logging.getLogger(__name__)

T = TypeVar("T")

# What a cached feature store is computed with (besides the clips and the settings).
CODE = ("seda.features.ssl",)
PACKAGES = ("numpy", "torch", "torchaudio", "transformers", "soundfile", "soxr", "imageio-ffmpeg")


def backbone_settings(params: Mapping[str, Any], name: str) -> BackboneSettings:
    """The ``backbones.<name>`` section as settings; an unknown name lists the configured ones."""
    backbones = params.get("backbones") or {}
    if name not in backbones:
        known = ", ".join(sorted(backbones)) or "none"
        raise ConfigError(f"model {name!r} is not configured under backbones: use {known}")
    return build(BackboneSettings, backbones[name], f"backbones.{name}")


def length_batches(
    lengths: Sequence[int], max_samples: int, max_batch_size: int
) -> list[list[int]]:
    """Indices grouped longest first so that each batch's padded size stays within ``max_samples``.

    A clip longer than ``max_samples`` gets a batch of its own (it is never dropped).
    """
    order = sorted(range(len(lengths)), key=lambda i: -lengths[i])
    batches: list[list[int]] = []
    current: list[int] = []
    for i in order:
        # Sorted descending: the first clip of a batch sets its padded length.
        longest = lengths[current[0]] if current else lengths[i]
        if current and (
            len(current) >= max_batch_size or (len(current) + 1) * longest > max_samples
        ):
            batches.append(current)
            current = []
        current.append(i)
    if current:
        batches.append(current)
    return batches


def embed_batch(
    model: torch.nn.Module,
    prep: Preprocessing,
    waves: Sequence[np.ndarray],
    pooling: str,
    device: torch.device,
) -> torch.Tensor:
    """Pooled hidden states of one batch: (batch, n_layers + 1, dim), float32 on the CPU."""
    values, lengths, mask = prep.batch(waves, device)
    with torch.inference_mode(), autocast(device):
        out = model(values, attention_mask=mask, output_hidden_states=True)
    pooled = pool_hidden_states(out.hidden_states, frame_lengths(model, lengths), pooling)
    return pooled.float().cpu()


def prefetch(
    pool: ThreadPoolExecutor, fn: Callable[[list[int]], T], batches: list[list[int]]
) -> Iterator[T]:
    """Yield ``fn(batch)`` in order while the next batch is already being loaded."""
    pending = pool.submit(fn, batches[0]) if batches else None
    for k in range(len(batches)):
        assert pending is not None
        result = pending.result()
        pending = pool.submit(fn, batches[k + 1]) if k + 1 < len(batches) else None
        yield result


class Embedded(NamedTuple):
    """What :func:`featurize_backbone` returns."""

    features: np.ndarray  # float16 (n_ok, n_layers + 1, dim)
    kept: list[int]  # index into the paths of each row of features
    device: str  # where the backbone ran ("cpu", "cuda:0"; the jobs' device through submitit)


def featurize_backbone(
    paths: Sequence[str | Path],
    settings: BackboneSettings,
    *,
    device: torch.device | None = None,
    model: torch.nn.Module | None = None,
    prep: Preprocessing | None = None,
    rejects: RejectLog | None = None,
    copies: Sequence[AugmentRow] | None = None,
    executor: str | None = None,
) -> Embedded:
    """Embed every readable clip: features float16 (n_ok, L+1, D) and the indices of those clips.

    ``copies`` (one per path): embed those augmented copies of the clips instead. Unreadable or
    too-short clips go to ``rejects`` with their reason, never silently.

    ``executor`` (default ``$SEDA_EXECUTOR``, :mod:`seda.cluster`): with a submitit executor the
    batches go to jobs (SLURM array jobs, GPUs as the executor asks), each loading the backbone
    once for its chunk of batches. The batches are planned here over all clips, so a clip is
    padded with the same neighbours wherever it runs: on the same hardware and thread count the
    features are the same bytes as on this machine's cores.
    """
    deterministic_torch()
    if model is None or prep is None:
        model, prep = load_backbone(settings)
    rejects = rejects if rejects is not None else RejectLog("featurize")
    shortest = min_samples(model)
    sr = prep.sample_rate
    names = [c.name for c in copies] if copies is not None else [Path(p).stem for p in paths]

    lengths: dict[int, int] = {}
    for i, path in enumerate(paths):
        try:
            info = audio_info(path)
        except AudioError as err:
            rejects.add(names[i], path, str(err))
            continue
        n = round(info.duration * sr)
        if copies is not None:  # the length after speed perturbation (resampling rounds up)
            n = math.ceil(n / copies[i].speed)
        if n < shortest:
            rejects.add(names[i], path, f"shorter than {shortest / sr:.3f} s")
            continue
        lengths[i] = n
    ids = list(lengths)
    batches = [
        [
            BatchClip(ids[j], str(paths[ids[j]]), copies[ids[j]] if copies is not None else None)
            for j in b
        ]
        for b in length_batches(
            [lengths[i] for i in ids], int(settings.batch_seconds * sr), settings.max_batch_size
        )
    ]

    remote = load_executor(executor)
    if remote.engine == "submitit":
        done = _embed_in_jobs(batches, settings, remote, sum(lengths.values()))
    else:
        device = device or pick_device()
        model = model.to(device).eval()
        if device.type == "cpu":
            torch.set_num_threads(cpu_threads())
        done = _embed_here(batches, settings, model, prep, device, sum(lengths.values()) / sr)
    results: dict[int, np.ndarray] = {}
    failed: dict[int, str] = {}
    devices: set[str] = set()
    for batch_device, embedded in done:  # in any order: jobs finish when they finish
        devices.add(batch_device)
        for i, vec in embedded:
            if isinstance(vec, str):
                failed[i] = vec
            else:
                results[i] = vec
    for i in sorted(failed):
        rejects.add(names[i], paths[i], failed[i])
    kept = sorted(results)
    if not kept:
        raise ConfigError("featurize: no clip could be embedded (see the rejected rows)")
    return Embedded(np.stack([results[i] for i in kept]), kept, ",".join(sorted(devices)))


@dataclass(frozen=True)
class BatchClip:
    """One clip of a planned batch: its index in the caller's list, its file, the augmented copy
    to make of it (None: the clip itself)."""

    index: int
    path: str
    copy: AugmentRow | None = None


# A batch's outcome: the device it ran on, and per clip its pooled vector or why it failed.
BatchResult = tuple[str, list[tuple[int, np.ndarray | str]]]


def _load_batch(batch: list[BatchClip], sr: int) -> list[tuple[BatchClip, np.ndarray | str]]:
    out: list[tuple[BatchClip, np.ndarray | str]] = []
    for clip in batch:
        try:
            out.append((clip, load_audio(clip.path, sr)[0]))
        except AudioError as err:
            out.append((clip, str(err)))
    return out


def _embed_loaded(
    loaded: list[tuple[BatchClip, np.ndarray | str]],
    settings: BackboneSettings,
    model: torch.nn.Module,
    prep: Preprocessing,
    device: torch.device,
) -> BatchResult:
    """Augment (where asked) and embed one decoded batch; failed decodes keep their reason."""
    good = [
        (c.index, augment_wave(w, prep.sample_rate, c.copy) if c.copy is not None else w)
        for c, w in loaded
        if isinstance(w, np.ndarray)
    ]
    out: list[tuple[int, np.ndarray | str]] = [
        (c.index, w) for c, w in loaded if isinstance(w, str)
    ]
    if good:
        pooled = embed_batch(model, prep, [w for _, w in good], settings.pooling, device)
        vectors = pooled.numpy().astype(np.float16)
        out += [(i, vec) for (i, _), vec in zip(good, vectors, strict=True)]
    return str(device), out


def _embed_here(
    batches: list[list[BatchClip]],
    settings: BackboneSettings,
    model: torch.nn.Module,
    prep: Preprocessing,
    device: torch.device,
    total_seconds: float,
) -> Iterator[BatchResult]:
    """The batches on this machine; the next batch is decoded in a thread while the model runs
    (augmentation stays in this thread: it sets torch's thread count)."""
    sr = prep.sample_rate
    with (
        ThreadPoolExecutor(1) as pool,
        tqdm(total=round(total_seconds, 1), desc="featurize", unit="s", disable=None) as bar,
    ):
        for loaded in prefetch(pool, lambda b: _load_batch(b, sr), batches):
            yield _embed_loaded(loaded, settings, model, prep, device)
            bar.update(round(sum(len(w) for _, w in loaded if not isinstance(w, str)) / sr, 1))


class BatchEmbedder:
    """A job's function: embed one planned batch, loading the backbone on the first call (once
    per job process: a chunk of batches shares it). Picklable: it travels as settings only."""

    def __init__(self, settings: BackboneSettings) -> None:
        self.settings = settings
        self._loaded: tuple[torch.nn.Module, Preprocessing, torch.device] | None = None

    def __getstate__(self) -> dict[str, Any]:
        return {"settings": self.settings, "_loaded": None}

    def __call__(self, batch: list[BatchClip]) -> BatchResult:
        if self._loaded is None:
            deterministic_torch()
            model, prep = load_backbone(self.settings)
            device = pick_device()
            if device.type == "cpu":
                torch.set_num_threads(cpu_threads())
            self._loaded = (model.to(device).eval(), prep, device)
        model, prep, device = self._loaded
        loaded = _load_batch(batch, prep.sample_rate)
        return _embed_loaded(loaded, self.settings, model, prep, device)


def _embed_in_jobs(
    batches: list[list[BatchClip]],
    settings: BackboneSettings,
    remote: ExecutorSettings,
    total_samples: int,
) -> Iterator[BatchResult]:
    """The batches through submitit: chunks of whole batches of about ``chunk_size`` clips, one
    process per job (its own threads or GPU, not per-file workers)."""
    mean_batch = max(1.0, sum(len(b) for b in batches) / max(1, len(batches)))
    per_job = dataclasses.replace(
        remote, workers=1, chunk_size=max(1, round(remote.chunk_size / mean_batch))
    )
    embed = BatchEmbedder(settings)
    for outcome in map_chunks(embed, batches, per_job, desc="featurize", unit="batch"):
        if outcome.error is not None:  # a bug, not a bad clip: the clips' errors are results
            raise RuntimeError(f"featurize: a batch failed in its job: {outcome.error}")
        yield outcome.result


def write_backbone_features(
    rows: Sequence[SplitRow],
    name: str,
    settings: BackboneSettings,
    out_dir: Path,
    augment: AugmentSettings | None = None,
    protocol: str | None = None,
) -> dict[str, Any]:
    """Embed the clips of ``rows`` into the feature store ``out_dir`` (plus ``rejected.csv``);
    with ``augment.copies``, also the augmented copies of the clips that are training rows in
    some fold of ``protocol`` (the store's augmented section)."""
    if not rows:
        raise ConfigError("featurize: the split has no clips")
    rejects = RejectLog("featurize")
    start = time.perf_counter()
    model, prep = load_backbone(settings)
    device = pick_device()
    features, kept, ran_on = featurize_backbone(
        [r.path for r in rows], settings, device=device, model=model, prep=prep, rejects=rejects
    )
    meta = {
        "model": name,
        "arch": settings.arch,
        "checkpoint": settings.checkpoint,
        "weights": settings.weights,
        "pooling": settings.pooling,
        "sample_rate": prep.sample_rate,
        "preprocessing": prep.as_dict(),
        "backbone": backbone_reference(settings, model),
        "device": ran_on,
    }
    save_features(out_dir, features, [rows[i] for i in kept], meta)
    rejects.write(out_dir / "rejected.csv")
    summary = {
        "model": name,
        "clips": len(kept),
        "rejected": len(rejects),
        "shape": list(features.shape),
    }
    copies = []
    if augment is not None and augment.copies:
        copies = plan_copies(training_clips(rows, protocol), augment)
    if copies:
        aug_rejects = RejectLog("featurize")
        x, done, _ = featurize_backbone(
            [c.path for c in copies],
            settings,
            device=device,
            model=model,
            prep=prep,
            rejects=aug_rejects,
            copies=copies,
        )
        save_augmented(out_dir, x, [copies[i] for i in done], aug_rejects)
        summary |= {"copies": len(done), "copies_rejected": len(aug_rejects)}
    else:
        save_augmented(out_dir, None, [])
    summary["seconds"] = round(time.perf_counter() - start, 1)
    log.info("featurize %s: %s", name, summary)
    return summary


def write_backbones_features(
    rows: Sequence[SplitRow],
    backbones: Mapping[str, BackboneSettings],
    out_root: Path,
    augment: AugmentSettings | None = None,
    protocol: str | None = None,
    *,
    cache_root: str | Path = DEFAULT_CACHE_ROOT,
) -> dict[str, dict[str, Any]]:
    """:func:`write_backbone_features` for each backbone, into ``out_root/<name>``, in one
    process: torch and transformers are imported once, not once per backbone. A backbone whose
    settings, clips and code match a cached store is placed from the cache, so that changing one
    backbone's settings computes that backbone alone."""
    clips = split_digest(rows)
    cache = StageCache(
        "featurize", {"augment": augment, "protocol": protocol}, CODE, PACKAGES, root=cache_root
    )
    summaries = {}
    for name, settings in backbones.items():
        key = params_digest({"name": name, "settings": settings, "clips": clips})
        store = out_root / name
        summaries[name] = cache.place(
            key,
            {"store": store},
            functools.partial(
                write_backbone_features, rows, name, settings, store, augment, protocol
            ),
        )
        if summaries[name]["cached"]:
            log.info("featurize %s: unchanged, placed from the cache", name)
    cache.save_live()
    return summaries
