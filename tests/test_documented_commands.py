"""Every `dvc exp run -S ...` command that the README, docs/ and the comments of conf/ show must
compose, as DVC composes it (sweeps split by DVC's own function), or fail where the text says it
fails. A user copies these commands first; a label_map override without Hydra's ``++`` was
refused ("Key 'Wut' is not in struct") while the README offered it."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from dvc.utils.hydra import get_hydra_sweeps

from seda.collect.dataset import build_dataset_settings
from seda.collect.folder import collect_folder
from seda.config import ConfigError
from seda.schema import compose

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data" / "turevdb"
# A documented path stands for the reader's own folder: these keys get one that exists.
PATH_KEYS = ("root", "music", "model_path", "local_dir")
_VALUE = r"""(?:'[^'\n]*'|"[^"\n]*"|[^\s`'"]+)+"""
_GAP = r"""(?:[ \t]|\\?\n[ \t]*(?:\#[ \t]*)?)+"""
COMMAND = re.compile(
    rf"dvc exp run((?:{_GAP}(?:(?:-S|--set-param){_GAP}{_VALUE}|--[a-z][a-z-]*))+)"
)
OPTION = re.compile(rf"(?:-S|--set-param){_GAP}({_VALUE})")
# `<preset>`, `<40-hex commit>`: for the reader to fill in (a regex's `(?P<name>` is not one).
PLACEHOLDER = re.compile(r"(?<!\?P)<[\w -]+>")


def documented_commands() -> list[tuple[str, list[str], bool]]:
    """(where, the -S values, whether the text shows it failing) of every command shown."""
    found = []
    sources = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
    sources += sorted((ROOT / "conf").rglob("*.yaml"))
    for path in sources:
        text = path.read_text(encoding="utf-8")
        for match in COMMAND.finditer(text):
            values = [shlex.split(v)[0] for v in OPTION.findall(match.group(1))]
            if not values or any(v == "..." or PLACEHOLDER.search(v) for v in values):
                continue  # a placeholder to fill in (`-S augment=<preset>`, `-S ...`)
            line = text.count("\n", 0, match.start()) + 1
            after = text[match.end() :].split("\n", 2)
            # The text shows it failing: "... fails before any stage runs", or ERROR below it.
            fails = "fail" in after[0][:40] or (len(after) > 1 and "ERROR" in after[1])
            found.append((f"{path.relative_to(ROOT)}:{line}", values, fails))
    return found


COMMANDS = documented_commands()
TONE = 0.1 * np.sin(np.linspace(0, 200 * np.pi, 16000)).astype(np.float32)


def test_the_documents_show_commands_to_check() -> None:
    where = {w.split(":")[0] for w, _, _ in COMMANDS}
    assert {"README.md", "conf/test_dataset/folder.yaml"} <= where
    assert any(any("label_map" in v for v in values) for _, values, _ in COMMANDS)


def _with_existing_paths(override: str, folder: Path) -> str:
    """The override with a documented path replaced by ``folder`` (holding one short WAV, for
    keys such as ``augment.music`` that want audio in it)."""
    key, _, value = override.partition("=")
    if key.lstrip("+~").split(".")[-1] in PATH_KEYS and value.startswith(("/", "models/")):
        folder.mkdir(parents=True, exist_ok=True)
        sf.write(folder / "tone.wav", TONE, 16000)
        return f"{key}={folder}"
    return override


@pytest.mark.parametrize(("where", "values", "fails"), COMMANDS, ids=[c[0] for c in COMMANDS])
def test_documented_command_composes(where, values, fails, tmp_path, monkeypatch) -> None:
    if any("turevdb" in v for v in values) and not SHARED.is_dir():
        pytest.skip("../shared/data/turevdb is absent (the preset checks its root exists)")
    monkeypatch.chdir(ROOT)
    overrides = [_with_existing_paths(v, tmp_path) for v in values]
    runs = get_hydra_sweeps({"params.yaml": overrides})
    for run in runs:
        if fails:
            with pytest.raises(ConfigError):
                compose(run["params.yaml"])
        else:
            compose(run["params.yaml"])


def test_readme_corpus_example_reads_its_layout(tmp_path, monkeypatch) -> None:
    """The README's corpus-on-disk example (labels and speakers from file names, codes mapped to
    names) composes into settings that read files laid out that way."""
    example = [c for c in COMMANDS if any("dataset.pattern=" in v for v in c[1])]
    assert example, "the README shows a dataset.pattern example"
    corpus = tmp_path / "corpus"
    overrides = [_with_existing_paths(v, corpus) for v in example[0][1]]
    (corpus / "tone.wav").unlink()
    for name in ("03a01Fa.wav", "03a02Wb.wav", "16b10Ta.wav"):
        sf.write(corpus / name, TONE, 16000)
    monkeypatch.chdir(ROOT)
    params = compose(overrides)
    settings = build_dataset_settings(params["dataset"])
    got = collect_folder(settings, tmp_path / "cache", workers=1)
    assert len(got.failures) == 0
    assert sorted((r.speaker, r.label) for r in got.rows) == [
        ("03", "anger"),
        ("03", "happiness"),
        ("16", "sadness"),
    ]
    assert params["separate"]["backend"] == "none" and params["eval"]["protocol"] == "loso"
