"""train: the probe learns, protocols never leak test data, the stage writes model/metrics/plots,
and the same inputs give the same bytes."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from safetensors.torch import load_file

from seda.config import ConfigError
from seda.features.store import save_features
from seda.io import read_csv, write_csv_atomic
from seda.metrics import INTERVAL_CLIPS, INTERVAL_GROUPS, HeadlineMetrics, MetricsRecord
from seda.models.card import ModelCard, ModelFormatError
from seda.models.evaluation import TrainOutputs
from seda.models.folds import Fold, check_disjoint, holdout_fold, loso_folds
from seda.models.training import ProbeLearner, TrainSettings, class_weights
from seda.records import SPLIT_COLUMNS, SplitRow, read_records
from seda.stages import train, train_baseline
from tiny import TINY_BACKBONE

SR = 16000
TINY = TINY_BACKBONE
LABELS = ("angry", "calm", "sad")
REPO = Path(__file__).resolve().parents[1]


def manifest_rows(n_speakers: int = 5, per_label: int = 4) -> list[dict]:
    """A clean manifest: each speaker has its own videos; one video is shared by two speakers."""
    rows = []
    for s in range(n_speakers):
        for label in LABELS:
            for k in range(per_label):
                video = f"v{s}_{k % 2}" if not (s == 1 and k == 0) else "v0_0"
                rows.append(
                    {
                        "clip_id": f"s{s}_{label}_{k}",
                        "path": f"c/s{s}_{label}_{k}.wav",
                        "label": label,
                        "speaker": f"spk{s}",
                        "source_id": video,
                    }
                )
    return rows


def split_rows(rows: list[dict]) -> list[SplitRow]:
    return [SplitRow(**r) for r in rows]


def feature_store(root: Path, n_speakers: int = 5, per_label: int = 6, seed: int = 0) -> None:
    """Features where layer 1 separates the labels and layers 0 and 2 are noise."""
    from seda.splitting import SplitSettings, speaker_grouped_split

    rng = np.random.default_rng(seed)
    rows = speaker_grouped_split(manifest_rows(n_speakers, per_label), SplitSettings(), seed)
    x = rng.standard_normal((len(rows), 3, 8)).astype(np.float32)
    for i, r in enumerate(rows):
        x[i, 1, LABELS.index(r["label"])] += 2.5
    save_features(
        root / "data/features/hubert",
        x.astype(np.float16),
        split_rows(rows),
        {
            "model": "hubert",
            "checkpoint": "facebook/hubert-base-ls960",
            "weights": "random",
            "pooling": "mean",
            "sample_rate": SR,
            "preprocessing": {
                "sample_rate": SR,
                "do_normalize": True,
                "return_attention_mask": True,
            },
            "backbone": {
                "arch": "hubert",
                "checkpoint": "facebook/hubert-base-ls960",
                "weights": "random",
                "random_init": dict(TINY),
                "init_seed": 0,
            },
        },
    )


def outputs(name: str = "hubert", root: Path = Path()) -> TrainOutputs:
    return TrainOutputs(
        root / f"models/{name}",
        root / f"reports/metrics/{name}.json",
        root / f"reports/details/{name}.json",
        root / f"reports/plots/{name}",
    )


def run_train(p: dict, name: str = "hubert", root: Path = Path()) -> dict:
    """The train stage with the paths dvc.yaml gives it, below ``root``."""
    return train.run(
        p,
        [name],
        features=root / "data/features",
        splits=root / "data/splits/splits.csv",
        outputs={name: outputs(name, root)},
    )[name]


def params(**over: object) -> dict:
    backbone = {
        "arch": "hubert",
        "checkpoint": "facebook/hubert-base-ls960",
        "weights": "random",
        "random_init": dict(TINY),
        "batch_seconds": 4.0,
        "max_batch_size": 4,
    }
    p = {
        "seed": 0,
        "workers": 1,
        "backbones": {"hubert": backbone},
        "train": {"epochs": 40, "batch_size": 16, "patience": 10, "hidden": 16, "lr": 1e-2},
        "eval": {"protocol": "holdout", "n_bootstrap": 10},
    }
    for key, value in over.items():
        p[key] = {**p.get(key, {}), **value} if isinstance(value, dict) else value
    return p


def test_probe_learns_and_weights_the_informative_layer() -> None:
    rng = np.random.default_rng(0)
    y = np.repeat(np.arange(3), 40)
    x = rng.standard_normal((120, 4, 8)).astype(np.float32)
    x[np.arange(120), 2, y] += 3.0
    idx = rng.permutation(120)
    train_idx, val_idx, test_idx = idx[:70], idx[70:90], idx[90:]
    settings = TrainSettings(epochs=60, batch_size=16, patience=20, hidden=16, lr=1e-2)
    learner = ProbeLearner(x, y, 3, settings, seed=0, device=torch.device("cpu"))
    history = learner.fit(train_idx, val_idx)
    prob = learner.predict_proba(test_idx)
    assert prob.shape == (30, 3) and np.allclose(prob.sum(1), 1, atol=1e-5)
    assert (prob.argmax(1) == y[test_idx]).mean() > 0.8
    weights = learner.head.layer_weights().detach().numpy()
    assert weights.argmax() == 2 and abs(weights.sum() - 1) < 1e-6
    assert history[0]["val_uar"] < max(h["val_uar"] for h in history)
    assert set(history[0]) == {"epoch", "train_loss", "val_loss", "val_uar"}
    assert history[-1]["train_loss"] < history[0]["train_loss"]


def test_class_weights_balance_classes() -> None:
    w = class_weights(np.array([0, 0, 0, 1]), 3).numpy()
    assert np.allclose(w, [4 / 6, 2.0, 0.0])


def test_honest_split_has_no_shared_clip_speaker_or_source() -> None:
    from seda.splitting import SplitSettings, speaker_grouped_split

    rows = split_rows(speaker_grouped_split(manifest_rows(6, 3), SplitSettings(), seed=3))
    fold = holdout_fold(rows)
    check_disjoint(rows, fold)
    train_rows = [rows[i] for i in np.concatenate([fold.train, fold.val])]
    test_rows = [rows[i] for i in fold.test]
    for key in ("clip_id", "speaker", "source_id"):
        train_values = {getattr(r, key) for r in train_rows}
        assert not train_values & {getattr(r, key) for r in test_rows}, key
    # spk0 and spk1 share video v0_0, so they are one group and stay on one side.
    side = {r.speaker: r.split for r in rows}
    assert side["spk0"] == side["spk1"]
    for fold in loso_folds(rows):
        check_disjoint(rows, fold)


def test_no_speaker_is_trained_and_tested_in_any_fold() -> None:
    """Leakage: in every leave-one-group-out fold, no speaker (and no video) of the test rows is
    among the training or validation rows, and each speaker is tested in exactly one fold."""
    from seda.splitting import SplitSettings, speaker_grouped_split

    rows = split_rows(speaker_grouped_split(manifest_rows(6, 3), SplitSettings(), seed=1))
    folds = loso_folds(rows)
    tested_in: dict[str, set[int]] = {}
    for k, fold in enumerate(folds):
        for key in ("speaker", "source_id"):
            seen = {getattr(rows[i], key) for i in np.concatenate([fold.train, fold.val])}
            assert not seen & {getattr(rows[i], key) for i in fold.test}, (k, key)
        for i in fold.test:
            tested_in.setdefault(rows[i].speaker, set()).add(k)
    assert set(tested_in) == {r.speaker for r in rows}
    assert all(len(ks) == 1 for ks in tested_in.values())


def row(clip_id: str = "c", speaker: str = "s", source_id: str = "v", fold: int = 0) -> SplitRow:
    return SplitRow(clip_id, f"{clip_id}.wav", "calm", speaker, source_id, "g", "train", fold)


def test_loso_folds_partition_rows_and_validate_on_another_fold() -> None:
    rows = [row(f"c{i}", fold=i % 4) for i in range(20)]
    folds = loso_folds(rows)
    assert len(folds) == 4
    assert sorted(np.concatenate([f.test for f in folds]).tolist()) == list(range(20))
    for f in folds:
        parts = [set(f.train.tolist()), set(f.val.tolist()), set(f.test.tolist())]
        assert sum(map(len, parts)) == 20 and not (parts[0] & parts[1] or parts[1] & parts[2])
        assert len({rows[i].fold for i in f.val}) == 1
    with pytest.raises(ConfigError, match="at least 3 folds"):
        loso_folds([row(fold=0), row(fold=1)])


def test_leaky_fold_is_refused() -> None:
    rows = [row("a", "x", "v1"), row("b", "y", "v2"), row("c", "x", "v3")]
    with pytest.raises(ConfigError, match="speaker"):
        check_disjoint(rows, Fold(np.array([0]), np.array([1]), np.array([2])))


def test_probe_stage_outputs_and_test_labels_never_steer_training(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    feature_store(tmp_path)
    summary = run_train(params())
    metrics = json.loads(Path("reports/details/hubert.json").read_text())
    assert metrics["model"] == "hubert" and metrics["mode"] == "probe"
    assert metrics["protocol"] == "holdout" and metrics["backbone_weights"] == "random"
    assert metrics["checkpoint"] == "facebook/hubert-base-ls960"
    index = read_csv("data/features/hubert/index.csv")
    counts = {s: sum(r["split"] == s for r in index) for s in ("train", "val", "test")}
    assert (metrics["n_train"], metrics["n_val"], metrics["n_test"]) == (
        counts["train"],
        counts["val"],
        counts["test"],
    )
    assert metrics["uar"] == summary["uar"] and metrics["uar"] > 0.6  # layer 1 is separable
    assert "train_seconds" not in metrics  # a timing, not a result: logged instead
    assert MetricsRecord.read("reports/details/hubert.json").to_json() == metrics
    # The DVC metric: the flat headline of those details, nothing else.
    headline = json.loads(Path("reports/metrics/hubert.json").read_text())
    assert headline == MetricsRecord.read("reports/details/hubert.json").headline().to_json()
    assert set(headline) == {"uar", "uar_low", "uar_high", "accuracy", "f1", "auc", "n_test"}
    assert HeadlineMetrics.read("reports/metrics/hubert.json").uar == round(metrics["uar"], 3)
    # Calibration (details only): one temperature fitted on val, ECE before and after it.
    calibration = metrics["calibration"]
    assert calibration["method"] == "temperature" and calibration["n_bins"] == 15
    assert calibration["temperature"] > 0
    assert calibration["fold_temperatures"] == [calibration["temperature"]]
    assert 0 <= calibration["ece"] <= 1 and 0 <= calibration["ece_before_scaling"] <= 1
    assert sum(b["count"] for b in calibration["reliability"]) == metrics["n_test"]
    reliability = read_csv("reports/plots/hubert/reliability.csv")
    assert [int(r["count"]) for r in reliability] == [
        b["count"] for b in calibration["reliability"]
    ]
    assert Path("reports/plots/hubert/reliability.png").stat().st_size > 5000
    # One test speaker group: the interval resamples clips, and says so.
    assert metrics["interval_method"] == INTERVAL_CLIPS and metrics["n_test_groups"] == 1
    assert metrics["folds"] == [] and metrics["uar_fold_mean"] is None
    test_speakers = sorted({r["speaker"] for r in index if r["split"] == "test"})
    assert [s["speaker"] for s in metrics["speakers"]] == test_speakers
    assert sum(s["n"] for s in metrics["speakers"]) == metrics["n_test"]
    model = json.loads(Path("models/hubert/model.json").read_text())
    assert model["labels"] == list(LABELS) and len(model["layer_weights"]) == 3
    assert model["temperature"] == calibration["temperature"]  # seda predict applies it
    assert model["backbone"]["weights"] == "random"
    card = ModelCard.read("models/hubert/model.json")
    assert card.to_json() == model and card.mode == "probe" and card.head.hidden == 16
    assert card.trained_on.n_train == counts["train"] and card.features.shape == [len(index), 3, 8]
    head = load_file("models/hubert/head.safetensors")
    assert head["layer_logits"].shape == (3,)
    history = read_csv("reports/plots/hubert/history.csv")
    assert 1 <= len(history) <= 40
    predictions = read_csv("reports/plots/hubert/predictions.csv")
    assert {r["clip_id"] for r in predictions} == {
        r["clip_id"] for r in index if r["split"] == "test"
    }

    # Relabel every test clip: training, early stopping and the saved head stay identical.
    for r in index:
        if r["split"] == "test":
            r["label"] = LABELS[(LABELS.index(r["label"]) + 1) % 3]
    write_csv_atomic("data/features/hubert/index.csv", index, SPLIT_COLUMNS)
    run_train(params())
    head2 = load_file("models/hubert/head.safetensors")
    assert all(torch.equal(head[k], head2[k]) for k in head)
    model2 = json.loads(Path("models/hubert/model.json").read_text())
    assert model2["temperature"] == model["temperature"]  # fitted on val, never on test
    assert read_csv("reports/plots/hubert/history.csv") == history
    metrics2 = json.loads(Path("reports/details/hubert.json").read_text())
    assert metrics2["uar"] < metrics["uar"]


def test_loso_pools_every_clip_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    feature_store(tmp_path, n_speakers=4, per_label=3)
    run_train(params(eval={"protocol": "loso"}, train={"epochs": 5}))
    metrics = json.loads(Path("reports/details/hubert.json").read_text())
    index = read_csv("data/features/hubert/index.csv")
    n_folds = len({r["fold"] for r in index})
    assert metrics["protocol"] == "loso" and metrics["n_folds"] == n_folds >= 3
    assert metrics["n_test"] == len(index)
    predictions = read_csv("reports/plots/hubert/predictions.csv")
    assert sorted(r["clip_id"] for r in predictions) == sorted(r["clip_id"] for r in index)
    group_of = {r["clip_id"]: r["group"] for r in index}
    assert all(r["group"] == group_of[r["clip_id"]] for r in predictions)
    # Per fold: the held-out groups and speakers, their UAR, mean and SD; intervals by group.
    folds = metrics["folds"]
    assert [f["fold"] for f in folds] == sorted(int(f) for f in {r["fold"] for r in index})
    for f in folds:
        held_out = [r for r in index if int(r["fold"]) == f["fold"]]
        assert f["groups"] == sorted({r["group"] for r in held_out})
        assert f["speakers"] == sorted({r["speaker"] for r in held_out})
        assert f["n"] == len(held_out) and 0 <= f["uar"] <= 1
    uar = [f["uar"] for f in folds]
    assert metrics["uar_fold_mean"] == pytest.approx(np.mean(uar))
    assert metrics["uar_fold_sd"] == pytest.approx(np.std(uar, ddof=1))
    assert metrics["interval_method"] == INTERVAL_GROUPS
    assert metrics["n_test_groups"] == len({r["group"] for r in index})
    speakers = metrics["speakers"]
    assert [s["speaker"] for s in speakers] == sorted({r["speaker"] for r in index})
    for s in speakers:
        assert np.array(s["confusion"]).sum() == s["n"] and len(s["confusion"]) == len(LABELS)
    headline = json.loads(Path("reports/metrics/hubert.json").read_text())
    assert headline["uar_fold_mean"] == round(metrics["uar_fold_mean"], 3)
    assert headline["uar_fold_sd"] == round(metrics["uar_fold_sd"], 3)
    assert [headline["uar_low"], headline["uar_high"]] == [round(v, 3) for v in metrics["uar_ci"]]
    # One temperature per fold, each fitted on that fold's validation fold.
    calibration = metrics["calibration"]
    assert len(calibration["fold_temperatures"]) == n_folds
    assert all(t > 0 for t in calibration["fold_temperatures"])
    assert calibration["ece_before_scaling"] is not None


def write_clips(root: Path) -> None:
    """Tone clips (pitch per label) and splits.csv for the waveform paths."""
    from seda.records import SPLIT_COLUMNS
    from seda.splitting import SplitSettings, speaker_grouped_split

    rows = speaker_grouped_split(manifest_rows(4, 2), SplitSettings(), 0)
    rng = np.random.default_rng(0)
    for r in rows:
        f0 = {"angry": 320.0, "calm": 200.0, "sad": 130.0}[r["label"]]
        t = np.arange(SR) / SR
        y = 0.3 * np.sin(2 * np.pi * f0 * t) + 0.01 * rng.standard_normal(SR)
        path = root / r["path"]
        path.parent.mkdir(parents=True, exist_ok=True)
        sf.write(path, y.astype(np.float32), SR, subtype="PCM_16")
    write_csv_atomic(root / "data/splits/splits.csv", rows, SPLIT_COLUMNS)


def test_finetune_updates_the_transformer_not_the_frozen_cnn(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from seda.backbones import BackboneSettings, load_backbone

    monkeypatch.chdir(tmp_path)
    write_clips(tmp_path)
    p = params(
        train={
            "mode": "finetune",
            "epochs": 2,
            "batch_size": 4,
            "grad_accum": 2,
            "backbone_lr": 1e-3,
        }
    )
    run_train(p)
    metrics = json.loads(Path("reports/details/hubert.json").read_text())
    assert metrics["mode"] == "finetune" and np.isfinite(metrics["uar"])
    assert len(read_csv("reports/plots/hubert/history.csv")) == 2
    from transformers import HubertModel

    tuned = HubertModel.from_pretrained("models/hubert/backbone").state_dict()
    start = load_backbone(BackboneSettings(**p["backbones"]["hubert"]))[0].state_dict()
    cnn = "feature_extractor.conv_layers.0.conv.weight"
    attn = "encoder.layers.0.attention.k_proj.weight"
    assert torch.equal(tuned[cnn], start[cnn])
    assert not torch.equal(tuned[attn], start[attn])


def baseline_store(root: Path, **kwargs: int) -> None:
    """The informative layer of :func:`feature_store` as the baseline's classical features."""
    feature_store(root, **kwargs)
    src = root / "data/features/hubert"
    x = np.load(src / "features.npy")[:, 1:2, :].astype(np.float32)
    rows = read_records(src / "index.csv", SplitRow)
    save_features(root / "data/features/baseline", x, rows, {"model": "baseline"})


