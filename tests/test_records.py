"""Manifest rows read back typed, and the one value check (``coerce``) behind rows, model card,
metrics records and settings."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from seda.errors import ConfigError, InputMissingError, UserError
from seda.records import (
    ItemRow,
    RecordFormatError,
    SplitRow,
    coerce,
    read_records,
    write_records,
)


def split_row(clip_id: str, fold: int) -> SplitRow:
    path = f"data/clean/calm/{clip_id}.wav"
    return SplitRow(clip_id, path, "calm", "s1", "v1", "s1", "test", fold)


def test_rows_come_back_typed(tmp_path: Path) -> None:
    item = ItemRow("a", "data/raw/audio/a.wav", "calm", "s1", "v1", duration=2.5, section_end=1.0)
    write_records(tmp_path / "items.csv", [item], ItemRow)
    (back,) = read_records(tmp_path / "items.csv", ItemRow)
    assert back == item  # empty cells of optional numbers are None again, not ""
    assert back.section_start is None and back.title == ""
    rows = [split_row("c1", 0), split_row("c2", 3)]
    write_records(tmp_path / "splits.csv", rows, SplitRow)
    assert [r.fold for r in read_records(tmp_path / "splits.csv", SplitRow)] == [0, 3]


def test_a_bad_cell_names_file_line_and_column(tmp_path: Path) -> None:
    path = tmp_path / "splits.csv"
    write_records(path, [split_row("c1", 0), split_row("c2", 1)], SplitRow)
    path.write_text(path.read_text().replace(",test,1", ",test,two"))
    with pytest.raises(RecordFormatError) as info:
        read_records(path, SplitRow)
    assert str(info.value) == f"{path} line 3: fold must be an integer, got 'two'"
    assert isinstance(info.value, UserError) and isinstance(info.value, ValueError)
    path.write_text("clip_id,path\nc1,x.wav\n")
    with pytest.raises(InputMissingError, match="label, speaker"):
        read_records(path, SplitRow)


@dataclass(frozen=True)
class Bin:
    count: int
    share: float


@dataclass(frozen=True)
class Table:
    name: str
    bins: list[Bin]
    weights: dict[str, float]
    scale: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    on: bool = True


GOOD = {"name": "t", "bins": [{"count": 2, "share": 1}], "weights": {"a": 0.5}}


def test_coerce_builds_nested_records_and_keeps_ints() -> None:
    table = coerce({**GOOD, "extra": {"k": None}}, Table, "table")
    assert table == Table("t", [Bin(2, 1)], {"a": 0.5}, extra={"k": None})
    assert type(table.bins[0].share) is int  # not 1.0: a rewritten file keeps its bytes


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            {"bins": [GOOD["bins"][0], {"count": 2.5, "share": 0}]},
            "table.bins[1].count must be an integer, got 2.5",
        ),
        (
            {"bins": [{"count": True, "share": 0}]},
            "table.bins[0].count must be an integer, got True",
        ),
        ({"weights": {"a": float("nan")}}, "table.weights['a'] must be a finite number, got nan"),
        ({"scale": "1"}, "table.scale must be a finite number, got '1'"),
        ({"name": None}, "table.name must not be null"),
        ({"on": 1}, "table.on must be true or false, got 1"),
        ({"bins": {}}, "table.bins must be a list"),
        ({"bins": [{}], "typo": 1}, "table has unknown key(s) typo"),
        ({"bins": [{"share": 0}]}, "table.bins[0] lacks count"),
    ],
)
def test_coerce_names_the_value_that_does_not_fit(change: dict, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        coerce({**GOOD, **change}, Table, "table", ConfigError)
    assert str(info.value) == message


def test_coerce_reads_csv_cells_only_when_told() -> None:
    assert coerce({"count": "3", "share": "0.25"}, Bin, text=True) == Bin(3, 0.25)
    assert coerce("", float | None, text=True) is None
    for cell, kind in (("nan", "a finite number"), ("2.5", "an integer"), ("", "an integer")):
        with pytest.raises(RecordFormatError, match=f"^count must be {kind}, got '{cell}'$"):
            coerce(cell, int if kind == "an integer" else float, "count", text=True)
    with pytest.raises(RecordFormatError, match=r"must be a finite number, got '0\.5'"):
        coerce("0.5", float)
    with pytest.raises(TypeError):
        coerce(1, tuple[int, int])
