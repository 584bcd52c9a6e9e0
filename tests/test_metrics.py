"""seda.metrics against hand-worked confusion matrices and naive bootstraps (clips, groups,
paired), the per-speaker and per-fold tables, and the two records (headline and details)."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
from sklearn.metrics import accuracy_score, balanced_accuracy_score, f1_score, roc_auc_score

from seda.metrics import (
    INTERVAL_CLIPS,
    INTERVAL_GROUPS,
    INTERVAL_NONE,
    HeadlineMetrics,
    MetricsFormatError,
    MetricsRecord,
    bootstrap_intervals,
    classification_metrics,
    fold_metrics,
    fold_spread,
    paired_uar_difference,
    speaker_metrics,
    subset_scores,
)

LABELS3 = ["angry", "happy", "sad"]


def one_hot_probs(y_pred: np.ndarray, k: int, high: float = 0.6) -> np.ndarray:
    prob = np.full((len(y_pred), k), (1.0 - high) / (k - 1))
    prob[np.arange(len(y_pred)), y_pred] = high
    return prob


def hand_example() -> tuple[np.ndarray, np.ndarray]:
    """Confusion matrix (rows actual, columns predicted): [[3,1,0],[1,2,0],[0,1,2]]."""
    y_true = np.array([0, 0, 0, 0, 1, 1, 1, 2, 2, 2])
    y_pred = np.array([0, 0, 0, 1, 0, 1, 1, 1, 2, 2])
    return y_true, y_pred


def test_hand_worked_three_classes() -> None:
    y_true, y_pred = hand_example()
    m = classification_metrics(y_true, one_hot_probs(y_pred, 3), LABELS3, n_bootstrap=0)
    # class 0: TP 3 FN 1 FP 1 TN 5; class 1: TP 2 FN 1 FP 2 TN 5; class 2: TP 2 FN 1 FP 0 TN 7
    recall = [3 / 4, 2 / 3, 2 / 3]
    precision = [3 / 4, 2 / 4, 2 / 2]
    specificity = [5 / 6, 5 / 7, 7 / 7]
    f1 = [2 * 3 / (4 + 4), 2 * 2 / (3 + 4), 2 * 2 / (3 + 2)]
    assert m["accuracy"] == pytest.approx(7 / 10)
    assert m["uar"] == pytest.approx(np.mean(recall))
    assert m["recall"] == m["sensitivity"] == m["uar"]
    assert m["precision"] == pytest.approx(np.mean(precision))
    assert m["specificity"] == pytest.approx(np.mean(specificity))
    assert m["f1"] == pytest.approx(np.mean(f1))
    for c, label in enumerate(LABELS3):
        pc = m["per_class"][label]
        assert pc["sensitivity"] == pc["recall"] == pytest.approx(recall[c])
        assert pc["precision"] == pytest.approx(precision[c])
        assert pc["specificity"] == pytest.approx(specificity[c])
        assert pc["f1"] == pytest.approx(f1[c])
    assert [m["per_class"][lab]["support"] for lab in LABELS3] == [4, 3, 3]
    assert m["n_test"] == 10
    assert m["accuracy_ci"] is None and m["uar_ci"] is None


def test_auc_matches_sklearn_ovr_and_is_json_ready() -> None:
    rng = np.random.default_rng(3)
    y_true = rng.integers(0, 4, 200)
    prob = rng.dirichlet(np.ones(4), 200)
    prob[np.arange(200), y_true] += 0.3
    prob /= prob.sum(axis=1, keepdims=True)
    m = classification_metrics(y_true, prob, ["a", "b", "c", "d"], n_bootstrap=50)
    assert m["auc"] == pytest.approx(roc_auc_score(y_true, prob, multi_class="ovr"))
    assert m["auc_classes"] == 4
    text = json.dumps(m, allow_nan=False)  # plain Python values, no NaN
    assert json.loads(text) == m
    assert "confusion_matrix" not in m


def test_class_absent_from_test_set_is_skipped_not_zeroed() -> None:
    y_true, y_pred = hand_example()
    labels = [*LABELS3, "calm"]
    prob = one_hot_probs(y_pred, 4)
    m = classification_metrics(y_true, prob, labels, n_bootstrap=0)
    three = classification_metrics(y_true, one_hot_probs(y_pred, 3), LABELS3, n_bootstrap=0)
    assert m["uar"] == pytest.approx(three["uar"])
    assert m["auc_classes"] == 3
    assert m["auc"] is not None
    calm = m["per_class"]["calm"]
    assert calm["support"] == 0 and calm["recall"] is None and calm["auc"] is None


def test_single_class_test_set_has_no_auc() -> None:
    y_true = np.zeros(5, dtype=int)
    m = classification_metrics(y_true, one_hot_probs(np.array([0, 0, 1, 0, 0]), 2), ["a", "b"])
    assert m["auc"] is None and m["auc_classes"] == 0
    assert m["uar"] == pytest.approx(0.8)


def test_perfect_predictions() -> None:
    y_true = np.repeat(np.arange(4), 10)
    m = classification_metrics(y_true, one_hot_probs(y_true, 4, 0.9), list("abcd"))
    for key in ("accuracy", "uar", "precision", "f1", "auc", "sensitivity", "specificity"):
        assert m[key] == pytest.approx(1.0), key
    assert m["accuracy_ci"] == [1.0, 1.0] and m["uar_ci"] == [1.0, 1.0]


def test_uninformative_predictions_are_at_chance() -> None:
    y_true = np.repeat(np.arange(4), [5, 10, 15, 20])
    m = classification_metrics(y_true, np.full((50, 4), 0.25), list("abcd"), n_bootstrap=0)
    assert m["uar"] == pytest.approx(0.25)  # ties go to class 0: recall 1, 0, 0, 0
    assert m["auc"] == pytest.approx(0.5)
    assert m["accuracy"] == pytest.approx(5 / 50)

    rng = np.random.default_rng(0)
    y_true = rng.integers(0, 4, 4000)
    m = classification_metrics(y_true, rng.dirichlet(np.ones(4), 4000), list("abcd"))
    assert m["uar"] == pytest.approx(0.25, abs=0.03)
    assert m["auc"] == pytest.approx(0.5, abs=0.03)
    assert m["uar_ci"][0] < 0.25 + 0.03 and m["uar_ci"][1] > 0.25 - 0.03


def noisy(n: int, seed: int, k: int = 4, accuracy: float = 0.6) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y_true = rng.integers(0, k, n)
    y_pred = np.where(rng.random(n) < accuracy, y_true, rng.integers(0, k, n))
    return y_true, one_hot_probs(y_pred, k)


def test_bootstrap_contains_estimate_shrinks_with_n_and_is_seeded() -> None:
    widths = []
    for n in (60, 2000):
        y_true, prob = noisy(n, seed=1)
        m = classification_metrics(y_true, prob, list("abcd"), seed=7)
        for key in ("accuracy", "uar", "f1"):
            low, high = m[f"{key}_ci"]
            assert low <= m[key] <= high, key
        widths.append(m["uar_ci"][1] - m["uar_ci"][0])
        again = classification_metrics(y_true, prob, list("abcd"), seed=7)
        assert again == m
        other = classification_metrics(y_true, prob, list("abcd"), seed=8)
        assert other["uar_ci"] != m["uar_ci"]
    assert widths[1] < widths[0] / 3  # about 1/sqrt(33) in theory


def test_vectorised_bootstrap_equals_naive_loop() -> None:
    y_true, prob = noisy(40, seed=5, k=3)
    y_pred = prob.argmax(axis=1)
    got = bootstrap_intervals(y_true, y_pred, 3, n_bootstrap=200, seed=11)
    idx = np.random.default_rng(11).integers(0, 40, size=(200, 40))
    naive: dict[str, list[float]] = {"accuracy_ci": [], "uar_ci": [], "f1_ci": []}
    for row in idx:
        t, p = y_true[row], y_pred[row]
        naive["accuracy_ci"].append(accuracy_score(t, p))
        naive["uar_ci"].append(balanced_accuracy_score(t, p))
        naive["f1_ci"].append(f1_score(t, p, labels=np.unique(t), average="macro"))
    for key, values in naive.items():
        assert got[key] == pytest.approx(np.quantile(values, [0.025, 0.975]).tolist()), key


def test_bootstrap_chunks_give_same_result_as_one_block(monkeypatch: pytest.MonkeyPatch) -> None:
    y_true, prob = noisy(100, seed=2)
    y_pred = prob.argmax(axis=1)
    whole = bootstrap_intervals(y_true, y_pred, 4, n_bootstrap=300, seed=3)
    monkeypatch.setattr("seda.metrics._CHUNK_ELEMENTS", 100 * 7)  # 7 resamples per chunk
    chunked = bootstrap_intervals(y_true, y_pred, 4, n_bootstrap=300, seed=3)
    assert chunked.keys() == whole.keys()
    for key, interval in whole.items():
        assert chunked[key] == pytest.approx(interval), key


@pytest.mark.parametrize(
    ("y_true", "y_prob", "labels", "match"),
    [
        ([0, 1], np.full((2, 2), 0.5), ["a"], "at least 2"),
        ([0, 1], np.full((2, 3), 0.3), ["a", "b"], "shape"),
        ([0, 2], np.full((2, 2), 0.5), ["a", "b"], r"\[0, 2\)"),
        ([0, 1], np.array([[0.5, np.nan], [0.5, 0.5]]), ["a", "b"], "NaN"),
        ([], np.zeros((0, 2)), ["a", "b"], "non-empty"),
        ([0, 1], np.full((2, 2), 0.5), ["a", "a"], "unique"),
    ],
)
def test_bad_input_is_one_clear_error(y_true, y_prob, labels, match) -> None:
    with pytest.raises(ValueError, match=match):
        classification_metrics(np.asarray(y_true), y_prob, labels)


DESCRIBED = {
    "uar_fold_mean": None,
    "uar_fold_sd": None,
    "folds": [],
    "speakers": [],
    "model": "hubert",
    "backbone_weights": "random",
    "checkpoint": "facebook/hubert-base-ls960",
    "protocol": "holdout",
    "mode": "probe",
    "n_train": 70,
    "n_val": 20,
    "n_folds": 1,
    "n_bootstrap": 20,
    "bootstrap_seed": 0,
}


def test_metrics_record_keeps_the_keys_and_values(tmp_path) -> None:
    y_true, prob = noisy(60, seed=4)
    scores = classification_metrics(y_true, prob, ["a", "b", "c", "d"], n_bootstrap=20)
    record = MetricsRecord.from_scores(scores, **DESCRIBED)
    data = record.to_json()
    assert data == {**scores, **DESCRIBED}
    assert list(data)[: len(scores)] == list(scores)  # scores first, in their order
    record.write(tmp_path / "m.json")
    assert MetricsRecord.read(tmp_path / "m.json") == record
    assert json.loads((tmp_path / "m.json").read_text()) == data
    # no intervals (n_bootstrap=0) and a class without AUC are nulls, not errors
    scores = classification_metrics(y_true, prob, ["a", "b", "c", "d"], n_bootstrap=0)
    assert MetricsRecord.from_scores(scores, **DESCRIBED).uar_ci is None


@pytest.mark.parametrize(
    ("change", "match"),
    [
        ({"train_seconds": 1.5}, "unknown key"),
        ({"uar": None}, "uar must not be null"),
        ({"uar": "0.5"}, "uar must be a finite number"),
        ({"n_test": 3.5}, "n_test must be an integer"),
        ({"accuracy_ci": [0.1]}, "pair"),
        ({"per_class": {}}, "at least 2"),
        ({"per_class": {"a": {}, "b": {}}}, r"per_class\['a'\] lacks precision"),
    ],
)
def test_metrics_record_refuses_malformed_files(change, match) -> None:
    y_true, prob = noisy(40, seed=5)
    data = {**classification_metrics(y_true, prob, ["a", "b", "c", "d"]), **DESCRIBED}
    with pytest.raises(MetricsFormatError, match=match):
        MetricsRecord.from_json({**data, **change})
    missing = dict(data)
    del missing["n_folds"]
    with pytest.raises(MetricsFormatError, match="lacks n_folds"):
        MetricsRecord.from_json(missing)


def test_headline_is_the_flat_record_of_the_details(tmp_path) -> None:
    y_true, prob = noisy(60, seed=4)
    scores = classification_metrics(y_true, prob, ["a", "b", "c", "d"], n_bootstrap=20)
    record = MetricsRecord.from_scores(scores, **DESCRIBED)
    headline = record.headline()
    data = headline.to_json()
    assert list(data) == ["uar", "uar_low", "uar_high", "accuracy", "f1", "auc", "n_test"]
    # rounded to HEADLINE_DECIMALS; the details keep full precision
    assert [data["uar_low"], data["uar_high"]] == [round(v, 3) for v in scores["uar_ci"]]
    assert data["uar"] == round(scores["uar"], 3) and record.uar == scores["uar"]
    assert all(isinstance(v, int | float) for v in data.values())  # numbers only, flat
    headline.write(tmp_path / "h.json")
    assert HeadlineMetrics.read(tmp_path / "h.json") == headline
    # A leave-one-group-out run adds the spread of its folds.
    loso = MetricsRecord.from_scores(scores, **{**DESCRIBED, "uar_fold_mean": 0.5})
    loso = MetricsRecord.from_json({**loso.to_json(), "uar_fold_sd": 0.1})
    assert list(loso.headline().to_json())[-2:] == ["uar_fold_mean", "uar_fold_sd"]
    with pytest.raises(MetricsFormatError, match="unknown key"):
        HeadlineMetrics.from_json({**data, "per_class": {}})
    with pytest.raises(MetricsFormatError, match="lacks uar_low"):
        HeadlineMetrics.from_json({k: v for k, v in data.items() if k != "uar_low"})


def test_majority_and_interval_method() -> None:
    y_true = np.array([0, 0, 0, 1, 1, 2] * 5)
    prob = one_hot_probs(y_true, 3)
    m = classification_metrics(y_true, prob, LABELS3, n_bootstrap=10)
    assert m["majority_class"] == "angry" and m["majority_accuracy"] == pytest.approx(0.5)
    assert m["chance_uar"] == pytest.approx(1 / 3)
    assert m["interval_method"] == INTERVAL_CLIPS and m["n_test_groups"] == 0
    one = classification_metrics(y_true, prob, LABELS3, n_bootstrap=10, groups=["g"] * 30)
    assert one["interval_method"] == INTERVAL_CLIPS and one["n_test_groups"] == 1
    assert one["uar_ci"] == m["uar_ci"]  # one test group: the clip bootstrap, unchanged
    two = classification_metrics(y_true, prob, LABELS3, n_bootstrap=10, groups=["a", "b"] * 15)
    assert two["interval_method"] == INTERVAL_GROUPS and two["n_test_groups"] == 2
    none = classification_metrics(y_true, prob, LABELS3, n_bootstrap=0, groups=["a", "b"] * 15)
    assert none["interval_method"] == INTERVAL_NONE and none["uar_ci"] is None
    with pytest.raises(ValueError, match="groups for 30"):
        classification_metrics(y_true, prob, LABELS3, groups=["a"])


def test_group_bootstrap_known_answers() -> None:
    """Two speakers, one always right and one always wrong: a resample holds both (UAR 0.5),
    only the first (1.0) or only the second (0.0), each of the last two a quarter of the time, so
    the 95% interval is [0, 1]; resampling the 200 clips instead gives a narrow interval around
    0.5. Speakers that all look alike give a zero-width interval."""
    y_true = np.tile([0, 1, 2, 3], 50)
    right = np.arange(200) < 100
    y_pred = np.where(right, y_true, (y_true + 1) % 4)
    groups = np.where(right, "spk_right", "spk_wrong").tolist()
    by_group = bootstrap_intervals(y_true, y_pred, 4, n_bootstrap=1000, seed=0, groups=groups)
    by_clip = bootstrap_intervals(y_true, y_pred, 4, n_bootstrap=1000, seed=0)
    assert by_group["uar_ci"] == [0.0, 1.0] and by_group["accuracy_ci"] == [0.0, 1.0]
    low, high = by_clip["uar_ci"]
    assert 0.35 < low < 0.5 < high < 0.65
    assert high - low < (1.0 - 0.0) / 3

    # Five speakers with the same clips and the same mistakes: every resample is the same.
    y_true = np.tile([0, 0, 1, 2, 2, 2], 5)
    y_pred = np.tile([0, 1, 1, 2, 0, 2], 5)
    groups = np.repeat([f"s{i}" for i in range(5)], 6).tolist()
    same = bootstrap_intervals(y_true, y_pred, 3, n_bootstrap=500, seed=1, groups=groups)
    uar = balanced_accuracy_score(y_true, y_pred)
    assert same["uar_ci"] == pytest.approx([uar, uar], abs=1e-12)
    assert same["accuracy_ci"] == pytest.approx([4 / 6, 4 / 6], abs=1e-12)


def test_group_bootstrap_equals_naive_loop_over_groups() -> None:
    rng = np.random.default_rng(9)
    sizes = [5, 12, 3, 9, 7, 14]
    groups = np.repeat([f"g{i}" for i in range(6)], sizes)
    y_true = rng.integers(0, 3, groups.size)
    y_pred = np.where(rng.random(groups.size) < 0.6, y_true, rng.integers(0, 3, groups.size))
    got = bootstrap_intervals(y_true, y_pred, 3, n_bootstrap=300, seed=5, groups=groups.tolist())
    names = sorted(set(groups.tolist()))
    draws = np.random.default_rng(5).integers(0, len(names), size=(300, len(names)))
    naive: dict[str, list[float]] = {"accuracy_ci": [], "uar_ci": [], "f1_ci": []}
    for draw in draws:
        rows = np.concatenate([np.flatnonzero(groups == names[g]) for g in draw])
        t, p = y_true[rows], y_pred[rows]
        naive["accuracy_ci"].append(accuracy_score(t, p))
        naive["uar_ci"].append(balanced_accuracy_score(t, p))
        naive["f1_ci"].append(f1_score(t, p, labels=np.unique(t), average="macro"))
    for key, values in naive.items():
        assert got[key] == pytest.approx(np.quantile(values, [0.025, 0.975]).tolist()), key


def test_paired_difference() -> None:
    rng = np.random.default_rng(2)
    y_true = rng.integers(0, 4, 400)
    good = np.where(rng.random(400) < 0.8, y_true, (y_true + 1) % 4)
    poor = np.where(rng.random(400) < 0.4, y_true, (y_true + 1) % 4)
    same = paired_uar_difference(y_true, good, good, 4)
    assert (same.delta, same.low, same.high) == (0.0, 0.0, 0.0) and not same.clear
    d = paired_uar_difference(y_true, poor, good, 4, n_bootstrap=500)
    expected = balanced_accuracy_score(y_true, poor) - balanced_accuracy_score(y_true, good)
    assert d.delta == pytest.approx(expected)
    assert d.low <= d.delta <= d.high < 0 and d.clear
    assert (d.resampled, d.n_units) == ("clips", 400)
    # Resampling 8 speakers instead: as the naive loop does it, and wider.
    groups = np.repeat([f"s{i}" for i in range(8)], 50)
    g = paired_uar_difference(y_true, poor, good, 4, groups=groups.tolist(), n_bootstrap=300)
    assert (g.resampled, g.n_units) == ("groups", 8) and g.delta == d.delta
    draws = np.random.default_rng(0).integers(0, 8, size=(300, 8))
    naive = []
    for draw in draws:
        rows = np.concatenate([np.arange(50 * i, 50 * i + 50) for i in draw])
        t = y_true[rows]
        naive.append(
            balanced_accuracy_score(t, poor[rows]) - balanced_accuracy_score(t, good[rows])
        )
    assert [g.low, g.high] == pytest.approx(np.quantile(naive, [0.025, 0.975]).tolist())
    # A single group cannot be resampled: clips are.
    one = paired_uar_difference(y_true, poor, good, 4, groups=["s"] * 400, n_bootstrap=500)
    assert one == d


def test_speaker_and_fold_tables() -> None:
    y_true, y_pred = hand_example()
    speakers = ["a"] * 4 + ["b"] * 6
    groups = ["g1"] * 4 + ["g2"] * 6
    table = speaker_metrics(y_true, y_pred, 3, speakers, groups)
    assert [(s.speaker, s.group, s.n) for s in table] == [("a", "g1", 4), ("b", "g2", 6)]
    a, b = table
    assert a.uar == pytest.approx(3 / 4) and a.accuracy == pytest.approx(3 / 4)  # one class only
    assert a.confusion == [[3, 1, 0], [0, 0, 0], [0, 0, 0]]
    assert b.confusion == [[0, 0, 0], [1, 2, 0], [0, 1, 2]]
    assert b.uar == pytest.approx(2 / 3) and b.accuracy == pytest.approx(4 / 6)
    assert subset_scores(y_true, y_pred, 3)["uar"] == pytest.approx(
        balanced_accuracy_score(y_true, y_pred)
    )
    folds = fold_metrics(y_true, y_pred, 3, [0] * 4 + [1] * 6, groups, speakers)
    assert [(f.fold, f.groups, f.speakers, f.n) for f in folds] == [
        (0, ["g1"], ["a"], 4),
        (1, ["g2"], ["b"], 6),
    ]
    mean, sd = fold_spread(folds)
    assert mean == pytest.approx((3 / 4 + 2 / 3) / 2)
    assert sd == pytest.approx(np.std([3 / 4, 2 / 3], ddof=1))
    assert fold_spread(folds[:1]) == (None, None)
    # The details record keeps both tables, typed.
    scores = classification_metrics(y_true, one_hot_probs(y_pred, 3), LABELS3, n_bootstrap=0)
    record = MetricsRecord.from_scores(
        scores,
        **{
            **DESCRIBED,
            "folds": [dataclasses.asdict(f) for f in folds],
            "speakers": [dataclasses.asdict(s) for s in table],
            "uar_fold_mean": mean,
            "uar_fold_sd": sd,
            "protocol": "loso",
        },
    )
    assert record.folds == folds and record.speakers == table
    assert MetricsRecord.from_json(json.loads(json.dumps(record.to_json()))) == record
    with pytest.raises(MetricsFormatError, match=r"speakers\[0\].n must be an integer"):
        bad = record.to_json()
        bad["speakers"][0]["n"] = "4"
        MetricsRecord.from_json(bad)
