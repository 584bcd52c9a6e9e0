"""Every clip through a frozen self-supervised backbone, once: the pooled output of every layer.

:func:`write_backbone_features` fills a feature store (:mod:`seda.features.store`) with float16
arrays of shape (n_clips, n_layers + 1, dim), so that the probes never run the backbone again.
Batches group clips of similar length (sorted, at most ``batch_seconds`` of padded audio) so that
little compute goes into padding; the next batch is decoded in a thread while the model runs.
With augmentation on, the augmented copies of the training clips (:mod:`seda.augment`) go through
the same backbone into the store's augmented section.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

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
from seda.config import build
from seda.errors import ConfigError
from seda.features.store import save_augmented, save_features
from seda.io import RejectLog
from seda.models.determinism import deterministic_torch
from seda.records import SplitRow

log = logging.getLogger(__name__)

T = TypeVar("T")


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


def featurize_backbone(
    paths: Sequence[str | Path],
    settings: BackboneSettings,
    *,
    device: torch.device | None = None,
    model: torch.nn.Module | None = None,
    prep: Preprocessing | None = None,
    rejects: RejectLog | None = None,
    copies: Sequence[AugmentRow] | None = None,
) -> tuple[np.ndarray, list[int]]:
    """Embed every readable clip: ``(features float16 (n_ok, L+1, D), indices of those clips)``.

    ``copies`` (one per path): embed those augmented copies of the clips instead. Unreadable or
    too-short clips go to ``rejects`` with their reason, never silently.
    """
    deterministic_torch()
    device = device or pick_device()
    if model is None or prep is None:
        model, prep = load_backbone(settings)
    model = model.to(device).eval()
    if device.type == "cpu":
        torch.set_num_threads(cpu_threads())
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
        [ids[j] for j in b]
        for b in length_batches(
            [lengths[i] for i in ids], int(settings.batch_seconds * sr), settings.max_batch_size
        )
    ]

    def load(batch: list[int]) -> list[tuple[int, np.ndarray | str]]:
        out: list[tuple[int, np.ndarray | str]] = []
        for i in batch:
            try:
                out.append((i, load_audio(paths[i], sr)[0]))
            except AudioError as err:
                out.append((i, str(err)))
        return out

    results: dict[int, np.ndarray] = {}
    total = sum(lengths.values()) / sr
    with (
        ThreadPoolExecutor(1) as pool,
        tqdm(total=round(total, 1), desc="featurize", unit="s", disable=None) as bar,
    ):
        for loaded in prefetch(pool, load, batches):
            good = [(i, w) for i, w in loaded if isinstance(w, np.ndarray)]
            if copies is not None:  # here, not in the loading thread: it sets torch's threads
                good = [(i, augment_wave(w, sr, copies[i])) for i, w in good]
            for i, reason in loaded:
                if isinstance(reason, str):
                    rejects.add(names[i], paths[i], reason)
            if good:
                pooled = embed_batch(model, prep, [w for _, w in good], settings.pooling, device)
                for (i, _), vec in zip(good, pooled.numpy(), strict=True):
                    results[i] = vec.astype(np.float16)
            bar.update(round(sum(lengths[i] for i, _ in loaded) / sr, 1))
    kept = sorted(results)
    if not kept:
        raise ConfigError("featurize: no clip could be embedded (see the rejected rows)")
    return np.stack([results[i] for i in kept]), kept


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
    features, kept = featurize_backbone(
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
        "device": str(device),
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
        x, done = featurize_backbone(
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
