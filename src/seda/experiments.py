"""``seda experiments``: DVC's experiments as one table that fits a terminal.

Reads ``dvc exp show --json`` (extra arguments go to it, e.g. ``-A`` or ``-n 5``; or
``--json-file`` with saved output) and prints one row per commit and experiment: only the params
that differ between the rows, then each model's UAR (the metrics files with a ``uar`` key, named by
their file), best first by the UAR of the best model or of ``--sort MODEL``. Params that do not fit
in ``--width`` columns are named below the table. ``dvc exp show`` itself cannot get there: it
names each metric ``<file>:<key>`` (``reports/metrics/wavlm.json:uar``), so five models' UAR alone
is wider than 120 columns.
"""

from __future__ import annotations

import argparse
import itertools
import json
import re
import subprocess
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from seda.errors import UserError
from seda.pr_report import flatten

METRIC = "uar"
GAP = "  "
MAX_CELL = 14
MISSING = "-"


@dataclass(frozen=True)
class Row:
    name: str
    params: dict[str, Any] | None  # None: no data (queued, failed)
    uar: dict[str, float]


def _row(entry: Mapping[str, Any], name: str) -> Row:
    data = entry.get("data") or {}
    files = {f: (v or {}).get("data") for f, v in (data.get("params") or {}).items()}
    params: dict[str, Any] | None = None
    if any(d is not None for d in files.values()):
        params = {}
        for file, values in files.items():
            prefix = "" if len(files) == 1 else f"{file}:"
            params.update({prefix + k: v for k, v in flatten(values or {}).items()})
    uar = {}
    for file, value in (data.get("metrics") or {}).items():
        number = ((value or {}).get("data") or {}).get(METRIC)
        if isinstance(number, int | float) and not isinstance(number, bool):
            uar[Path(file).stem] = float(number)
    return Row(name, params, uar)


def _short(rev: Any) -> str:
    """A commit's first 7 hex digits; other revisions (``workspace``) as they are."""
    text = str(rev or "?")
    return text[:7] if re.fullmatch(r"[0-9a-f]{40}", text) else text


def parse_exp_show(entries: Sequence[Mapping[str, Any]]) -> list[Row]:
    """The rows of ``dvc exp show --json``: workspace, commits, and each commit's experiments."""
    rows = []
    for entry in entries:
        rows.append(_row(entry, entry.get("name") or _short(entry.get("rev"))))
        for exp in entry.get("experiments") or []:
            for rev in exp.get("revs") or []:
                name = rev.get("name") or exp.get("name") or _short(rev.get("rev"))
                rows.append(_row(rev, name))
    return rows


def changed_params(rows: Sequence[Row]) -> list[str]:
    """Keys whose value is not the same in every row that has params (in file order)."""
    with_params = [r.params for r in rows if r.params is not None]
    keys: dict[str, None] = {}
    for params in with_params:
        keys.update(dict.fromkeys(params))
    absent = object()
    return [
        k
        for k in keys
        if len({json.dumps(p.get(k, absent), default=repr) for p in with_params}) > 1
    ]


def short_names(keys: Sequence[str]) -> dict[str, str]:
    """A short header per key: its last part, plus the fewest parts above it (nearest first)
    that tell it from every other key (``backbones.hubert.random_init.hidden_size`` ->
    ``hubert.hidden_size`` when ``wavlm`` has one too)."""
    split = {key: key.split(".") for key in keys}

    def matches(candidate: tuple[str, ...], parts: list[str]) -> bool:
        if parts[-1] != candidate[-1]:
            return False
        rest = iter(parts[:-1])
        return all(part in rest for part in candidate[:-1])  # in order

    out = {}
    for key, parts in split.items():
        above = parts[:-1][::-1]  # nearest first
        out[key] = key
        for size in range(len(above) + 1):
            found = next(
                (
                    (*[p for p in parts[:-1] if p in chosen], parts[-1])
                    for chosen in itertools.combinations(above, size)
                    if not any(
                        matches((*[p for p in parts[:-1] if p in chosen], parts[-1]), other)
                        for o, other in split.items()
                        if o != key
                    )
                ),
                None,
            )
            if found is not None:
                out[key] = ".".join(found)
                break
    return out


