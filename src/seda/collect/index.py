"""What a dataset's input is on disk: a walk of a corpus that never hangs, and its index.

:func:`scan_tree` lists the files under a root the way a collector may read them: regular files
(symbolic links to regular files included, under the link's own name) are ``ok``; everything
else is ``odd`` with the reason, found from ``stat`` alone, so no entry is ever opened: a symbolic
link loop, a dangling link, a link to a directory (never followed, so no walk can loop), a named
pipe (opening one blocks until a writer comes), a socket, a device, an unreadable file or a
folder that cannot be listed. Names starting with ``.`` are skipped (folders are walked).

:func:`index_rows` turns that into the rows of the corpus index (path, size, sha256, kind): the
one file a pipeline tool needs to notice that a corpus changed (added, changed, removed files),
which it can always hash, whatever the corpus holds (:func:`seda.collect.index_corpus` picks the
entries of a dataset).
"""

from __future__ import annotations

import errno
import os
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from seda.collect.environment import read_json
from seda.io import rel_to_cwd, sha256_file, stat_stamp, write_json_atomic

OK = "ok"
ODD = "odd"


@dataclass(frozen=True)
class Entry:
    """One entry under a corpus root: ``path`` as found (root joined with ``rel``)."""

    path: Path
    rel: str
    size: int
    stamp: tuple[int, ...]  # :func:`seda.io.stat_stamp`; empty for an entry that was not stat'ed
    odd: str = ""  # why it cannot be read as a file; empty for a readable regular file


@dataclass(frozen=True)
class IndexRow:
    """One row of the corpus index (``path`` relative to the working directory, POSIX)."""

    path: str
    size: int
    sha256: str  # of a readable regular file; empty for an odd entry
    kind: str  # ok | odd
    reason: str = ""


def _sort_key(entry: Entry) -> tuple[str, ...]:
    # The order of sorted(Path(...)) (by components), which the folder collector always used.
    return tuple(entry.rel.split("/"))


def _link_reason(path: Path, err: OSError) -> str:
    if err.errno == errno.ELOOP:
        return "symbolic link loop (too many levels of symbolic links)"
    if err.errno in (errno.ENOENT, errno.ENOTDIR):
        try:
            target = os.readlink(path)
        except OSError:
            return "dangling symbolic link (its target does not exist)"
        return f"dangling symbolic link (its target {target} does not exist)"
    return f"cannot stat: {err.strerror or err}"


def _dir_link_reason(path: Path) -> str:
    target, here = Path(os.path.realpath(path)), Path(os.path.realpath(path.parent))
    if target == here or target in here.parents:
        return "symbolic link loop (points to a folder that contains it)"
    return "symbolic link to a folder: not followed (point dataset.root at the folder itself)"


def _odd_kind(mode: int) -> str:
    if stat.S_ISFIFO(mode):
        return "named pipe (FIFO), not a regular file: never opened"
    if stat.S_ISSOCK(mode):
        return "socket, not a regular file"
    if stat.S_ISCHR(mode):
        return "character device, not a regular file"
    if stat.S_ISBLK(mode):
        return "block device, not a regular file"
    return "not a regular file"


def scan_tree(root: Path) -> list[Entry]:
    """Every non-hidden entry under ``root`` (see the module doc), sorted by path components."""
    entries: list[Entry] = []
    stack = [(root, "")]
    while stack:
        folder, prefix = stack.pop()
        try:
            with os.scandir(folder) as it:
                children = sorted(it, key=lambda e: e.name)
        except OSError as err:
            if not prefix:
                raise
            # The folder itself is the odd entry (e.g. no permission to list it).
            reason = f"folder cannot be listed: {err.strerror or err}"
            entries.append(Entry(folder, prefix.rstrip("/"), 0, (), reason))
            continue
        for child in children:
            path, rel = folder / child.name, f"{prefix}{child.name}"
            try:
                lst = child.stat(follow_symlinks=False)
            except OSError as err:  # gone since the listing
                entries.append(Entry(path, rel, 0, (), f"cannot stat: {err.strerror or err}"))
                continue
            is_link = stat.S_ISLNK(lst.st_mode)
            if stat.S_ISDIR(lst.st_mode):
                stack.append((path, f"{rel}/"))
                continue
            if child.name.startswith("."):
                continue
            size, seen = lst.st_size, stat_stamp(lst)
            try:
                st = os.stat(path) if is_link else lst
            except OSError as err:
                entries.append(Entry(path, rel, size, seen, _link_reason(path, err)))
                continue
            if stat.S_ISDIR(st.st_mode):
                entries.append(Entry(path, rel, size, seen, _dir_link_reason(path)))
            elif not stat.S_ISREG(st.st_mode):
                entries.append(Entry(path, rel, size, seen, _odd_kind(st.st_mode)))
            elif not os.access(path, os.R_OK):
                entries.append(Entry(path, rel, size, seen, "permission denied: not readable"))
            else:
                entries.append(Entry(path, rel, st.st_size, stat_stamp(st)))
    return sorted(entries, key=_sort_key)


def file_entry(path: Path) -> Entry:
    """One named file (a sources table) as an entry; a missing one is odd, not an error."""
    try:
        st = os.stat(path)
    except OSError as err:
        return Entry(path, path.name, 0, (), f"cannot stat: {err.strerror or err}")
    if not stat.S_ISREG(st.st_mode):
        return Entry(path, path.name, st.st_size, stat_stamp(st), _odd_kind(st.st_mode))
    return Entry(path, path.name, st.st_size, stat_stamp(st))


def index_rows(entries: list[Entry], cache_file: Path | None = None) -> list[IndexRow]:
    """Index rows of ``entries`` (each path once, sorted), regular files with their sha256.

    Hashes are reused from ``cache_file`` while a file's stamp (size, mtime, ctime, inode:
    :func:`seda.io.stat_stamp`) is unchanged, so a rerun reads only new and changed files. The
    rows hold no time: the same corpus gives the same index in every clone (mtimes differ
    there), and touching a file changes nothing.
    """
    cached = (read_json(cache_file) or {}) if cache_file is not None else {}
    fresh: dict[str, Any] = {}
    rows: dict[str, IndexRow] = {}
    for e in entries:
        path = rel_to_cwd(e.path)
        if e.odd:
            rows[path] = IndexRow(path, e.size, "", ODD, e.odd)
            continue
        key, stamp = str(e.path), list(e.stamp)
        hit = cached.get(key)
        if isinstance(hit, dict) and hit.get("stamp") == stamp:
            digest = hit["sha256"]
        else:
            try:
                digest = sha256_file(e.path)
            except OSError as err:
                rows[path] = IndexRow(path, e.size, "", ODD, f"cannot read: {err.strerror or err}")
                continue
        fresh[key] = {"stamp": stamp, "sha256": digest}
        rows[path] = IndexRow(path, e.size, digest, OK)
    if cache_file is not None and fresh != cached:
        write_json_atomic(cache_file, fresh)
    return [rows[p] for p in sorted(rows)]
