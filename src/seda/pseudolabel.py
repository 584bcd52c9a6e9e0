"""``seda label``: pseudo-label the clips nobody has labelled yet, and queue them for review.

A trained model (``models/<model>/``) predicts every clip of the clean manifest whose label is
``unknown`` (or empty) once the decisions already in the review log are applied, and writes

- ``<out>/predictions.csv``: one row per clip, in manifest order, with the predicted label, its
  probability, the margin to the runner-up and every label's probability;
- ``<out>/review_queue.csv``: the same rows, most uncertain first (smallest margin between the
  top two probabilities), which ``seda review`` serves;
- ``<out>/rejected.csv``: clips that could not be read or featurized.

Pseudo-labelling is a person's tool, not a pipeline stage: pseudo-labels never become training
labels by themselves, only a person's decision in ``seda review`` does (through the review log,
which the split stage reads).
"""

from __future__ import annotations

import argparse
import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from seda.entry import stage_main
from seda.errors import ConfigError
from seda.io import RejectLog, write_csv_atomic
from seda.labels import (
    apply_reviewed_labels,
    prediction_columns,
    prediction_rows,
    review_queue,
    unlabelled_rows,
)
from seda.records import ClipRow, as_dicts, read_records

log = logging.getLogger(__name__)

# Where the pipeline keeps these files (the split stage reads the review log from dvc.yaml).
CLIPS = Path("data/clean/manifest.csv")
OUT_DIR = Path("data/pseudo")
MODELS_DIR = Path("models")
REVIEWED_CSV = Path("data/labels/reviewed.csv")
QUEUE_NAME = "review_queue.csv"


def predict_clips(
    rows: Sequence[Mapping[str, Any]], model: Any, rejects: RejectLog
) -> tuple[list[dict[str, Any]], np.ndarray]:
    """Probabilities of the readable clips (speaker as the baseline's standardisation group)."""
    from seda.audio import AudioError, load_audio

    kept, waves = [], []
    for r in rows:
        try:
            waves.append(load_audio(r["path"], model.sample_rate)[0])
            kept.append(dict(r))
        except AudioError as err:
            rejects.add(r["clip_id"], r["path"], str(err))
    proba = model.predict_proba(waves, [r.get("speaker") or r["clip_id"] for r in kept])
    good = np.all(np.isfinite(proba), axis=1) if len(kept) else np.zeros(0, bool)
    for r, ok in zip(kept, good, strict=True):
        if not ok:
            rejects.add(r["clip_id"], r["path"], "the model could not compute features")
    return [r for r, ok in zip(kept, good, strict=True) if ok], proba[good]


def pseudo_label(
    model_name: str,
    clips: Path = CLIPS,
    out_dir: Path = OUT_DIR,
    models_dir: Path = MODELS_DIR,
    reviewed: Path = REVIEWED_CSV,
) -> dict[str, Any]:
    """Write predictions.csv, review_queue.csv and rejected.csv into ``out_dir``; a summary."""
    from seda.models.loading import load_model

    if not model_name or "/" in model_name or model_name in (".", ".."):
        raise ConfigError(
            f"--model must name a trained model under {models_dir}/ (e.g. baseline, wavlm), "
            f"got {model_name!r}"
        )
    model = load_model(Path(models_dir) / model_name)
    manifest = as_dicts(read_records(clips, ClipRow))
    rows = unlabelled_rows(apply_reviewed_labels(manifest, reviewed))
    rejects = RejectLog("label")
    kept, proba = predict_clips(rows, model, rejects)
    predictions = prediction_rows(kept, proba, model.labels, model.name)
    columns = prediction_columns(model.labels)
    out_dir = Path(out_dir)
    write_csv_atomic(out_dir / "predictions.csv", predictions, columns)
    write_csv_atomic(out_dir / QUEUE_NAME, review_queue(predictions), columns)
    rejects.write(out_dir / "rejected.csv")
    summary = {"model": model.name, "unlabelled": len(rows), "predicted": len(predictions)}
    if not rows:
        log.info("label: no unlabelled clips in %s", clips)
    log.info("label: %s; review with `seda review --queue %s`", summary, out_dir / QUEUE_NAME)
    return summary


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="seda label", description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="baseline", help="a trained model under --models")
    parser.add_argument("--clips", type=Path, default=CLIPS, help="the clean manifest")
    parser.add_argument("--out", type=Path, default=OUT_DIR, help="folder for the queue")
    parser.add_argument("--models", type=Path, default=MODELS_DIR)
    parser.add_argument("--reviewed", type=Path, default=REVIEWED_CSV, help="the review log")
    args = parser.parse_args(argv)
    return stage_main(
        "label",
        lambda: pseudo_label(args.model, args.clips, args.out, args.models, args.reviewed),
    )


if __name__ == "__main__":
    raise SystemExit(main())
