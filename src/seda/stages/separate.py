"""Stage `separate`: isolate the voice from music beds (YouTube sources) before cleaning.

    python -m seda.stages.separate --manifest data/raw/manifest.csv --out data/separated

Reads the ``separate`` section of params.yaml; writes ``<out>/<id>.wav`` voice stems,
``<out>/manifest.csv`` and ``<out>/rejected.csv``. The work is :mod:`seda.separation`.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path
from typing import Any

from seda.cache import DEFAULT_CACHE_ROOT
from seda.config import load_params
from seda.entry import stage_main
from seda.records import ItemRow, read_records, write_records
from seda.separation.backends import make_backend, settings_for
from seda.separation.manifest import separate_manifest

log = logging.getLogger(__name__)

STAGE = "separate"


def run(
    params: dict[str, Any], *, manifest: Path, out_dir: Path, cache_root: Path = DEFAULT_CACHE_ROOT
) -> dict[str, Any]:
    """Separate every item of ``manifest`` into ``out_dir``; return counts for the log."""
    settings = settings_for(params.get("separate"))
    make_backend(settings)  # a bad setting fails before any file is read
    rows = read_records(manifest, ItemRow)
    out_rows, rejects, counts = separate_manifest(
        rows, settings, out_dir, workers=params.get("workers"), cache_root=cache_root
    )
    Path(out_dir).mkdir(parents=True, exist_ok=True)
    write_records(Path(out_dir) / "manifest.csv", out_rows, ItemRow)
    rejects.write(Path(out_dir) / "rejected.csv")
    log.info(
        "separate (%s): %d items, %d separated, %d from cache, %d rejected",
        settings.backend,
        counts["items"],
        counts["separated"],
        counts["cached"],
        counts["rejected"],
    )
    return {"backend": settings.backend, **counts}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog=f"python -m seda.stages.{STAGE}",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--manifest", type=Path, required=True, help="items to separate (CSV)")
    parser.add_argument("--out", type=Path, required=True, help="folder of the voice stems")
    parser.add_argument("--cache", type=Path, default=DEFAULT_CACHE_ROOT, help="per-file cache")
    args = parser.parse_args(argv)
    return stage_main(
        STAGE,
        lambda: run(load_params(), manifest=args.manifest, out_dir=args.out, cache_root=args.cache),
    )


if __name__ == "__main__":
    raise SystemExit(main())
