"""Per-file result cache keyed by input content hash and the stage's settings.

DVC reruns a whole stage when any input changes; this cache makes that rerun touch only the new
or changed files. Entries live under ``data/cache/<stage>/<settings digest>/`` (git- and
DVC-ignored); an entry is complete only once its ``result.json`` exists, which is written last and
atomically, so a killed run leaves at worst an orphan folder that the next run overwrites.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

from seda.io import params_digest, write_json_atomic

DEFAULT_CACHE_ROOT = Path("data/cache")


class StageCache:
    def __init__(self, stage: str, settings: Any, root: str | Path = DEFAULT_CACHE_ROOT) -> None:
        self.root = Path(root) / stage / params_digest(settings)

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
        return result if all(f.exists() for f in files) else None

    def begin(self, key: str) -> Path:
        """A clean folder for a new entry (an older partial one is removed)."""
        folder = self.entry_dir(key)
        if folder.exists():
            shutil.rmtree(folder)
        folder.mkdir(parents=True)
        return folder

    def commit(self, key: str, result: dict[str, Any]) -> None:
        write_json_atomic(self.entry_dir(key) / "result.json", result)


def link_or_copy(src: str | Path, dst: str | Path) -> None:
    """Place ``src`` at ``dst`` cheaply: hard link when possible, else copy (atomic either way)."""
    src, dst = Path(src), Path(dst)
    dst.parent.mkdir(parents=True, exist_ok=True)
    tmp = dst.with_name(f".{dst.name}.tmp")
    if tmp.exists():
        tmp.unlink()
    try:
        os.link(src, tmp)
    except OSError:
        shutil.copy2(src, tmp)
    os.replace(tmp, dst)
