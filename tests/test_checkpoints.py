"""`seda models fetch`: pinned checkpoints downloaded once into a folder the configs point at.

The hub client's download is replaced by a copy from a local folder and every socket is refused:
these tests never reach the internet.
"""

from __future__ import annotations

import fnmatch
import json
import shutil
import socket
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from seda import checkpoints
from seda.backbones import BackboneSettings, load_backbone, weights_sha256
from seda.checkpoints import MANIFEST, fetch, read_manifest, snapshot_dir
from seda.cli import main
from seda.config import ConfigError
from seda.io import sha256_file
from test_backbones import save_tiny_checkpoint

HUB_ID = "facebook/hubert-base-ls960"
REV = "0123456789abcdef0123456789abcdef01234567"  # a well-formed commit id for offline tests


@pytest.fixture(autouse=True)
def no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("tried to reach the network")

    monkeypatch.setattr(socket.socket, "connect", refuse)


@pytest.fixture
def hub(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, list]:
    """(the folder a fake hub serves, the list of download calls made to it)."""
    served = tmp_path / "served"
    served.mkdir()
    calls: list[tuple[str, str, tuple[str, ...]]] = []

    def download(*, repo_id: str, revision: str, local_dir: str, allow_patterns: list[str]) -> str:
        calls.append((repo_id, revision, tuple(allow_patterns)))
        out = Path(local_dir)
        meta = out / ".cache" / "huggingface"  # what the real client keeps for resuming
        meta.mkdir(parents=True, exist_ok=True)
        (meta / "download.lock").write_text("x")
        for f in served.iterdir():
            if any(fnmatch.fnmatch(f.name, p) for p in allow_patterns):
                shutil.copy2(f, out / f.name)
        return str(out)

    monkeypatch.setattr(checkpoints, "snapshot_download", download)
    return served, calls


def pinned(revision: str | None = REV, checkpoint: str = HUB_ID) -> BackboneSettings:
    return BackboneSettings("hubert", checkpoint, "random", revision=revision)


def test_fetch_writes_the_folder_and_its_manifest_once(tmp_path: Path, hub: tuple) -> None:
    served, calls = hub
    save_tiny_checkpoint("hubert", served)
    (served / "tf_model.h5").write_bytes(b"not needed")
    (served / "README.md").write_text("card")
    dest = tmp_path / "models" / "hub"

    folder = fetch(pinned(), dest)

    assert folder == snapshot_dir(dest, HUB_ID, REV) == dest / HUB_ID / REV
    assert sorted(p.name for p in folder.iterdir()) == [
        "config.json",
        "model.safetensors",
        "preprocessor_config.json",
        MANIFEST,
    ]
    assert [p.name for p in folder.parent.iterdir()] == [REV]  # no partial folder left
    manifest = json.loads((folder / MANIFEST).read_text())
    assert manifest["repo_id"] == HUB_ID and manifest["revision"] == REV
    assert manifest["weights_file"] == "model.safetensors"
    for name in ("config.json", "model.safetensors", "preprocessor_config.json"):
        entry = manifest["files"][name]
        assert entry["sha256"] == sha256_file(folder / name)
        assert entry["size"] == (folder / name).stat().st_size
    assert calls == [
        (HUB_ID, REV, ("config.json", "preprocessor_config.json", "model.safetensors"))
    ]

    assert fetch(pinned(), dest) == folder
    assert len(calls) == 1  # complete: not downloaded again

    # The configs point at dest; loading reads the fetched folder and records its weights' hash.
    settings = BackboneSettings("hubert", HUB_ID, "pretrained", revision=REV, local_dir=str(dest))
    model, _ = load_backbone(settings)
    assert weights_sha256(model) == manifest["files"]["model.safetensors"]["sha256"]


