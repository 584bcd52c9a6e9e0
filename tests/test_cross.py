"""Cross-corpus evaluation (issue 10): models trained on one corpus score the clips of another,
its labels mapped onto theirs; clips of labels the model does not know are left out and counted.

The models are trained by the real code on test_predict's tiny corpus (three pitch-coded
emotions); the test corpus is a folder corpus with other label names, other speakers and one
emotion the models never saw."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from seda.schema import compose
from seda.stages import cross, index
from test_predict import SR, model_params, train_models, voiced

# raw folder name -> the pitch it is voiced at (None: a label the models never learnt)
RAW = {"Wut": "angry", "Ruhe": "calm", "Trauer": "sad", "Freude": None, "Ekel": "sad"}
LABEL_MAP = {"Wut": "angry", "Ruhe": "calm", "Trauer": "sad", "Ekel": None}


@pytest.fixture(scope="module")
def models_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return train_models(tmp_path_factory.mktemp("trained"), ("baseline",))


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """3 new speakers x 5 raw labels x 3 utterances, each padded with a near-silent floor."""
    root = tmp_path_factory.mktemp("corpus")
    rng = np.random.default_rng(11)
    for raw, pitch in RAW.items():
        (root / raw).mkdir()
        for speaker in ("p1", "p2", "p3"):
            for k in range(3):
                y = voiced(pitch or "angry", 1.2 + 0.2 * k, rng, rng.uniform(0.97, 1.08))
                if pitch is None:  # an emotion of its own: a pitch between angry and calm
                    y = voiced("calm", 1.2, rng, 1.3)
                pad = (0.0005 * rng.standard_normal(SR // 5)).astype(np.float32)
                sf.write(root / raw / f"{speaker}_{k}.wav", np.concatenate([pad, y, pad]), SR)
    return root


def params_for(corpus: Path) -> dict:
    params = model_params()
    pattern = r"(?P<label>[^/]+)/(?P<speaker>[^/_]+)_[^/]+$"
    params["dataset"] = {"kind": "folder", "name": "tiny", "root": str(corpus), "pattern": pattern}
    params["test_datasets"] = {
        "other": {
            "kind": "folder",
            "name": "other",
            "root": str(corpus),
            "pattern": pattern,
            "label_map": LABEL_MAP,
        }
    }
    return params


def run_cross(params: dict, models_dir: Path, out: Path) -> dict:
    return cross.run(
        params,
        "other",
        models=[models_dir / "baseline"],
        clips_dir=out / "clips",
        out=out / "reports",
        cache_root=out / "cache",
    )


def test_models_score_another_corpus_through_its_label_map(
    models_dir: Path, corpus: Path, tmp_path: Path
) -> None:
    run_cross(params_for(corpus), models_dir, tmp_path)
    reports = tmp_path / "reports"
    summary = json.loads((reports / "summary.json").read_text())
    assert summary["trained_on"] == "tiny" and summary["tested_on"] == "other"
    # Ekel was dropped by the label map; Freude kept its own name and is unknown to the model.
    assert summary["test_labels"] == {"angry": 9, "calm": 9, "freude": 9, "sad": 9}
    assert summary["test_speakers"] == 3
    (result,) = summary["models"]
    assert result["left_out"] == {"freude": 9}
    assert result["n_test"] == 27
    # Pitch-coded emotions carry over to new speakers: well above the chance UAR of 1/3.
    assert result["headline"]["uar"] >= 0.8
    details = json.loads((reports / "details/baseline.json").read_text())
    assert details["protocol"] == "cross-corpus: trained on tiny"
    assert details["interval_method"].startswith("group bootstrap")
    assert details["n_test_groups"] == 3
    assert sorted(s["speaker"] for s in details["speakers"]) == ["p1", "p2", "p3"]
    metrics = json.loads((reports / "metrics.json").read_text())
    assert metrics["baseline"] == result["headline"]
    table = (reports / "summary.md").read_text()
    assert table.startswith("# Trained on tiny, tested on other")
    assert "| freude 9 |" in table
    failures = (tmp_path / "clips/failures.csv").read_text()
    assert failures.count("dropped by label_map") == 9


def test_the_same_inputs_give_the_same_bytes(
    models_dir: Path, corpus: Path, tmp_path: Path
) -> None:
    params = params_for(corpus)
    run_cross(params, models_dir, tmp_path / "a")
    run_cross(params, models_dir, tmp_path / "b")
    for name in ("metrics.json", "summary.json", "summary.md", "details/baseline.json"):
        a = (tmp_path / "a/reports" / name).read_bytes()
        assert a == (tmp_path / "b/reports" / name).read_bytes(), name


def test_an_unknown_test_corpus_is_one_clear_error(models_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(Exception, match=r"test_datasets\.nope is not in params.yaml"):
        cross.run(
            model_params(),
            "nope",
            models=[models_dir / "baseline"],
            clips_dir=tmp_path,
            out=tmp_path,
        )


def test_index_lists_the_test_corpus(
    corpus: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    Path("params.yaml").write_text(json.dumps(params_for(corpus)))
    assert index.main(["--test-dataset", "other", "--out", "idx.csv", "--cache", "c"]) == 0
    lines = Path("idx.csv").read_text().splitlines()
    assert len(lines) == 1 + len(RAW) * 9
    assert index.main(["--test-dataset", "nope", "--out", "x.csv", "--cache", "c"]) == 2


def test_test_dataset_presets_compose_into_test_datasets() -> None:
    assert compose([])["test_datasets"] == {}
    turevdb = compose(["test_dataset=turevdb"])["test_datasets"]["turevdb"]
    # the same corpus description as dataset=turevdb, written once in conf/corpus/
    assert turevdb == {**compose(["dataset=turevdb"])["dataset"], "references": {}}
    folder = compose(["test_dataset=folder", "test_datasets.folder.root=/tmp"])
    assert folder["test_datasets"]["folder"]["root"] == "/tmp"
    assert folder["dataset"]["name"] == "demo"  # training corpus unchanged
