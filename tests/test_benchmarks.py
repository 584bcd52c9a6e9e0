"""The benchmark scripts are run by hand, not by CI: at least every seda name they import (at the
top or inside a function) must still exist, so that a moved function breaks a test, not a
measurement weeks later."""

from __future__ import annotations

import ast
import importlib
import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
BENCHMARKS = sorted((ROOT / "benchmarks").glob("*.py"))


def seda_imports(path: Path) -> list[tuple[str, str]]:
    tree = ast.parse(path.read_text(), filename=str(path))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "seda":
            found += [(node.module, alias.name) for alias in node.names]
        elif isinstance(node, ast.Import):
            found += [(a.name, "") for a in node.names if a.name.split(".")[0] == "seda"]
    return found


@pytest.mark.parametrize("path", BENCHMARKS, ids=lambda p: p.name)
def test_benchmark_seda_imports_resolve(path: Path) -> None:
    for module, name in seda_imports(path):
        loaded = importlib.import_module(module)
        if name and not hasattr(loaded, name):
            importlib.import_module(f"{module}.{name}")  # a submodule, or ImportError


@pytest.mark.skipif(torch.cuda.is_available(), reason="a CUDA device is here: it would measure")
def test_gpu_benchmark_without_an_accelerator_says_so_and_exits_0() -> None:
    """Where there is no accelerator (CI, laptops) the script must say it measured nothing and
    exit 0, not fail or print figures."""
    run = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "featurize_gpu.py")],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 0, run.stderr
    assert "no CUDA accelerator" in run.stdout and "not measured" in run.stdout
