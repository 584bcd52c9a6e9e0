"""`seda experiments`: `dvc exp show --json` as a table of changed params and each model's UAR."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from seda.experiments import changed_params, main, parse_exp_show, render_table, short_names

TRAIN = """\
import json, os, yaml
p = yaml.safe_load(open("params.yaml"))
os.makedirs("reports/metrics", exist_ok=True)
lr, dropout = p["train"]["lr"], p["train"]["dropout"]
for i, model in enumerate(["hubert", "baseline"]):
    uar = round(0.5 + 0.1 * i + 20 * lr * (1 if i else -1) - dropout / (5 + 5 * i), 4)
    record = {"uar": uar, "uar_low": uar - 0.1, "uar_high": uar + 0.1, "n_test": 38}
    json.dump(record, open(f"reports/metrics/{model}.json", "w"))
"""
PARAMS = """\
train:
  lr: 0.001
  dropout: 0.2
  epochs: 10
backbones:
  hubert:
    checkpoint: facebook/hubert-base-ls960
seed: 0
"""
DVC_YAML = f"""\
stages:
  train:
    cmd: {sys.executable} train.py
    deps: [train.py]
    params: [train, backbones, seed]
    metrics:
      - reports/metrics/hubert.json:
          cache: false
      - reports/metrics/baseline.json:
          cache: false
"""


def _run(cmd: list[str], cwd: Path) -> str:
    env = {
        **os.environ,
        "DVC_NO_ANALYTICS": "1",
        "GIT_AUTHOR_NAME": "t",
        "GIT_AUTHOR_EMAIL": "t@example.org",
        "GIT_COMMITTER_NAME": "t",
        "GIT_COMMITTER_EMAIL": "t@example.org",
    }
    return subprocess.run(cmd, cwd=cwd, env=env, check=True, capture_output=True, text=True).stdout


@pytest.fixture(scope="module")
def exp_show(tmp_path_factory: pytest.TempPathFactory) -> list:
    """`dvc exp show --json` of a repository with a commit and two experiments of it."""
    repo = tmp_path_factory.mktemp("exp")
    _run(["git", "init", "-q", "-b", "main"], repo)
    _run(["dvc", "init", "-q"], repo)
    (repo / "train.py").write_text(TRAIN)
    (repo / "params.yaml").write_text(PARAMS)
    (repo / "dvc.yaml").write_text(DVC_YAML)
    _run(["dvc", "repro", "-q"], repo)
    _run(["git", "add", "-A"], repo)
    _run(["git", "commit", "-qm", "baseline"], repo)
    _run(["dvc", "exp", "run", "-q", "--temp", "-n", "fast", "-S", "train.lr=0.003"], repo)
    _run(["dvc", "exp", "run", "-q", "--temp", "-n", "nodrop", "-S", "train.dropout=0.0"], repo)
    return json.loads(_run(["dvc", "exp", "show", "--json"], repo))


def test_rows_of_a_real_exp_show(exp_show: list) -> None:
    rows = {row.name: row for row in parse_exp_show(exp_show)}
    assert set(rows) == {"workspace", "main", "fast", "nodrop"}
    assert rows["fast"].params["train.lr"] == 0.003
    assert rows["nodrop"].params["train.dropout"] == 0.0
    assert rows["main"].uar == {"hubert": 0.44, "baseline": 0.6}
    assert changed_params(list(rows.values())) == ["train.lr", "train.dropout"]


def test_table_of_a_real_exp_show(exp_show: list) -> None:
    lines = render_table(parse_exp_show(exp_show)).splitlines()
    assert lines[0].split() == ["Experiment", "lr", "dropout", "hubert", "baseline"]
    names = [line.split()[0] for line in lines[2:-1]]
    # baseline has the best UAR anywhere: rows by baseline UAR, best first.
    assert names == ["fast", "nodrop", "workspace", "main"] or names == [
        "fast",
        "nodrop",
        "main",
        "workspace",
    ]
    assert lines[-1] == "sorted by baseline UAR, best first"
    by_hubert = render_table(parse_exp_show(exp_show), sort="hubert").splitlines()
    assert by_hubert[2].split()[0] == "nodrop"
    assert max(len(line) for line in lines + by_hubert) <= 120


def test_command_reads_saved_json(exp_show: list, tmp_path: Path, capsys) -> None:
    saved = tmp_path / "exp.json"
    saved.write_text(json.dumps(exp_show))
    assert main(["--json-file", str(saved), "--sort", "hubert"]) == 0
    assert "sorted by hubert UAR" in capsys.readouterr().out
    assert main(["--json-file", str(saved), "--sort", "nosuch"]) == 2
    assert capsys.readouterr().err.startswith("seda experiments: error: --sort nosuch")


def _entry(name: str, params: dict, uar: dict) -> dict:
    return {
        "rev": name,
        "name": name,
        "data": {
            "params": {"params.yaml": {"data": params}},
            "metrics": {f"reports/metrics/{m}.json": {"data": {"uar": u}} for m, u in uar.items()},
        },
        "experiments": None,
    }


def test_many_changed_params_still_fit_and_are_named() -> None:
    models = ["hubert", "wav2vec2", "wavlm", "data2vec", "baseline"]
    entries = [
        _entry(
            f"exp-{i}",
            {"backbones": {m: {"random_init": {"hidden_size": 64 * (i + 1)}} for m in models}}
            | {"train": {"lr": 10.0**-i, "note": "x" * (20 + i)}},
            {m: 0.1 * i + 0.01 * j for j, m in enumerate(models)},
        )
        for i in range(4)
    ]
    lines = render_table(parse_exp_show(entries)).splitlines()
    assert max(len(line) for line in lines) <= 120
    assert lines[2].split()[0] == "exp-3"
    footer = " ".join(lines[6:])
    assert "4 more changed params" in footer
    assert "backbones.baseline.random_init.hidden_size, train.lr, train.note" in footer


def test_short_names_are_unique_suffixes() -> None:
    keys = ["train.lr", "backbones.hubert.lr", "train.dropout", "seed"]
    assert short_names(keys) == {
        "train.lr": "train.lr",
        "backbones.hubert.lr": "hubert.lr",
        "train.dropout": "dropout",
        "seed": "seed",
    }
