"""Typed records that cross a stage boundary: manifest rows, one definition for writer and reader.

As lhotse does with its manifests, each CSV row is a frozen dataclass. Writers build rows (so a
typo in a column name fails at once) and readers get typed values back (``duration`` is a float,
``fold`` an int), so no stage re-parses another's strings. The CSV columns are the field names, in
order.

:func:`coerce` is the one check of a value against a dataclass field type: it reads these rows,
the model card (:mod:`seda.models.card`), the metrics records (:mod:`seda.metrics`) and the
settings sections (:func:`seda.config.build`).
"""

from __future__ import annotations

import dataclasses
import functools
import math
import re
import types
import typing
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from seda.errors import InputMissingError, UserError
from seda.io import content_digest, params_digest, read_csv, write_csv_atomic

# Label of an item or clip whose emotion nobody has said yet (the label stage's material).
UNLABELLED = "unknown"
# Speaker of an item whose source names none (a folder corpus without a speaker group).
UNKNOWN_SPEAKER = "unknown"
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
    """Read a CSV written by :func:`write_records` back into typed records.

    :class:`InputMissingError` when the file or a column is missing, :class:`RecordFormatError`
    (naming the file, line and column) when a cell does not parse as its field's type.
    """
    path = Path(path)
    if not path.exists():
        raise InputMissingError(f"{path} not found: run the stage that writes it first")
    names = columns(cls)
    out: list[R] = []
    for line, raw in enumerate(read_csv(path), start=2):
        missing = [n for n in names if n not in raw]
        if missing:
            raise InputMissingError(f"{path}: column(s) {', '.join(missing)} missing")
        try:
            out.append(coerce({n: raw[n] for n in names}, cls, text=True))
        except RecordFormatError as err:
            raise RecordFormatError(f"{path} line {line}: {err}") from err
    return out


def as_dicts(rows: Sequence[Any]) -> list[dict[str, Any]]:
    """Records as plain dicts (for pandas, or code that indexes by column name)."""
    return [dataclasses.asdict(r) for r in rows]


class RecordFormatError(UserError, ValueError):
    """A file's content is not the record it should hold; the message names the field and why."""


def coerce(
    value: Any,
    hint: Any,
    where: str = "",
    error: Callable[[str], Exception] = RecordFormatError,
    *,
    text: bool = False,
) -> Any:
    """``value`` checked against type ``hint``, a dataclass built from its mapping; ``error``
    (an exception class, or a function of the message) for the first value that does not fit.

    Handles the field types records and settings use: ``str``, ``int``, ``float`` (an int passes,
    unchanged, so a rewritten file keeps its bytes; never NaN or infinity), ``bool``, ``X | None``,
    ``list[X]``, ``dict[str, X]``, ``Any`` and nested dataclasses (every key without a default
    required, no unknown key). A bool is never a number. ``text``: values are CSV cells, so
    numbers are parsed and an empty cell is None where the type allows it.

    ``where`` names ``value`` in messages (a dotted path: ``clean.clips``); a field is
    ``where.name``, a list item ``where[0]``, a mapping's entry ``where['key']``, so a message
    says exactly which value is wrong: ``calibration.reliability[3].count must be an integer,
    got 2.5``. Hand-written rather than pydantic (not a dependency of seda): the messages must stay
    one sentence in this form, ints must not turn into floats (same bytes out), and the range
    checks of ``__post_init__`` must raise their own errors untouched.
    """
    hint, optional = _optional(hint)
    if optional and (value is None or (text and value == "")):
        return None
    if hint is Any:
        return value
    name = where or getattr(hint, "__name__", "the value")
    if value is None:
        raise error(f"{name} must not be null")
    if hint is str:
        if not isinstance(value, str):
            raise error(f"{name} must be a string, got {value!r}")
        return value
    if hint is int or hint is float:
        number = _parsed(value, hint) if text and isinstance(value, str) else value
        numeric = isinstance(number, int | float) and not isinstance(number, bool)
        if numeric and (isinstance(number, int) if hint is int else math.isfinite(number)):
            return number
        kind = "an integer" if hint is int else "a finite number"
        raise error(f"{name} must be {kind}, got {value!r}")
    if hint is bool:
        if not isinstance(value, bool):
            raise error(f"{name} must be true or false, got {value!r}")
        return value
    if dataclasses.is_dataclass(hint):
        if not isinstance(value, Mapping):
            raise error(f"{name} must be a mapping (a JSON object)")
        fields = _fields(hint)  # type: ignore[arg-type]
        missing = [n for n, (_, required) in fields.items() if required and n not in value]
        unknown = sorted(str(k) for k in value if k not in fields)
        if missing or unknown:
            what = [f"lacks {', '.join(missing)}"] if missing else []
            what += [f"has unknown key(s) {', '.join(unknown)}"] if unknown else []
            raise error(f"{name} {' and '.join(what)}")
        prefix = f"{where}." if where else ""
        return hint(  # type: ignore[operator]
            **{
                n: coerce(value[n], field_hint, prefix + n, error, text=text)
                for n, (field_hint, _) in fields.items()
                if n in value
            }
        )
    origin = typing.get_origin(hint)
    if origin is list:
        if not isinstance(value, list):
            raise error(f"{name} must be a list")
        (item,) = typing.get_args(hint)
        return [coerce(v, item, f"{where}[{i}]", error, text=text) for i, v in enumerate(value)]
    if origin is dict:
        if not isinstance(value, Mapping):
            raise error(f"{name} must be a mapping (a JSON object)")
        item = typing.get_args(hint)[1]
        return {
            str(k): coerce(v, item, f"{where}[{k!r}]", error, text=text) for k, v in value.items()
        }
    raise TypeError(f"{name}: no check for type {hint!r}")


@functools.cache
def _optional(hint: Any) -> tuple[Any, bool]:
    """``(X, True)`` for ``X | None``, ``(hint, False)`` for any other type."""
    if not (isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union):
        return hint, False
    args = [a for a in typing.get_args(hint) if a is not type(None)]
    if len(args) != 1:
        raise TypeError(f"no check for type {hint!r}: only X | None unions")
    return args[0], True


def _parsed(cell: str, kind: type) -> Any:
    """A CSV cell as a number of type ``kind``, or the cell itself when it is not one."""
    try:
        return kind(cell)
    except ValueError:
        return cell


@functools.cache
def _fields(cls: type) -> dict[str, tuple[Any, bool]]:
    """Each init field's type and whether it is required (has no default), read once per class."""
    hints = typing.get_type_hints(cls)
    return {
        f.name: (
            hints[f.name],
            f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING,
        )
        for f in dataclasses.fields(cls)
        if f.init
    }


def split_digest(rows: Sequence[SplitRow]) -> str:
    """What a model reads from a split, for a cache key: its rows and the bytes of their clips."""
    return params_digest([dataclasses.asdict(r) for r in rows]) + content_digest(
        r.path for r in rows
    )
