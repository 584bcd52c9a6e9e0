"""A bad `dvc exp run -S ...` fails at composition, in one sentence, before anything is touched.

Runs DVC itself on a temporary copy of the repository's pipeline definition, with a sentinel
file standing in for collected data.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow


def _git(repo: Path, *args: str) -> None:
    subprocess.run(["git", *args], cwd=repo, check=True, capture_output=True)


@pytest.fixture(scope="module")
def repo(tmp_path_factory) -> Path:
    repo = tmp_path_factory.mktemp("exp") / "repo"
    repo.mkdir()
    for name in ("conf", "hydra_plugins", "data/labels"):
        shutil.copytree(ROOT / name, repo / name, ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("dvc.yaml", "params.yaml", ".gitignore", ".dvcignore"):
        shutil.copy2(ROOT / name, repo / name)
    (repo / ".dvc").mkdir()
    shutil.copy2(ROOT / ".dvc" / "config", repo / ".dvc" / "config")
    _git(repo, "init", "-q", "-b", "main")
    _git(repo, "config", "user.email", "t@example.org")
    _git(repo, "config", "user.name", "t")
    _git(repo, "add", "-A")
    _git(repo, "commit", "-qm", "pipeline")
    return repo


@pytest.mark.parametrize(
    "overrides,expected",
    [
        (["dataset=folder", "dataset.root=/no/such/dir"], "dataset.root '/no/such/dir'"),
        (["train.lr=abc"], "train.lr"),
        (["clean.clips.min_seconds=-1"], "clean.clips.min_seconds must be > 0"),
        (["train.lrr=0.1"], "Key 'lrr' not in 'TrainSettings'"),
    ],
)
def test_failed_exp_run_names_the_key_and_touches_nothing(repo: Path, overrides, expected):
    sentinel = repo / "data" / "raw" / "manifest.csv"
    sentinel.parent.mkdir(parents=True, exist_ok=True)
    sentinel.write_text("id,path\nkeep,me\n")
    before = (repo / "params.yaml").read_bytes()
    args = [a for o in overrides for a in ("-S", o)]
    env = {**os.environ, "DVC_NO_ANALYTICS": "1"}
    proc = subprocess.run(
        ["dvc", "exp", "run", *args],
        cwd=repo,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode != 0
    assert expected in proc.stderr + proc.stdout, proc.stderr
    assert "Running stage" not in proc.stdout
    assert (repo / "params.yaml").read_bytes() == before
    assert sentinel.read_text() == "id,path\nkeep,me\n"
