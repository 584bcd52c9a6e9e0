"""params.yaml is what plain `dvc repro` uses: it must equal the composition of conf/."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml
from hydra import compose as hydra_compose
from hydra import initialize_config_dir
from hydra.core.global_hydra import GlobalHydra

from seda.cli import main as seda_main
from seda.config import ConfigError, build, load_params
from seda.schema import compose, register

ROOT = Path(__file__).resolve().parents[1]


def test_committed_params_equal_composition_of_conf() -> None:
    composed = compose(conf_dir=ROOT / "conf")
    committed = load_params(ROOT / "params.yaml")
    assert committed == composed, "params.yaml is stale: run `seda compose`"


def test_check_command_detects_a_stale_params_file(tmp_path, monkeypatch, capsys) -> None:
    monkeypatch.chdir(ROOT)
    stale = yaml.safe_load((ROOT / "params.yaml").read_text())
    stale["seed"] = stale["seed"] + 1
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(stale))
    assert seda_main(["check", "--params", str(path)]) == 1
    assert "seed" in capsys.readouterr().err
    assert seda_main(["check", "--params", str(ROOT / "params.yaml")]) == 0


def test_dataset_override_composes_the_turevdb_preset(monkeypatch) -> None:
    monkeypatch.chdir(ROOT)
    if not (ROOT / "../shared/data/turevdb").is_dir():
        pytest.skip("../shared/data/turevdb is absent (the preset checks its root exists)")
    params = compose(["dataset=turevdb"], conf_dir=ROOT / "conf")
    assert params["dataset"]["kind"] == "folder"
    assert params["dataset"]["root"].endswith("turevdb/Sound Source")
    assert set(params["dataset"]["label_map"].values()) == {"angry", "calm", "happy", "sad"}
    # A studio corpus brings its processing and protocol; the user's choice still wins.
    assert params["separate"] == {"backend": "none"}
    assert params["clean"]["loudness"]["method"] == "none"
    assert params["eval"]["protocol"] == "loso"
    mixed = compose(["dataset=turevdb", "separate=repet"], conf_dir=ROOT / "conf")
    assert mixed["separate"]["backend"] == "repet" and mixed["eval"]["protocol"] == "loso"


def test_youtube_kind_datasets_keep_separation_and_holdout() -> None:
    for dataset in ("demo", "youtube"):
        params = compose([f"dataset={dataset}"], conf_dir=ROOT / "conf")
        assert params["separate"]["backend"] == "repet"
        assert params["clean"]["loudness"]["method"] == "lufs"


def test_featurize_batch_sizes_every_backbone_and_a_backbone_may_differ() -> None:
    """One choice sizes all four backbones' batches (featurize_batch=gpu); a backbone's own
    setting still wins, in params.yaml and in the Hydra app's single backbone."""
    cpu = compose([], conf_dir=ROOT / "conf")
    gpu = compose(["featurize_batch=gpu"], conf_dir=ROOT / "conf")
    sizes = {(b["batch_seconds"], b["max_batch_size"]) for b in cpu["backbones"].values()}
    assert sizes == {(64.0, 16)} and len(cpu["backbones"]) == 4
    assert {(b["batch_seconds"], b["max_batch_size"]) for b in gpu["backbones"].values()} == {
        (512.0, 64)
    }
    mixed = compose(
        ["featurize_batch=gpu", "backbones.wavlm.batch_seconds=100"], conf_dir=ROOT / "conf"
    )
    assert mixed["backbones"]["wavlm"]["batch_seconds"] == 100.0
    assert mixed["backbones"]["hubert"]["batch_seconds"] == 512.0
    register()
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base=None):
        app = hydra_compose("train_app", overrides=["backbone=wavlm", "featurize_batch=gpu"])
    assert (app.backbone.batch_seconds, app.backbone.max_batch_size) == (512.0, 64)


def test_dvc_hydra_composition_is_enabled() -> None:
    text = (ROOT / ".dvc" / "config").read_text()
    assert "[hydra]" in text and "enabled = True" in text


@dataclass
class Inner:
    a: int


@dataclass
class Outer:
    inner: Inner
    b: float = 1.0


def test_build_rejects_unknown_and_missing_keys() -> None:
    assert build(Outer, {"inner": {"a": 2}}).inner.a == 2
    with pytest.raises(ConfigError, match="typo"):
        build(Outer, {"inner": {"a": 2}, "typo": 1}, "outer")
    with pytest.raises(ConfigError, match=r"^inner lacks a$"):
        build(Outer, {"inner": {}})
    with pytest.raises(ConfigError, match=r"^outer\.inner\.a must be an integer, got '2'$"):
        build(Outer, {"inner": {"a": "2"}}, "outer")


@pytest.mark.parametrize(
    "override,words",
    [
        ("train.lr=abc", ["train.lr", "abc"]),
        ("train.lrr=0.1", ["lrr", "not in"]),
        ("clean.clips.min_seconds=-1", ["clean.clips.min_seconds", "-1"]),
        ("split.group_by=voice", ["split.group_by", "voice"]),
        ("backbones.hubert.pooling=max", ["pooling", "max"]),
        ("featurize_batch=tpu", ["featurize_batch/tpu", "cpu", "gpu"]),
        ("featurize_batch.batch_seconds=-1", ["batch_seconds", "-1"]),
        ("seed=abc", ["seed", "abc"]),
    ],
)
def test_bad_values_fail_at_composition_naming_key_and_value(override, words) -> None:
    """One sentence on one line, whether Hydra, OmegaConf or a range check found the fault."""
    with pytest.raises(ConfigError) as caught:
        compose([override], conf_dir=ROOT / "conf")
    message = str(caught.value)
    assert "\n" not in message and "Config search path" not in message, message
    for word in words:
        assert word in message, message


def test_seda_compose_reports_a_bad_override_without_a_traceback(tmp_path, capsys) -> None:
    out = tmp_path / "params.yaml"
    assert seda_main(["compose", "--output", str(out), "featurize_batch=tpu"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("seda: ") and err.count("\n") == 1 and "Traceback" not in err, err
    assert not out.exists()


def test_a_missing_dataset_root_fails_at_composition(monkeypatch) -> None:
    monkeypatch.chdir(ROOT)
    with pytest.raises(Exception, match=r"dataset\.root '/no/such/dir' is not a folder"):
        compose(["dataset=folder", "dataset.root=/no/such/dir"], conf_dir=ROOT / "conf")


def test_check_validates_ranges_of_a_hand_edited_params_file(tmp_path, capsys) -> None:
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    params["clean"]["clips"]["min_seconds"] = -1.0
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(params))
    assert seda_main(["check", "--params", str(path)]) == 2
    err = capsys.readouterr().err
    assert "clean.clips.min_seconds" in err and "Traceback" not in err


def test_seda_stage_names_the_stages_it_knows(capsys) -> None:
    with pytest.raises(SystemExit) as exited:
        seda_main(["stage", "nosuch"])
    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert "invalid choice: 'nosuch'" in err and "'featurize_baseline'" in err
    assert "Traceback" not in err
