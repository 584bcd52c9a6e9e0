"""Stage `split`: speaker- and video-independent splits and folds (:mod:`seda.splitting`).

Labels decided in ``seda review`` (the review log) override the collected ones first.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path
from typing import Any

from seda.config import build, load_params
from seda.entry import stage_main
from seda.errors import InputMissingError
from seda.io import write_json_atomic
from seda.labels import apply_reviewed_labels
from seda.records import ClipRow, SplitRow, as_dicts, read_records, write_records
from seda.splitting import SplitSettings, check_settings, speaker_grouped_split, summarize

log = logging.getLogger(__name__)


def run(clips: Path, reviewed: Path, out_dir: Path, params: dict[str, Any]) -> dict[str, Any]:
    """Write ``splits.csv`` and ``summary.json`` into ``out_dir``; return the summary."""
    settings = build(SplitSettings, params.get("split"), "split")
    check_settings(settings)
    seed = int(params.get("seed", 0))
    rows = apply_reviewed_labels(as_dicts(read_records(clips, ClipRow)), reviewed)
    if not rows:
        raise InputMissingError(f"{clips} has no clips: nothing to split")
    out_rows = speaker_grouped_split(rows, settings, seed)
    summary = summarize(out_rows, settings, seed)
    write_records(out_dir / "splits.csv", (SplitRow(**r) for r in out_rows), SplitRow)
    write_json_atomic(out_dir / "summary.json", summary)
    sizes = {s: sum(c.values()) for s, c in summary["counts"].items()}
    log.info(
        "split (%s): %d clips in %d groups -> train %d, val %d, test %d clips; %d folds",
        settings.group_by,
        summary["clips"],
        summary["groups"],
        sizes["train"],
        sizes["val"],
        sizes["test"],
        summary["folds"],
    )
    return summary


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m seda.stages.split", description=__doc__)
    parser.add_argument("--clips", type=Path, required=True, help="the clean manifest")
    parser.add_argument("--reviewed", type=Path, required=True, help="the review log")
    parser.add_argument("--out", type=Path, required=True, help="folder for splits.csv")
    args = parser.parse_args(argv)
    return stage_main("split", lambda: run(args.clips, args.reviewed, args.out, load_params()))


if __name__ == "__main__":
    raise SystemExit(main())
