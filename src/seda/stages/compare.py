"""Stage `compare`: one table and one chart of every model's test metrics (:mod:`seda.comparison`).

Writes ``comparison.md``, ``comparison.png`` and ``comparison.json`` (for ``dvc metrics``) into
``--out``. No parameters: what it shows is fixed by the metrics files.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path
from typing import Any

from seda.comparison import (
    comparison_figure,
    load_results,
    metrics_files,
    render_markdown,
    summary,
)
from seda.entry import stage_main
from seda.errors import InputMissingError, UserError
from seda.io import write_json_atomic, write_text_atomic
from seda.plots import save_figure

log = logging.getLogger(__name__)


def run(metrics: list[Path], out_dir: Path) -> dict[str, Any]:
    """Write comparison.md/.png/.json into ``out_dir``; return the JSON summary."""
    files = metrics_files(metrics)
    where = ", ".join(Path(p).as_posix() for p in metrics)
    if not files:
        raise InputMissingError(f"no metrics file in {where}: run the train stages first")
    results, skipped = load_results(files)
    if not results:
        raise UserError(
            f"no usable metrics file in {where} ({len(skipped)} unreadable, see the log): "
            "run the train stages again"
        )
    png = out_dir / "comparison.png"
    write_text_atomic(out_dir / "comparison.md", render_markdown(results, skipped, png.name))
    save_figure(comparison_figure(results), png)
    data = summary(results, skipped)
    write_json_atomic(out_dir / "comparison.json", data)
    log.info(
        "compare: %d model(s), best UAR %s %.3f; wrote %s",
        len(results),
        results[0].model,
        results[0].uar,
        out_dir / "comparison.md",
    )
    return data


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m seda.stages.compare", description=__doc__)
    parser.add_argument(
        "--metrics",
        type=Path,
        nargs="+",
        required=True,
        help="metrics files of the models (a folder: its *.json)",
    )
    parser.add_argument("--out", type=Path, required=True, help="folder for the comparison")
    args = parser.parse_args(argv)
    return stage_main("compare", lambda: run(args.metrics, args.out))


if __name__ == "__main__":
    raise SystemExit(main())