def run_train_baseline(p: dict, root: Path = Path()) -> dict:
    return train_baseline.run(
        p, features=root / "data/features/baseline", outputs=outputs("baseline", root)
    )


def test_baseline_model(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    baseline_store(tmp_path, n_speakers=5, per_label=6)
    run_train_baseline(params(baseline={"speaker_standardise": False}))
    metrics = json.loads(Path("reports/details/baseline.json").read_text())
    assert metrics["mode"] == "baseline" and metrics["checkpoint"] is None
    assert metrics["uar"] > 0.6
    assert Path("models/baseline/baseline.safetensors").exists()
    card = ModelCard.read("models/baseline/model.json")
    assert card.mode == "baseline" and card.classifier == "svm" and card.backbone is None
    assert card.temperature is None  # its probabilities are the classifier's own (Platt)
    calibration = metrics["calibration"]
    assert calibration["method"] == "none" and calibration["temperature"] is None
    assert calibration["ece_before_scaling"] is None and 0 <= calibration["ece"] <= 1


def tree_bytes(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def test_same_inputs_give_the_same_bytes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Baseline and probe trained twice from the same features, once here and once by the stage
    commands in a fresh process: every output file is identical (model weights, model.json,
    metrics, predictions, ROC, history, figures)."""
    monkeypatch.chdir(tmp_path)  # the train stage's cache (data/cache) goes below here
    baseline_store(tmp_path / "data_root", n_speakers=5, per_label=4)
    probe_params = params(train={"epochs": 8})
    baseline_params = params(eval={"protocol": "loso"})
    runs = []
    for k in range(2):
        out = tmp_path / f"run{k}"
        shutil.copytree(tmp_path / "data_root" / "data", out / "data")
        if k == 0:
            run_train(probe_params, root=out)
            run_train_baseline(baseline_params, root=out)
        else:
            env = {**os.environ, "SEDA_DEVICE": "cpu", "PYTHONWARNINGS": "ignore"}
            for module, args, p in [
                ("train", ["hubert", *TRAIN_STAGE_ARGS], probe_params),
                ("train_baseline", baseline_stage_args(), baseline_params),
            ]:
                (out / "params.yaml").write_text(json.dumps(p))
                cmd = [sys.executable, "-m", f"seda.stages.{module}", *args]
                proc = subprocess.run(cmd, cwd=out, env=env, capture_output=True, text=True)
                assert proc.returncode == 0, proc.stderr[-3000:]
            (out / "params.yaml").unlink()
        shutil.rmtree(out / "data")
        runs.append(tree_bytes(out))
    assert sorted(runs[0]) == sorted(runs[1])
    weights = {"models/hubert/head.safetensors", "models/baseline/baseline.safetensors"}
    assert weights <= set(runs[0])
    assert "reports/plots/baseline/predictions.csv" in runs[0]
    different = [name for name in runs[0] if runs[0][name] != runs[1][name]]
    assert different == []


def test_model_card_refuses_what_it_cannot_load() -> None:
    from seda.models.card import TrainedOn

    card = ModelCard(
        model="baseline",
        mode="baseline",
        labels=["calm", "sad"],
        classifier="svm",
        best_params={"C": 1.0, "gamma": "scale"},
        trained_on=TrainedOn("train", "val UAR", 10, 4, None),
        seed=0,
    )
    data = card.to_json()
    assert ModelCard.from_json(json.loads(json.dumps(data))) == card
    for change, match in [
        ({"labels": ["calm", 3]}, r"labels\[1\] must be a string"),
        ({"labels": ["calm", "calm"]}, "distinct"),
        ({"seed": "0"}, "seed must be an integer"),
        ({"format_version": 1}, "version 1"),
        ({"mode": "forest"}, "unknown mode"),
        ({"classifier": None}, "lacks classifier"),
        ({"extra": 1}, "unknown key"),
        ({"trained_on": {"split": "train"}}, "lacks early_stopping"),
    ]:
        with pytest.raises(ModelFormatError, match=match):
            ModelCard.from_json({**data, **change})


# The train stage's arguments as dvc.yaml gives them, after the model names.
TRAIN_STAGE_ARGS = [
    "--features",
    "data/features",
    "--splits",
    "data/splits/splits.csv",
    "--models-dir",
    "models",
    "--metrics-dir",
    "reports/metrics",
    "--details-dir",
    "reports/details",
    "--plots-dir",
    "reports/plots",
]


def baseline_stage_args() -> list[str]:
    return [
        "--features",
        "data/features/baseline",
        "--model-out",
        "models/baseline",
        "--metrics",
        "reports/metrics/baseline.json",
        "--details",
        "reports/details/baseline.json",
        "--plots",
        "reports/plots/baseline",
    ]


def test_cli_missing_features_is_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    Path("params.yaml").write_text(json.dumps(params()))
    assert train.main(["hubert", *TRAIN_STAGE_ARGS]) == 2
    assert "featurize" in capsys.readouterr().err
    assert train_baseline.main(baseline_stage_args()) == 2
    assert "featurize" in capsys.readouterr().err


@pytest.mark.slow
@pytest.mark.parametrize("launcher", ["joblib", "submitit_local"])
def test_hydra_multirun_two_backbones(tmp_path: Path, launcher: str) -> None:
    """`python -m seda.train -m backbone=hubert,wavlm` on tiny data: joblib (the default) and
    submitit_local (the local stand-in for the submitit_slurm launcher of conf/hydra/launcher)."""
    if launcher == "submitit_local":
        pytest.importorskip("hydra_plugins.hydra_submitit_launcher")
    shutil.copytree(REPO / "conf", tmp_path / "conf")
    write_clips(tmp_path)
    env = {**os.environ, "SEDA_DEVICE": "cpu", "PYTHONWARNINGS": "ignore"}
    cmd = [
        sys.executable,
        "-m",
        "seda.train",
        "-m",
        "backbone=hubert,wavlm",
        "++train.epochs=2",
        "++train.hidden=8",
        "++eval.n_bootstrap=5",
    ]
    if launcher != "joblib":
        cmd.append(f"hydra/launcher={launcher}")
    proc = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    for name in ("hubert", "wavlm"):
        metrics = json.loads((tmp_path / f"reports/details/{name}.json").read_text())
        assert metrics["model"] == name and metrics["backbone_weights"] == "random"
        assert len(read_csv(tmp_path / f"reports/plots/{name}/history.csv")) <= 2
        assert (tmp_path / f"data/features/{name}/features.npy").exists()


def test_stale_features_are_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    feature_store(tmp_path, n_speakers=4, per_label=2)
    p = params()
    p["backbones"]["hubert"]["weights"] = "pretrained"
    p["backbones"]["hubert"]["revision"] = "0123456789abcdef0123456789abcdef01234567"
    with pytest.raises(ConfigError, match="re-run"):
        run_train(p)
    assert not Path("reports/metrics/hubert.json").exists()
    assert not Path("reports/details/hubert.json").exists()


def test_one_model_changed_trains_that_model_alone(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The train stage trains every backbone's model in one process; an unchanged model is
    placed from the cache as the same bytes, a model whose settings or features changed is
    trained again."""
    monkeypatch.chdir(tmp_path)
    feature_store(tmp_path)
    shutil.copytree("data/features/hubert", "data/features/other")
    p = params(train={"epochs": 5})
    p["backbones"]["other"] = dict(p["backbones"]["hubert"])
    names = ["hubert", "other"]

    def run() -> dict:
        where = {name: outputs(name) for name in names}
        splits = Path("data/splits/splits.csv")
        return train.run(p, names, features=Path("data/features"), splits=splits, outputs=where)

    assert [s["cached"] for s in run().values()] == [False, False]
    trained = tree_bytes(Path("reports")) | tree_bytes(Path("models"))
    p["backbones"]["other"]["batch_seconds"] = 8.0
    assert [s["cached"] for s in run().values()] == [True, False]
    again = tree_bytes(Path("reports")) | tree_bytes(Path("models"))
    assert again == trained  # same inputs: the placed and the trained files are the same bytes
    shutil.rmtree("data/features/hubert")
    feature_store(tmp_path, seed=1)
    assert [s["cached"] for s in run().values()] == [False, True]
