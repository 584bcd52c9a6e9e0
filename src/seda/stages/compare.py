"""Stage `compare`: every model's test results side by side (:mod:`seda.comparison`).

``python -m seda.stages.compare --details <model.json>... --predictions <predictions.csv>...
--out <dir>``: the details files of the models and, in the same order, their test predictions
(for the paired comparison with the best model). Writes ``comparison.md``, ``comparison.png`` and
``comparison.json`` into ``--out``. No parameters: what it shows is fixed by its inputs.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path
from typing import Any

from seda.comparison import (
    check_inputs,
    comparison_figure,
    load_results,
    paired_with_best,
    render_markdown,
    summary,
)
from seda.entry import stage_main
from seda.errors import InputMissingError, UserError
from seda.io import write_json_atomic, write_text_atomic
from seda.plots import save_figure

log = logging.getLogger(__name__)


def run(details: list[Path], predictions: list[Path] | None, out_dir: Path) -> dict[str, Any]:
    """Write comparison.md/.png/.json into ``out_dir``; return the JSON summary."""
    if not details:
        raise InputMissingError("no details file named: run the train stages first")
    check_inputs(details, predictions)
    results, skipped = load_results(details, predictions)
    if not results:
        where = ", ".join(Path(p).as_posix() for p in details)
        raise UserError(
            f"no usable details file in {where} ({len(skipped)} unreadable, see the log): "
            "run the train stages again"
        )
    paired = paired_with_best(results) if predictions is not None else []
    png = out_dir / "comparison.png"
    write_text_atomic(
        out_dir / "comparison.md", render_markdown(results, skipped, png.name, paired)
    )
    save_figure(comparison_figure(results), png)
    data = summary(results, skipped, paired)
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
        "--details", type=Path, nargs="+", required=True, help="details files of the models"
    )
    parser.add_argument(
        "--predictions",
        type=Path,
        nargs="+",
        help="their predictions.csv files, in the same order (for the paired comparison)",
    )
    parser.add_argument("--out", type=Path, required=True, help="folder for the comparison")
    args = parser.parse_args(argv)
    return stage_main("compare", lambda: run(args.details, args.predictions, args.out))


if __name__ == "__main__":
    raise SystemExit(main())
