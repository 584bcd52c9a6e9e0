"""Stage `index`: list what the dataset of ``params.yaml`` (section ``dataset``, or
``test_datasets.<name>`` with ``--test-dataset``) reads.

Written to ``--out``: one CSV row per file (``path,size,sha256,kind,reason``, see
:class:`seda.collect.index.IndexRow`), odd entries (symbolic link loops, dangling links, pipes,
sockets, devices, unreadable files) flagged, none opened. DVC depends on this file instead of the
corpus folder, which it cannot always hash (a loop or a dangling link aborts it, a pipe hangs
it); run on every ``dvc repro`` (``always_changed``), it changes exactly when a file is added,
changed or removed. The work is in :mod:`seda.collect`.

    python -m seda.stages.index --out FILE [--cache DIR] [--test-dataset NAME]
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from seda.cache import DEFAULT_CACHE_ROOT
from seda.collect import IndexRow, build_dataset_settings, index_corpus
from seda.collect.folder import FolderSettings
from seda.config import build, load_params
from seda.entry import stage_main
from seda.errors import ConfigError
from seda.records import write_records

log = logging.getLogger(__name__)

STAGE = "index"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog=f"python -m seda.stages.{STAGE}", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--out", type=Path, required=True, help="the index CSV to write")
    parser.add_argument(
        "--cache",
        type=Path,
        default=DEFAULT_CACHE_ROOT / STAGE,
        help="sha256 of each file by its stat stamp, kept across runs (default: %(default)s)",
    )
    parser.add_argument(
        "--test-dataset", metavar="NAME", help="index test_datasets.NAME instead of dataset"
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)

    def work() -> None:
        params = load_params()
        if args.test_dataset is None:
            settings = build_dataset_settings(params.get("dataset"))
        else:
            section = (params.get("test_datasets") or {}).get(args.test_dataset)
            if section is None:
                raise ConfigError(f"test_datasets.{args.test_dataset} is not in params.yaml")
            settings = build(FolderSettings, section, f"test_datasets.{args.test_dataset}")
        rows = index_corpus(settings, args.cache)
        write_records(args.out, rows, IndexRow)
        odd = sum(r.kind != "ok" for r in rows)
        log.info("index: %d file(s), %d odd entr%s", len(rows), odd, "y" if odd == 1 else "ies")

    return stage_main(STAGE, work)


if __name__ == "__main__":
    raise SystemExit(main())
