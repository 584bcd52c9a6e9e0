"""Stage ``clean``: cut each separated item into loudness-normalised 16 kHz speech clips.

    python -m seda.stages.clean --manifest data/separated/manifest.csv --out data/clean

Reads the ``clean`` and ``vad`` sections of params.yaml; writes ``<out>/<label>/<clip_id>.wav``,
``<out>/manifest.csv`` and ``<out>/rejected.csv``. The work is :mod:`seda.segment`.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path
from typing import Any

from seda.cache import DEFAULT_CACHE_ROOT
from seda.config import build, load_params
from seda.entry import stage_main
from seda.errors import InputMissingError, UserError
from seda.io import nothing_kept
from seda.records import ClipRow, ItemRow, read_records, write_records
from seda.segment.clips import CleanSettings, validate_clean
from seda.segment.manifest import REJECT_EXTRA, clean_manifest
from seda.segment.vad import VadSettings, validate_vad

log = logging.getLogger(__name__)

STAGE = "clean"


def run(
    params: dict[str, Any],
    *,
    manifest: str | Path,
    out_dir: str | Path,
    cache_root: str | Path = DEFAULT_CACHE_ROOT,
) -> dict[str, Any]:
    """Clean every item of ``manifest`` into ``out_dir``; return counts for the log/benchmark."""
    clean = build(CleanSettings, params.get("clean"), "clean")
    vad = build(VadSettings, params.get("vad"), "vad")
    validate_clean(clean)
    validate_vad(vad)
    manifest, out_dir = Path(manifest), Path(out_dir)
    if not manifest.exists():
        raise InputMissingError(f"{manifest} not found: run the separate stage first")
    rows = read_records(manifest, ItemRow)
    clips, rejects, summary = clean_manifest(
        rows, clean, vad, out_dir, workers=params.get("workers", 0), cache_root=cache_root
    )
    write_records(out_dir / "manifest.csv", clips, ClipRow)
    rejects.write(out_dir / "rejected.csv", REJECT_EXTRA)
    if not rows:
        raise UserError(f"{manifest} lists no item: nothing to clean")
    if not clips and rejects:
        raise UserError(nothing_kept("clip from any item", rejects, out_dir / "rejected.csv"))
    log.info(
        "clean: %d items (%d decoded, %d cached), %d clips, %d items and %d clips rejected",
        summary["items"],
        summary["decoded"],
        summary["cached"],
        summary["clips"],
        summary["rejected_items"],
        summary["rejected_clips"],
    )
    return summary


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog=f"python -m seda.stages.{STAGE}",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--manifest", type=Path, required=True, help="items to clean (CSV)")
    parser.add_argument("--out", type=Path, required=True, help="folder of the clips")
    parser.add_argument("--cache", type=Path, default=DEFAULT_CACHE_ROOT, help="per-file cache")
    args = parser.parse_args(argv)
    return stage_main(
        STAGE,
        lambda: run(load_params(), manifest=args.manifest, out_dir=args.out, cache_root=args.cache),
    )


if __name__ == "__main__":
    raise SystemExit(main())
