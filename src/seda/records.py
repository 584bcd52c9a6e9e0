"""Typed records that cross a stage boundary: manifest rows, one definition for writer and reader.

As lhotse does with its manifests, each CSV row is a frozen dataclass. Writers build rows (so a
typo in a column name fails at once) and readers get typed values back (``duration`` is a float,
``fold`` an int), so no stage re-parses another's strings. The CSV columns are the field names, in
order.
"""

from __future__ import annotations

import dataclasses
import re
import typing
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from seda.errors import InputMissingError
from seda.io import read_csv, write_csv_atomic

# Label of an item or clip whose emotion nobody has said yet (the label stage's material).
UNLABELLED = "unknown"
# Item, clip and speaker ids: lower-case ASCII letters, digits, '_' and '-' (use fullmatch).
ID_PATTERN = re.compile(r"[a-z0-9_-]+")

R = TypeVar("R")


@dataclass(frozen=True)
class ItemRow:
    """One collected recording (data/raw, data/separated manifests).

    ``path`` is POSIX and relative: to the repository for files seda wrote, or as the dataset's
    root was written in params (``../shared/...``) for corpora read in place; never absolute.
    """

    id: str
    path: str
    label: str
    speaker: str
    source_id: str
    source_url: str = ""
    title: str = ""
    channel: str = ""
    duration: float | None = None
    upload_date: str = ""
    license: str = ""
    section_start: float | None = None
    section_end: float | None = None
    sha256: str = ""
    origin: str = ""


@dataclass(frozen=True)
class ClipRow:
    """One clip cut by the clean stage (``start``/``end`` in seconds within the item)."""

    clip_id: str
    path: str
    label: str
    speaker: str
    source_id: str
    item_id: str
    source_url: str
    start: float
    end: float
    duration: float
    sha256: str


@dataclass(frozen=True)
class SplitRow:
    """One clip's place in the evaluation: its group, split (train|val|test) and LOSO fold."""

    clip_id: str
    path: str
    label: str
    speaker: str
    source_id: str
    group: str
    split: str
    fold: int


def columns(cls: type) -> tuple[str, ...]:
    """The CSV header of a record type."""
    return tuple(f.name for f in dataclasses.fields(cls))


ITEM_COLUMNS = columns(ItemRow)
CLIP_COLUMNS = columns(ClipRow)
SPLIT_COLUMNS = columns(SplitRow)


def write_records(path: str | Path, rows: Iterable[Any], cls: type) -> int:
    """Write records of type ``cls`` as CSV atomically; return the row count."""
    names = columns(cls)
    return write_csv_atomic(path, (dataclasses.asdict(r) for r in rows), names)


def read_records(path: str | Path, cls: type[R]) -> list[R]:
    """Read a CSV written by :func:`write_records` back into typed records."""
    path = Path(path)
    if not path.exists():
        raise InputMissingError(f"{path} not found: run the stage that writes it first")
    hints = typing.get_type_hints(cls)
    names = columns(cls)
    out: list[R] = []
    for line, raw in enumerate(read_csv(path), start=2):
        missing = [n for n in names if n not in raw]
        if missing:
            raise InputMissingError(f"{path}: column(s) {', '.join(missing)} missing")
        try:
            out.append(cls(**{n: _parse(raw[n], hints[n]) for n in names}))
        except ValueError as err:
            raise ValueError(f"{path} line {line}: {err}") from err
    return out


def _parse(text: str, hint: Any) -> Any:
    args = typing.get_args(hint)
    optional = type(None) in args
    base = next((a for a in args if a is not type(None)), hint) if args else hint
    if text == "" and optional:
        return None
    if base is float:
        return float(text)
    if base is int:
        return int(text)
    return text


def as_dicts(rows: Sequence[Any]) -> list[dict[str, Any]]:
    """Records as plain dicts (for pandas, or code that indexes by column name)."""
    return [dataclasses.asdict(r) for r in rows]
