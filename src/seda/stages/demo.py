"""Stage `demo`: write the synthetic demo corpus (:mod:`seda.demo_corpus`) into ``--out``.

Settings from ``params.yaml`` section ``demo``; the same settings give the same bytes.

    python -m seda.stages.demo --out DIR
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from seda.config import build, load_params
from seda.demo_corpus import DemoSettings, generate
from seda.entry import stage_main

log = logging.getLogger(__name__)

STAGE = "demo"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog=f"python -m seda.stages.{STAGE}", description=__doc__.splitlines()[0]
    )
    parser.add_argument(
        "--out",
        type=Path,
        required=True,
        help="output folder (media/, reference/, sources.csv, truth.csv)",
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)

    def work() -> None:
        settings = build(DemoSettings, load_params().get(STAGE), STAGE)
        summary = generate(settings, args.out)
        log.info(
            "demo: %d items (%d unlabelled), %.0f s in all, in %s",
            summary["items"],
            summary["unlabelled"],
            summary["seconds"],
            args.out.as_posix(),
        )

    return stage_main(STAGE, work)


if __name__ == "__main__":
    raise SystemExit(main())
