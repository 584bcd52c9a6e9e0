"""Shared file plumbing used by every stage: hashing, atomic writes, manifests, reject logs.

Every file a stage writes goes through :func:`atomic_path`, so a run killed half-way leaves either
the old file or the new one, never a torn one.
"""

from __future__ import annotations

import contextlib
import csv
import hashlib
import json
import logging
import os
import re
import tempfile
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

_CHUNK = 1 << 20
_UMASK = os.umask(0)
os.umask(_UMASK)


# "[mp3 @ 0x563a68028900]", "<object at 0x7f...>": an address differs between runs.
_ADDRESS = re.compile(r"\s*(?:@|\bat)\s*0x[0-9a-fA-F]+")
# "2024-05-01 12:34:56.789", "2024-05-01T12:34:56Z".
_DATETIME = re.compile(
    r"\b\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}:\d{2}(?:[.,]\d+)?(?:Z|[+-]\d{2}:?\d{2})?\b"
)


def normalise_reason(reason: str, base: str | Path | None = None) -> str:
    """``reason`` on one line without memory addresses, date-times (``<time>``) and the absolute
    prefix of ``base`` (default: the working directory) in paths and ``file://`` URLs, so that a
    rerun on the same inputs writes the same reject and failure records byte for byte."""
    text = " ".join(str(reason).split())
    text = _ADDRESS.sub("", text)
    text = _DATETIME.sub("<time>", text)
    root = os.path.abspath(base if base is not None else os.getcwd())
    if root != os.path.sep:
        text = text.replace(Path(root).as_uri() + "/", "file:").replace(root + os.sep, "")
    return text


def sha256_file(path: str | Path) -> str:
    """Hex sha256 of a file's bytes, read in 1 MiB chunks (bounded memory for hour-long audio)."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(_CHUNK), b""):
            digest.update(block)
    return digest.hexdigest()


def stat_stamp(st: os.stat_result) -> tuple[int, int, int, int]:
    """What says a file may have changed since it was hashed: size, mtime, ctime and inode. Size
    and mtime alone are not enough: a generator with pinned mtimes, ``cp -p`` or ``rsync -t``
    set the mtime back on new content, whereas any write moves the ctime (which no tool can set)
    and an atomic replace gives a new inode."""
    return (st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino)


def content_digest(paths: Iterable[str | Path], base: str | Path | None = None) -> str:
    """Hex sha256 over the names and bytes of ``paths``, in order (for a cache key over many
    files), each named as given or, with ``base``, relative to it. A file that cannot be read
    counts by its reason, so its reader decides what that means."""
    digest = hashlib.sha256()
    for path in paths:
        name = Path(path).relative_to(base).as_posix() if base is not None else str(path)
        try:
            content = sha256_file(path)
        except OSError as err:
            content = f"unreadable: {err.strerror or err}"
        digest.update(f"{name}\0{content}\0".encode())
    return digest.hexdigest()


def tree_digest(folder: str | Path) -> str:
    """:func:`content_digest` of every file under ``folder``, by relative name."""
    folder = Path(folder)
    files = sorted(p for p in folder.rglob("*") if p.is_file()) if folder.is_dir() else []
    return content_digest(files, base=folder)


def sha256_text(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def params_digest(settings: Any) -> str:
    """Stable short hash of a settings object (dataclass, mapping or scalar) for cache keys."""
    from dataclasses import asdict, is_dataclass

    if is_dataclass(settings) and not isinstance(settings, type):
        settings = asdict(settings)
    blob = json.dumps(settings, sort_keys=True, default=str)
    return sha256_text(blob)[:16]


@contextlib.contextmanager
def atomic_path(path: str | Path, suffix: str | None = None) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it over ``path`` if the block succeeds."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(
        prefix=f".{path.name}.",
        suffix=suffix if suffix is not None else path.suffix + ".tmp",
        dir=path.parent,
    )
    os.close(fd)
    tmp_path = Path(tmp)
    os.chmod(tmp_path, 0o666 & ~_UMASK)
    try:
        yield tmp_path
        os.replace(tmp_path, path)
    except OSError as err:
        # A full disk or denied write names the file meant, not the temporary (or no) name.
        if err.errno is None or err.filename not in (None, str(tmp_path)):
            raise
        raise OSError(err.errno, err.strerror, str(path)) from err
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def write_text_atomic(path: str | Path, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def write_json_atomic(path: str | Path, data: Any) -> None:
    write_text_atomic(
        path, json.dumps(data, indent=2, sort_keys=False, default=_json_default) + "\n"
    )


def _json_default(obj: Any) -> Any:
    import numpy as np

    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, Path):
        return obj.as_posix()
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


def write_csv_atomic(
    path: str | Path, rows: Iterable[Mapping[str, Any]], columns: Sequence[str]
) -> int:
    """Write rows (missing keys become empty cells) to a CSV atomically; return the row count."""
    count = 0
    with atomic_path(path) as tmp, open(tmp, "w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(columns), extrasaction="ignore")
        writer.writeheader()
        for row in rows:
            writer.writerow({k: _csv_cell(row.get(k)) for k in columns})
            count += 1
    return count


def _csv_cell(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.6g}" if abs(value) < 1e6 else f"{value:.3f}"
    return value


def read_csv(path: str | Path) -> list[dict[str, str]]:
    """Read a CSV into a list of dicts of strings (empty list when the file has only a header)."""
    with open(path, newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


class RejectLog:
    """Collects rows for ``rejected.csv``/``failures.csv``: every skipped input gets a reason."""

    columns: tuple[str, ...] = ("stage", "id", "path", "reason")

    def __init__(self, stage: str) -> None:
        self.stage = stage
        self.rows: list[dict[str, Any]] = []

    def add(self, item_id: str, path: str | Path | None, reason: str, **extra: Any) -> None:
        reason = normalise_reason(reason)
        row = {"stage": self.stage, "id": item_id, "path": str(path or ""), "reason": reason}
        row.update(extra)
        self.rows.append(row)
        log.warning("%s: skipped %s: %s", self.stage, item_id or path, reason)

    def __len__(self) -> int:
        return len(self.rows)

    def write(self, path: str | Path, extra_columns: Sequence[str] = ()) -> None:
        write_csv_atomic(path, self.rows, [*self.columns, *extra_columns])


def nothing_kept(what: str, rejects: RejectLog, reasons_file: str | Path) -> str:
    """One sentence for a stage that kept nothing because every input was skipped: how many,
    and the first one's reason (the later stages would only say that there is nothing to use)."""
    first = rejects.rows[0]
    where = first.get("url") or first["path"] or first["id"]
    return (
        f"no {what}: all {len(rejects)} skipped, the first ({where}) because "
        f"{first['reason']}; every reason is in {reasons_file}"
    )


def rel_to_cwd(path: str | Path) -> str:
    """A path as stored in manifests: relative to the repository root when possible, POSIX style.

    Symbolic links are kept as the user wrote them (``../shared`` stays ``../shared``).
    """
    absolute = os.path.abspath(path)
    try:
        return Path(os.path.relpath(absolute, os.getcwd())).as_posix()
    except ValueError:
        return Path(absolute).as_posix()
