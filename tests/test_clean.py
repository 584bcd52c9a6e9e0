"""Tests of the clean stage: clip planning, loudness, bad input, caching (also across code
edits), streaming memory, VAD, and a full disk stopping the stage."""

from __future__ import annotations

import contextlib
import itertools
import shutil
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import numpy as np
import pyloudnorm
import pytest
import soundfile as sf

from seda import codefp
from seda.audio import AudioError
from seda.config import ConfigError, build
from seda.errors import UserError
from seda.io import read_csv, sha256_file
from seda.parallel import EnvironmentFailure
from seda.records import CLIP_COLUMNS, ItemRow, write_records
from seda.schema import compose
from seda.segment import clips as clips_mod
from seda.segment.clips import (
    CleanSettings,
    Clip,
    ClipReject,
    ClipSettings,
    clean_file,
    merge_regions,
    split_region,
)
from seda.segment.denoise import NoiseReduceSettings, reduce_noise
from seda.segment.loudness import LoudnessSettings, normalise_loudness, rms_dbfs
from seda.segment.vad import VadSettings, detect_speech
from seda.stages import clean as clean_mod

TUREVDB = Path(__file__).resolve().parents[1].parent / "shared/data/turevdb/Sound Source"
ENERGY = {
    "backend": "energy",
    "silence_thresh_dbfs": -40.0,
    "min_silence_seconds": 0.3,
    "min_speech_seconds": 0.25,
}
SEPARATED = Path("data/separated/manifest.csv")


def burst(seconds: float, sr: int, level: float = 0.2) -> np.ndarray:
    """Speech-like burst: a 140 Hz harmonic tone, 4 Hz amplitude modulation, 20 ms ramps."""
    n = int(seconds * sr)
    t = np.arange(n) / sr
    y = sum(np.sin(2 * np.pi * 140 * k * t) / k for k in range(1, 8))
    env = 0.6 + 0.4 * np.sin(2 * np.pi * 4 * t)
    ramp = np.minimum(1.0, np.minimum(np.arange(n), n - 1 - np.arange(n)) / (0.02 * sr))
    return (level * y * env * ramp).astype(np.float32)


def utterance(bursts: list[float], sr: int, pause: float = 0.8, level: float = 0.2) -> np.ndarray:
    """Bursts of the given lengths separated by quiet noise (about -66 dBFS)."""
    rng = np.random.default_rng(0)
    parts = [rng.normal(0, 5e-4, int(pause * sr)).astype(np.float32)]
    for seconds in bursts:
        parts += [
            burst(seconds, sr, level),
            rng.normal(0, 5e-4, int(pause * sr)).astype(np.float32),
        ]
    return np.concatenate(parts)


def params(**clean_overrides: object) -> dict:
    clean = {"noise_reduce": {"enabled": False}, **clean_overrides}
    return {"workers": 1, "clean": clean, "vad": dict(ENERGY)}


def run(
    p: dict, manifest: str | Path = SEPARATED, out_dir: str | Path = "data/clean", **kw: object
) -> dict:
    """The stage on the paths dvc.yaml gives it (relative to the test's cwd)."""
    return clean_mod.run(p, manifest=manifest, out_dir=out_dir, **kw)


def write_manifest(path: Path, items: dict[str, Path], label: str = "angry") -> None:
    rows = [
        ItemRow(
            id=i,
            path=str(p),
            label=label,
            speaker="s1",
            source_id=i,
            sha256=sha256_file(p) if p.exists() else "",
        )
        for i, p in items.items()
    ]
    write_records(path, rows, ItemRow)


# --- pure functions ---------------------------------------------------------------------------


def test_merge_regions_joins_only_short_gaps() -> None:
    assert merge_regions([(50, 60), (0, 10), (12, 20)], gap=3) == [(0, 20), (50, 60)]
    assert merge_regions([(0, 10), (13, 20)], gap=3) == [(0, 10), (13, 20)]


def test_split_region_cuts_at_the_quiet_point_within_limits() -> None:
    sr = 1000
    y = np.ones(20 * sr, np.float32)
    y[6200:6300] = 0.0  # the only quiet spot
    clips = ClipSettings(min_seconds=1.0, max_seconds=8.0)
    pieces = split_region(0, y.size, y, 0, sr, clips)
    assert pieces[0][0] == 0 and pieces[-1][1] == y.size
    assert all(a[1] == b[0] for a, b in itertools.pairwise(pieces))
    assert 6200 <= pieces[0][1] <= 6300
    assert all(1.0 * sr <= b - a <= 8.0 * sr for a, b in pieces)
    even = split_region(0, y.size, y, 0, sr, replace(clips, split="even"))
    assert len(even) == 3 and all(abs((b - a) - 20 * sr / 3) <= 1 for a, b in even)


