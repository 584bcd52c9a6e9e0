"""Calibration: the expected calibration error and reliability table on constructed cases with a
known answer, temperature scaling (lower NLL, same argmax), the calibration record of the details
file, and ``seda predict`` applying the temperature stored in model.json."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest

from seda.metrics import (
    CALIBRATION_NONE,
    CALIBRATION_TEMPERATURE,
    CalibrationMetrics,
    MetricsFormatError,
    MetricsRecord,
    ReliabilityBin,
    calibration_metrics,
    classification_metrics,
    expected_calibration_error,
    fit_temperature,
    mean_nll,
    reliability_bins,
    softmax,
)


def two_groups() -> tuple[np.ndarray, np.ndarray]:
    """20 clips, 2 classes: 10 at confidence 0.75 of which 6 right (accuracy 0.6), 10 at
    confidence 0.95 all right. ECE = 0.5 * |0.6 - 0.75| + 0.5 * |1.0 - 0.95| = 0.10."""
    proba = np.array([[0.75, 0.25]] * 10 + [[0.05, 0.95]] * 10)
    y_true = np.array([0] * 6 + [1] * 4 + [1] * 10)
    return y_true, proba


def test_ece_of_a_constructed_case_is_known() -> None:
    y_true, proba = two_groups()
    assert expected_calibration_error(y_true, proba) == pytest.approx(0.10, abs=1e-12)
    # 0.75 lies in bin 11 of 15, (0.7333, 0.8]; 0.95 in bin 14, (0.9333, 1]
    assert reliability_bins(y_true, proba) == [
        ReliabilityBin(bin=11, confidence=pytest.approx(0.75), accuracy=0.6, count=10),
        ReliabilityBin(bin=14, confidence=pytest.approx(0.95), accuracy=1.0, count=10),
    ]
    # one bin holding everything: |mean accuracy - mean confidence| = |0.8 - 0.85|
    assert expected_calibration_error(y_true, proba, n_bins=1) == pytest.approx(0.05)


def test_ece_is_zero_when_confidence_matches_accuracy_and_bins_are_right_closed() -> None:
    # 4 clips at confidence 0.75 (three right) and 2 at 0.5 (one right): calibrated
    proba = np.array([[0.75, 0.25, 0.0]] * 4 + [[0.5, 0.5, 0.0]] * 2)
    y_true = np.array([0, 0, 0, 2, 0, 1])
    assert expected_calibration_error(y_true, proba) == pytest.approx(0.0, abs=1e-12)
    # a confidence on an edge (0.5 with 2 bins) belongs to the bin below it
    table = reliability_bins(y_true, proba, n_bins=2)
    assert [(b.bin, b.count) for b in table] == [(0, 2), (1, 4)]
    # all wrong at full confidence: ECE 1
    assert expected_calibration_error(np.array([1, 0]), np.array([[1.0, 0.0], [0.0, 1.0]])) == 1.0
    with pytest.raises(ValueError, match="shape"):
        expected_calibration_error(np.array([0, 1, 0]), proba)
    with pytest.raises(ValueError, match="n_bins"):
        expected_calibration_error(y_true, proba, n_bins=0)


def over_confident(n: int = 3000, k: int = 4, sharpen: float = 4.0, seed: int = 0):
    """Labels drawn from softmax(z); the model reports ``sharpen * z``: right as often as
    softmax(z) says, but far surer than that. The best temperature is ``sharpen``."""
    rng = np.random.default_rng(seed)
    z = rng.normal(0.0, 1.0, (n, k))
    p = softmax(z)
    y = (rng.random(n)[:, None] > np.cumsum(p, axis=1)).sum(axis=1)
    return sharpen * z, y


def test_temperature_scaling_lowers_nll_and_keeps_the_argmax() -> None:
    logits, y = over_confident()
    val, test = slice(0, 1500), slice(1500, None)
    t = fit_temperature(logits[val], y[val])
    assert t > 1 and t == pytest.approx(4.0, rel=0.15)
    before, after = softmax(logits[test]), softmax(logits[test], t)
    assert mean_nll(y[test], after) < mean_nll(y[test], before) - 0.1
    assert expected_calibration_error(y[test], after) < expected_calibration_error(y[test], before)
    assert np.array_equal(after.argmax(axis=1), before.argmax(axis=1))
    # UAR, accuracy and F1 are those of the unscaled probabilities. One-vs-rest AUC of more
    # than 2 classes may move a little: softmax(z / T)[c] is not a monotone function of
    # softmax(z)[c] across clips whose other logits differ.
    labels = ["a", "b", "c", "d"]
    plain = classification_metrics(y[test], before, labels, n_bootstrap=0)
    scaled = classification_metrics(y[test], after, labels, n_bootstrap=0)
    for key in ("uar", "accuracy", "f1"):
        assert scaled[key] == plain[key], key
    assert scaled["auc"] == pytest.approx(plain["auc"], abs=0.01)
    # with 2 classes the ranking, and so the AUC, is exactly the same
    two = logits[:, :2]
    y2 = (y % 2)[: two.shape[0]]
    auc = [
        classification_metrics(y2, softmax(two, temp), ["a", "b"], n_bootstrap=0)["auc"]
        for temp in (1.0, t)
    ]
    assert auc[0] == pytest.approx(auc[1], abs=1e-12)
    # deterministic, and the fitted T is the minimum of the NLL
    assert fit_temperature(logits[val], y[val]) == t
    nll = mean_nll(y[val], softmax(logits[val], t))
    for other in (t * 0.9, t * 1.1):
        assert mean_nll(y[val], softmax(logits[val], other)) > nll


def test_temperature_of_an_under_confident_model_is_below_one_and_bounded() -> None:
    logits, y = over_confident(sharpen=0.25, seed=1)
    assert fit_temperature(logits, y) == pytest.approx(0.25, rel=0.15)
    # perfectly separated rows: the NLL falls without end; T stops at the lower bound
    separated = np.array([[5.0, 0.0], [0.0, 5.0]] * 5)
    assert fit_temperature(separated, np.array([0, 1] * 5)) == pytest.approx(0.05, rel=1e-3)
    assert fit_temperature(np.zeros((0, 3)), np.zeros(0, dtype=int)) == 1.0
    with pytest.raises(ValueError, match="logits"):
        fit_temperature(np.array([[np.nan, 0.0]]), np.array([0]))


def test_calibration_record_reads_back_in_the_details_file(tmp_path: Path) -> None:
    logits, y = over_confident(n=200, k=3, seed=2)
    t = fit_temperature(logits, y)
    prob, plain = softmax(logits, t), softmax(logits)
    record = calibration_metrics(y, prob, unscaled=plain, temperature=t, fold_temperatures=[t])
    assert record.method == CALIBRATION_TEMPERATURE and record.temperature == t
    assert record.ece == expected_calibration_error(y, prob)
    assert record.ece_before_scaling == expected_calibration_error(y, plain)
    assert record.ece < record.ece_before_scaling and record.nll < record.nll_before_scaling
    assert sum(b.count for b in record.reliability) == 200
    baseline = calibration_metrics(y, prob)
    assert baseline.method == CALIBRATION_NONE and baseline.ece_before_scaling is None

    scores = classification_metrics(y, prob, ["a", "b", "c"], n_bootstrap=0)
    described = {
        "uar_fold_mean": None,
        "uar_fold_sd": None,
        "folds": [],
        "speakers": [],
        "model": "hubert",
        "backbone_weights": "random",
        "checkpoint": "x",
        "protocol": "holdout",
        "mode": "probe",
        "n_train": 10,
        "n_val": 5,
        "n_folds": 1,
        "n_bootstrap": 0,
        "bootstrap_seed": 0,
    }
    details = MetricsRecord.from_scores(scores, **described, calibration=dataclasses.asdict(record))
    assert isinstance(details.calibration, CalibrationMetrics)
    assert details.calibration == record
    details.write(tmp_path / "d.json")
    assert MetricsRecord.read(tmp_path / "d.json") == details
    data = json.loads((tmp_path / "d.json").read_text())
    columns = {"bin", "confidence", "accuracy", "count"}
    assert data["calibration"]["reliability"][0].keys() == columns
    # ECE is a detail, not a headline figure
    assert "ece" not in details.headline().to_json()
    # a record without calibration (older writers) still reads; a malformed one does not
    assert MetricsRecord.from_scores(scores, **described).calibration is None
    bad = {**data, "calibration": {**data["calibration"], "ece": "0.1"}}
    with pytest.raises(MetricsFormatError, match=r"calibration\.ece must be a finite number"):
        MetricsRecord.from_json(bad)


def test_predict_applies_the_temperature_in_model_json(tmp_path: Path) -> None:
    """A probe trained by the real code stores its temperature in model.json and its details;
    the loaded model's probabilities are softmax(logits / T) with the T of model.json."""
    from seda.models.loading import load_model
    from test_predict import train_models, voiced

    models = train_models(tmp_path / "trained", ("hubert",))
    card = json.loads((models / "hubert/model.json").read_text())
    details = MetricsRecord.read(tmp_path / "trained/reports/details/hubert.json")
    assert details.calibration is not None
    assert card["temperature"] == details.calibration.temperature > 0
    assert details.calibration.fold_temperatures == [card["temperature"]]
    assert details.calibration.ece_before_scaling is not None

    rng = np.random.default_rng(5)
    waves = [voiced(label, 1.2, rng) for label in ("angry", "calm", "sad")]

    def probabilities(temperature: float) -> np.ndarray:
        (models / "hubert/model.json").write_text(json.dumps({**card, "temperature": temperature}))
        return load_model(models / "hubert").predict_proba(waves)

    plain, hot = probabilities(1.0), probabilities(2.5)
    # softmax(z / T) is proportional to softmax(z) ** (1 / T)
    expected = plain ** (1 / 2.5) / (plain ** (1 / 2.5)).sum(axis=1, keepdims=True)
    np.testing.assert_allclose(hot, expected, atol=1e-6)
    assert not np.allclose(hot, plain, atol=1e-3)
    assert np.array_equal(hot.argmax(axis=1), plain.argmax(axis=1))
    np.testing.assert_allclose(hot.sum(axis=1), 1.0)
    # a card without a temperature, or with one that is not a positive number, is refused
    from seda.models.card import ModelFormatError

    for value, match in ((None, "lacks temperature"), (0.0, "positive"), (-1.0, "positive")):
        (models / "hubert/model.json").write_text(json.dumps({**card, "temperature": value}))
        with pytest.raises(ModelFormatError, match=match):
            load_model(models / "hubert")
