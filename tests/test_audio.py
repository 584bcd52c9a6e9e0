"""Shared audio I/O: ffmpeg discovery and streaming equal to whole-file decoding."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from seda import audio


def test_no_ffmpeg_anywhere_is_one_error_naming_both_remedies(monkeypatch) -> None:
    import imageio_ffmpeg

    def no_binary() -> str:
        raise RuntimeError("no ffmpeg exe could be found")

    monkeypatch.setattr(audio, "_FFMPEG", None)
    monkeypatch.setattr(audio.shutil, "which", lambda name: None)
    monkeypatch.setattr(imageio_ffmpeg, "get_ffmpeg_exe", no_binary)
    with pytest.raises(audio.FfmpegMissingError) as err:
        audio.find_ffmpeg()
    assert "apt-get install ffmpeg" in str(err.value)
    assert "pip install imageio-ffmpeg" in str(err.value)


def test_streamed_blocks_match_whole_file_decoding(tmp_path: Path) -> None:
    sr_in, sr_out = 44100, 16000
    t = np.arange(int(7.3 * sr_in)) / sr_in
    stereo = np.stack([np.sin(2 * np.pi * 220 * t), np.sin(2 * np.pi * 330 * t)], axis=1) * 0.3
    path = tmp_path / "tone.wav"
    sf.write(path, stereo, sr_in, subtype="PCM_24")
    whole, sr = audio.load_audio(path, sr_out)
    starts, blocks = zip(*audio.iter_audio_blocks(path, sr_out, block_seconds=2.0), strict=True)
    streamed = np.concatenate(blocks)
    assert sr == sr_out and starts[0] == 0.0 and len(starts) >= 4
    assert abs(len(streamed) - len(whole)) <= 2
    n = min(len(streamed), len(whole))
    assert np.max(np.abs(streamed[100 : n - 100] - whole[100 : n - 100])) < 1e-3


def test_non_finite_samples_are_an_audio_error(tmp_path: Path) -> None:
    y = np.zeros(16000, dtype=np.float32)
    y[100] = np.nan
    path = tmp_path / "nan.wav"
    sf.write(path, y, 16000, subtype="FLOAT")
    with pytest.raises(audio.AudioError, match="NaN/inf"):
        audio.load_audio(path)
