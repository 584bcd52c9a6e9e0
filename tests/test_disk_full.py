"""A full disk is the machine's failure, never the input's (issue #11).

The clean and collect stages run as their entry points (``main([...])``, paths on the command
line) with their output and cache on a tiny filesystem. Each must stop with exit status 1 and one
stderr line naming a path on that filesystem and "No space left on device", write no
``rejected.csv``/``failures.csv`` rows for what met the full disk, remember nothing as a permanent
failure, and, run again after space is freed, redo the work and give exactly what a run on an
ample disk gives.

The tiny filesystem is a size-limited tmpfs where the test may mount one (root with
CAP_SYS_ADMIN), freed by remounting it larger; elsewhere that variant is skipped with the reason,
and the ``injected`` variant runs the same stages on a disk with room for small records but none
for audio: every audio file (``.wav``, a download's ``.part``) opened for writing under the folder
fails with ENOSPC, after a few that succeed, until space is "freed".
"""

from __future__ import annotations

import builtins
import contextlib
import errno
import io
import os
import shutil
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from omegaconf import OmegaConf

from seda.collect import collect_dataset
from seda.demo_corpus import generate
from seda.io import read_csv, sha256_file
from seda.stages import clean as clean_stage
from seda.stages import collect as collect_stage

NO_SPACE = os.strerror(errno.ENOSPC)  # "No space left on device"
ENERGY_VAD = {
    "backend": "energy",
    "silence_thresh_dbfs": -40.0,
    "min_silence_seconds": 0.3,
    "min_speech_seconds": 0.25,
}


# --------------------------------------------------------------------------------------------
# Tiny filesystems


