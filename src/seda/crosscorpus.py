"""Cross-corpus evaluation: models trained on one corpus, scored on the clips of another.

A model is only as good as the corpus it is tested on is unlike the one it learnt from: within
one corpus even leave-one-speaker-out shares the microphones, the room, the script and the
actors' style. Here the trained models (:func:`seda.models.loading.load_model`, the same path
``seda predict`` uses) score the clean clips of a second corpus. Its labels reach the models'
label set through the test corpus's own ``label_map`` (``Calm: neutral``, ``Disgust: null``);
clips whose label the model does not know are left out and counted, never guessed. Speakers of
the test corpus are standardised together when a model does that (the baseline), as every
test speaker was within the training corpus. Intervals resample test speakers.
"""

from __future__ import annotations

import dataclasses
import logging
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from seda.audio import load_audio
from seda.metrics import (
    HeadlineMetrics,
    JsonRecord,
    MetricsRecord,
    classification_metrics,
    speaker_metrics,
)
from seda.models.loading import LoadedModel
from seda.records import ClipRow

log = logging.getLogger(__name__)

PROTOCOL = "cross-corpus"


@dataclass(frozen=True)
class CrossModelResult(JsonRecord):
    """One model's line of the summary: its headline scores on the test corpus."""

    model: str
    mode: str
    labels: list[str]
    n_test: int
    left_out: dict[str, int]  # test clips per label the model does not know
    headline: HeadlineMetrics

    def to_json(self) -> dict[str, Any]:
        """As written to metrics.json: the headline without its absent fold figures."""
        return {**super().to_json(), "headline": self.headline.to_json()}


@dataclass(frozen=True)
class CrossCorpusSummary(JsonRecord):
    """``reports/cross/<test corpus>/summary.json``: which corpus trained, which tested, how the
    labels met, and every model's headline scores."""

    trained_on: str
    tested_on: str
    test_clips: int
    test_speakers: int
    test_labels: dict[str, int]  # clean clips per (mapped) label of the test corpus
    models: list[CrossModelResult]

    def to_json(self) -> dict[str, Any]:
        return {**super().to_json(), "models": [m.to_json() for m in self.models]}


def evaluate_model(
    model: LoadedModel,
    clips: Sequence[ClipRow],
    *,
    n_bootstrap: int,
    seed: int,
    trained_on: str,
    waves: dict[str, np.ndarray] | None = None,
) -> tuple[MetricsRecord | None, dict[str, int]]:
    """Score ``model`` on the clips whose label it knows; return the details record (None when
    fewer than two of its classes are in the test corpus) and the left-out count per label.
    ``waves``: the clips decoded at the model's rate, by clip id (decoded here when None)."""
    known = set(model.labels)
    kept = [c for c in clips if c.label in known]
    left_out = dict(sorted(Counter(c.label for c in clips if c.label not in known).items()))
    classes = {c.label for c in kept}
    if len(classes) < 2:
        return None, left_out
    if waves is None:
        waves = {c.clip_id: load_audio(c.path, model.sample_rate)[0] for c in kept}
    speakers = [c.speaker for c in kept]
    prob = model.predict_proba([waves[c.clip_id] for c in kept], groups=speakers)
    y_true = np.array([model.labels.index(c.label) for c in kept])
    scores = classification_metrics(
        y_true, prob, model.labels, n_bootstrap=n_bootstrap, seed=seed, groups=speakers
    )
    per_speaker = speaker_metrics(
        y_true, prob.argmax(axis=1), len(model.labels), speakers, speakers
    )
    card = model.card
    backbone = card.backbone
    record = MetricsRecord.from_scores(
        scores,
        uar_fold_mean=None,
        uar_fold_sd=None,
        folds=[],
        speakers=[dataclasses.asdict(s) for s in per_speaker],
        model=model.name,
        backbone_weights=backbone.weights if backbone else None,
        checkpoint=backbone.checkpoint if backbone else None,
        protocol=f"{PROTOCOL}: trained on {trained_on}",
        mode=model.mode,
        n_train=card.trained_on.n_train,
        n_val=card.trained_on.n_val,
        n_folds=1,
        n_bootstrap=n_bootstrap,
        bootstrap_seed=seed,
    )
    return record, left_out


def cross_evaluate(
    models: Sequence[LoadedModel],
    clips: Sequence[ClipRow],
    *,
    trained_on: str,
    tested_on: str,
    n_bootstrap: int,
    seed: int,
) -> tuple[CrossCorpusSummary, list[MetricsRecord]]:
    """Score every model on the labelled clips of the test corpus: the summary and each scored
    model's details (a model with fewer than two of its classes in the corpus is not scored)."""
    results, records = [], []
    decoded: dict[int, dict[str, np.ndarray]] = {}  # clips decoded once per sample rate
    for model in models:
        if model.sample_rate not in decoded:
            decoded[model.sample_rate] = {
                c.clip_id: load_audio(c.path, model.sample_rate)[0] for c in clips
            }
        record, left_out = evaluate_model(
            model,
            clips,
            n_bootstrap=n_bootstrap,
            seed=seed,
            trained_on=trained_on,
            waves=decoded[model.sample_rate],
        )
        if record is None:
            log.warning(
                "%s: fewer than two of its classes in %s; not scored", model.name, tested_on
            )
            continue
        records.append(record)
        results.append(
            CrossModelResult(
                model.name, model.mode, model.labels, record.n_test, left_out, record.headline()
            )
        )
    summary = CrossCorpusSummary(
        trained_on=trained_on,
        tested_on=tested_on,
        test_clips=len(clips),
        test_speakers=len({c.speaker for c in clips}),
        test_labels=dict(sorted(Counter(c.label for c in clips).items())),
        models=results,
    )
    return summary, records


def summary_table(summary: CrossCorpusSummary) -> str:
    """Markdown: one row per model, sorted by UAR, saying which corpus trained and which tested."""
    lines = [
        f"# Trained on {summary.trained_on}, tested on {summary.tested_on}",
        "",
        f"{summary.test_clips} clean clips of {summary.test_speakers} speakers; labels "
        + ", ".join(f"{k} {v}" for k, v in summary.test_labels.items())
        + ". Intervals resample test speakers.",
        "",
        "| model | mode | UAR [95% CI] | accuracy | macro F1 | clips scored | left out |",
        "|---|---|---|---:|---:|---:|---|",
    ]
    for res in sorted(summary.models, key=lambda r: (-r.headline.uar, r.model)):
        h = res.headline
        interval = f" [{h.uar_low:.3f}, {h.uar_high:.3f}]" if h.uar_low is not None else ""
        left = ", ".join(f"{k} {v}" for k, v in res.left_out.items()) or "none"
        lines.append(
            f"| {res.model} | {res.mode} | {h.uar:.3f}{interval} | {h.accuracy:.3f} "
            f"| {h.f1:.3f} | {res.n_test} | {left} |"
        )
    return "\n".join(lines) + "\n"
