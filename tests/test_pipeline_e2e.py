"""End to end: `dvc repro` on the demo in a temporary copy of the repository, then a no-op rerun."""

from __future__ import annotations

import csv
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.slow


def _copy_tracked_tree(dst: Path) -> None:
    files = (
        subprocess.run(
            ["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
            cwd=ROOT,
            check=True,
            capture_output=True,
        )
        .stdout.decode()
        .split("\0")
    )
    for rel in filter(None, files):
        src = ROOT / rel
        if not src.is_file():
            continue
        target = dst / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(src, target)


def _run(cmd: list[str], cwd: Path, timeout: int) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, (
        f"{' '.join(cmd)} failed:\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}"
    )
    return proc


@pytest.fixture(scope="module")
def demo_repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    repo = tmp_path_factory.mktemp("e2e") / "seda"
    _copy_tracked_tree(repo)
    for stale in ("dvc.lock",):
        (repo / stale).unlink(missing_ok=True)
    shutil.rmtree(repo / "reports", ignore_errors=True)
    _run(["git", "init", "-q"], repo, 60)
    _run(["dvc", "repro"], repo, 1500)
    return repo


def _read_csv(path: Path) -> list[dict[str, str]]:
    with open(path, encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def test_dvc_repro_builds_the_demo_dataset(demo_repo: Path) -> None:
    raw = _read_csv(demo_repo / "data/raw/manifest.csv")
    assert raw and all(r["sha256"] and r["source_url"] for r in raw)
    clips = _read_csv(demo_repo / "data/clean/manifest.csv")
    # One item per demo speaker is unlabelled: it flows through as `unknown` for the label stage.
    assert {c["label"] for c in clips} == {"angry", "calm", "happy", "sad", "unknown"}
    for clip in clips[:20]:
        assert (demo_repo / clip["path"]).is_file()
        assert clip["path"].startswith(f"data/clean/{clip['label']}/")
    splits = _read_csv(demo_repo / "data/splits/splits.csv")
    assert len(splits) == len(clips)
    by_split: dict[str, set[str]] = {}
    for row in splits:
        by_split.setdefault(row["split"], set()).add(row["speaker"])
    assert set(by_split) == {"train", "val", "test"}
    assert not (by_split["train"] & by_split["test"]) and not (by_split["val"] & by_split["test"])
    assert any((demo_repo / "reports/figures").glob("*.png"))


def test_second_repro_runs_no_stage(demo_repo: Path) -> None:
    proc = _run(["dvc", "repro"], demo_repo, 300)
    # Only the corpus index runs every time (always_changed); its output is unchanged, so
    # nothing after it runs.
    ran = [line for line in proc.stdout.splitlines() if line.startswith("Running stage")]
    assert ran == ["Running stage 'index':"], proc.stdout
    status = _run(["dvc", "status"], demo_repo, 120)
    assert "changed deps" not in status.stdout and "changed outs" not in status.stdout, (
        status.stdout
    )
