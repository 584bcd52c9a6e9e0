"""Clean every item of a manifest into clips by label, through the per-file cache.

Results are cached per input content, settings, and the code and package versions that cut the
clips (:class:`seda.cache.StageCache`), so a rerun after adding files decodes only the new ones,
and editing the clip code cleans everything again.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from seda.audio import AudioError, FfmpegMissingError
from seda.cache import DEFAULT_CACHE_ROOT, StageCache, link_or_copy
from seda.io import RejectLog, rel_to_cwd, sha256_file
from seda.parallel import map_files
from seda.records import ID_PATTERN, ClipRow, ItemRow
from seda.segment.clips import CleanSettings, cut_clips
from seda.segment.vad import VadSettings

# The name of this step in reject logs and in the cache.
STEP = "clean"
# Extra columns of rejected.csv: where in the item a rejected clip was.
REJECT_EXTRA = ("start", "end")
# What a cache entry is computed with (besides the input and the settings).
CODE = ("seda.segment.clips",)
PACKAGES = (
    "numpy",
    "scipy",
    "soundfile",
    "soxr",
    "noisereduce",
    "pyloudnorm",
    "silero-vad",
    "onnxruntime",
    "pydub",
    "imageio-ffmpeg",
)


def cache_settings(clean: CleanSettings, vad: VadSettings) -> dict[str, Any]:
    """Everything that changes a file's clips: the cache key besides the input's sha256."""
    return {"clean": asdict(clean), "vad": asdict(vad)}


@dataclass(frozen=True)
class ItemTask:
    item_id: str
    path: str
    key: str
    folder: str
    clean: CleanSettings
    vad: VadSettings


def clean_item(task: ItemTask) -> dict[str, Any]:
    """Worker: clean one input into its (begun) cache folder; return the result record.

    A file that is bad as a whole gives ``error`` (cached too: the same bytes stay bad).
    """
    return cut_clips(task.path, task.folder, task.clean, task.vad)


def clean_manifest(
    rows: list[ItemRow],
    clean: CleanSettings,
    vad: VadSettings,
    out_dir: str | Path,
    *,
    workers: int | None = 0,
    cache_root: str | Path = DEFAULT_CACHE_ROOT,
) -> tuple[list[ClipRow], RejectLog, dict[str, Any]]:
    """Clip every row into ``out_dir/<label>/<id>_<k>.wav``; return (clips, rejects, summary).

    Clips of items no longer produced are removed from ``out_dir``; the cache records which
    entries the output uses.
    """
    out_dir = Path(out_dir)
    cache = StageCache(STEP, cache_settings(clean, vad), CODE, PACKAGES, root=cache_root)
    rejects = RejectLog(STEP)
    by_key: dict[str, dict[str, Any]] = {}
    keys: dict[str, str] = {}
    tasks: dict[str, ItemTask] = {}
    todo: list[ItemRow] = []
    for row in rows:
        key = _key_for(row, rejects, keys)
        if key is None:
            continue
        keys[row.id] = key
        todo.append(row)
        if key in by_key or key in tasks:
            continue  # identical bytes under another id: cleaned once
        cached = cache.load(key)
        if cached is not None:
            by_key[key] = cached
        else:
            folder = str(cache.begin(key))
            tasks[key] = ItemTask(row.id, str(Path(row.path).resolve()), key, folder, clean, vad)
    n_cached = sum(1 for key in keys.values() if key in by_key)
    for outcome in map_files(
        clean_item,
        list(tasks.values()),
        workers=workers,
        desc=STEP,
        known_errors=(AudioError, FfmpegMissingError),
    ):
        if outcome.error is not None:
            by_key[outcome.item.key] = {"clips": [], "rejects": [], "error": outcome.error}
        else:
            cache.commit(outcome.item.key, outcome.result)
            by_key[outcome.item.key] = outcome.result
    results = {item_id: by_key[key] for item_id, key in keys.items() if key in by_key}
    clip_rows = _materialise(todo, results, keys, cache, out_dir, rejects)
    cache.save_live()
    summary = {
        "items": len(rows),
        "decoded": len(tasks),
        "cached": n_cached,
        "rejected_items": sum(1 for r in rejects.rows if r.get("start") in (None, "")),
        "clips": len(clip_rows),
        "rejected_clips": sum(1 for r in rejects.rows if r.get("start") not in (None, "")),
        "input_seconds": round(sum(r.get("input_seconds", 0.0) for r in results.values()), 3),
        "clip_seconds": round(sum(r.duration for r in clip_rows), 3),
    }
    return clip_rows, rejects, summary


def _key_for(row: ItemRow, rejects: RejectLog, seen: dict[str, str]) -> str | None:
    """The cache key (content sha256) of a manifest row, or None after logging why it is
    unusable."""
    if not ID_PATTERN.fullmatch(row.id):
        rejects.add(row.id, row.path, "id is not made of [a-z0-9_-]")
        return None
    if row.id in seen:
        rejects.add(row.id, row.path, "duplicate id in the input manifest")
        return None
    if not ID_PATTERN.fullmatch(row.label):
        rejects.add(row.id, row.path, f"label {row.label!r} is not a canonical label ([a-z0-9_-])")
        return None
    if not Path(row.path).is_file():
        rejects.add(row.id, row.path, "file not found")
        return None
    return row.sha256.strip().lower() or sha256_file(row.path)


def _materialise(
    rows: list[ItemRow],
    results: dict[str, dict[str, Any]],
    keys: dict[str, str],
    cache: StageCache,
    out_dir: Path,
    rejects: RejectLog,
) -> list[ClipRow]:
    """Link each item's cached clips into ``out_dir/<label>/`` in manifest order; log rejects;
    remove clips left from earlier runs that are no longer produced."""
    clip_rows: list[ClipRow] = []
    for row in rows:
        result = results.get(row.id)
        if result is None:
            continue
        if result.get("error"):
            rejects.add(row.id, row.path, result["error"])
            continue
        for rej in result["rejects"]:
            clip_id = f"{row.id}_{rej['index']:03d}"
            rejects.add(clip_id, row.path, rej["reason"], start=rej["start"], end=rej["end"])
        entry = cache.entry_dir(keys[row.id])
        for clip in result["clips"]:
            clip_id = f"{row.id}_{clip['index']:03d}"
            dst = out_dir / row.label / f"{clip_id}.wav"
            link_or_copy(entry / clip["file"], dst)
            clip_rows.append(
                ClipRow(
                    clip_id=clip_id,
                    path=rel_to_cwd(dst),
                    label=row.label,
                    speaker=row.speaker,
                    source_id=row.source_id,
                    item_id=row.id,
                    source_url=row.source_url,
                    start=clip["start"],
                    end=clip["end"],
                    duration=clip["duration"],
                    sha256=clip["sha256"],
                )
            )
    keep = {Path(r.path).resolve() for r in clip_rows}
    for old in out_dir.glob("*/*.wav"):
        if old.resolve() not in keep:
            old.unlink()
    return clip_rows
