"""Folder datasets: any labelled corpus on disk, referenced in place (never copied or modified).

Label and speaker come from the named groups ``label`` and ``speaker`` of ``pattern`` (matched
against the POSIX path relative to ``root``) or from ``labels_csv`` (``path,label[,speaker]``,
paths relative to ``root``). Every file is checked and hashed (sha256), with a probe cache keyed
by path and stat stamp (size, mtime, ctime, inode: :func:`seda.io.stat_stamp`); bad files and
odd entries (:mod:`seda.collect.index`) become failure rows. Ids are
``<dataset name>-<relative path>`` slugs; one that collides with an earlier id gets a short hash
suffix. Manifest paths keep the root as written (``../shared/data/...``).
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from seda.audio import AudioError, FfmpegMissingError, audio_info
from seda.collect.environment import read_json
from seda.collect.failures import PERMANENT, Collected, FailureLog
from seda.collect.index import Entry, scan_tree
from seda.collect.sources import CollectError, canonical_label, plain_slug
from seda.errors import ConfigError, InputMissingError
from seda.io import read_csv, rel_to_cwd, sha256_file, write_json_atomic
from seda.parallel import map_files
from seda.records import UNKNOWN_SPEAKER, ItemRow


@dataclass
class FolderSettings:
    kind: str = "folder"
    name: str = "folder"
    root: str = ""
    pattern: str | None = None
    labels_csv: str | None = None
    label_map: dict[str, str | None] = field(default_factory=dict)
    extensions: list[str] = field(
        default_factory=lambda: [".wav", ".flac", ".ogg", ".mp3", ".m4a", ".opus", ".aiff"]
    )
    # Clean reference voices by name, for a synthetic corpus only (the demo: {demo: <folder>}):
    # dvc.yaml's separation_quality@<name> stage scores separation against them. Real
    # recordings have none, and without any that stage does not exist.
    references: dict[str, str] = field(default_factory=dict)


def probe_file(path: str) -> dict[str, Any]:
    """Header check and sha256 of one file (worker function: top level, picklable)."""
    info = audio_info(path)
    return {"sha256": sha256_file(path), "duration": round(info.duration, 3)}


def collect_folder(
    settings: FolderSettings, cache_dir: Path, workers: int | None = None
) -> Collected:
    """Reference every labelled audio file under ``settings.root`` (in place, with sha256);
    probes are cached in ``cache_dir``. Odd entries (:func:`seda.collect.index.scan_tree`: loops,
    dangling links, pipes, sockets, devices, unreadable files) are failure rows, never opened."""
    root = Path(settings.root)
    if not settings.root or not root.is_dir():
        raise InputMissingError(f"dataset root not found: {settings.root or '(empty)'}")
    by_csv = _labels_from_csv(root / settings.labels_csv) if settings.labels_csv else None
    regex = _compile_pattern(settings.pattern, need_label=by_csv is None)
    extensions = {e.lower() if e.startswith(".") else f".{e.lower()}" for e in settings.extensions}
    failures = FailureLog()
    entries = scan_tree(root)
    for entry in entries:
        if entry.odd:
            failures.add("", rel_to_cwd(entry.path), entry.odd, kind=PERMANENT)
    files = [e for e in entries if not e.odd]
    audio = [e for e in files if PurePosixPath(e.rel).suffix.lower() in extensions]
    candidates: list[tuple[Entry, str, str]] = []
    for entry in audio:
        found = _label_of(entry.rel, regex, by_csv, settings.label_map)
        if isinstance(found, str):
            failures.add("", rel_to_cwd(entry.path), found, kind=PERMANENT)
            continue
        label, speaker = found
        candidates.append((entry, label, speaker))
    if by_csv is not None:
        present = {e.rel for e in audio} | {e.rel for e in entries if e.odd}
        for rel in sorted(set(by_csv) - present):
            failures.add(
                "", rel, f"listed in labels_csv but not found under {root}", kind=PERMANENT
            )
    probes = _probe_cached(
        [c[0] for c in candidates], cache_dir / f"folder-{_path_key(root)}.json", workers
    )
    rows = []
    used: set[str] = set()
    for entry, label, speaker in candidates:
        probe = probes.get(str(entry.path))
        if isinstance(probe, str) or probe is None:
            failures.add("", rel_to_cwd(entry.path), probe or "not probed", kind=PERMANENT)
            continue
        rel = entry.rel
        rid = _unique(plain_slug(f"{settings.name}-{_stem_path(rel)}", 120), rel, used)
        rows.append(
            ItemRow(
                id=rid,
                path=rel_to_cwd(entry.path),
                label=label,
                speaker=speaker,
                source_id=rid,
                title=rel,
                duration=probe["duration"],
                sha256=probe["sha256"],
                origin="folder",
            )
        )
    stats = {
        "files": len(files),
        "audio_files": len(audio),
        "other_files": len(files) - len(audio),
        "odd_entries": len(entries) - len(files),
    }
    return Collected(rows, failures, stats)


def _labels_from_csv(path: Path) -> dict[str, dict[str, str]]:
    if not path.is_file():
        raise InputMissingError(f"labels_csv not found: {path}")
    rows = read_csv(path)
    if rows and not {"path", "label"} <= set(rows[0]):
        raise CollectError(f"{path}: needs columns path,label[,speaker]")
    return {PurePosixPath(r["path"].strip().replace("\\", "/")).as_posix(): r for r in rows}


def _map_label(raw: str, label_map: dict[str, str | None]) -> str | None:
    """Apply label_map (exact key first, then case-insensitive); None means drop."""
    if raw in label_map:
        return label_map[raw]
    lowered = {str(k).lower(): v for k, v in label_map.items()}
    return lowered.get(raw.lower(), raw)


def _compile_pattern(pattern: str | None, need_label: bool) -> re.Pattern[str] | None:
    if not pattern:
        if need_label:
            raise ConfigError("dataset needs a pattern with a (?P<label>...) group or labels_csv")
        return None
    try:
        regex = re.compile(pattern)
    except re.error as err:
        raise ConfigError(f"dataset.pattern is not a valid regular expression: {err}") from err
    if need_label and "label" not in regex.groupindex:
        raise ConfigError("dataset.pattern needs a named group (?P<label>...) or use labels_csv")
    return regex


def _label_of(
    rel: str,
    regex: re.Pattern[str] | None,
    by_csv: dict[str, dict[str, str]] | None,
    label_map: dict[str, str | None],
) -> tuple[str, str] | str:
    """(label, speaker) of a file, or the reason it is skipped."""
    groups: dict[str, str] = {}
    if regex is not None:
        m = regex.search(rel)
        if m:
            groups = {k: v for k, v in m.groupdict().items() if v is not None}
        elif by_csv is None:
            return f"path does not match dataset.pattern {regex.pattern!r}"
    if by_csv is not None:
        entry = by_csv.get(rel)
        if entry is None:
            return "not listed in labels_csv"
        groups["label"] = entry["label"].strip()
        if (entry.get("speaker") or "").strip():
            groups["speaker"] = entry["speaker"].strip()
    raw = groups.get("label", "")
    mapped = _map_label(raw, label_map)
    if mapped is None:
        return f"label {raw!r} dropped by label_map"
    try:
        label = canonical_label(mapped)
    except ValueError as err:
        return str(err)
    return label, groups.get("speaker") or UNKNOWN_SPEAKER


def _stem_path(rel: str) -> str:
    return str(PurePosixPath(rel).with_suffix("")).replace("/", "-")


def _unique(rid: str, original: str, used: set[str]) -> str:
    """Folder ids are readable slugs; the rare collision (case, accents) gets a hash suffix."""
    if rid in used:
        rid = f"{rid}-{hashlib.sha256(original.encode('utf-8')).hexdigest()[:6]}"
    used.add(rid)
    return rid


def _path_key(path: Path) -> str:
    return hashlib.sha256(str(path.resolve()).encode()).hexdigest()[:16]


def _probe_cached(
    entries: list[Entry], cache_file: Path, workers: int | None
) -> dict[str, dict[str, Any] | str]:
    """sha256 + duration per file, reusing entries whose path and stamp
    (:func:`seda.io.stat_stamp`) did not change."""
    cached = read_json(cache_file) or {}
    results: dict[str, dict[str, Any] | str] = {}
    fresh: dict[str, Any] = {}
    stamps = {str(e.path): list(e.stamp) for e in entries}
    todo = []
    for key, stamp in stamps.items():
        entry = cached.get(key)
        if entry and entry.get("stamp") == stamp:
            results[key] = entry["probe"]
            fresh[key] = entry
        else:
            todo.append(key)
    for outcome in map_files(
        probe_file,
        todo,
        workers=workers,
        desc="collect: hashing",
        known_errors=(AudioError, FfmpegMissingError, OSError),
    ):
        if outcome.error is not None:
            results[outcome.item] = outcome.error
            continue
        results[outcome.item] = outcome.result
        # The stamp seen before hashing: a file changed meanwhile is hashed again next run.
        fresh[outcome.item] = {"stamp": stamps[outcome.item], "probe": outcome.result}
    if todo or len(fresh) != len(cached):
        write_json_atomic(cache_file, fresh)
    return results