def test_the_studio_preset_keeps_one_utterance_in_one_clip(tmp_path: Path, monkeypatch) -> None:
    """A studio corpus labels whole files: a sentence with pauses is one clip there, while the
    YouTube-kind default cuts speech at pauses of 0.3 s or more (three clips here). On 570
    three-word sentences made of TurEV-DB words (pauses 0.35-0.8 s) the default gave 1,694
    fragments, each with the sentence's label."""
    monkeypatch.chdir(Path(__file__).resolve().parents[1])
    sentence = tmp_path / "sentence.wav"
    sf.write(sentence, utterance([0.6, 0.5, 0.7], 16000, pause=0.6), 16000)
    counts = {}
    for preset, overrides in {"studio": [f"dataset.root={tmp_path}"], "demo": []}.items():
        composed = compose([f"dataset={preset}", *overrides])
        settings = build(CleanSettings, composed["clean"], "clean")
        settings = replace(settings, noise_reduce=NoiseReduceSettings(enabled=False))
        got = list(clean_file(sentence, settings, VadSettings(**ENERGY)))
        counts[preset] = sum(isinstance(c, Clip) for c in got)
    assert counts == {"studio": 1, "demo": 3}


def test_normalise_loudness_hits_target_without_clipping() -> None:
    sr = 16000
    y = burst(2.0, sr, level=0.01)
    out = normalise_loudness(y, sr, LoudnessSettings(target_lufs=-23.0, peak_dbfs=-1.0))
    assert pyloudnorm.Meter(sr).integrated_loudness(out) == pytest.approx(-23.0, abs=0.3)
    loud = normalise_loudness(y, sr, LoudnessSettings(target_lufs=0.0, peak_dbfs=-1.0))
    assert np.max(np.abs(loud)) <= 10 ** (-1.0 / 20) + 1e-6
    peak = normalise_loudness(y, sr, LoudnessSettings(method="peak", peak_dbfs=-3.0))
    assert np.max(np.abs(peak)) == pytest.approx(10 ** (-3.0 / 20), rel=1e-4)


def test_bad_settings_name_the_key(tmp_path: Path) -> None:
    write_manifest(tmp_path / "m.csv", {})
    with pytest.raises(ConfigError, match="max_seconds"):
        run(params(clips={"min_seconds": 9.0, "max_seconds": 8.0}), manifest=tmp_path / "m.csv")
    with pytest.raises(ConfigError, match=r"vad\.backend"):
        run({"clean": {}, "vad": {"backend": "webrtc"}}, manifest=tmp_path / "m.csv")
    with pytest.raises(ConfigError, match="typo"):
        run(params(typo=1), manifest=tmp_path / "m.csv")


# --- the stage on generated files -------------------------------------------------------------


