"""Separate every item of a manifest into a folder of voice stems, through the per-file cache.

Stems are cached per input sha256, backend settings and the code and package versions the
backend computes with (:class:`seda.cache.StageCache`), so a rerun after adding one video
separates only that video, and editing the separation code separates everything again.
"""

from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path
from typing import Any

from seda.cache import DEFAULT_CACHE_ROOT, StageCache, link_or_copy
from seda.io import RejectLog, rel_to_cwd, sha256_file
from seda.records import ItemRow
from seda.separation.backends import make_backend
from seda.separation.common import Job

# The name of this step in reject logs and in the cache.
STEP = "separate"
STEM = "voice.wav"


def separate_manifest(
    rows: list[ItemRow],
    settings: Any,
    out_dir: str | Path,
    *,
    workers: int | None = None,
    cache_root: str | Path = DEFAULT_CACHE_ROOT,
) -> tuple[list[ItemRow], RejectLog, dict[str, int]]:
    """Separate every row into ``out_dir/<id>.wav``; return (output rows, rejects, counts).

    Output rows are the input rows with ``path`` (and ``sha256``) replaced by the voice stem's,
    or the input rows unchanged for a backend that writes no audio. Stems of items no longer in
    ``rows`` are removed from ``out_dir``; the cache records which entries the output uses.
    """
    out_dir = Path(out_dir)
    backend = make_backend(settings, workers)
    cache = StageCache(STEP, settings, backend.code, backend.packages, root=cache_root)
    rejects = RejectLog(STEP)
    counts = {"items": len(rows), "separated": 0, "cached": 0, "rejected": 0}
    if not backend.writes_audio:
        errors = backend.separate_batch([(Path(r.path), Path(r.path)) for r in rows])
        kept = []
        for row, err in zip(rows, errors, strict=True):
            if err:
                rejects.add(row.id, row.path, err)
            else:
                kept.append(row)
        counts["rejected"] = len(rejects)
        cache.save_live()
        return kept, rejects, counts

    keys: dict[str, str] = {}
    todo: dict[str, Job] = {}
    for row in rows:
        try:
            key = sha256_file(row.path)
        except OSError as err:
            rejects.add(row.id, row.path, f"cannot read input: {err.strerror or err}")
            continue
        keys[row.id] = key
        if cache.load(key) is None and key not in todo:
            todo[key] = (Path(row.path), cache.begin(key) / STEM)
    failed: dict[str, str] = {}
    if todo:
        errors = backend.separate_batch(list(todo.values()))
        for key, err in zip(list(todo), errors, strict=True):
            if err is None:
                sha = sha256_file(cache.entry_dir(key) / STEM)
                cache.commit(key, {"files": [STEM], "backend": settings.backend, "sha256": sha})
            else:
                failed[key] = err
                shutil.rmtree(cache.entry_dir(key), ignore_errors=True)
    out_rows: list[ItemRow] = []
    for row in rows:
        key = keys.get(row.id)
        if key is None:
            continue
        if key in failed:
            rejects.add(row.id, row.path, failed[key])
            continue
        dst = out_dir / f"{row.id}.wav"
        link_or_copy(cache.entry_dir(key) / STEM, dst)
        # The stem's own hash: the clean stage keys its cache on it, so another separation
        # backend or setting can never reuse clips cut from a different stem.
        stem_sha = (cache.load(key) or {}).get("sha256") or sha256_file(dst)
        out_rows.append(dataclasses.replace(row, path=rel_to_cwd(dst), sha256=stem_sha))
        counts["separated" if key in todo else "cached"] += 1
    _remove_stale(out_dir, {out_dir / f"{r.id}.wav" for r in out_rows})
    counts["rejected"] = len(rejects)
    cache.save_live()
    return out_rows, rejects, counts


def _remove_stale(out_dir: Path, keep: set[Path]) -> None:
    """Voice stems of items no longer in the manifest would otherwise linger in the DVC output."""
    if not out_dir.exists():
        return
    keep_resolved = {p.resolve() for p in keep}
    for wav in out_dir.glob("*.wav"):
        if wav.resolve() not in keep_resolved:
            wav.unlink()