@contextlib.contextmanager
def tmpfs_disk(root: Path, size: str, read_only: bool = False) -> Iterator[Callable[[], None]]:
    """A tmpfs of ``size`` mounted on ``root`` (skips when mounting is not permitted here);
    yields ``free()``, which remounts it writable with ample room. Always unmounted."""
    if shutil.which("mount") is None or shutil.which("umount") is None:
        pytest.skip("no mount/umount command: cannot make a tiny filesystem")
    root.mkdir(parents=True, exist_ok=True)
    options = f"size={size},mode=0755" + (",ro" if read_only else "")
    mount = ["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(root)]
    proc = subprocess.run(mount, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        why = (proc.stderr or proc.stdout).strip() or f"exit status {proc.returncode}"
        pytest.skip(f"cannot mount a size-limited tmpfs here ({why})")
    try:

        def free() -> None:
            remount = ["mount", "-o", "remount,rw,size=256m", str(root)]
            subprocess.run(remount, check=True, capture_output=True)

        yield free
    finally:
        done = subprocess.run(["umount", str(root)], capture_output=True, check=False)
        if done.returncode != 0:
            subprocess.run(["umount", "-l", str(root)], capture_output=True, check=False)


class InjectedFullDisk:
    """A disk with room for small records but none for audio: every audio file opened for
    writing under ``root`` fails with ENOSPC once ``allow`` have been written, until
    :meth:`free`. Patches ``open`` (builtins and io, which pathlib uses) and ``os.open`` (yt-dlp's
    locked files, temporary files); ffmpeg's own writes are not seen, but a download's ``.part``
    comes first."""

    AUDIO = (".wav", ".part")

    def __init__(self, root: Path, monkeypatch: pytest.MonkeyPatch, allow: int) -> None:
        self.root = root.resolve()
        self.allow = allow
        self.full = True
        self.refused: list[str] = []
        self._open, self._os_open = builtins.open, os.open
        monkeypatch.setattr(builtins, "open", self.open)
        monkeypatch.setattr(io, "open", self.open)
        monkeypatch.setattr(os, "open", self.os_open)

    def _check(self, file: object) -> None:
        if not self.full or not isinstance(file, str | bytes | os.PathLike):
            return
        name = os.fsdecode(file)  # type: ignore[arg-type]
        path = Path(name).resolve()
        if path.is_relative_to(self.root) and path.name.endswith(self.AUDIO):
            if self.allow > 0:
                self.allow -= 1
            else:
                self.refused.append(name)
                raise OSError(errno.ENOSPC, NO_SPACE, name)

    def open(self, file: object, mode: str = "r", *args: object, **kwargs: object) -> object:
        if set(mode) & set("wax+"):
            self._check(file)
        return self._open(file, mode, *args, **kwargs)  # type: ignore[call-overload]

    def os_open(self, path: object, flags: int, *args: object, **kwargs: object) -> int:
        if flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_TRUNC):
            self._check(path)
        return self._os_open(path, flags, *args, **kwargs)  # type: ignore[arg-type]

    def free(self) -> None:
        self.full = False


@contextlib.contextmanager
def tiny_disk(
    kind: str, root: Path, size: str, monkeypatch: pytest.MonkeyPatch, allow: int
) -> Iterator[tuple[Callable[[], None], InjectedFullDisk | None]]:
    """``root`` as a full filesystem of the given kind; yields the function that frees it and,
    when injected, the injection (what it refused)."""
    if kind == "tmpfs":
        with tmpfs_disk(root, size) as free:
            yield free, None
    else:
        root.mkdir(parents=True, exist_ok=True)
        injected = InjectedFullDisk(root, monkeypatch, allow)
        yield injected.free, injected


DISKS = ["tmpfs", "injected"]


# --------------------------------------------------------------------------------------------
# Checks


def assert_stopped_on_full_disk(err: str, disk: Path) -> None:
    """One stderr line: the stage stopped, naming the cause and a path on ``disk``."""
    lines = err.strip().splitlines()
    assert len(lines) == 1, lines
    assert "stopped, nothing recorded" in lines[0] and NO_SPACE in lines[0], lines[0]
    named = Path(lines[0].split(f"{NO_SPACE}: ", 1)[1].strip())
    assert named.resolve().is_relative_to(disk.resolve()), lines[0]


def rows_of(path: Path) -> list[dict[str, str]]:
    return read_csv(path) if path.exists() else []


def demo_dataset(demo_dataset_settings: object, root: str) -> dict:
    """Dataset params of the small demo generated under ``root``."""
    settings = replace(demo_dataset_settings, root=root, sources=f"{root}/sources.csv")
    return asdict(settings)


# --------------------------------------------------------------------------------------------
# clean


@pytest.mark.parametrize("kind", DISKS)
def test_clean_on_a_full_disk_stops_and_a_rerun_redoes_the_work(
    kind: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    small_demo_settings: object,
    demo_dataset_settings: object,
) -> None:
    monkeypatch.chdir(tmp_path)
    generate(replace(small_demo_settings, speakers=1), "demo")
    dataset = replace(demo_dataset_settings, root="demo", sources="demo/sources.csv")
    collect_dataset(dataset, Path("raw"), Path("collect-cache"), workers=1)
    params = {"workers": 1, "clean": {"noise_reduce": {"enabled": False}}, "vad": ENERGY_VAD}
    Path("params.yaml").write_text(OmegaConf.to_yaml(params), encoding="utf-8")

    def clean(out: str, cache: str) -> int:
        return clean_stage.main(["--manifest", "raw/manifest.csv", "--out", out, "--cache", cache])

    assert clean("ample/clean", "ample/cache") == 0
    expected = rows_of(Path("ample/clean/manifest.csv"))
    assert len(expected) >= 8 and not rows_of(Path("ample/clean/rejected.csv"))
    capsys.readouterr()

    disk = tmp_path / "disk"
    with tiny_disk(kind, disk, "512k", monkeypatch, allow=4) as (free, _):
        assert clean("disk/clean", "disk/cache") == 1
        assert_stopped_on_full_disk(capsys.readouterr().err, disk)
        assert not rows_of(disk / "clean/rejected.csv")
        assert not (disk / "clean/manifest.csv").exists()

        free()
        assert clean("disk/clean", "disk/cache") == 0
        rows = rows_of(disk / "clean/manifest.csv")
        assert not rows_of(disk / "clean/rejected.csv")
        key = ("clip_id", "label", "start", "end", "duration", "sha256")
        assert [[r[k] for k in key] for r in rows] == [[r[k] for k in key] for r in expected]
        for row in rows:
            assert sha256_file(row["path"]) == row["sha256"], row["path"]


# --------------------------------------------------------------------------------------------
# collect


@pytest.mark.parametrize(
    ("kind", "size"),
    [
        ("tmpfs", "300k"),  # the first download does not fit (yt-dlp: "unable to write data")
        ("tmpfs", "1m"),  # a conversion does not fit (ffmpeg exits 0 with an unfinished WAV)
        ("injected", ""),
    ],
)
def test_collect_on_a_full_disk_stops_and_a_rerun_redoes_the_work(
    kind: str,
    size: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    small_demo_settings: object,
    demo_dataset_settings: object,
) -> None:
    monkeypatch.chdir(tmp_path)
    generate(small_demo_settings, "demo")
    params = {"dataset": demo_dataset(demo_dataset_settings, "demo"), "workers": 1}
    Path("params.yaml").write_text(OmegaConf.to_yaml(params), encoding="utf-8")
    argv = ["--out", "data/raw", "--cache", "data/cache/collect"]

    # What an ample disk gives, in a working copy of its own (the same relative paths).
    (tmp_path / "ample").mkdir()
    shutil.copytree("demo", "ample/demo")
    shutil.copy("params.yaml", "ample/params.yaml")
    monkeypatch.chdir(tmp_path / "ample")
    assert collect_stage.main(argv) == 0
    expected = {n: Path("data/raw", n).read_bytes() for n in ("manifest.csv", "failures.csv")}
    assert len(rows_of(Path("data/raw/manifest.csv"))) == 8
    assert not rows_of(Path("data/raw/failures.csv"))
    monkeypatch.chdir(tmp_path)
    capsys.readouterr()

    disk = tmp_path / "data"
    with tiny_disk(kind, disk, size, monkeypatch, allow=2) as (free, injected):
        assert collect_stage.main(argv) == 1
        assert_stopped_on_full_disk(capsys.readouterr().err, disk)
        if injected is not None:  # stopped at the first refused file: no retry, no next url
            # (yt-dlp opens a .part as a locked file, then plainly: one try, two opens)
            assert len(set(injected.refused)) == 1 and len(injected.refused) <= 2, injected.refused
        # Nothing recorded: no manifest, no failure rows, no failure remembered as permanent.
        assert not (disk / "raw/manifest.csv").exists()
        assert not rows_of(disk / "raw/failures.csv")
        remembered = disk / "cache/collect/ytdlp/failed"
        assert not remembered.exists() or not any(remembered.iterdir())

        free()
        assert collect_stage.main(argv) == 0
        got = {n: (disk / "raw" / n).read_bytes() for n in ("manifest.csv", "failures.csv")}
        assert got == expected
        for row in rows_of(disk / "raw/manifest.csv"):
            assert sha256_file(row["path"]) == row["sha256"], row["path"]
            assert sf.info(row["path"]).duration == pytest.approx(float(row["duration"]))


def test_collect_with_a_read_only_cache_stops_and_a_rerun_after_remount_works(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    small_demo_settings: object,
    demo_dataset_settings: object,
) -> None:
    monkeypatch.chdir(tmp_path)
    generate(replace(small_demo_settings, speakers=1), "demo")
    params = {"dataset": demo_dataset(demo_dataset_settings, "demo"), "workers": 1}
    Path("params.yaml").write_text(OmegaConf.to_yaml(params), encoding="utf-8")
    argv = ["--out", "raw", "--cache", "cache/collect"]
    with tmpfs_disk(tmp_path / "cache", "8m", read_only=True) as make_writable:
        assert collect_stage.main(argv) == 1
        lines = capsys.readouterr().err.strip().splitlines()
        read_only = os.strerror(errno.EROFS)
        assert len(lines) == 1 and f"{read_only}: cache/collect" in lines[0], lines
        assert not Path("raw/manifest.csv").exists() and not Path("raw/failures.csv").exists()
        make_writable()
        assert collect_stage.main(argv) == 0
        assert len(rows_of(Path("raw/manifest.csv"))) == 4
        assert not rows_of(Path("raw/failures.csv"))


# --------------------------------------------------------------------------------------------
# What a message says


@pytest.mark.parametrize(
    ("message", "code", "path"),
    [
        # yt-dlp's HTTP downloader: no path in the message, the cache is named.
        ("ERROR: unable to write data: [Errno 28] No space left on device", errno.ENOSPC, "c"),
        (
            "ERROR: unable to open for writing: [Errno 30] Read-only file system: "
            "'c/media/Generic/x.wav.part'",
            errno.EROFS,
            "c/media/Generic/x.wav.part",
        ),
        (
            "[Errno 122] Disk quota exceeded: 'c/items/.x.json.tmp'",
            errno.EDQUOT,
            "c/items/.x.json.tmp",
        ),
        # ffmpeg's stderr: the line with the error names the path.
        (
            "Input #0, wav, from 'c/media/x.wav':\n"
            "Error writing trailer of c/media/x.temp.wav: No space left on device",
            errno.ENOSPC,
            "c/media/x.temp.wav",
        ),
        ("[out#0/wav @ 0x55] Error closing file: No space left on device", errno.ENOSPC, "c"),
        # A denied write of ours is the machine's; an unreadable source is the item's.
        ("ERROR: [Errno 13] Permission denied: 'out/audio/x.wav'", errno.EACCES, "out/audio/x.wav"),
        ("ERROR: unable to open for writing: [Errno 1] Operation not permitted", errno.EPERM, "c"),
        ("ERROR: [generic] x: [Errno 13] Permission denied: 'corpus/x.wav'", None, None),
        # The item's own failures, and what an input says about itself (a title in ffmpeg's
        # listing of the input's metadata).
        ("ERROR: [generic] x: HTTP Error 404: Not Found", None, None),
        ("  Metadata:\n    title           : No space left on device", None, None),
        ("ERROR: Postprocessing: audio conversion failed: Invalid data found", None, None),
        ("ERROR: unable to download video data: Input/output error", None, None),
    ],
)
def test_environment_errors_are_told_from_an_items_own_failure(
    message: str, code: int | None, path: str | None
) -> None:
    from seda.collect.environment import environment_error

    err = environment_error(message, (Path("c"), Path("out")), Path("c"))
    if code is None:
        assert err is None
    else:
        assert err is not None and (err.errno, err.filename) == (code, path)
        assert err.strerror == os.strerror(code)


def test_what_an_extractor_says_is_the_remotes_answer(tmp_path: Path) -> None:
    """A site's message about an item ("[site] id: ...") never stops the stage, whatever text
    it quotes; yt-dlp's own report of a failed write does."""
    from seda.collect import YoutubeSettings
    from seda.collect.ytdlp import YtdlpCollector

    collector = YtdlpCollector(YoutubeSettings(), tmp_path / "out", tmp_path / "cache")
    said = "ERROR: [youtube] abc123: This video is unavailable: No space left on device"
    assert collector.environment_error(said) is None
    err = collector.environment_error("ERROR: unable to write data: [Errno 28] " + NO_SPACE)
    assert err is not None and (err.errno, err.filename) == (errno.ENOSPC, str(tmp_path / "cache"))


def test_an_unfinished_wav_is_never_taken_for_a_download(tmp_path: Path) -> None:
    """ffmpeg 5 exits 0 when the disk fills as it finishes a WAV: the RIFF size stays unset."""
    from seda.collect.environment import check_wav_finished

    wav = tmp_path / "x.wav"
    sf.write(wav, np.zeros(1600, dtype=np.float32), 16000, subtype="PCM_16")
    check_wav_finished(wav)  # a finished one passes
    data = bytearray(wav.read_bytes())
    data[4:8] = (0xFFFFFFFF).to_bytes(4, "little")
    wav.write_bytes(bytes(data))
    with pytest.raises(OSError, match="never finished") as caught:
        check_wav_finished(wav)
    assert caught.value.errno == errno.EIO and caught.value.filename == str(wav)
    data[4:8] = (len(data) - 8).to_bytes(4, "little")
    wav.write_bytes(bytes(data[: len(data) // 2]))  # cut short: the RIFF size says more
    with pytest.raises(OSError, match="never finished"):
        check_wav_finished(wav)


def test_cache_and_manifest_writes_name_the_path_they_could_not_write(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A full disk while writing a cache record or a manifest is an OSError naming that file
    (Python names none when the write fails at close), never swallowed."""
    import csv

    from seda.collect import Collected, FailureLog, FolderSettings, collect_folder, write_outputs

    corpus = tmp_path / "corpus" / "sad"
    corpus.mkdir(parents=True)
    sf.write(corpus / "a.wav", np.zeros(1600, dtype=np.float32), 16000, subtype="PCM_16")

    def no_room(self: Path, *args: object, **kwargs: object) -> None:
        raise OSError(errno.ENOSPC, NO_SPACE)  # as a failed flush at close says it

    monkeypatch.setattr(Path, "write_text", no_room)
    settings = FolderSettings(root=str(tmp_path / "corpus"), pattern=r"(?P<label>[a-z]+)/")
    with pytest.raises(OSError, match=NO_SPACE) as caught:
        collect_folder(settings, tmp_path / "cache", workers=1)
    assert caught.value.errno == errno.ENOSPC
    assert Path(caught.value.filename).parent == tmp_path / "cache"
    assert Path(caught.value.filename).name.startswith("folder-")

    def no_room_for_rows(*args: object, **kwargs: object) -> None:
        raise OSError(errno.ENOSPC, NO_SPACE)

    monkeypatch.setattr(csv.DictWriter, "writeheader", no_room_for_rows)
    with pytest.raises(OSError, match=NO_SPACE) as caught:
        write_outputs(Collected([], FailureLog()), tmp_path / "raw")
    assert caught.value.filename == str(tmp_path / "raw" / "manifest.csv")
    assert not list((tmp_path / "raw").iterdir())  # no temporary file left behind
