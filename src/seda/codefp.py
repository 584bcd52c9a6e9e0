"""Which of seda's own modules a piece of code runs, and a fingerprint of that code.

Two users: the per-file caches (an entry is valid only for the code that computed it) and the test
that checks each ``dvc.yaml`` stage depends on exactly the modules it imports. Imports are read
statically from the source (every ``import``, also those inside functions), so the closure covers
code paths a particular run may not take.
"""

from __future__ import annotations

import ast
import functools
import hashlib
import importlib.metadata
from collections.abc import Iterable
from pathlib import Path

PACKAGE = "seda"
PACKAGE_DIR = Path(__file__).resolve().parent


def module_file(name: str, package_dir: Path = PACKAGE_DIR) -> Path | None:
    """The source file of module ``seda.x.y`` (a package's ``__init__.py``), or None."""
    parts = name.split(".")
    if parts[0] != PACKAGE:
        return None
    base = package_dir.joinpath(*parts[1:])
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


@functools.cache
def _direct_imports(name: str, package_dir: Path) -> frozenset[str]:
    path = module_file(name, package_dir)
    if path is None:
        return frozenset()
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    is_package = path.name == "__init__.py"
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                anchor = name.split(".")
                anchor = anchor[: len(anchor) - node.level + (1 if is_package else 0)]
                base = ".".join([*anchor, *([node.module] if node.module else [])])
            else:
                base = node.module or ""
            found.add(base)
            found.update(f"{base}.{a.name}" for a in node.names)
    return frozenset(m for m in found if module_file(m, package_dir) is not None)


def import_closure(modules: Iterable[str], package_dir: Path = PACKAGE_DIR) -> list[str]:
    """All seda modules that importing ``modules`` executes, parent packages included, sorted."""
    seen: set[str] = set()
    todo = list(modules)
    while todo:
        name = todo.pop()
        if name in seen or module_file(name, package_dir) is None:
            continue
        seen.add(name)
        parts = name.split(".")
        todo.extend(".".join(parts[:i]) for i in range(1, len(parts)))
        todo.extend(_direct_imports(name, package_dir))
    return sorted(seen)


def code_fingerprint(modules: Iterable[str], packages: Iterable[str] = ()) -> str:
    """sha256 over the source of the import closure of ``modules`` and the versions of ``packages``.

    Editing any module the code runs changes it; editing an unrelated module does not.
    """
    digest = hashlib.sha256()
    for name in import_closure(modules):
        path = module_file(name)
        assert path is not None
        digest.update(f"{name}\0".encode())
        digest.update(path.read_bytes())
    for package in sorted(set(packages)):
        try:
            version = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            version = "absent"
        digest.update(f"{package}=={version}\0".encode())
    return digest.hexdigest()
