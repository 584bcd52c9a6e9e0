"""Data travels through a DVC remote: push after a run, pull in a fresh clone, nothing to rerun.

A local-directory remote stands in for S3 or SSH (the same DVC code path above the filesystem).
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

MAKE_DATA = """\
import os, sys
out = sys.argv[1]
os.makedirs(out, exist_ok=True)
for i in range(int(sys.argv[2])):
    with open(os.path.join(out, f"f{i:04d}.bin"), "wb") as fh:
        fh.write(os.urandom(int(sys.argv[3])))
"""


def _run(cmd: list[str], cwd: Path, **kw) -> subprocess.CompletedProcess:
    env = {**os.environ, "DVC_NO_ANALYTICS": "1", "GIT_TERMINAL_PROMPT": "0"}
    return subprocess.run(cmd, cwd=cwd, env=env, check=True, text=True, capture_output=True, **kw)


def _project(tmp: Path, remote: Path, files: int, size: int) -> Path:
    repo = tmp / "origin"
    repo.mkdir()
    _run(["git", "init", "-q", "-b", "main"], repo)
    _run(["git", "config", "user.email", "t@example.org"], repo)
    _run(["git", "config", "user.name", "t"], repo)
    _run(["dvc", "init", "-q"], repo)
    (repo / "make_data.py").write_text(MAKE_DATA)
    _run(
        [
            "dvc",
            "stage",
            "add",
            "-q",
            "-n",
            "collect",
            "-d",
            "make_data.py",
            "-o",
            "data",
            f"{sys.executable} make_data.py data {files} {size}",
        ],
        repo,
    )
    _run(["dvc", "remote", "add", "-d", "store", str(remote)], repo)
    _run(["dvc", "repro", "-q"], repo)
    _run(["git", "add", "-A"], repo)
    _run(["git", "commit", "-qm", "pipeline"], repo)
    return repo


def test_push_then_pull_in_a_fresh_clone_leaves_nothing_to_run(tmp_path: Path) -> None:
    remote = tmp_path / "remote"
    repo = _project(tmp_path, remote, files=20, size=2048)
    _run(["dvc", "push", "-q"], repo)

    clone = tmp_path / "clone"
    _run(["git", "clone", "-q", str(repo), str(clone)], tmp_path)
    pulled = _run(["dvc", "pull"], clone)
    assert "20 files" in pulled.stdout or "added" in pulled.stdout.lower(), pulled.stdout
    assert sorted(p.name for p in (clone / "data").iterdir()) == sorted(
        p.name for p in (repo / "data").iterdir()
    )
    status = _run(["dvc", "status"], clone)
    assert "up to date" in status.stdout.lower(), status.stdout
    # Nothing left to fetch: a second pull downloads nothing.
    again = _run(["dvc", "pull"], clone)
    assert "everything is up to date" in again.stdout.lower(), again.stdout
    # `dvc repro` has nothing to run either.
    repro = _run(["dvc", "repro"], clone)
    assert "didn't change, skipping" in repro.stdout, repro.stdout


def test_an_interrupted_push_completes_on_the_next_push(tmp_path: Path) -> None:
    remote = tmp_path / "remote"
    repo = _project(tmp_path, remote, files=400, size=256 * 1024)
    env = {**os.environ, "DVC_NO_ANALYTICS": "1"}
    proc = subprocess.Popen(
        ["dvc", "push", "-j", "1"],
        cwd=repo,
        env=env,
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and proc.poll() is None:
        pushed = sum(1 for p in remote.rglob("*") if p.is_file()) if remote.exists() else 0
        if pushed >= 20:
            break
        time.sleep(0.05)
    interrupted = proc.poll() is None
    if interrupted:
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    pushed = sum(1 for p in remote.rglob("*") if p.is_file()) if remote.exists() else 0
    assert interrupted and pushed < 401, "push finished before it could be interrupted"

    _run(["dvc", "push", "-q"], repo)
    clone = tmp_path / "clone"
    _run(["git", "clone", "-q", str(repo), str(clone)], tmp_path)
    _run(["dvc", "pull", "-q"], clone)
    for original in (repo / "data").iterdir():
        assert (clone / "data" / original.name).read_bytes() == original.read_bytes()
    shutil.rmtree(clone)
