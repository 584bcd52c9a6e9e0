"""The per-file cache misses when its code changes; `seda cache prune` frees the rest."""

from __future__ import annotations

import json
from pathlib import Path

from seda import cache as cache_mod
from seda.cache import StageCache, prune
from seda.cli import main as seda_main
from seda.codefp import code_fingerprint, import_closure


def _package(tmp: Path) -> Path:
    pkg = tmp / "seda"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "sub" / "__init__.py").write_text("from . import work\n")
    (pkg / "sub" / "work.py").write_text("from seda import helper\n\ndef f():\n    return 1\n")
    (pkg / "helper.py").write_text("def g():\n    from seda.lazy import h\n")
    (pkg / "lazy.py").write_text("")
    (pkg / "unrelated.py").write_text("import seda.sub.work\n")
    return pkg


def test_import_closure_follows_relative_lazy_and_parent_imports(tmp_path: Path) -> None:
    pkg = _package(tmp_path)
    assert import_closure(["seda.sub.work"], pkg) == [
        "seda",
        "seda.helper",
        "seda.lazy",
        "seda.sub",
        "seda.sub.work",
    ]


def _entry(root: Path, stage: str, settings: dict, code: list[str]) -> StageCache:
    return StageCache(stage, settings, code=code, root=root)


def test_cache_misses_after_the_computing_code_changes(tmp_path: Path, monkeypatch) -> None:
    pkg = _package(tmp_path / "src")
    real = code_fingerprint
    monkeypatch.setattr(
        cache_mod, "code_fingerprint", lambda code, packages=(): _fp(pkg, code, packages, real)
    )
    root = tmp_path / "cache"
    first = _entry(root, "clean", {"a": 1}, ["seda.sub.work"])
    first.begin("k1")
    first.commit("k1", {"files": []})
    assert _entry(root, "clean", {"a": 1}, ["seda.sub.work"]).load("k1") is not None

    (pkg / "unrelated.py").write_text("import seda.sub.work\nX = 2\n")
    assert _entry(root, "clean", {"a": 1}, ["seda.sub.work"]).load("k1") is not None

    (pkg / "lazy.py").write_text("Y = 3\n")  # reached through a lazy import of a helper
    assert _entry(root, "clean", {"a": 1}, ["seda.sub.work"]).load("k1") is None


def _fp(pkg: Path, code, packages, real) -> str:
    import hashlib

    from seda.codefp import module_file

    digest = hashlib.sha256(real([], packages).encode())
    for name in import_closure(code, pkg):
        digest.update(module_file(name, pkg).read_bytes())
    return digest.hexdigest()


def test_package_versions_enter_the_fingerprint() -> None:
    assert code_fingerprint(["seda.io"], ["numpy"]) != code_fingerprint(["seda.io"], ["scipy"])
    assert code_fingerprint(["seda.io"], ["numpy"]) == code_fingerprint(["seda.io"], ["numpy"])


def test_prune_keeps_live_entries_and_reports_freed_bytes(tmp_path: Path, capsys) -> None:
    root = tmp_path / "cache"
    old = StageCache("clean", {"v": 1}, code=["seda.io"], root=root)
    for key in ("aa1", "bb2"):
        old.begin(key).joinpath("clip.wav").write_bytes(b"x" * 1000)
        old.commit(key, {"files": ["clip.wav"]})
    current = StageCache("clean", {"v": 2}, code=["seda.io"], root=root)
    current.begin("aa1").joinpath("clip.wav").write_bytes(b"y" * 10)
    current.commit("aa1", {"files": ["clip.wav"]})
    current.begin("cc3")  # a partial entry from a killed run
    current.save_live()
    live = json.loads((root / "clean" / "live.json").read_text())
    assert live == {"digest": current.digest, "keys": ["aa1"]}

    assert seda_main(["cache", "prune", "--root", str(root)]) == 0
    out = capsys.readouterr().out
    assert "in 3 cache entries" in out
    assert StageCache("clean", {"v": 2}, code=["seda.io"], root=root).load("aa1") is not None
    assert not old.root.exists()
    assert prune(root).entries == 0


def test_prune_of_a_missing_folder_says_so(tmp_path: Path, capsys) -> None:
    assert seda_main(["cache", "prune", "--root", str(tmp_path / "cahce")]) == 0
    assert capsys.readouterr().out == f"no cache folder {tmp_path / 'cahce'}: nothing to prune\n"


def test_prune_leaves_stages_without_a_live_record(tmp_path: Path) -> None:
    root = tmp_path / "cache"
    c = StageCache("separate", {}, code=["seda.io"], root=root)
    c.begin("k")
    c.commit("k", {"files": []})
    assert prune(root).entries == 0
    assert c.load("k") is not None
