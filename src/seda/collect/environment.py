"""Errors of the machine, not of an item: a full disk, a quota, a read-only or forbidden folder.

They stop the collect stage as an :class:`OSError` with its errno and the path that could not be
written (:func:`seda.entry.stage_main` prints it as one line and exits 1, so DVC records nothing);
they never become a ``failures.csv`` row, are never retried and never remembered as a permanent
failure. Only an item's own content, or the remote's answer, makes a failure row.

yt-dlp and ffmpeg report such errors as text (yt-dlp goes on after a failed item, and ffmpeg
exits 0 when the disk fills while it finishes a WAV), so :func:`environment_error` recognises them
in a message: "No space left on device", "Disk quota exceeded" and "Read-only file system" are
always the machine's; "Permission denied" and "Operation not permitted" only on a path the stage
writes (an unreadable local source is that item's failure).
"""

from __future__ import annotations

import errno
import json
import os
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from seda.parallel import is_environment_error

# Said only of a write: never of a remote or of an item's content.
ALWAYS = (errno.ENOSPC, errno.EDQUOT, errno.EROFS)
# The machine's fault only where the path is one the stage writes (else: an unreadable source).
ON_OUR_PATHS = (errno.EACCES, errno.EPERM)
# yt-dlp's words for a failed write of its own (the file is always one of ours).
WRITE_CONTEXT = re.compile(r"unable to (?:open for writing|write data|rename file)", re.I)
# The RIFF size ffmpeg writes first and fills in when it finishes a WAV.
_UNFINISHED_RIFF = 0xFFFFFFFF


class EnvironmentStop(BaseException):
    """Carries an environment :class:`OSError` out of yt-dlp. A BaseException, because yt-dlp
    (with ``ignoreerrors``) turns every Exception into an error message and goes on."""

    def __init__(self, error: OSError) -> None:
        super().__init__(str(error))
        self.error = error


def environment_error(text: str, writes: Iterable[Path], default: Path) -> OSError | None:
    """The environment error a yt-dlp/ffmpeg message reports, or None (an item's own failure).

    ``writes`` are the folders the stage writes: the path named is the one under them on the
    line that reports the error, else ``default``. Indented lines (ffmpeg's listing of the
    input's metadata, a title, say) are never read as errors.
    """
    lines = [line for line in text.splitlines() if line[:1] and not line[:1].isspace()]
    for code in (*ALWAYS, *ON_OUR_PATHS):
        phrase = os.strerror(code).lower()
        for line in lines:
            if phrase not in line.lower():
                continue
            path = _path_under(line, writes)
            if code in ALWAYS or path is not None or WRITE_CONTEXT.search(line):
                return OSError(code, os.strerror(code), str(path or default))
    return None


def _path_under(text: str, folders: Iterable[Path]) -> str | None:
    """The first path in ``text`` that starts with one of ``folders`` (as given or absolute)."""
    roots = {str(f) for f in folders} | {str(Path(f).resolve()) for f in folders}
    for root in sorted(roots, key=len, reverse=True):
        # The whole root at a path boundary (not "c" inside "space" or ".../c/"), then the rest.
        m = re.search(r"(?<![\w./-])" + re.escape(root) + r"(?:/[^'\"\s:]*)?(?![^'\"\s:])", text)
        if m:
            return m.group(0)
    return None


def read_json(path: Path) -> dict[str, Any] | None:
    """A cache record, or None when absent or unreadable as JSON; a cache folder the machine
    will not read (permission, I/O) raises."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError):
        return None
    except OSError as err:
        if is_environment_error(err):
            raise
        return None
    return data if isinstance(data, dict) else None


def check_wav_finished(path: Path) -> None:
    """Raise :class:`OSError` when ffmpeg left ``path`` unfinished: the RIFF size it fills in at
    the end is missing or larger than the file (ffmpeg 5 exits 0 when the disk fills then)."""
    with open(path, "rb") as fh:
        head = fh.read(12)
    size = path.stat().st_size
    if len(head) < 12 or head[:4] != b"RIFF":
        return  # not a RIFF WAV: the decoder that reads it judges it
    riff = int.from_bytes(head[4:8], "little")
    if riff == _UNFINISHED_RIFF or riff + 8 > size:
        raise OSError(errno.EIO, "the WAV ffmpeg wrote was never finished (disk full?)", str(path))