def _cell(value: Any) -> str:
    if value is None:
        return "null"
    text = f"{value:g}" if isinstance(value, float) else str(value)
    if isinstance(value, list | dict):
        text = json.dumps(value, separators=(",", ":"))
    return text if len(text) <= MAX_CELL else text[: MAX_CELL - 1] + "…"


def render_table(rows: Sequence[Row], sort: str | None = None, width: int = 120) -> str:
    """The table, best row first; lines never wider than ``width``."""
    models: dict[str, None] = {}
    for row in rows:
        models.update(dict.fromkeys(row.uar))
    if not models:
        raise UserError(f"no metrics file with a {METRIC!r} key in `dvc exp show`")
    if sort is None:
        sort = max(models, key=lambda m: max(r.uar.get(m, float("-inf")) for r in rows))
    elif sort not in models:
        raise UserError(f"--sort {sort}: no such model; models: {', '.join(models)}")
    ordered = sorted(rows, key=lambda r: -r.uar.get(sort, float("-inf")))
    keys = changed_params(rows)
    names = short_names(keys)

    def column(header: str, cells: list[str]) -> list[str]:
        size = max(len(header), *(len(c) for c in cells))
        return [header.ljust(size), *(c.ljust(size) for c in cells)]

    first = column("Experiment", [r.name for r in ordered])
    score = [
        column(m, [f"{r.uar[m]:.3f}" if m in r.uar else MISSING for r in ordered]) for m in models
    ]
    params = [
        column(
            names[k],
            [MISSING if r.params is None else _cell(r.params.get(k, MISSING)) for r in ordered],
        )
        for k in keys
    ]
    fixed = len(first[0]) + sum(len(GAP) + len(c[0]) for c in score)
    shown, hidden = [], []
    for key, col in zip(keys, params, strict=True):
        if fixed + sum(len(GAP) + len(c[0]) for c in [*shown, col]) <= width:
            shown.append(col)
        else:
            hidden.append(key)
    columns = [first, *shown, *score]
    lines = [GAP.join(c[i] for c in columns).rstrip()[:width] for i in range(len(first))]
    lines.insert(1, "-" * min(width, max(len(line) for line in lines)))
    note = f"sorted by {sort} UAR, best first"
    if hidden:
        note += f"; {len(hidden)} more changed params: " + ", ".join(hidden)
    if not keys:
        note += "; no params differ"
    lines += _wrap(note, width)
    return "\n".join(lines)


def _wrap(text: str, width: int) -> list[str]:
    import textwrap

    return textwrap.wrap(text, width=width, break_on_hyphens=False) or [""]


def exp_show_json(extra: Sequence[str]) -> list[Mapping[str, Any]]:
    try:
        done = subprocess.run(
            ["dvc", "exp", "show", "--json", *extra], capture_output=True, text=True, check=False
        )
    except FileNotFoundError as err:
        raise UserError("dvc is not installed (pip install -e .)") from err
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["failed"])[-1]
        raise UserError(f"dvc exp show: {last}")
    return json.loads(done.stdout)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="seda experiments",
        description="DVC experiments: the params that differ and each model's UAR, best first. "
        "Other arguments go to `dvc exp show` (e.g. -A, -n 5, --rev main).",
    )
    parser.add_argument("--sort", metavar="MODEL", help="sort by this model's UAR")
    parser.add_argument("--width", type=int, default=120, help="widest line (default 120)")
    parser.add_argument(
        "--json-file", metavar="PATH", help="saved `dvc exp show --json` output ('-': stdin)"
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args, extra = build_parser().parse_known_args(argv)
    try:
        if args.json_file == "-":
            entries = json.load(sys.stdin)
        elif args.json_file:
            entries = json.loads(Path(args.json_file).read_text())
        else:
            entries = exp_show_json(extra)
        print(render_table(parse_exp_show(entries), args.sort, args.width))
    except (UserError, OSError, ValueError) as err:
        print(f"seda experiments: error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
