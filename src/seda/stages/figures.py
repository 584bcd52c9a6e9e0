"""Stage `figures`: example clips per emotion and a voice separation example
(:mod:`seda.dataset_figures`).

``separation.png`` is drawn only when ``--raw`` and ``--separated`` are given and separation
wrote voice stems; with ``--references`` (the demo corpus's clean voices), it gets a third panel
and SI-SDR scores.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path
from typing import Any

from seda.config import build, load_params
from seda.dataset_figures import (
    FiguresSettings,
    draw_examples,
    load_examples,
    make_separation_figure,
    pick_examples,
)
from seda.entry import stage_main
from seda.errors import InputMissingError
from seda.records import ItemRow, SplitRow, as_dicts, read_records

log = logging.getLogger(__name__)


def run(
    splits: Path,
    out_dir: Path,
    params: dict[str, Any],
    raw: Path | None = None,
    separated: Path | None = None,
    references: Path | None = None,
) -> dict[str, Any]:
    """Write the figures into ``out_dir``; return what was drawn."""
    settings = build(FiguresSettings, params.get("figures"), "figures")
    separate = params.get("separate") or {}
    clips = load_examples(pick_examples(as_dicts(read_records(splits, SplitRow))))
    if not clips:
        raise InputMissingError(f"{splits}: no readable labelled clips to draw")
    written = draw_examples(clips, out_dir, settings)
    separation = None
    sep_png = out_dir / "separation.png"
    if raw is not None and separated is not None:
        separation = make_separation_figure(
            as_dicts(read_records(raw, ItemRow)),
            as_dicts(read_records(separated, ItemRow)),
            sep_png,
            settings,
            int(separate.get("sample_rate", 22050)),
            str(separate.get("backend", "")),
            references,
        )
    if separation is not None:
        written.append(sep_png.name)
    else:
        sep_png.unlink(missing_ok=True)
    log.info("figures: wrote %s to %s (%d emotions)", ", ".join(written), out_dir, len(clips))
    return {
        "out_dir": str(out_dir),
        "files": written,
        "labels": [r["label"] for r, _, _ in clips],
        "separation": separation,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m seda.stages.figures", description=__doc__)
    parser.add_argument("--splits", type=Path, required=True, help="splits.csv")
    parser.add_argument("--raw", type=Path, help="the raw manifest")
    parser.add_argument("--separated", type=Path, help="the separated manifest")
    parser.add_argument("--references", type=Path, help="clean reference voices (demo corpus)")
    parser.add_argument("--out", type=Path, required=True, help="folder for the PNG files")
    args = parser.parse_args(argv)
    return stage_main(
        "figures",
        lambda: run(
            args.splits, args.out, load_params(), args.raw, args.separated, args.references
        ),
    )


if __name__ == "__main__":
    raise SystemExit(main())
