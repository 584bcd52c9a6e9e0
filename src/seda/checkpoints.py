"""Pinned backbone checkpoints on local disk: the folders ``seda models fetch`` writes and reads.

A fetched checkpoint lives in ``<root>/<hub id>/<revision>/`` (for example
``models/hub/facebook/hubert-base-ls960/<40-hex commit>/``): the hub's config, preprocessor config
and weights at that commit, plus ``seda-checkpoint.json``, a manifest of the hub id, the revision
and every file's size and sha256. A backbone config points at ``<root>`` with ``local_dir``; the
loader then reads that folder only (no network, no hub cache) after checking the manifest against
the config's revision and the weights' bytes. Downloading is the hub client's job
(``huggingface_hub.snapshot_download`` at the pinned revision); this module only lays out, records
and checks.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from seda.errors import ConfigError
from seda.io import sha256_file, stat_stamp, write_json_atomic

if TYPE_CHECKING:
    from seda.backbones import BackboneSettings

log = logging.getLogger(__name__)

COMMIT = re.compile(r"[0-9a-f]{40}")
MANIFEST = "seda-checkpoint.json"
# The weights files from_pretrained reads from a folder, in the order it prefers them.
WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")
CONFIG_FILES = ("config.json", "preprocessor_config.json")
DEFAULT_DEST = "models/hub"


def is_commit(revision: object) -> bool:
    """A full git commit id (40 lower-case hex digits), the only revision that pins bytes."""
    return isinstance(revision, str) and COMMIT.fullmatch(revision) is not None


def is_local_path(checkpoint: str) -> bool:
    """A directory path (absolute, relative or existing) rather than a hub id."""
    return checkpoint.startswith(("/", "./", "../", "~")) or Path(checkpoint).expanduser().exists()


def snapshot_dir(root: str | Path, repo_id: str, revision: str) -> Path:
    """Where the checkpoint ``repo_id`` at ``revision`` is (or will be) fetched under ``root``."""
    return Path(root).expanduser() / repo_id / revision


def weights_file(directory: str | Path) -> Path | None:
    """The weights file ``from_pretrained`` loads from ``directory`` (safetensors first)."""
    for name in WEIGHT_FILES:
        path = Path(directory) / name
        if path.is_file():
            return path
    return None


_DIGESTS: dict[tuple[str | int, ...], str] = {}


def file_sha256(path: str | Path) -> str:
    """sha256 of a file, remembered per real path and stamp (:func:`seda.io.stat_stamp`) so a
    360 MB checkpoint is read once per process however often its hash is asked for."""
    real = Path(path).resolve()
    st = real.stat()
    key = (str(real), *stat_stamp(st))
    if key not in _DIGESTS:
        _DIGESTS[key] = sha256_file(real)
    return _DIGESTS[key]


def _listed_files(directory: Path) -> list[Path]:
    """The checkpoint's own files: everything but the manifest and the hub client's metadata."""
    return sorted(
        p
        for p in directory.rglob("*")
        if p.is_file() and p.name != MANIFEST and ".cache" not in p.relative_to(directory).parts
    )


def write_manifest(directory: str | Path, repo_id: str, revision: str) -> dict[str, Any]:
    """Record what ``directory`` holds: hub id, revision, weights file, each file's sha256."""
    directory = Path(directory)
    weights = weights_file(directory)
    if weights is None:
        raise ConfigError(
            f"{directory} holds neither {' nor '.join(WEIGHT_FILES)}: not a checkpoint folder"
        )
    manifest = {
        "repo_id": repo_id,
        "revision": revision,
        "weights_file": weights.name,
        "files": {
            p.relative_to(directory).as_posix(): {
                "size": p.stat().st_size,
                "sha256": file_sha256(p),
            }
            for p in _listed_files(directory)
        },
    }
    write_json_atomic(directory / MANIFEST, manifest)
    return manifest


def read_manifest(directory: str | Path) -> dict[str, Any] | None:
    """The manifest of a fetched folder, or None when there is none."""
    path = Path(directory) / MANIFEST
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise ConfigError(f"{path} is unreadable ({err}): fetch the checkpoint again") from err
    if not isinstance(data, dict) or not isinstance(data.get("files"), dict):
        raise ConfigError(f"{path} is not a seda checkpoint manifest: fetch the checkpoint again")
    return data


def _complete(directory: Path, repo_id: str, revision: str) -> bool:
    """A fetched folder for this repo and revision whose listed files are all there, full size."""
    try:
        manifest = read_manifest(directory)
    except ConfigError:
        return False
    if not manifest or (manifest.get("repo_id"), manifest.get("revision")) != (repo_id, revision):
        return False
    for name, entry in manifest["files"].items():
        path = directory / name
        if not path.is_file() or path.stat().st_size != entry.get("size"):
            return False
    return True


