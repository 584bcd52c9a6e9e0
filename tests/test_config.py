"""params.yaml is what plain `dvc repro` uses: it must equal the composition of conf/."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from seda.cli import main as seda_main
from seda.config import ConfigError, build, compose, load_params

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


def test_dataset_override_composes_the_turevdb_preset() -> None:
    params = compose(["dataset=turevdb"], conf_dir=ROOT / "conf")
    assert params["dataset"]["kind"] == "folder"
    assert params["dataset"]["root"].endswith("turevdb/Sound Source")
    assert set(params["dataset"]["label_map"].values()) == {"angry", "calm", "happy", "sad"}


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
    with pytest.raises(ConfigError, match="missing setting"):
        build(Outer, {"inner": {}})
