"""featurize: batching, padding invariance, the stage's feature store and its rejects."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from seda.backbones import BackboneSettings, load_backbone
from seda.features.ssl import backbone_settings, embed_batch, featurize_backbone, length_batches
from seda.features.store import load_features
from seda.io import read_csv, write_csv_atomic
from seda.records import SPLIT_COLUMNS
from seda.stages import featurize, featurize_baseline
from tiny import TINY_BACKBONE

SR = 16000
TINY = TINY_BACKBONE
SPLITS = Path("data/splits/splits.csv")


def write_splits(root: Path, n_speakers: int = 3, per_label: int = 2, seconds: float = 1.0) -> list:
    """Clips (tones whose pitch depends on the label) and a splits.csv: one speaker per split."""
    rng = np.random.default_rng(0)
    rows = []
    splits = ["train", "val", "test"] + ["train"] * max(0, n_speakers - 3)
    for s in range(n_speakers):
        for label, f0 in (("angry", 320.0), ("sad", 140.0)):
            for k in range(per_label):
                clip_id = f"s{s}_{label}_{k}"
                n = int(SR * seconds * (1 + 0.25 * k))
                t = np.arange(n) / SR
                y = 0.3 * np.sin(2 * np.pi * f0 * (1 + 0.05 * s) * t) + 0.01 * rng.standard_normal(
                    n
                )
                path = root / "data" / "clean" / label / f"{clip_id}.wav"
                path.parent.mkdir(parents=True, exist_ok=True)
                sf.write(path, y.astype(np.float32), SR, subtype="PCM_16")
                rows.append(
                    {
                        "clip_id": clip_id,
                        "path": path.relative_to(root).as_posix(),
                        "label": label,
                        "speaker": f"s{s}",
                        "source_id": f"v{s}_{k}",
                        "group": f"g{s}",
                        "split": splits[s],
                        "fold": s,
                    }
                )
    write_csv_atomic(root / "data" / "splits" / "splits.csv", rows, SPLIT_COLUMNS)
    return rows


def tiny_params(**train: object) -> dict:
    backbone = {
        "arch": "hubert",
        "checkpoint": "facebook/hubert-base-ls960",
        "weights": "random",
        "random_init": dict(TINY),
        "batch_seconds": 3.0,
        "max_batch_size": 4,
    }
    return {"seed": 0, "workers": 1, "backbones": {"hubert": backbone}, "train": dict(train)}


def test_length_batches_bound_padding_and_keep_every_clip() -> None:
    lengths = [5, 40, 12, 7, 100, 33, 8, 8, 1]
    batches = length_batches(lengths, max_samples=60, max_batch_size=3)
    flat = [i for b in batches for i in b]
    assert sorted(flat) == list(range(len(lengths)))
    assert [lengths[i] for i in flat] == sorted(lengths, reverse=True)
    for b in batches:
        assert len(b) <= 3
        assert len(b) == 1 or len(b) * max(lengths[i] for i in b) <= 60
    assert [4] in batches  # longer than the budget: alone, not dropped


def test_clip_features_do_not_depend_on_batch_mates() -> None:
    # Layer-norm feature encoder + attention mask: padding must not change a clip's vector.
    settings = BackboneSettings(
        "wavlm",
        "x",
        "random",
        random_init={**TINY, "feat_extract_norm": "layer", "do_stable_layer_norm": True},
    )
    model, prep = load_backbone(settings)
    rng = np.random.default_rng(1)
    short, long = rng.standard_normal(6000), rng.standard_normal(16000)
    alone = embed_batch(model, prep, [short], "mean", torch.device("cpu"))
    padded = embed_batch(model, prep, [long, short], "mean", torch.device("cpu"))
    assert alone.shape == (1, 3, 32)
    assert torch.allclose(alone[0], padded[1], atol=1e-4)
    assert not torch.allclose(padded[0], padded[1], atol=1e-2)


def test_stage_writes_the_feature_store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    rows = write_splits(tmp_path)
    broken = tmp_path / rows[2]["path"]
    broken.write_bytes(b"RIFF....WAVEnot audio at all")
    summary = featurize.run(tiny_params(), ["hubert"], splits=SPLITS, out=Path("data/features"))[
        "hubert"
    ]
    assert summary["clips"] == len(rows) - 1 and summary["rejected"] == 1

    x, index, meta = load_features("data/features/hubert")
    assert x.shape == (len(rows) - 1, 3, 32) and x.dtype == np.float16
    assert np.all(np.isfinite(x))
    kept = [r for r in rows if r["clip_id"] != rows[2]["clip_id"]]
    assert [r.clip_id for r in index] == [r["clip_id"] for r in kept]
    assert [r.split for r in index] == [r["split"] for r in kept]
    assert [r.fold for r in index] == [r["fold"] for r in kept]
    assert meta["model"] == "hubert" and meta["weights"] == "random"
    assert "seconds" not in meta  # a timing: the same clips give the same bytes
    assert meta["checkpoint"] == "facebook/hubert-base-ls960"
    assert meta["pooling"] == "mean" and meta["sample_rate"] == SR
    rejected = read_csv("data/features/hubert/rejected.csv")
    assert [r["id"] for r in rejected] == [rows[2]["clip_id"]]

    # Same clip, same vector: deterministic and independent of the other clips in the run.
    again = featurize_backbone(
        [kept[0]["path"]], backbone_settings(tiny_params(), "hubert"), device=torch.device("cpu")
    )[0]
    assert np.allclose(again[0].astype(np.float32), x[0].astype(np.float32), atol=2e-2)


def test_mean_std_pooling_doubles_the_width(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    write_splits(tmp_path, n_speakers=3, per_label=1)
    params = tiny_params()
    params["backbones"]["hubert"]["pooling"] = "mean+std"
    featurize.run(params, ["hubert"], splits=SPLITS, out=Path("data/features"))
    x, _, meta = load_features("data/features/hubert")
    assert x.shape == (6, 3, 64) and meta["pooling"] == "mean+std"
    assert np.all(x[:, :, 32:] >= 0)


def test_baseline_features(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    rows = write_splits(tmp_path, n_speakers=3, per_label=1)
    params = {"seed": 0, "workers": 1, "baseline": {"features": ["mfcc"], "n_mfcc": 13}}
    out = Path("data/features/baseline")
    featurize_baseline.run(params, splits=SPLITS, out=out)
    x, index, meta = load_features(out)
    assert [r.clip_id for r in index] == [r["clip_id"] for r in rows]
    assert x.shape == (len(rows), 1, 26) and x.dtype == np.float32
    assert meta["model"] == "baseline" and meta["settings"]["n_mfcc"] == 13


def test_cli_errors_are_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    Path("params.yaml").write_text(json.dumps(tiny_params()))
    paths = ["--splits", str(SPLITS), "--out", "data/features"]
    assert featurize.main(["hubert", *paths]) == 2
    err = capsys.readouterr().err
    assert err.startswith("seda featurize: error:") and "splits.csv not found" in err
    write_splits(tmp_path, n_speakers=3, per_label=1)
    assert featurize.main(["bert", *paths]) == 2
    err = capsys.readouterr().err
    assert "'bert' is not configured" in err and "hubert" in err
    assert featurize_baseline.main(["--splits", "nowhere.csv", "--out", "x"]) == 2
    assert "nowhere.csv not found" in capsys.readouterr().err


def store_bytes(folder: str) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(Path(folder).iterdir())}


def test_one_backbone_changed_recomputes_that_backbone_alone(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """All backbones run in one stage; the cache keeps DVC's per-backbone granularity: a changed
    backbone is computed again, an unchanged one placed as the same bytes, and a changed clip
    computes every backbone again."""
    monkeypatch.chdir(tmp_path)
    rows = write_splits(tmp_path, n_speakers=3, per_label=1)
    params = tiny_params()
    params["backbones"]["other"] = {**params["backbones"]["hubert"], "pooling": "mean+std"}
    out = Path("data/features")
    first = featurize.run(params, ["hubert", "other"], splits=SPLITS, out=out)
    assert [first[m]["cached"] for m in ("hubert", "other")] == [False, False]
    hubert = store_bytes("data/features/hubert")

    params["backbones"]["other"]["pooling"] = "mean"
    second = featurize.run(params, ["hubert", "other"], splits=SPLITS, out=out)
    assert [second[m]["cached"] for m in ("hubert", "other")] == [True, False]
    assert store_bytes("data/features/hubert") == hubert
    assert load_features("data/features/other")[0].shape == (6, 3, 32)

    clip = tmp_path / rows[0]["path"]
    wave, sr = sf.read(clip)
    sf.write(clip, 0.5 * wave, sr, subtype="PCM_16")
    third = featurize.run(params, ["hubert", "other"], splits=SPLITS, out=out)
    assert [third[m]["cached"] for m in ("hubert", "other")] == [False, False]
    assert store_bytes("data/features/hubert") != hubert
