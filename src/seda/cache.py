"""Per-file result cache keyed by input content, the stage's settings and the code that computes.

DVC reruns a whole stage when any input changes; this cache makes that rerun touch only the new
or changed files, and in the stages that run every backbone in one process (featurize, train) only
the backbones whose own settings or inputs changed (:meth:`StageCache.place`). Entries live under
``data/cache/<stage>/<digest>/<key>/`` (git- and DVC-ignored), where the digest covers the
settings *and* a fingerprint of the code (:func:`seda.codefp.code_fingerprint`: the source of the
library modules the entry was computed with, plus the versions of the packages whose numbers it
uses). Edit that code and every lookup misses, so a cache can never hand back results of older
code. An entry is complete only once its ``result.json`` exists, written last and atomically: a
killed run leaves at worst an orphan folder that the next run overwrites. Each run records which
entries its output uses (``live.json``), so ``seda cache prune`` can remove the rest.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from seda.codefp import code_fingerprint
from seda.io import params_digest, write_json_atomic

DEFAULT_CACHE_ROOT = Path("data/cache")
LIVE_FILE = "live.json"


class StageCache:
    """The cache of one stage for one combination of settings and code."""

    def __init__(
        self,
        stage: str,
        settings: Any,
        code: Iterable[str],
        packages: Iterable[str] = (),
        root: str | Path = DEFAULT_CACHE_ROOT,
    ) -> None:
        fingerprint = code_fingerprint(code, packages)
        self.stage_dir = Path(root) / stage
        self.digest = params_digest({"settings": settings, "code": fingerprint})
        self.root = self.stage_dir / self.digest
        self.used: set[str] = set()

    def entry_dir(self, key: str) -> Path:
        return self.root / key[:2] / key

    def load(self, key: str) -> dict[str, Any] | None:
        """The stored result for ``key``, or None when absent or incomplete."""
        marker = self.entry_dir(key) / "result.json"
        if not marker.exists():
            return None
        try:
            result = json.loads(marker.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError):
            return None
        files = [self.entry_dir(key) / name for name in result.get("files", [])]
        if not all(f.exists() for f in files):
            return None
        self.used.add(key)
        return result

    def begin(self, key: str) -> Path:
        """A clean folder for a new entry (an older partial one is removed)."""
        folder = self.entry_dir(key)
        if folder.exists():
            shutil.rmtree(folder)
        folder.mkdir(parents=True)
        return folder

    def commit(self, key: str, result: dict[str, Any]) -> None:
        write_json_atomic(self.entry_dir(key) / "result.json", result)
        self.used.add(key)

    def place(
        self, key: str, outputs: Mapping[str, Path], make: Callable[[], dict[str, Any]]
    ) -> dict[str, Any]:
        """Put entry ``key``'s outputs at ``outputs`` (a name per file or folder): from the cache
        when stored, else made by ``make`` and stored. Returns make's summary, with ``cached``
        saying which; made and placed outputs are the same bytes."""
        for path in outputs.values():
            _remove(path)
        stored = self.load(key)
        if stored is None:
            summary = make()
            folder = self.begin(key)
            files = []
            for name, path in outputs.items():
                inner = [p for p in sorted(path.rglob("*")) if p.is_file()] if path.is_dir() else []
                for src in inner or [path]:
                    rel = "/".join([name, *src.relative_to(path).parts])
                    link_or_copy(src, folder / rel)
                    files.append(rel)
            self.commit(key, {"files": files, "summary": summary})
            return summary | {"cached": False}
        for rel in stored["files"]:
            name, _, inner_path = rel.partition("/")
            dst = outputs[name] / inner_path if inner_path else outputs[name]
            link_or_copy(self.entry_dir(key) / rel, dst)
        return stored["summary"] | {"cached": True}

    def save_live(self) -> None:
        """Record the entries this run's output uses (what ``seda cache prune`` keeps)."""
        write_json_atomic(
            self.stage_dir / LIVE_FILE, {"digest": self.digest, "keys": sorted(self.used)}
        )


@dataclass(frozen=True)
class PruneReport:
    entries: int
    bytes: int


def prune(root: str | Path = DEFAULT_CACHE_ROOT, dry_run: bool = False) -> PruneReport:
    """Remove every entry no current output uses; a stage that never recorded ``live.json`` is
    left alone (nothing is known about it)."""
    entries = freed = 0
    root = Path(root)
    if not root.is_dir():
        return PruneReport(0, 0)
    for stage_dir in sorted(p for p in root.iterdir() if p.is_dir()):
        live_file = stage_dir / LIVE_FILE
        if not live_file.exists():
            continue
        live = json.loads(live_file.read_text(encoding="utf-8"))
        keep = set(live.get("keys", []))
        for digest_dir in sorted(p for p in stage_dir.iterdir() if p.is_dir()):
            same = digest_dir.name == live.get("digest")
            for entry in sorted(digest_dir.glob("*/*")):
                if entry.is_dir() and not (same and entry.name in keep):
                    entries += 1
                    freed += _size(entry)
                    if not dry_run:
                        shutil.rmtree(entry)
            if not dry_run:
                _remove_empty_dirs(digest_dir)
    return PruneReport(entries, freed)


def _remove_empty_dirs(folder: Path) -> None:
    for sub in sorted((p for p in folder.rglob("*") if p.is_dir()), reverse=True):
        if not any(sub.iterdir()):
            sub.rmdir()
    if not any(folder.iterdir()):
        folder.rmdir()


def _size(folder: Path) -> int:
    return sum(f.stat().st_size for f in folder.rglob("*") if f.is_file())


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif path.exists() or path.is_symlink():
        path.unlink()


def link_or_copy(src: str | Path, dst: str | Path) -> None:
    """Place ``src`` at ``dst`` cheaply: hard link when possible, else copy (atomic either way)."""
    src, dst = Path(src), Path(dst)
    if dst.exists() and os.path.samefile(src, dst):
        return
    dst.parent.mkdir(parents=True, exist_ok=True)
    tmp = dst.with_name(f".{dst.name}.tmp")
    if tmp.exists():
        tmp.unlink()
    try:
        os.link(src, tmp)
    except OSError:
        shutil.copy2(src, tmp)
    os.replace(tmp, dst)
