"""Stage ``cross@<name>``: the trained models scored on another corpus (``test_datasets.<name>``).

    python -m seda.stages.cross NAME --models models/hubert ... --clips data/cross/NAME
        --out reports/cross/NAME [--cache DIR]

The test corpus is read in place like any folder dataset (:mod:`seda.collect.folder`, with its
own ``label_map`` onto the training labels), cut into clips by the training pipeline's ``clean``
and ``vad`` settings (no separation: a corpus on disk holds no music) into ``--clips``, and every
model of ``--models`` scores them (:mod:`seda.crosscorpus`). Written to ``--out``:
``metrics.json`` (each model's headline figures, a DVC metric), ``details/<model>.json``,
``summary.json`` and ``summary.md`` (which corpus trained, which tested, what was left out).
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path
from typing import Any

from seda.cache import DEFAULT_CACHE_ROOT
from seda.collect.folder import FolderSettings, collect_folder
from seda.config import build, load_params
from seda.crosscorpus import cross_evaluate, summary_table
from seda.entry import stage_main
from seda.errors import ConfigError
from seda.io import write_json_atomic, write_text_atomic
from seda.models.evaluation import EvalSettings
from seda.models.loading import load_model
from seda.records import UNLABELLED, ClipRow, ItemRow, write_records
from seda.segment.clips import CleanSettings, validate_clean
from seda.segment.manifest import REJECT_EXTRA, clean_manifest
from seda.segment.vad import VadSettings, validate_vad

log = logging.getLogger(__name__)

STAGE = "cross"


def run(
    params: dict[str, Any],
    name: str,
    *,
    models: list[Path],
    clips_dir: Path,
    out: Path,
    cache_root: Path = DEFAULT_CACHE_ROOT,
) -> dict[str, Any]:
    """Clean test corpus ``name`` into ``clips_dir`` and score every model on it into ``out``."""
    section = (params.get("test_datasets") or {}).get(name)
    if section is None:
        raise ConfigError(f"test_datasets.{name} is not in params.yaml (test_dataset={name}?)")
    corpus = build(FolderSettings, section, f"test_datasets.{name}")
    clean = build(CleanSettings, params.get("clean"), "clean")
    vad = build(VadSettings, params.get("vad"), "vad")
    validate_clean(clean)
    validate_vad(vad)
    evaluation = build(EvalSettings, params.get("eval"), "eval")
    trained_on = str((params.get("dataset") or {}).get("name", "?"))
    workers = params.get("workers", 0)

    collected = collect_folder(corpus, cache_root / "collect", workers)
    write_records(clips_dir / "items.csv", collected.rows, ItemRow)
    collected.failures.write(clips_dir / "failures.csv")
    clips, rejects, _ = clean_manifest(
        collected.rows, clean, vad, clips_dir / "clips", workers=workers, cache_root=cache_root
    )
    write_records(clips_dir / "manifest.csv", clips, ClipRow)
    rejects.write(clips_dir / "rejected.csv", REJECT_EXTRA)

    summary, records = cross_evaluate(
        [load_model(m) for m in models],
        [c for c in clips if c.label != UNLABELLED],
        trained_on=trained_on,
        tested_on=corpus.name if corpus.name != "folder" else name,
        n_bootstrap=evaluation.n_bootstrap,
        seed=params.get("seed", 0),
    )
    for record in records:
        record.write(out / "details" / f"{record.model}.json")
    headlines = {r.model: r.headline.to_json() for r in summary.models}
    write_json_atomic(out / "metrics.json", headlines)
    summary.write(out / "summary.json")
    write_text_atomic(out / "summary.md", summary_table(summary))
    report = {"test_clips": summary.test_clips, "models": len(summary.models)}
    log.info("cross %s (trained on %s): %s", name, trained_on, report)
    return {**report, "uar": {r.model: r.headline.uar for r in summary.models}}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog=f"python -m seda.stages.{STAGE}",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("name", help="a key of test_datasets in params.yaml")
    parser.add_argument("--models", type=Path, nargs="+", required=True, help="model folders")
    parser.add_argument("--clips", type=Path, required=True, help="folder of the test clips")
    parser.add_argument("--out", type=Path, required=True, help="folder of the reports")
    parser.add_argument("--cache", type=Path, default=DEFAULT_CACHE_ROOT, help="per-file cache")
    args = parser.parse_args(argv)
    return stage_main(
        STAGE,
        lambda: run(
            load_params(),
            args.name,
            models=args.models,
            clips_dir=args.clips,
            out=args.out,
            cache_root=args.cache,
        ),
    )


if __name__ == "__main__":
    raise SystemExit(main())