def verify_fetched(root: str | Path, repo_id: str, revision: str) -> Path:
    """The fetched folder of ``repo_id`` at ``revision`` under ``root``, checked against its
    manifest (same hub id and revision, weights with the recorded sha256)."""
    directory = snapshot_dir(root, repo_id, revision)
    fetch_hint = f"run `seda models fetch --dest {root}` where there is internet"
    if not directory.is_dir():
        raise ConfigError(
            f"checkpoint {repo_id} at revision {revision} is not in {root} "
            f"(no folder {directory}): {fetch_hint}"
        )
    manifest = read_manifest(directory)
    if manifest is None:
        raise ConfigError(f"{directory} has no {MANIFEST}: {fetch_hint}")
    if (manifest.get("repo_id"), manifest.get("revision")) != (repo_id, revision):
        raise ConfigError(
            f"{directory}/{MANIFEST} describes {manifest.get('repo_id')} at revision "
            f"{manifest.get('revision')}, not {repo_id} at {revision}: {fetch_hint}"
        )
    weights = weights_file(directory)
    entry = manifest["files"].get(weights.name) if weights is not None else None
    if weights is None or entry is None or weights.name != manifest.get("weights_file"):
        raise ConfigError(
            f"{directory} lacks the weights file its manifest names "
            f"({manifest.get('weights_file')}): {fetch_hint}"
        )
    if file_sha256(weights) != entry.get("sha256"):
        raise ConfigError(
            f"{weights} differs from the file fetched (sha256 mismatch): delete {directory} "
            f"and {fetch_hint}"
        )
    return directory


def snapshot_download(**kwargs: Any) -> str:
    """The hub client's download (a seam for tests: they replace it with a local copy)."""
    from huggingface_hub import snapshot_download as download

    return str(download(**kwargs))


def fetch(settings: BackboneSettings, dest: str | Path = DEFAULT_DEST) -> Path:
    """Download ``settings.checkpoint`` at ``settings.revision`` into ``dest`` once.

    Only the files a backbone loads are fetched: ``config.json``, ``preprocessor_config.json``
    and one weights file (``model.safetensors``, else ``pytorch_model.bin``). The folder appears
    under its final name only when complete, with its manifest; a complete folder is not
    downloaded again.
    """
    repo_id, revision = settings.checkpoint, settings.revision
    if is_local_path(repo_id):
        raise ConfigError(f"checkpoint {repo_id} is a local folder already: nothing to fetch")
    if not is_commit(revision):
        raise ConfigError(
            f"checkpoint {repo_id} has revision {revision!r}, not a 40-hex commit id: set "
            "revision in its backbone config before fetching it"
        )
    assert revision is not None
    target = snapshot_dir(dest, repo_id, revision)
    if _complete(target, repo_id, revision):
        log.info("%s at %s: already in %s", repo_id, revision[:12], target)
        return target
    partial = target.with_name(f".{revision}.partial")
    partial.mkdir(parents=True, exist_ok=True)
    for patterns in ([*CONFIG_FILES, WEIGHT_FILES[0]], list(WEIGHT_FILES[1:])):
        snapshot_download(
            repo_id=repo_id, revision=revision, local_dir=str(partial), allow_patterns=patterns
        )
        if weights_file(partial) is not None:
            break
    if not (partial / "config.json").is_file() or weights_file(partial) is None:
        raise ConfigError(
            f"{repo_id} at revision {revision} has no config.json or no weights file "
            f"({' or '.join(WEIGHT_FILES)}): is it a transformers checkpoint?"
        )
    shutil.rmtree(partial / ".cache", ignore_errors=True)  # the hub client's resume metadata
    write_manifest(partial, repo_id, revision)
    if target.exists():
        shutil.rmtree(target)
    os.replace(partial, target)
    log.info("%s at %s: fetched into %s", repo_id, revision[:12], target)
    return target


def fetch_configured(
    params: Mapping[str, Any], names: Sequence[str] = (), dest: str | Path = DEFAULT_DEST
) -> dict[str, Path]:
    """Fetch the backbones ``names`` configured under ``backbones`` in params.

    Every name asked for is checked (known, a hub id, pinned to a commit) before anything is
    downloaded. Without names, every backbone pinned to a hub commit is fetched and the others
    are skipped with a warning: one unpinned backbone does not hold back the pinned ones.
    """
    from seda.backbones import BackboneSettings
    from seda.config import build

    backbones = params.get("backbones") or {}
    wanted = list(names) or sorted(backbones)
    problems = []
    settings: dict[str, BackboneSettings] = {}
    for name in wanted:
        if name not in backbones:
            problems.append(f"{name!r} is not configured under backbones ({', '.join(backbones)})")
            continue
        data = {**backbones[name], "weights": "random"}  # validated as pinned below, by name
        s = build(BackboneSettings, data, f"backbones.{name}")
        problem = None
        if is_local_path(s.checkpoint):
            problem = f"backbones.{name}.checkpoint is the local folder {s.checkpoint}"
        elif not is_commit(s.revision):
            problem = (
                f"backbones.{name}.revision is {s.revision!r}, not a 40-hex commit id of "
                f"{s.checkpoint}"
            )
        if problem is None:
            settings[name] = s
        elif names:
            problems.append(problem)
        else:
            log.warning("skipped: %s", problem)
    if problems:
        raise ConfigError("cannot fetch: " + "; ".join(problems))
    return {name: fetch(s, dest) for name, s in settings.items()}
