"""Stage ``label``: pseudo-label the clips that have no emotion label, and queue them for review.

Off by default (``label.enabled: false``): then it writes the two output files with headers only,
so that DVC always finds its outputs. When enabled, the model ``models/<label.model>/`` predicts
every clip of ``data/clean/manifest.csv`` whose label is ``unknown`` (or empty) after the
reviewed labels of ``data/labels/reviewed.csv`` are applied, and writes

- ``data/pseudo/predictions.csv``: one row per clip, in manifest order, with the predicted
  label, its probability, the margin to the runner-up and every label's probability;
- ``data/pseudo/review_queue.csv``: the same rows, most uncertain first (smallest margin between
  the top two probabilities), which ``seda review`` serves.

Pseudo-labels never become training labels by themselves: only a person's decision in
``seda review`` does (through ``reviewed.csv``).
"""

from __future__ import annotations

import argparse
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from seda.audio import AudioError, load_audio
from seda.config import ConfigError, build, load_params
from seda.entry import stage_main
from seda.io import CLIP_COLUMNS, RejectLog, read_csv, write_csv_atomic

log = logging.getLogger(__name__)

CLEAN_MANIFEST = Path("data/clean/manifest.csv")
OUT_DIR = Path("data/pseudo")
MODELS_DIR = Path("models")
UNLABELLED = "unknown"
BASE_COLUMNS = (
    "rank",
    *CLIP_COLUMNS,
    "model",
    "predicted",
    "probability",
    "margin",
)


@dataclass
class LabelSettings:
    """The ``label`` section."""

    enabled: bool = False
    # A trained model under models/ (a name, not "best": DVC needs the dependency's path).
    model: str = "baseline"

    def __post_init__(self) -> None:
        if not self.model or "/" in self.model or self.model in (".", "..", "best"):
            raise ConfigError(
                f"label.model must name a trained model under models/ (e.g. baseline, wavlm), "
                f"got {self.model!r}"
            )


def unlabelled_rows(rows: list[dict[str, str]]) -> list[dict[str, str]]:
    """Clips without an emotion label (``unknown`` or empty)."""
    return [r for r in rows if (r.get("label") or UNLABELLED) == UNLABELLED]


def margins(proba: np.ndarray) -> np.ndarray:
    """Top probability minus the runner-up's: small means the model hesitates."""
    if proba.shape[1] < 2:
        return np.ones(len(proba))
    top2 = np.sort(proba, axis=1)[:, -2:]
    return top2[:, 1] - top2[:, 0]


def prediction_rows(
    rows: list[dict[str, str]], proba: np.ndarray, labels: list[str], model_name: str
) -> list[dict[str, Any]]:
    """One output row per clip (same order), with predicted label, probability and margin."""
    out = []
    margin = margins(proba)
    for r, p, m in zip(rows, proba, margin, strict=True):
        k = int(np.argmax(p))
        out.append(
            {
                **r,
                "model": model_name,
                "predicted": labels[k],
                "probability": round(float(p[k]), 6),
                "margin": round(float(m), 6),
                **{f"prob_{lab}": round(float(v), 6) for lab, v in zip(labels, p, strict=True)},
            }
        )
    return out


def review_queue(predictions: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Most uncertain first (smallest margin, then lowest probability, then clip id); ranked."""
    ordered = sorted(
        predictions, key=lambda r: (float(r["margin"]), float(r["probability"]), r["clip_id"])
    )
    return [{**r, "rank": i} for i, r in enumerate(ordered, start=1)]


def predict_clips(
    rows: list[dict[str, str]], model: Any, rejects: RejectLog
) -> tuple[list[dict[str, str]], np.ndarray]:
    """Probabilities of the readable clips (speaker as the baseline's standardisation group)."""
    kept, waves = [], []
    for r in rows:
        try:
            waves.append(load_audio(r["path"], model.sample_rate)[0])
            kept.append(r)
        except AudioError as err:
            rejects.add(r["clip_id"], r["path"], str(err))
    proba = model.predict_proba(waves, [r.get("speaker") or r["clip_id"] for r in kept])
    good = np.all(np.isfinite(proba), axis=1) if len(kept) else np.zeros(0, bool)
    for r, ok in zip(kept, good, strict=True):
        if not ok:
            rejects.add(r["clip_id"], r["path"], "the model could not compute features")
    return [r for r, ok in zip(kept, good, strict=True) if ok], proba[good]


def run(
    params: dict[str, Any],
    *,
    manifest: Path = CLEAN_MANIFEST,
    out_dir: Path = OUT_DIR,
    models_dir: Path = MODELS_DIR,
    reviewed: Path | None = None,
) -> dict[str, Any]:
    """Write predictions.csv and review_queue.csv (headers only when disabled)."""
    from seda.review import REVIEWED_CSV, apply_reviewed_labels

    settings = build(LabelSettings, params.get("label"), "label")
    reviewed = REVIEWED_CSV if reviewed is None else reviewed
    rejects = RejectLog("label")
    columns: list[str] = list(BASE_COLUMNS)
    predictions: list[dict[str, Any]] = []
    summary: dict[str, Any] = {"enabled": settings.enabled, "model": settings.model}
    if settings.enabled:
        from seda.model_io import load_model

        if not manifest.exists():
            raise ConfigError(f"{manifest} not found: run the clean stage first")
        model = load_model(models_dir / settings.model)
        rows = unlabelled_rows(apply_reviewed_labels(read_csv(manifest), reviewed))
        kept, proba = predict_clips(rows, model, rejects)
        predictions = prediction_rows(kept, proba, model.labels, model.name)
        columns += [f"prob_{lab}" for lab in model.labels]
        summary.update({"unlabelled": len(rows), "predicted": len(predictions)})
        if not rows:
            log.info("label: no unlabelled clips in %s", manifest)
    write_csv_atomic(out_dir / "predictions.csv", predictions, columns)
    write_csv_atomic(out_dir / "review_queue.csv", review_queue(predictions), columns)
    rejects.write(out_dir / "rejected.csv")
    log.info("label: %s", summary)
    return summary


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m seda.stages.label", description=__doc__)
    parser.parse_args(argv)
    return stage_main("label", lambda: run(load_params()))


if __name__ == "__main__":
    raise SystemExit(main())
