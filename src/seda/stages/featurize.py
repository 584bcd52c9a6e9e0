"""Stage featurize: every clip of ``data/splits/splits.csv`` through a frozen backbone, once.

``python -m seda.stages.featurize <model>`` writes ``data/features/<model>/`` (seda.features):
the pooled output of every hidden layer (float16, shape (n_clips, n_layers + 1, dim)) so that the
probes of the train stage never run the backbone again. ``<model>`` = ``baseline`` stores the
classical features of :mod:`seda.baseline` as one float32 "layer".

Batches group clips of similar length (sorted, at most ``batch_seconds`` of padded audio) so that
little compute goes into padding; the next batch is decoded in a thread while the model runs.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from seda.audio import AudioError, audio_info, load_audio
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
from seda.config import ConfigError, build, load_params
from seda.entry import stage_main
from seda.features import INDEX_COLUMNS, save_features
from seda.io import RejectLog, read_csv

log = logging.getLogger(__name__)

SPLITS_CSV = Path("data/splits/splits.csv")
FEATURES_DIR = Path("data/features")
BASELINE = "baseline"


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


def featurize_backbone(
    paths: Sequence[str | Path],
    settings: BackboneSettings,
    *,
    device: torch.device | None = None,
    model: torch.nn.Module | None = None,
    prep: Preprocessing | None = None,
    rejects: RejectLog | None = None,
) -> tuple[np.ndarray, list[int]]:
    """Embed every readable clip: ``(features float16 (n_ok, L+1, D), indices of those clips)``.

    Unreadable or too-short clips go to ``rejects`` with their reason, never silently.
    """
    device = device or pick_device()
    if model is None or prep is None:
        model, prep = load_backbone(settings)
    model = model.to(device).eval()
    if device.type == "cpu":
        torch.set_num_threads(cpu_threads())
    rejects = rejects if rejects is not None else RejectLog("featurize")
    shortest = min_samples(model)
    sr = prep.sample_rate

    lengths: dict[int, int] = {}
    for i, path in enumerate(paths):
        try:
            info = audio_info(path)
        except AudioError as err:
            rejects.add(Path(path).stem, path, str(err))
            continue
        n = round(info.duration * sr)
        if n < shortest:
            rejects.add(Path(path).stem, path, f"shorter than {shortest / sr:.3f} s")
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
        for loaded in _prefetch(pool, load, batches):
            good = [(i, w) for i, w in loaded if isinstance(w, np.ndarray)]
            for i, reason in loaded:
                if isinstance(reason, str):
                    rejects.add(Path(paths[i]).stem, paths[i], reason)
            if good:
                pooled = embed_batch(model, prep, [w for _, w in good], settings.pooling, device)
                for (i, _), vec in zip(good, pooled.numpy(), strict=True):
                    results[i] = vec.astype(np.float16)
            bar.update(round(sum(lengths[i] for i, _ in loaded) / sr, 1))
    kept = sorted(results)
    if not kept:
        raise ConfigError("featurize: no clip could be embedded (see the rejected rows)")
    return np.stack([results[i] for i in kept]), kept


def _prefetch(pool: ThreadPoolExecutor, fn: Any, batches: list[list[int]]) -> Iterator[Any]:
    """Yield ``fn(batch)`` in order while the next batch is already being loaded."""
    pending = pool.submit(fn, batches[0]) if batches else None
    for k in range(len(batches)):
        assert pending is not None
        result = pending.result()
        pending = pool.submit(fn, batches[k + 1]) if k + 1 < len(batches) else None
        yield result


def backbone_settings(params: dict[str, Any], model_name: str) -> BackboneSettings:
    backbones = params.get("backbones") or {}
    if model_name not in backbones:
        known = ", ".join([*sorted(backbones), BASELINE]) or BASELINE
        raise ConfigError(f"model {model_name!r} is not configured under backbones: use {known}")
    return build(BackboneSettings, backbones[model_name], f"backbones.{model_name}")


def run(params: dict[str, Any], model_name: str) -> dict[str, Any]:
    """Featurize ``data/splits/splits.csv`` for one model into ``data/features/<model>/``."""
    if not SPLITS_CSV.exists():
        raise ConfigError(f"{SPLITS_CSV} not found: run the split stage first")
    rows = read_csv(SPLITS_CSV)
    if not rows:
        raise ConfigError(f"{SPLITS_CSV} has no clips")
    paths = [r["path"] for r in rows]
    out_dir = FEATURES_DIR / model_name
    rejects = RejectLog("featurize")
    start = time.perf_counter()
    if model_name == BASELINE:
        features, kept, meta = _featurize_baseline(params, paths, rejects)
    else:
        settings = backbone_settings(params, model_name)
        model, prep = load_backbone(settings)
        device = pick_device()
        features, kept = featurize_backbone(
            paths, settings, device=device, model=model, prep=prep, rejects=rejects
        )
        meta = {
            "model": model_name,
            "arch": settings.arch,
            "checkpoint": settings.checkpoint,
            "weights": settings.weights,
            "pooling": settings.pooling,
            "sample_rate": prep.sample_rate,
            "preprocessing": prep.as_dict(),
            "backbone": backbone_reference(settings, model),
            "device": str(device),
        }
    seconds = time.perf_counter() - start
    meta["seconds"] = round(seconds, 3)
    index = [{c: rows[i].get(c, "") for c in INDEX_COLUMNS} for i in kept]
    save_features(out_dir, features, index, meta)
    rejects.write(out_dir / "rejected.csv")
    summary = {
        "model": model_name,
        "clips": len(kept),
        "rejected": len(rejects),
        "shape": list(features.shape),
        "seconds": round(seconds, 1),
    }
    log.info("featurize %s: %s", model_name, summary)
    return summary


def _featurize_baseline(
    params: dict[str, Any], paths: list[str], rejects: RejectLog
) -> tuple[np.ndarray, list[int], dict[str, Any]]:
    from seda import baseline

    settings = build(baseline.BaselineSettings, params.get("baseline"), "baseline")
    errors: dict[str, str] = {}
    x = baseline.featurize_clips(paths, settings, params.get("workers", 0), errors=errors)
    x = np.asarray(x, dtype=np.float32)
    if x.ndim != 2 or x.shape[0] != len(paths):
        raise ValueError(
            f"baseline.featurize_clips returned shape {x.shape} for {len(paths)} clips"
        )
    kept = []
    for i, p in enumerate(paths):
        if str(p) in errors:
            rejects.add(Path(p).stem, p, errors[str(p)])
        elif not np.all(np.isfinite(x[i])):
            rejects.add(Path(p).stem, p, "baseline features are not finite")
        else:
            kept.append(i)
    meta = {
        "model": BASELINE,
        "checkpoint": None,
        "weights": None,
        "pooling": None,
        "sample_rate": getattr(settings, "sample_rate", None),
        "settings": dataclasses.asdict(settings),
    }
    return x[kept][:, None, :], kept, meta


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m seda.stages.featurize", description=__doc__)
    parser.add_argument("model", help="hubert | wav2vec2 | wavlm | data2vec | baseline")
    args = parser.parse_args(argv)
    return stage_main("featurize", lambda: run(load_params(), args.model))


if __name__ == "__main__":
    raise SystemExit(main())
