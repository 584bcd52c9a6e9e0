"""Spleeter backend: setup checks fail in one sentence, and a real (tiny, locally trained) Spleeter
model separates through the isolated virtualenv, via the backend and via the separate stage.

The end-to-end part trains a 2-stem model for a few steps with Spleeter's own ``spleeter train``
on synthetic voice + music mixtures (no download), so it needs the venv made by
``seda setup spleeter`` (``.venvs/spleeter``, or ``SEDA_SPLEETER_ENV``) and ffprobe.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from seda import envs
from seda.config import ConfigError
from seda.envs import EnvError, create_spleeter_env, env_python, spleeter_env_ready
from seda.records import ItemRow
from seda.separation import backends
from seda.separation.manifest import separate_manifest
from seda.separation.spleeter_backend import (
    SpleeterBackend,
    SpleeterSettings,
    check_spleeter_env,
    check_spleeter_model,
)

ENV = Path(os.environ.get("SEDA_SPLEETER_ENV", ".venvs/spleeter")).resolve()
SR = 16000
needs_spleeter = pytest.mark.skipif(
    not spleeter_env_ready(ENV) or shutil.which("ffprobe") is None,
    reason=f"no Spleeter venv at {ENV} (run `seda setup spleeter`) or no ffprobe (apt ffmpeg)",
)


def speech_like(seconds: float, rng: np.random.Generator) -> np.ndarray:
    """Gliding harmonic syllables with pauses: voice-like energy for a 'vocals' stem."""
    y = np.zeros(int(seconds * SR), dtype=np.float32)
    t = 0.3
    while t < seconds - 0.6:
        n = int(rng.uniform(0.2, 0.5) * SR)
        f0 = np.linspace(rng.uniform(110, 240), rng.uniform(110, 240), n)
        phase = 2 * np.pi * np.cumsum(f0) / SR
        start = int(t * SR)
        y[start : start + n] += np.hanning(n) * sum(np.sin(h * phase) / h for h in range(1, 11))
        t += n / SR + rng.uniform(0.1, 0.4)
    return (0.3 * y / np.abs(y).max()).astype(np.float32)


def music_like(seconds: float) -> np.ndarray:
    """A repeating two-tone chord loop for an 'accompaniment' stem."""
    n = int(0.75 * SR)
    tt = np.arange(n) / SR
    loop = 0.5 * np.sin(2 * np.pi * 330 * tt) + 0.4 * np.sin(2 * np.pi * 523 * tt)
    y = np.tile(loop, int(np.ceil(seconds * SR / n)))[: int(seconds * SR)]
    return (0.3 * y / np.abs(y).max()).astype(np.float32)


def train_tiny_model(root: Path) -> Path:
    """Train a 2-stem Spleeter U-Net for 5 steps; return its JSON config (absolute model_dir)."""
    rng = np.random.default_rng(0)
    data = root / "songs"
    data.mkdir()
    rows = []
    for i in range(2):
        voice, music = speech_like(12.5, rng), music_like(12.5)
        for stem, y in (("mix", voice + music), ("vocals", voice), ("accompaniment", music)):
            sf.write(data / f"{i}_{stem}.wav", np.stack([y, y], axis=1), SR)
        rows.append(f"{i}_mix.wav,{i}_vocals.wav,{i}_accompaniment.wav,12.5")
    header = "mix_path,vocals_path,accompaniment_path,duration\n"
    (root / "train.csv").write_text(header + "\n".join(rows) + "\n")
    (root / "valid.csv").write_text(header + rows[0] + "\n")
    config = {
        "train_csv": str(root / "train.csv"),
        "validation_csv": str(root / "valid.csv"),
        "model_dir": str(root / "model"),
        "mix_name": "mix",
        "instrument_list": ["vocals", "accompaniment"],
        "sample_rate": SR,
        "frame_length": 1024,
        "frame_step": 256,
        "T": 64,
        "F": 128,
        "n_channels": 2,
        "chunk_duration": 12.0,
        "n_chunks_per_song": 1,
        "separation_exponent": 2,
        "mask_extension": "zeros",
        "learning_rate": 1e-3,
        "batch_size": 2,
        # Caches keep tf.data from re-decoding every song for each shuffle-buffer slot.
        "training_cache": str(root / "cache" / "train"),
        "validation_cache": str(root / "cache" / "valid"),
        "train_max_steps": 5,
        "throttle_secs": 0,
        "random_seed": 0,
        "save_checkpoints_steps": 5,
        "save_summary_steps": 5,
        "model": {"type": "unet.unet", "params": {"conv_n_filters": [4, 8, 8, 8, 8, 8]}},
    }
    (root / "cache").mkdir()
    path = root / "config.json"
    path.write_text(json.dumps(config, indent=1))
    spleeter = env_python(ENV).parent / "spleeter"
    proc = subprocess.run(
        [str(spleeter), "train", "-p", str(path), "-d", str(data)],
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"},
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    return path


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return train_tiny_model(tmp_path_factory.mktemp("spleeter_train"))


def test_setup_is_idempotent_and_checks_the_interpreter(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ran: list[list[str]] = []
    monkeypatch.setattr(envs, "_run", ran.append)
    env = tmp_path / "venv"
    with pytest.raises(EnvError, match=r"needs Python 3\.8-3\.11"):
        monkeypatch.setattr(envs, "python_version", lambda python: (3, 12))
        create_spleeter_env(env, python="python3.12")
    assert ran == []
    monkeypatch.setattr(envs, "python_version", lambda python: (3, 11))
    monkeypatch.setattr(envs, "env_python", lambda path: Path(path) / "bin" / "python")
    create_spleeter_env(env, python="python3.11")
    assert [cmd[1:3] for cmd in ran] == [["-m", "venv"], ["-m", "pip"]]
    assert "spleeter==2.4.2" in ran[1]
    (env / "bin").mkdir(parents=True)
    (env / "bin" / "python").touch()
    assert spleeter_env_ready(env)
    ran.clear()
    create_spleeter_env(env)  # marker present: nothing to do
    assert ran == []


def test_missing_env_says_run_setup(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="seda setup spleeter"):
        check_spleeter_env(tmp_path / "nope")
    with pytest.raises(ConfigError, match="seda setup spleeter"):
        SpleeterBackend(SpleeterSettings(env=str(tmp_path / "nope")))


def test_missing_model_dir_says_where_and_how(tmp_path: Path) -> None:
    config = tmp_path / "config.json"
    config.write_text(json.dumps({"model_dir": "2stems", "instrument_list": ["vocals", "x"]}))
    settings = SpleeterSettings(model=str(config), model_path=str(tmp_path / "models"))
    with pytest.raises(ConfigError) as err:
        check_spleeter_model(settings)
    message = str(err.value)
    assert str(tmp_path / "models" / "2stems") in message
    assert "internet" in message and "separate.model_path" in message
    assert not (tmp_path / "models").exists()  # nothing created (Spleeter would mkdir + download)
    with pytest.raises(ConfigError, match="no such Spleeter JSON"):
        check_spleeter_model(SpleeterSettings(model=str(tmp_path / "missing.json")))


@needs_spleeter
def test_embedded_model_without_download_is_a_clear_error(tmp_path: Path) -> None:
    settings = SpleeterSettings(env=str(ENV), model="spleeter:2stems", model_path=str(tmp_path))
    with pytest.raises(ConfigError, match=r"no checkpoint in .*2stems"):
        SpleeterBackend(settings)
    with pytest.raises(ConfigError, match="no embedded configuration"):
        SpleeterBackend(SpleeterSettings(env=str(ENV), model="spleeter:9stems"))


@pytest.mark.slow
@needs_spleeter
def test_separate_stage_with_tiny_trained_spleeter(
    tiny_model: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setitem(backends.BACKENDS, "spleeter", SpleeterBackend)
    rng = np.random.default_rng(1)
    raw = tmp_path / "raw"
    raw.mkdir()
    durations = {"long": 7.3, "short": 0.4}
    for name, seconds in durations.items():
        y = speech_like(max(seconds, 1.0), rng)[: int(seconds * SR)] + music_like(seconds)
        sf.write(raw / f"{name}.wav", y, SR)
    stereo = np.stack([music_like(2.0)] * 2, axis=1)
    sf.write(raw / "stereo.flac", stereo, 22050)
    durations["stereo"] = len(stereo) / 22050
    (raw / "broken.wav").write_bytes(b"RIFF not audio at all")
    rows = [
        ItemRow(id=p.stem, path=str(p), label="calm", speaker="", source_id="")
        for p in sorted(raw.iterdir())
    ]
    settings = SpleeterSettings(
        env=str(ENV), model=str(tiny_model), sample_rate=22050, chunk_seconds=3.0
    )
    out_rows, rejects, counts = separate_manifest(
        rows, settings, tmp_path / "separated", cache_root=tmp_path / "cache"
    )
    assert [r["id"] for r in rejects.rows] == ["broken"]
    assert "not decodable" in rejects.rows[0]["reason"]
    assert counts["separated"] == 3
    for row in out_rows:
        info = sf.info(row.path)
        assert info.samplerate == 22050 and info.channels == 1
        assert abs(info.duration - durations[row.id]) < 0.005, (row.id, info.duration)
        voice, _ = sf.read(row.path)
        assert np.all(np.isfinite(voice)) and np.abs(voice).max() > 0
    # A rerun takes every stem from the cache without starting Spleeter.
    again, _, counts = separate_manifest(
        rows, settings, tmp_path / "separated", cache_root=tmp_path / "cache"
    )
    assert counts["cached"] == 3 and counts["separated"] == 0
    assert [r.path for r in again] == [r.path for r in out_rows]


@pytest.mark.slow
@needs_spleeter
def test_backend_batches_report_each_job(tiny_model: Path, tmp_path: Path) -> None:
    src = tmp_path / "a.wav"
    sf.write(src, speech_like(3.0, np.random.default_rng(2)) + music_like(3.0), SR)
    settings = SpleeterSettings(env=str(ENV), model=str(tiny_model), batch_size=2)
    jobs = [
        (src, tmp_path / "out" / "a.wav"),
        (tmp_path / "missing.wav", tmp_path / "out" / "m.wav"),
        (src, tmp_path / "out" / "b.wav"),
    ]
    errors = SpleeterBackend(settings).separate_batch(jobs)
    assert errors[0] is None and errors[2] is None
    assert errors[1] is not None and "file not found" in errors[1]
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["a.wav", "b.wav"]
    assert sf.info(tmp_path / "out" / "b.wav").samplerate == 44100
