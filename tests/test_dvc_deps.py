"""Each dvc.yaml stage depends on exactly the seda modules it runs (its static import closure).

`dvc status` can only say "up to date" truthfully when every module that can change a stage's
output is one of its deps, and a dep it does not use reruns it for nothing.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from seda.codefp import PACKAGE_DIR, import_closure, module_file

ROOT = Path(__file__).resolve().parents[1]
STAGE_MODULE = re.compile(r"python -m (seda\.stages\.\w+)")
# Files a stage runs without importing them (a script started in another interpreter).
RUN_AS_SCRIPT = {
    "seda.stages.separate": ["src/seda/separation/spleeter_worker.py"],
}


def _stages() -> list[tuple[str, dict]]:
    spec = yaml.safe_load((ROOT / "dvc.yaml").read_text(encoding="utf-8"))
    return sorted(spec["stages"].items())


def expected_code_deps(module: str) -> list[str]:
    files = [module_file(m) for m in import_closure([module])]
    rel = [f.relative_to(PACKAGE_DIR.parents[1]).as_posix() for f in files if f is not None]
    return sorted({*rel, *RUN_AS_SCRIPT.get(module, [])})


@pytest.mark.parametrize("name,stage", _stages(), ids=[n for n, _ in _stages()])
def test_stage_code_deps_equal_import_closure(name: str, stage: dict) -> None:
    stage = stage.get("do", stage)  # a foreach stage keeps its definition under `do`
    match = STAGE_MODULE.search(stage["cmd"])
    assert match, f"{name}: cmd does not run a seda stage module"
    declared = sorted(d for d in stage.get("deps", []) if str(d).startswith("src/"))
    expected = expected_code_deps(match.group(1))
    missing = sorted(set(expected) - set(declared))
    extra = sorted(set(declared) - set(expected))
    assert not missing and not extra, (
        f"stage {name}: dvc.yaml deps differ from the import closure of {match.group(1)}\n"
        f"  missing: {missing}\n  not used: {extra}\n  expected list:\n"
        + "\n".join(f"      - {d}" for d in expected)
    )


def test_nothing_imports_stages() -> None:
    """Arrows point down: stage modules are wiring and no library module reaches into them."""
    offenders = []
    for path in sorted(PACKAGE_DIR.rglob("*.py")):
        rel = path.relative_to(PACKAGE_DIR).as_posix()
        if rel.startswith("stages/"):
            continue
        text = path.read_text(encoding="utf-8")
        if re.search(
            r"^\s*(from seda\.stages\b|import seda\.stages\b|from seda import stages)", text, re.M
        ):
            offenders.append(rel)
    assert offenders == []


def test_stage_modules_are_thin() -> None:
    sizes = {
        p.name: len(p.read_text(encoding="utf-8").splitlines())
        for p in (PACKAGE_DIR / "stages").glob("*.py")
    }
    assert max(sizes.values()) < 200, sizes
