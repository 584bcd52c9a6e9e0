"""Stage `collect`: gather the dataset of ``params.yaml`` section ``dataset`` into ``--out``.

Writes ``<out>/manifest.csv`` (:class:`seda.records.ItemRow`), ``<out>/failures.csv`` and
``<out>/audio/`` (downloads hard-linked from ``--cache``, which DVC leaves alone, so a rerun
downloads only what is new). The work is in :mod:`seda.collect`. A full disk or a write the
machine refuses stops it with one line naming the path (exit status 1, nothing recorded).

    python -m seda.stages.collect --out DIR [--cache DIR] [--retry-failed]
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

from seda.cache import DEFAULT_CACHE_ROOT
from seda.collect import build_dataset_settings, collect_dataset
from seda.config import load_params
from seda.entry import stage_main

log = logging.getLogger(__name__)

STAGE = "collect"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog=f"python -m seda.stages.{STAGE}", description=__doc__.splitlines()[0]
    )
    parser.add_argument(
        "--out", type=Path, required=True, help="output folder (manifest.csv, failures.csv, audio/)"
    )
    parser.add_argument(
        "--cache",
        type=Path,
        default=DEFAULT_CACHE_ROOT / STAGE,
        help="download and probe cache, kept across runs (default: %(default)s)",
    )
    parser.add_argument(
        "--retry-failed",
        action="store_true",
        help="try again the urls that failed permanently before (404, private, removed, ...); "
        "as dataset.ytdlp.retry_failed: true",
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)

    def work() -> None:
        params = load_params()
        settings = build_dataset_settings(params.get("dataset"), retry_failed=args.retry_failed)
        summary = collect_dataset(settings, args.out, args.cache, workers=params.get("workers"))
        log.info("collect: %s", json.dumps(summary, ensure_ascii=False))

    return stage_main(STAGE, work)


if __name__ == "__main__":
    raise SystemExit(main())