def test_fetch_takes_pytorch_model_bin_when_there_is_no_safetensors(
    tmp_path: Path, hub: tuple
) -> None:
    served, calls = hub
    (served / "config.json").write_text("{}")
    (served / "pytorch_model.bin").write_bytes(b"weights")
    folder = fetch(pinned(), tmp_path / "hub")
    assert [c[2] for c in calls] == [
        ("config.json", "preprocessor_config.json", "model.safetensors"),
        ("pytorch_model.bin",),
    ]
    manifest = read_manifest(folder)
    assert manifest is not None and manifest["weights_file"] == "pytorch_model.bin"
    assert set(manifest["files"]) == {"config.json", "pytorch_model.bin"}


def test_fetch_refuses_a_revision_without_weights(tmp_path: Path, hub: tuple) -> None:
    served, _ = hub
    (served / "config.json").write_text("{}")
    with pytest.raises(ConfigError, match=r"no config\.json or no weights file"):
        fetch(pinned(), tmp_path / "hub")
    assert not snapshot_dir(tmp_path / "hub", HUB_ID, REV).exists()


def test_fetch_refuses_what_it_cannot_pin(tmp_path: Path, hub: tuple) -> None:
    _, calls = hub
    with pytest.raises(ConfigError, match="'main', not a 40-hex commit id"):
        fetch(pinned("main"), tmp_path / "hub")
    with pytest.raises(ConfigError, match="local folder already"):
        fetch(pinned(checkpoint=str(tmp_path)), tmp_path / "hub")
    assert calls == []


def write_params(path: Path, backbones: dict) -> Path:
    path.write_text(OmegaConf.to_yaml(OmegaConf.create({"backbones": backbones})))
    return path


def pinned_and_unpinned(path: Path) -> Path:
    """A params file with hubert pinned to a commit and data2vec unpinned (as conf/ has it)."""
    return write_params(
        path,
        {
            "hubert": {"arch": "hubert", "checkpoint": HUB_ID, "revision": REV},
            "data2vec": {
                "arch": "data2vec-audio",
                "checkpoint": "facebook/data2vec-audio-base",
                "revision": None,
            },
        },
    )


def test_cli_models_fetch(tmp_path: Path, hub: tuple, capsys: pytest.CaptureFixture) -> None:
    served, calls = hub
    save_tiny_checkpoint("hubert", served)
    params = pinned_and_unpinned(tmp_path / "params.yaml")
    dest = tmp_path / "models" / "hub"
    base = ["models", "fetch", "--params", str(params), "--dest", str(dest)]
    capsys.readouterr()  # drop save_pretrained's progress output

    # Every name asked for is checked before anything is downloaded.
    assert main([*base, "hubert", "data2vec"]) == 2
    err = capsys.readouterr().err
    assert "backbones.data2vec.revision is None, not a 40-hex commit id" in err
    assert "\n" not in err.strip()
    assert calls == [] and not dest.exists()
    assert main([*base, "nosuch"]) == 2
    assert "'nosuch' is not configured under backbones" in capsys.readouterr().err

    assert main([*base, "hubert"]) == 0
    out = capsys.readouterr().out
    folder = snapshot_dir(dest, HUB_ID, REV)
    assert f"hubert: {folder}" in out and f"backbones.<name>.local_dir={dest}" in out
    assert (folder / MANIFEST).is_file() and len(calls) == 1


def test_cli_models_fetch_without_names_skips_the_unpinned(
    tmp_path: Path, hub: tuple, capsys: pytest.CaptureFixture, caplog: pytest.LogCaptureFixture
) -> None:
    """The README's `seda models fetch --dest models/hub`: the pinned backbones are fetched,
    an unpinned one is named and skipped instead of holding them all back."""
    served, calls = hub
    save_tiny_checkpoint("hubert", served)
    params = pinned_and_unpinned(tmp_path / "params.yaml")
    dest = tmp_path / "models" / "hub"
    capsys.readouterr()
    assert main(["models", "fetch", "--params", str(params), "--dest", str(dest)]) == 0
    out = capsys.readouterr().out
    assert f"hubert: {snapshot_dir(dest, HUB_ID, REV)}" in out and "data2vec:" not in out
    assert [c[0] for c in calls] == [HUB_ID]
    assert "skipped: backbones.data2vec.revision is None" in caplog.text
