"""Collect a whole dataset: pick the collector for ``dataset.kind``, write manifest and failures;
list what the dataset reads (:func:`index_corpus`)."""

from __future__ import annotations

import hashlib
import os
import time
from collections import Counter
from dataclasses import replace
from pathlib import Path
from typing import Any

from seda.collect.failures import Collected
from seda.collect.folder import FolderSettings, collect_folder
from seda.collect.index import IndexRow, file_entry, index_rows, scan_tree
from seda.collect.sources import CollectError
from seda.collect.ytdlp import YoutubeSettings, collect_youtube, validate_ytdlp
from seda.config import build
from seda.errors import ConfigError, InputMissingError
from seda.io import nothing_kept
from seda.records import ItemRow, write_records

MANIFEST_NAME = "manifest.csv"
FAILURES_NAME = "failures.csv"


def build_dataset_settings(
    section: dict[str, Any] | None, retry_failed: bool = False
) -> YoutubeSettings | FolderSettings:
    """Typed settings of the ``dataset`` section (its ``kind`` says which); ``retry_failed``
    (``--retry-failed``) overrides ``dataset.ytdlp.retry_failed``."""
    section = dict(section or {})
    kind = section.get("kind")
    if kind == "youtube":
        settings = build(YoutubeSettings, section, "dataset")
        validate_ytdlp(settings.ytdlp)
        if retry_failed:
            settings = replace(settings, ytdlp=replace(settings.ytdlp, retry_failed=True))
        return settings
    if kind == "folder":
        return build(FolderSettings, section, "dataset")
    raise ConfigError(f"dataset.kind must be youtube or folder (got {kind!r})")


def write_outputs(collected: Collected, out_dir: Path) -> None:
    """``manifest.csv``, ``failures.csv`` and the (possibly empty) ``audio/`` folder."""
    write_records(out_dir / MANIFEST_NAME, collected.rows, ItemRow)
    collected.failures.write(out_dir / FAILURES_NAME)
    (out_dir / "audio").mkdir(parents=True, exist_ok=True)


def collect_dataset(
    settings: YoutubeSettings | FolderSettings,
    out_dir: Path,
    cache_dir: Path,
    workers: int | None = None,
) -> dict[str, Any]:
    """Collect a dataset into ``out_dir`` (manifest, failures, audio); return a summary."""
    started = time.perf_counter()
    out_dir, cache_dir = Path(out_dir), Path(cache_dir)
    if isinstance(settings, YoutubeSettings):
        collected = collect_youtube(settings, out_dir, cache_dir)
    else:
        collected = collect_folder(settings, cache_dir, workers)
    write_outputs(collected, out_dir)
    if not collected.rows:
        raise CollectError(nothing_collected(settings, collected, out_dir / FAILURES_NAME))
    labels = Counter(r.label for r in collected.rows)
    return {
        "dataset": settings.name,
        "kind": settings.kind,
        "items": len(collected.rows),
        "failures": len(collected.failures),
        "labels": dict(sorted(labels.items())),
        "speakers": len({r.speaker for r in collected.rows}),
        "seconds": round(sum(float(r.duration or 0.0) for r in collected.rows), 1),
        "elapsed_seconds": round(time.perf_counter() - started, 2),
        **collected.stats,
    }


def nothing_collected(
    settings: YoutubeSettings | FolderSettings, collected: Collected, failures_file: Path
) -> str:
    """Why a dataset gave no item, in one sentence: the later stages would only say that there
    is nothing to cut or split."""
    folder = isinstance(settings, FolderSettings)
    where = settings.root if folder else settings.sources
    if not collected.failures:
        if folder:
            kinds = ", ".join(settings.extensions)
            return f"no item collected: no audio file ({kinds}) under {where}"
        return f"no item collected: {where} lists no source"
    return nothing_kept(f"item collected from {where}", collected.failures, failures_file)


def index_corpus(
    settings: YoutubeSettings | FolderSettings, cache_dir: Path | None = None
) -> list[IndexRow]:
    """What the dataset reads, one row per file (path, size, sha256, ok|odd): every entry under a
    folder dataset's root; a download dataset's sources table and, when it may name local files
    (the demo), the files under its root. Opens regular files only (to hash them; hashes cached
    in ``cache_dir`` by their stat stamp), so no odd entry can hang it."""
    if isinstance(settings, FolderSettings):
        root = Path(settings.root)
        if not settings.root or not root.is_dir():
            raise InputMissingError(f"dataset root not found: {settings.root or '(empty)'}")
        entries = scan_tree(root)
        if settings.labels_csv:
            entries.append(file_entry(root / settings.labels_csv))
    else:
        entries = [file_entry(Path(settings.sources))]
        root = Path(settings.root)
        if settings.allow_file_urls and root.is_dir():
            entries.extend(scan_tree(root))
    cache_file = None
    if cache_dir is not None:
        key = hashlib.sha256(os.path.abspath(root).encode()).hexdigest()[:16]
        cache_file = Path(cache_dir) / f"sha256-{key}.json"
    return index_rows(entries, cache_file)
