"""Failure rows of a collect run, with reasons that are the same on every rerun and in every clone.

Reasons quote yt-dlp and ffmpeg, whose messages hold memory addresses (``[in#0 @ 0x55fa...]``),
wall-clock times and absolute paths of the working copy; :func:`seda.io.normalise_reason` (applied
by every RejectLog) removes those, so ``failures.csv`` is byte-identical for the same inputs.

Every row has a ``kind``: ``transient`` (network trouble, throttling, a server error, a deadline:
a later run tries again) or ``permanent`` (the item itself: gone, private, geo-blocked, not
audio, an odd corpus entry, a bad sources row; a download is not tried again until its input
changes or ``--retry-failed`` asks).

Only an item's own content, or the remote's answer about it, makes a row: a full disk, a quota, or
a read-only or forbidden cache or output folder stops the stage instead
(:mod:`seda.collect.environment`), so that nothing wrong is recorded as the dataset.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from seda.io import RejectLog
from seda.records import ItemRow

# The ``stage`` column of every failure row.
STAGE = "collect"
# Kinds of failure (the ``kind`` column).
TRANSIENT = "transient"
PERMANENT = "permanent"
KINDS = (TRANSIENT, PERMANENT)
# Columns of failures.csv after RejectLog's stage,id,path,reason.
FAILURE_EXTRA_COLUMNS = ("url", "kind")


class FailureLog(RejectLog):
    """The collect stage's :class:`~seda.io.RejectLog` (reasons normalised there), with the row's
    url and the failure's kind."""

    def __init__(self, stage: str = STAGE) -> None:
        super().__init__(stage)

    def add(  # type: ignore[override]
        self, item_id: str, path: str | Path | None, reason: str, *, kind: str, url: str = ""
    ) -> None:
        if kind not in KINDS:
            raise ValueError(f"failure kind must be one of {KINDS} (got {kind!r})")
        super().add(item_id, path, reason, url=url, kind=kind)

    def write(
        self, path: str | Path, extra_columns: tuple[str, ...] = FAILURE_EXTRA_COLUMNS
    ) -> None:
        super().write(path, extra_columns)


@dataclass
class Collected:
    """What a collector returns: manifest rows, failure rows and counters for the summary."""

    rows: list[ItemRow]
    failures: FailureLog
    stats: dict[str, Any] = field(default_factory=dict)