def make_inputs(root: Path) -> dict[str, Path]:
    """Good files in many formats plus every kind of bad input the stage must survive."""
    root.mkdir(parents=True, exist_ok=True)
    files: dict[str, Path] = {}

    def put(name: str, y: np.ndarray, sr: int, subtype: str) -> None:
        files[name] = root / f"{name}.wav"
        sf.write(files[name], y, sr, subtype=subtype)

    y44 = utterance([2.0, 0.4, 11.0], 44100)
    put("stereo44", np.stack([y44, 0.5 * y44], axis=1), 44100, "PCM_16")
    put("u8k", utterance([1.5], 8000), 8000, "PCM_U8")
    y96 = utterance([1.5], 96000)
    put("six96", np.repeat(y96[:, None], 6, axis=1), 96000, "PCM_24")
    put("float22", utterance([1.5], 22050), 22050, "FLOAT")
    nan = utterance([1.5], 16000)
    nan[5000] = np.nan
    nan[6000] = np.inf
    put("nan", nan, 16000, "FLOAT")
    put("clipped", np.clip(utterance([2.0], 16000, level=2.0), -1, 1), 16000, "PCM_16")
    put("zeroframes", np.zeros(0, np.float32), 16000, "PCM_16")
    put("quiet", np.zeros(3 * 16000, np.float32), 16000, "PCM_16")
    full = root / "stereo44.wav"
    files["empty"] = root / "empty.wav"
    files["empty"].write_bytes(b"")
    files["junk"] = root / "junk.wav"
    files["junk"].write_bytes(b"this is not audio at all, just text " * 50)
    files["header"] = root / "header.wav"
    files["header"].write_bytes(full.read_bytes()[:30])
    files["cut"] = root / "cut.wav"
    files["cut"].write_bytes(full.read_bytes()[: full.stat().st_size // 2])
    files["missing"] = root / "missing.wav"
    return files


def test_stage_gives_clips_or_reasons_for_every_input(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    files = make_inputs(tmp_path / "in")
    Path("data/separated").mkdir(parents=True)
    write_manifest(Path("data/separated/manifest.csv"), files)
    # A 1 s minimum, so that stereo44's 0.5 s burst is rejected as too short.
    summary = run(params(clips={"min_seconds": 1.0}))

    clips = read_csv("data/clean/manifest.csv")
    rejected = read_csv("data/clean/rejected.csv")
    assert list(clips[0]) == list(CLIP_COLUMNS)
    reasons = {r["id"]: r["reason"] for r in rejected}
    for name in files:
        has_clip = any(c["item_id"] == name for c in clips)
        has_reason = any(i == name or i.startswith(f"{name}_") for i in reasons)
        assert has_clip or has_reason, name
    for name in ("stereo44", "u8k", "six96", "float22", "cut"):
        assert any(c["item_id"] == name for c in clips), name
    assert "empty" in reasons["empty"]
    assert "no audio frames" in reasons["zeroframes"]
    assert "not decodable" in reasons["junk"]
    assert "NaN/inf" in reasons["nan"]
    assert "not found" in reasons["missing"]
    assert "no speech" in reasons["quiet"]
    assert "clipped" in reasons["clipped_000"]
    assert not any(c["item_id"] == "clipped" for c in clips)
    short = [r for r in rejected if r["id"].startswith("stereo44_") and "too short" in r["reason"]]
    assert len(short) == 1 and 3.4 < float(short[0]["start"]) < 3.7

    for c in clips:
        info = sf.info(c["path"])
        assert (info.samplerate, info.channels, info.subtype) == (16000, 1, "PCM_16")
        assert Path(c["path"]).parent == Path("data/clean") / c["label"]
        assert sha256_file(c["path"]) == c["sha256"]
        assert 1.0 <= float(c["duration"]) <= 8.0
        assert float(c["duration"]) == pytest.approx(info.duration, abs=2e-3)
        y, _ = sf.read(c["path"])
        assert np.max(np.abs(y)) <= 10 ** (-1.0 / 20) + 1e-3
    long_pieces = [c for c in clips if c["item_id"] == "stereo44" and float(c["start"]) > 3.5]
    assert len(long_pieces) == 2  # the 11 s burst, split under max_seconds
    assert summary["clips"] == len(clips) and summary["decoded"] == len(files) - 1


def test_no_speech_in_any_item_stops_clean_with_the_first_reason(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every item rejected (here: no speech in quiet noise) stops the stage with one sentence,
    instead of an empty manifest that split would only call 'nothing to split'."""
    monkeypatch.chdir(tmp_path)
    quiet = {}
    for i in range(2):
        quiet[f"q{i}"] = tmp_path / f"q{i}.wav"
        noise = np.random.default_rng(i).normal(0, 5e-4, 16000).astype(np.float32)
        sf.write(quiet[f"q{i}"], noise, 16000)
    Path("data/separated").mkdir(parents=True)
    write_manifest(SEPARATED, quiet)
    with pytest.raises(UserError, match=r"no clip from any item: all 2 skipped, the first .*q0"):
        run(params())
    assert len(read_csv("data/clean/rejected.csv")) == 2  # every reason is still written
    write_manifest(SEPARATED, {})
    with pytest.raises(UserError, match="lists no item: nothing to clean"):
        run(params())


def test_second_run_decodes_nothing_and_new_files_only_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    files = {name: tmp_path / f"{name}.wav" for name in ("a", "b", "c")}
    for i, path in enumerate(files.values()):
        sf.write(path, utterance([1.5 + i, 2.0], 22050), 22050, subtype="PCM_16")
    (tmp_path / "bad.wav").write_bytes(b"not audio" * 100)
    files["bad"] = tmp_path / "bad.wav"
    files["dup"] = tmp_path / "dup.wav"
    files["dup"].write_bytes(files["a"].read_bytes())
    manifest = Path("data/separated/manifest.csv")
    write_manifest(manifest, {k: files[k] for k in ("a", "b", "bad", "dup")})
    first = run(params())
    assert (first["decoded"], first["cached"]) == (3, 0)  # dup has a's bytes: cleaned once
    clips = read_csv("data/clean/manifest.csv")
    shas = {i: sorted(c["sha256"] for c in clips if c["item_id"] == i) for i in ("a", "dup")}
    assert shas["a"] and shas["a"] == shas["dup"]
    before = Path("data/clean/manifest.csv").read_text()

    def no_decoding(*args: object, **kwargs: object) -> None:
        raise AssertionError("decoded a cached input")

    with monkeypatch.context() as m:
        m.setattr(clips_mod, "audio_info", no_decoding)
        m.setattr(clips_mod, "iter_audio_blocks", no_decoding)
        second = run(params())
    assert (second["decoded"], second["cached"]) == (0, 4)
    assert Path("data/clean/manifest.csv").read_text() == before
    assert any("not decodable" in r["reason"] for r in read_csv("data/clean/rejected.csv"))

    write_manifest(manifest, {k: files[k] for k in ("a", "c")})
    third = run(params())
    assert (third["decoded"], third["cached"]) == (1, 1)
    assert not list(Path("data/clean/angry").glob("b_*.wav")), "clips of a removed item remain"
    assert {c["item_id"] for c in read_csv("data/clean/manifest.csv")} == {"a", "c"}
    changed = run(params(clips={"pad_seconds": 0.05}))
    assert changed["decoded"] == 2


@pytest.mark.slow
def test_worker_processes_give_the_same_clips(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    files = {f"w{i}": tmp_path / f"w{i}.wav" for i in range(3)}
    for i, path in enumerate(files.values()):
        sf.write(path, utterance([1.2 + i, 1.5], 16000), 16000, subtype="PCM_16")
    write_manifest(Path("data/separated/manifest.csv"), files)
    serial = run(params(), out_dir="serial", cache_root="cache1")
    parallel = run({**params(), "workers": 2}, out_dir="parallel", cache_root="cache2")
    assert parallel["decoded"] == 3 and parallel["clips"] == serial["clips"] == 6
    a = [(r["clip_id"], r["sha256"]) for r in read_csv("serial/manifest.csv")]
    assert a == [(r["clip_id"], r["sha256"]) for r in read_csv("parallel/manifest.csv")]


@pytest.fixture
def seda_copy(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A copy of the seda sources that code fingerprints are taken from (edit it freely)."""
    copy = tmp_path / "src_copy" / "seda"
    shutil.copytree(codefp.PACKAGE_DIR, copy, ignore=shutil.ignore_patterns("__pycache__"))
    real = codefp.module_file
    monkeypatch.setattr(codefp, "module_file", lambda name, package_dir=None: real(name, copy))
    codefp._direct_imports.cache_clear()
    yield copy
    codefp._direct_imports.cache_clear()


def _append_comment(path: Path) -> None:
    path.write_text(path.read_text(encoding="utf-8") + "# edited\n", encoding="utf-8")


def test_cache_keys_on_the_clip_code_and_nothing_else(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, seda_copy: Path
) -> None:
    monkeypatch.chdir(tmp_path)
    sf.write(tmp_path / "a.wav", utterance([1.5, 2.0], 16000), 16000, subtype="PCM_16")
    write_manifest(SEPARATED, {"a": tmp_path / "a.wav"})
    assert run(params())["decoded"] == 1
    before = Path("data/clean/manifest.csv").read_bytes()
    # Modules the clips are not computed with: the entry is reused.
    for unrelated in ("review.py", "segment/manifest.py", "stages/clean.py"):
        _append_comment(seda_copy / unrelated)
        assert run(params())["cached"] == 1, unrelated
    # The clip code or a module it imports: cleaned again (an older entry is never used).
    for computing in ("segment/loudness.py", "segment/clips.py", "audio.py"):
        _append_comment(seda_copy / computing)
        assert run(params())["decoded"] == 1, computing
    assert Path("data/clean/manifest.csv").read_bytes() == before
    assert len(list(Path("data/cache/clean").glob("*/*/*/result.json"))) == 4


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs /dev/full")
def test_full_disk_stops_the_stage_instead_of_rejecting(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    sf.write(tmp_path / "a.wav", utterance([1.5], 16000), 16000, subtype="PCM_16")
    write_manifest(SEPARATED, {"a": tmp_path / "a.wav"})

    @contextlib.contextmanager
    def full_disk(path: Path, suffix: str | None = None) -> Iterator[Path]:
        yield Path("/dev/full")  # every write fails with ENOSPC

    monkeypatch.setattr(clips_mod, "atomic_path", full_disk)
    with pytest.raises(EnvironmentFailure, match=r"No space left on device: .*000\.wav"):
        run(params())
    Path("params.yaml").write_text(
        "clean: {noise_reduce: {enabled: false}}\nvad: {backend: energy}\nworkers: 1\n"
    )
    assert clean_mod.main(["--manifest", str(SEPARATED), "--out", "data/clean"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "No space left on device" in err[0]
    assert not Path("data/clean/rejected.csv").exists()
    assert not Path("data/clean/manifest.csv").exists()


def test_main_reports_missing_input_without_traceback(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    Path("params.yaml").write_text("clean: {}\nvad: {backend: energy}\n")
    assert clean_mod.main(["--manifest", str(SEPARATED), "--out", "data/clean"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "run the separate stage first" in err[0]


def test_block_streaming_matches_whole_file(tmp_path: Path) -> None:
    sr = 22050
    y = utterance([2.0, 3.0, 1.5, 9.0, 2.5] * 3, sr, pause=1.2)
    path = tmp_path / "long.wav"
    sf.write(path, y, sr, subtype="PCM_16")
    vad = VadSettings(**ENERGY)
    base = CleanSettings()
    base.noise_reduce.enabled = False

    def spans(block: float) -> list[tuple[float, float, bool]]:
        return [
            (o.start, o.end, isinstance(o, ClipReject))
            for o in clean_file(path, replace(base, block_seconds=block), vad)
        ]

    whole, blocks = spans(300.0), spans(16.0)
    assert len(whole) == len(blocks) >= 18
    np.testing.assert_allclose(np.array(whole, float), np.array(blocks, float), atol=0.03)


def test_streaming_memory_stays_below_decoded_size(tmp_path: Path) -> None:
    """A 20-minute 22.05 kHz file (106 MB decoded as float32) cleaned with 30 s blocks."""
    sr, minutes = 22050, 20
    path = tmp_path / "hour.wav"
    rng = np.random.default_rng(1)
    with sf.SoundFile(path, "w", sr, 1, "PCM_16") as fh:
        for _ in range(minutes * 2):
            chunk = rng.normal(0, 5e-4, 30 * sr).astype(np.float32)
            for start in (1.0, 12.0, 20.0):
                a = int(start * sr)
                chunk[a : a + 3 * sr] += burst(3.0, sr)
            fh.write(chunk)
    decoded = minutes * 60 * sr * 4
    script = textwrap.dedent(f"""
        import resource, numpy as np, soundfile as sf
        from seda.segment.clips import CleanSettings, clean_file
        from seda.segment.vad import VadSettings
        s = CleanSettings(block_seconds=30.0)
        s.noise_reduce.enabled = False
        v = VadSettings(**{ENERGY!r})
        warm = {str(tmp_path / "warm.wav")!r}
        sf.write(warm, np.sin(np.arange(3 * {sr}) / 5.0).astype("float32") * 0.3, {sr})
        list(clean_file(warm, s, v))
        base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
        n = sum(1 for _ in clean_file({str(path)!r}, s, v))
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
        print(n, peak - base)
    """)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    n_clips, grew = map(int, out.stdout.split())
    assert n_clips == minutes * 2 * 3
    assert grew < 0.3 * decoded, f"peak memory grew by {grew / 1e6:.0f} MB"


def test_silent_clip_rejected_when_vad_lets_it_through(tmp_path: Path) -> None:
    path = tmp_path / "faint.wav"
    quiet = np.zeros(16000, np.float32)
    sf.write(
        path, np.concatenate([quiet, burst(2.0, 16000, level=0.001), quiet]), 16000, subtype="FLOAT"
    )
    vad = VadSettings(**{**ENERGY, "silence_thresh_dbfs": -80.0})
    settings = CleanSettings()
    settings.noise_reduce.enabled = False
    out = list(clean_file(path, settings, vad))
    assert len(out) == 1 and isinstance(out[0], ClipReject) and "silent" in out[0].reason


@pytest.mark.shared
@pytest.mark.skipif(not TUREVDB.exists(), reason="TurEV-DB not in ../shared/data")
def test_noise_reduction_lowers_the_pauses_not_the_speech() -> None:
    """On a real word (a steady synthetic tone is itself 'stationary noise' to the gate)."""
    import soxr

    y, sr = sf.read(sorted((TUREVDB / "Angry").glob("*.wav"))[0], dtype="float32")
    pad = np.zeros(8000, np.float32)
    y = np.concatenate([pad, soxr.resample(y, sr, 16000), pad])
    (s, e), *_ = detect_speech(y, 16000, VadSettings(backend="silero"))
    noisy = y + np.random.default_rng(0).normal(0, 0.003, y.size).astype(np.float32)
    out = reduce_noise(noisy, 16000, NoiseReduceSettings(strength=0.8))
    assert rms_dbfs(out[:6000]) < rms_dbfs(noisy[:6000]) - 8.0
    assert rms_dbfs(out[s:e]) > rms_dbfs(noisy[s:e]) - 3.0
    assert reduce_noise(noisy, 16000, NoiseReduceSettings(enabled=False)) is noisy


def test_unusable_file_raises_audio_error(tmp_path: Path) -> None:
    path = tmp_path / "junk.wav"
    path.write_bytes(b"RIFF" + b"\x00" * 10)
    with pytest.raises(AudioError):
        list(clean_file(path, CleanSettings(), VadSettings(**ENERGY)))


# --- Silero on real speech --------------------------------------------------------------------


@pytest.mark.shared
@pytest.mark.skipif(not TUREVDB.exists(), reason="TurEV-DB not in ../shared/data")
def test_silero_finds_the_word_in_turevdb_and_not_in_noise() -> None:
    path = sorted((TUREVDB / "Angry").glob("*.wav"))[0]
    y, sr = sf.read(path, dtype="float32")
    vad = VadSettings(backend="silero")
    import soxr

    y16 = soxr.resample(y, sr, 16000)
    regions = detect_speech(y16, 16000, vad)
    assert len(regions) >= 1
    speech = sum(e - s for s, e in regions) / 16000
    assert 0.2 < speech <= y16.size / 16000
    noise = np.random.default_rng(0).normal(0, 0.05, 3 * 16000).astype(np.float32)
    assert detect_speech(noise, 16000, vad) == []
    clean = CleanSettings()
    clean.clips.min_seconds = 0.3
    out = list(clean_file(path, clean, vad))
    assert [type(o).__name__ for o in out] == ["Clip"]


@pytest.mark.shared
@pytest.mark.skipif(not TUREVDB.exists(), reason="TurEV-DB not in ../shared/data")
def test_silero_sequence_model_finds_what_the_streaming_model_finds() -> None:
    """seda runs the wheel's batched sequence model; its regions must be the streaming
    (TorchScript) model's, on words and on a long file of words and pauses."""
    import soxr
    import torch
    from silero_vad import get_speech_timestamps, load_silero_vad

    words = [sorted((TUREVDB / e).glob("*.wav"))[::60] for e in ("Angry", "Calm", "Happy", "Sad")]
    signals = []
    for path in itertools.chain.from_iterable(words):
        y, sr = sf.read(path, dtype="float32")
        signals.append(soxr.resample(y, sr, 16000).astype(np.float32))
    pause = np.random.default_rng(0).normal(0, 1e-3, 8000).astype(np.float32)
    signals.append(np.concatenate([part for y in signals for part in (y, pause)]))
    vad = VadSettings(backend="silero")
    streaming = load_silero_vad()
    for y in signals:
        stamps = get_speech_timestamps(
            torch.from_numpy(y),
            streaming,
            sampling_rate=16000,
            threshold=vad.threshold,
            min_speech_duration_ms=round(vad.min_speech_seconds * 1000),
            min_silence_duration_ms=round(vad.min_silence_seconds * 1000),
            speech_pad_ms=0,
        )
        expected = [(s["start"], s["end"]) for s in stamps]
        assert detect_speech(y, 16000, vad) == expected
    assert len(expected) >= len(signals) - 1  # the long file: about one region per word


def test_read_ahead_works_one_block_ahead_and_passes_errors_on() -> None:
    """clean_file decodes and denoises the next block while it cuts this one: never more than
    one block ahead (memory), and a decoding error mid-file still reaches the caller."""
    produced: list[int] = []

    def blocks() -> Iterator[int]:
        for i in range(6):
            produced.append(i)
            yield i
        raise AudioError("truncated after block 5")

    seen: list[tuple[int, int]] = []
    with pytest.raises(AudioError, match="truncated"):
        for i in clips_mod._read_ahead(blocks()):
            seen.append((i, len(produced)))
    assert [i for i, _ in seen] == list(range(6))
    assert all(n <= i + 2 for i, n in seen), seen
