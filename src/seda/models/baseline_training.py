"""Train the baseline classifier (:mod:`seda.models.baseline`) on the classical features and
evaluate it like the backbone models (:mod:`seda.models.evaluation`), with the augmented copies
of the training rows (:mod:`seda.augment`) when asked."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from seda.augment import AugmentSettings
from seda.baseline import BaselineSettings
from seda.models.baseline import BaselineModel
from seda.models.evaluation import (
    EvalSettings,
    LabelledData,
    TrainOutputs,
    evaluate,
    load_labelled_features,
    write_outputs,
)
from seda.models.folds import TrainingRows, stack_augmented


class BaselineLearner:
    """:class:`BaselineModel` on (n, 1, d) classical features; rows past the labelled ones are
    augmented copies (``training``; each with its clip's speaker), used for fitting only: the
    model's speaker statistics, inner search scores and calibration folds see each recorded
    clip once, and copies and repeats only with their clip."""

    def __init__(
        self,
        x: np.ndarray,
        y: np.ndarray,
        labels: Sequence[str],
        speakers: Sequence[str],
        settings: BaselineSettings,
        training: TrainingRows | None = None,
    ):
        self.settings = settings
        self.x, self.y, self.labels = x[:, 0, :].astype(np.float64), y, list(labels)
        self.speakers = np.asarray(speakers)
        self.training = training or TrainingRows()
        self.model: BaselineModel | None = None

    def fit(self, train: np.ndarray, val: np.ndarray) -> list[dict[str, Any]]:
        rows = self.training.rows(train, self.y)
        clip_of, augmented = self.training.origins(rows, len(self.y) - len(self.training.base))
        self.model = BaselineModel(self.settings).fit(
            self.x[rows],
            [self.labels[i] for i in self.y[rows]],
            self.speakers[rows],
            groups=clip_of,
            augmented=augmented,
        )
        return []

    def predict_proba(self, idx: np.ndarray) -> np.ndarray:
        assert self.model is not None
        proba = self.model.predict_proba(self.x[idx], self.speakers[idx])
        out = np.zeros((len(idx), len(self.labels)))
        for j, label in enumerate(self.model.labels):
            out[:, self.labels.index(label)] = proba[:, j]
        return out

    def save(self, out_dir: Path) -> dict[str, Any]:
        assert self.model is not None
        self.model.save(out_dir / "baseline.safetensors")
        # the classifier(s) chosen ("svm", or "svm+logreg" for a fused pair), details in
        # best_params: feature subset, C, gamma and inner-CV UAR of each
        classifier = "+".join(m["classifier"] for m in self.model.members)
        return {"classifier": classifier, "best_params": self.model.best_params}


def train_baseline(
    settings: BaselineSettings,
    evaluation: EvalSettings,
    *,
    seed: int,
    features: Path,
    outputs: TrainOutputs,
    audio: Mapping[str, Any] | None = None,
    augment: AugmentSettings | None = None,
) -> dict[str, Any]:
    """Train and evaluate the baseline on the classical features in ``features`` (and the
    augmented copies there, when ``augment`` asks for them)."""
    data: LabelledData = load_labelled_features(features)
    assert data.features is not None
    clip_ids = [r.clip_id for r in data.rows]
    augment = augment or AugmentSettings()
    x, y, training = stack_augmented(features, clip_ids, data.features, data.y, augment)
    speakers = [r.speaker for r in data.rows] + [data.rows[i].speaker for i in training.base]
    result = evaluate(
        data,
        lambda: BaselineLearner(x, y, data.labels, speakers, settings, training),
        evaluation.protocol,
    )
    return write_outputs(
        "baseline",
        "baseline",
        data,
        result,
        settings=evaluation,
        seed=seed,
        backbone=None,
        card_fields={
            "audio": dict(audio) if audio is not None else None,
            "augment": dataclasses.asdict(augment) if augment.enabled else None,
        },
        outputs=outputs,
    )
