"""Stage `separation_quality@<dataset>`: how much separation helps, where clean voices are known.

Only a synthetic corpus (the demo) knows each item's clean voice, so ``dvc.yaml`` makes this stage
exist only for datasets that name a references folder (``dataset.references``). It writes the
SI-SDR of every item's mixture and voice stem (``scores.csv``), their means as a metric
(``si_sdr.json``) and a figure of one item with its reference (``reference.png``).
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path
from statistics import fmean
from typing import Any

from seda.config import build, load_params
from seda.dataset_figures import FiguresSettings, make_separation_figure
from seda.entry import stage_main
from seda.errors import InputMissingError
from seda.io import write_csv_atomic, write_json_atomic
from seda.records import ItemRow, as_dicts, read_records
from seda.separation.references import score_against_references

log = logging.getLogger(__name__)
SCORE_COLUMNS = ("id", "si_sdr_mixture", "si_sdr_separated", "si_sdr_gain")


def run(
    params: dict[str, Any], *, raw: Path, separated: Path, references: Path, out: Path
) -> dict[str, Any]:
    if not references.is_dir():
        raise InputMissingError(f"{references}: the references folder is not there")
    raw_rows = as_dicts(read_records(raw, ItemRow))
    separated_rows = as_dicts(read_records(separated, ItemRow))
    scores = score_against_references(raw_rows, separated_rows, references)
    if not scores:
        raise InputMissingError(f"no item of {raw} has a reference voice in {references}")
    write_csv_atomic(out / "scores.csv", scores, SCORE_COLUMNS)
    summary = {
        "items": len(scores),
        **{k: round(fmean(s[k] for s in scores), 3) for k in SCORE_COLUMNS[1:]},
    }
    write_json_atomic(out / "si_sdr.json", summary)
    separate = params.get("separate") or {}
    make_separation_figure(
        raw_rows,
        separated_rows,
        out / "reference.png",
        build(FiguresSettings, params.get("figures"), "figures"),
        int(separate.get("sample_rate", 22050)),
        str(separate.get("backend", "")),
        references,
    )
    log.info(
        "separation quality: %d items, SI-SDR mixture %+.2f dB, separated %+.2f dB (gain %+.2f)",
        summary["items"],
        summary["si_sdr_mixture"],
        summary["si_sdr_separated"],
        summary["si_sdr_gain"],
    )
    return summary


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m seda.stages.separation_quality", description=__doc__
    )
    parser.add_argument("--raw", type=Path, required=True, help="the raw manifest")
    parser.add_argument("--separated", type=Path, required=True, help="the separated manifest")
    parser.add_argument("--references", type=Path, required=True, help="clean reference voices")
    parser.add_argument("--out", type=Path, required=True, help="folder for scores and figure")
    args = parser.parse_args(argv)
    return stage_main(
        "separation_quality",
        lambda: run(
            load_params(),
            raw=args.raw,
            separated=args.separated,
            references=args.references,
            out=args.out,
        ),
    )


if __name__ == "__main__":
    raise SystemExit(main())
